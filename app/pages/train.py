"""Train: launch a short run of any method in a background process (``sgpo-lab train``), then watch it live.

The run is a separate process (``python -m sgpo_lab.cli train ...``, its own session), so it outlives page
switches and reruns; the page only reads the run directory it writes. Runs go under the runs root, or under
``user_runs/`` when the root is the shipped ``demo_runs/`` (which stays untouched). The trainer refuses a
non-empty output directory, so the process's output goes to ``<root>/.train-logs/<name>.log`` beside it.
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


def out_root() -> Path:
    root = common.runs_root()
    if common.is_demo_root(root) or not Path(root).expanduser().is_dir():
        return common.USER_ROOT
    return Path(root).expanduser().resolve()


def setting_lines(text: str) -> list[str]:
    """The ``field=value`` lines of the settings box, as typed (the CLI parses each with the same parser)."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def launch(method: str, model: str, steps: int, seed: int, sets: list[str], out: Path) -> dict:
    logs = out.parent / ".train-logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{out.name}.log"
    cmd = [sys.executable, "-m", "sgpo_lab.cli", "train", "--method", method, "--model", model, "--steps", str(steps),
           "--seed", str(seed), "--out", str(out)]
    for line in sets:
        cmd += ["--set", line]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=common.REPO_ROOT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return {"name": out.name, "path": str(out), "log": str(log), "proc": proc, "started": time.time(),
            "cmd": " ".join(cmd[1:])}


def submit(root: Path, method: str, model: str, steps: int, seed: int, name: str, task: str, sets_text: str) -> None:
    from sgpo_lab.models import ModelLoadError, resolve_model_dir

    if not model:
        st.error("Choose a model: a shipped size, or type a model or run directory.")
        return
    task = task.strip() or DEFAULT_TASK
    try:
        values = parse_field_values(sets_text)
        if "task" in values:
            raise ValueError("the task is set in the Task field; remove task=... from the settings")
        common.load_task(task)  # a one-line error for a bad spec, before the config names it
        make_config(method, model=model, steps=steps, seed=seed, task=task, **values)  # what the CLI will build
        resolve_model_dir(model)
    except (ValueError, TaskError, ModelLoadError) as err:
        st.error(common.one_line(err))
        return
    name = name.strip() or f"{method}-s{seed}-{time.strftime('%H%M%S')}"
    if not NAME.match(name):
        st.error(f"Run name {name!r} must be letters, digits, '_', '-' or '.', starting with a letter or digit.")
        return
    out = root / name
    if out.exists():
        st.error(f"`{out}` already exists; choose another run name.")
        return
    sets = [f"task={json.dumps(task)}", *setting_lines(sets_text)]  # quoted: any spec stays one YAML string
    job = launch(method, model, steps, seed, sets, out)
    st.session_state.setdefault("train_jobs", []).append(job)
    st.success(f"Launched `{name}` on `{task}` (process {job['proc'].pid}); its log is `{job['log']}`.")


def _last_line(path: str) -> str:
    try:
        lines = [ln for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][-300:] if lines else ""


def _stop(job: dict) -> None:
    if job["proc"].poll() is None:
        job["proc"].send_signal(signal.SIGINT)  # the trainer saves a checkpoint and marks the run interrupted


def _open_in_runs(root: Path) -> None:
    st.session_state.runs_root = str(root)
    st.session_state.train_open_runs = True


def watch(jobs: list[dict], root: Path) -> None:
    alive = any(j["proc"].poll() is None for j in jobs)

    @st.fragment(run_every=WATCH_EVERY_S if alive else None)
    def panel():
        common.guard(jobs_panel)  # a fragment's own reruns do not pass through the page's guard

    def jobs_panel():
        st.subheader("Launched from this page")
        for job in reversed(jobs):
            code = job["proc"].poll()
            status = read_status(job["path"])
            state = status.get("state", "unknown")
            if state == "unknown":
                state = "starting" if code is None else "failed"
            step, total = status.get("step") or 0, status.get("total") or 1
            st.progress(min(1.0, step / total), text=f"**{job['name']}**: {common.state_badge(state)}, "
                                                     f"step {step}/{total}, {time.time() - job['started']:.0f} s")
            if state == "failed" or (code not in (None, 0) and state != "interrupted"):
                st.error(f"{job['name']} failed: {status.get('error') or _last_line(job['log']) or f'exit {code}'}")
            metrics = common.load("metrics", job["path"]) if Path(job["path"]).is_dir() else None
            if metrics is not None and not metrics.empty:
                frame = metrics.assign(run=job["name"], method=job["name"], seed=0)
                st.plotly_chart(metrics_figure(frame, ["loss", "p_auto", "entropy"], cols=3),
                                key=f"train_fig_{job['name']}", **common.PLOT)
            if code is None:
                st.button("Stop", key=f"stop_{job['name']}", on_click=_stop, args=(job,))
            st.caption(f"`{job['cmd']}`")
        if alive and not any(j["proc"].poll() is None for j in jobs):
            st.rerun()  # all done: a full rerun stops the polling

    panel()
    st.button("Open these runs on the Runs page", on_click=_open_in_runs, args=(root,), key="train_open")


def main():
    st.title("Train")
    root = out_root()
    note = " (not under the shipped demo runs, which stay untouched)" if root == common.USER_ROOT else ""
    st.caption(f"A short run of any method, in a background process; runs are written under `{root}`{note}.")
    if st.session_state.pop("train_open_runs", False):
        st.switch_page("pages/runs.py")
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
        sets_text = st.text_area("More settings (one TrainConfig field=value per line)", key="train_sets",
                                 placeholder="eval_every=5\nproblems_per_step=4", height=90)
        submitted = st.form_submit_button("Launch", type="primary")
    if submitted:
        model = model_dir.strip() if size == OTHER else size
        submit(root, method, model, steps, seed, name, task, sets_text)
    if not sizes:
        st.info("No shipped model is on disk yet: choose '(a directory)' and type a model or run directory.")
    jobs = st.session_state.get("train_jobs", [])
    if jobs:
        watch(jobs, root)


common.guard(main)
