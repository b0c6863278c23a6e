"""Train: launch a short run of any method in a background process (``sgpo-lab train``), then watch it live.

The run is a separate process (``python -m sgpo_lab.cli train ...``, its own session), so it outlives page
switches and reruns; the page only reads the run directory it writes. Runs go under the runs root, which must be
an existing folder (nothing is created from the sidebar's text), or under ``user_runs/`` when the root is the
shipped ``demo_runs/`` (which stays untouched). The trainer refuses a non-empty output directory, so the
process's output goes to ``<root>/.train-logs/<name>.log`` beside it. At most ``common.MAX_LAUNCHED`` launched
runs train at once (the whole server, every session).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import common
import streamlit as st

from sgpo_lab.config import METHOD_HELP, METHODS, make_config, parse_field_values
from sgpo_lab.runs import read_status
from sgpo_lab.tasks import DEFAULT_TASK, TASK_KINDS, TaskError
from sgpo_lab.viz import metrics_figure

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
WATCH_EVERY_S = 1.5
OTHER = "(a directory)"
MAX_SETTINGS = 20_000  # characters of the settings box
PAGE_FIELDS = {"method": "Method", "model": "Model", "steps": "Steps", "seed": "Seed", "task": "Task"}


def out_root() -> tuple[Path | None, str | None]:
    """Where launched runs go (the runs root; ``user_runs/`` for the shipped demo runs), or why nowhere."""
    root = common.runs_root()
    if common.is_demo_root(root):
        return common.USER_ROOT, None
    why = common.root_problem(root)
    if why is None and not os.access(Path(root).expanduser(), os.W_OK | os.X_OK):
        why = f"The runs root {common.clip(root, 100)!r} cannot be written; expected a folder you can write to"
    return (None, why) if why else (Path(root).expanduser().resolve(), None)


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a plain folder name for a run (one line), or None."""
    if NAME.match(name) and ".." not in name:
        return None
    shown = name if len(name) <= 40 else name[:39] + "…"
    return (f"Run name {shown!r} must be letters, digits, '_', '-' or '.' (no '/', '..' or NUL), starting with a "
            "letter or digit, at most 64 characters; expected a plain folder name such as sgpo-s0.")


def setting_lines(text: str) -> list[str]:
    """The ``field=value`` lines of the settings box, as typed (the CLI parses each with the same parser)."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def launch(method: str, model: str, steps: int, seed: int, sets: list[str], out: Path) -> dict:
    """Start the run; its log goes to ``<root>/.train-logs`` (a link there, or a log that is a link, is refused)."""
    logs = out.parent / ".train-logs"
    if logs.is_symlink() or (logs.exists() and not logs.is_dir()):
        raise OSError(f"{logs} is not a plain folder; expected the runs root's own .train-logs folder")
    logs.mkdir(parents=out.parent == common.USER_ROOT, exist_ok=True)  # only user_runs/ is ever created
    log = logs / f"{out.name}.log"
    cmd = [sys.executable, "-m", "sgpo_lab.cli", "train", "--method", method, f"--model={model}", "--steps",
           str(steps), "--seed", str(seed), f"--out={out}"]
    for line in sets:
        cmd += ["--set", line]
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=common.REPO_ROOT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return {"name": out.name, "path": str(out), "log": str(log), "proc": proc, "started": time.time(),
            "cmd": " ".join(cmd[1:])}


def check(method: str, model: str, steps: int, seed: int, task: str, sets_text: str) -> str | None:
    """Why these settings cannot make a run (one line), or None: the config the CLI will build is built here first."""
    from sgpo_lab.models import ModelLoadError, resolve_model_dir

    if not model:
        return "Choose a model: a shipped size, or type a model or run directory."
    if "\x00" in model + task:
        return "The model or task holds a NUL byte; expected a size, a folder path or a task spec."
    if len(sets_text) > MAX_SETTINGS:
        return f"The settings are {len(sets_text):,} characters long; expected at most {MAX_SETTINGS:,}."
    try:
        values = parse_field_values(sets_text)  # refuses YAML aliases and tags, at once
        for key, label in PAGE_FIELDS.items():
            if key in values:
                return f"{key} is set in the page's {label} field; remove {key}=... from the settings."
        common.load_task(task)  # a one-line error for a bad spec, before the config names it
        make_config(method, model=model, steps=steps, seed=seed, task=task, **values)  # what the CLI will build
        resolve_model_dir(model)
    except (ValueError, TypeError, TaskError, ModelLoadError, RecursionError) as err:
        return common.one_line(err)
    return None


def submit(root: Path | None, method: str, model: str, steps: int, seed: int, name: str, task: str,
           sets_text: str, label: str = "") -> None:
    task = task.strip() or DEFAULT_TASK
    name = name.strip() or f"{method}-s{seed}-{time.strftime('%H%M%S')}"
    if root is None:
        why = out_root()[1]
    else:
        why = check(method, model, steps, seed, task, sets_text) or name_problem(name)
        if why is None and ((root / name).exists() or (root / name).is_symlink()):
            why = f"`{root / name}` already exists; choose another run name."
    if why:
        st.error(why)
        return
    with common.LAUNCH_LOCK:  # the count and the start together: two sessions cannot both take the last place
        running = common.launched_running()
        if len(running) >= common.MAX_LAUNCHED:
            st.error(f"{len(running)} launched runs are still training (at most {common.MAX_LAUNCHED} at once); "
                     "stop one or wait for it to finish, then launch again.")
            return
        sets = [f"task={json.dumps(task)}", *setting_lines(sets_text)]  # quoted: any spec stays one YAML string
        try:
            job = launch(method, model, steps, seed, sets, root / name)
        except OSError as err:
            st.error(f"Cannot start the run: {common.one_line(err)}.")
            return
        common.LAUNCHED.append(job["proc"])
    label = " ".join(label.split())[:60]
    if label:  # what the Runs page groups this run by (with runs of the same label and config)
        try:
            (Path(job["log"]).parent / f"{name}{common.LABEL_SUFFIX}").write_text(label + "\n")
        except OSError as err:
            st.warning(f"The label was not saved ({common.one_line(err)}); the run is grouped by its method.")
    st.session_state.train_launched_at = time.time()
    common.refresh_runs()
    st.session_state.setdefault("train_jobs", []).append(job)
    st.success(f"Launched `{name}` on `{task}` (process {job['proc'].pid}); its log is `{job['log']}`.")


def _last_line(path: str) -> str:
    """The log's last non-empty line (its last 4 kB are read, however long it grew)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 4096))
            lines = [ln for ln in fh.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][-300:] if lines else ""


def _stop(job: dict) -> None:
    if job["proc"].poll() is None:
        job["proc"].send_signal(signal.SIGINT)  # the trainer saves a checkpoint and marks the run interrupted


def _open_in_runs(root: Path) -> None:
    common.refresh_runs()  # the new run shows at once; the Runs page then watches the root while it runs
    st.session_state.runs_root = str(root)
    st.session_state.train_open_runs = True


def watch(jobs: list[dict]) -> None:
    alive = any(j["proc"].poll() is None for j in jobs)

    @st.fragment(run_every=WATCH_EVERY_S if alive else None)
    def panel():
        common.guard(jobs_panel)  # a fragment's own reruns do not pass through the page's guard

    def jobs_panel():
        st.subheader("Launched from this page")
        for job in reversed(jobs):
            code = job["proc"].poll()
            status = read_status(job["path"])
            state = str(status.get("state", "unknown"))
            if state == "unknown":
                state = "starting" if code is None else "failed"
            step, total = common.step_total(status)
            st.progress(min(1.0, step / total), text=f"**{job['name']}**: {common.state_badge(state)}, "
                                                     f"step {step}/{total}, {time.time() - job['started']:.0f} s")
            if state == "failed" or (code not in (None, 0) and state != "interrupted"):
                why = common.clip(status.get("error")) or _last_line(job["log"]) or f"exit {code}"
                st.error(f"{job['name']} failed: {why}")
            metrics = common.load("metrics", job["path"], job["name"]) if Path(job["path"]).is_dir() else None
            if metrics is not None and not metrics.empty:
                frame = metrics.assign(run=job["name"], method=job["name"], seed=0)
                from sgpo_lab.viz.style import apply_look

                st.plotly_chart(apply_look(metrics_figure(frame, ["loss", "p_auto", "entropy"], cols=3),
                                           **common.look()), key=f"train_fig_{job['name']}", **common.PLOT)
            if code is None:
                st.button("Stop", key=f"stop_{job['name']}", on_click=_stop, args=(job,))
            st.caption(f"`{job['cmd']}`")
        if alive and not any(j["proc"].poll() is None for j in jobs):
            st.rerun()  # all done: a full rerun stops the polling

    panel()
    root = Path(jobs[-1]["path"]).parent  # where the last launch wrote (the root it was launched under)
    st.button("Open these runs on the Runs page", on_click=_open_in_runs, args=(root,), key="train_open")


def main():
    st.title("Train")
    root, why = out_root()
    if why:
        st.error(f"Cannot launch runs here. {why}; set another runs root in the sidebar.")
    else:
        note = " (not under the shipped demo runs, which stay untouched)" if root == common.USER_ROOT else ""
        st.caption(f"A short run of any method, in a background process; runs are written under `{root}`{note}.")
    if st.session_state.pop("train_open_runs", False):
        st.switch_page("views/runs.py")
    sizes = common.shipped_sizes()
    choices = sizes + [OTHER]
    default = "small" if "small" in sizes else "tiny" if "tiny" in sizes else choices[0]
    with st.form("train_form"):
        c1, c2 = st.columns(2)
        method = c1.selectbox("Method", list(METHODS), key="train_method",
                              format_func=lambda m: f"{m}: {METHOD_HELP.get(m, '')}")
        size = c2.selectbox("Model", choices, index=choices.index(default), key="train_size")
        model_dir = st.text_input("Model or run directory (when Model is a directory)", key="train_dir")
        task = st.text_input("Task", value=DEFAULT_TASK, key="train_task", max_chars=common.MAX_TASK_SPEC,
                             help="What to train on: " + "; ".join(f"`{k}`: {v}" for k, v in TASK_KINDS.items()))
        c3, c4, c5 = st.columns(3)
        steps = int(c3.number_input("Steps", 1, 1000, 10, key="train_steps"))
        seed = int(c4.number_input("Seed", 0, 10**6, 0, key="train_seed"))
        name = c5.text_input("Run name", key="train_name", placeholder="default: <method>-s<seed>-<time>")
        label = st.text_input("Label (optional)", key="train_label", max_chars=60,
                              placeholder="e.g. sgpo lr=1e-3: runs with one label and config are averaged as seeds",
                              help="The Runs page groups runs by method and the config fields where they differ; "
                                   "a label names the group instead (runs of one label whose configs differ are "
                                   "still drawn apart).")
        sets_text = st.text_area("More settings (one TrainConfig field=value per line)", key="train_sets",
                                 placeholder="eval_every=5\nproblems_per_step=4", height=90)
        submitted = st.form_submit_button("Launch", type="primary", disabled=root is None)
    if submitted:
        model = model_dir.strip() if size == OTHER else size
        submit(root, method, model, steps, seed, name, task, sets_text, label)
    if not sizes:
        st.info("No shipped model is on disk yet: choose '(a directory)' and type a model or run directory.")
    jobs = st.session_state.get("train_jobs", [])
    if jobs:
        watch(jobs)


common.guard(main)
