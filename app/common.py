"""Shared parts of the workbench pages: the runs root, cached loaders, run pickers and one-line errors.

Pages stay short: they pick, call ``sgpo_lab`` and show. Everything cached lives here:
models with ``st.cache_resource`` (keyed by spec; loaded only for inference, never trained in place),
run data with ``st.cache_data`` keyed by the run's file stamp (``runs.run_stamp``), so a live run is
re-read when, and only when, its writer has written. Run names are resolved with ``runs.resolve_run``:
reading never leaves the chosen runs root.

The workbench follows the data: a run's task is its config.yaml's ``task`` (older runs have none: the Strategy
World), its families are the ``family`` values its own tables hold, and runs of different tasks are never pooled.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from sgpo_lab import runs as R
from sgpo_lab.tasks import DEFAULT_TASK, Problem, Task, TaskError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_ROOT = REPO_ROOT / "demo_runs"
USER_ROOT = REPO_ROOT / "user_runs"
RUNS_ENV = "SGPO_LAB_RUNS"
PLOT = {"theme": None, "config": {"displaylogo": False}}  # our colours as designed; no plotly.com link


# ------------------------------------------------------------------------------------------ errors


def one_line(err: BaseException) -> str:
    """An exception as one line: its message's first line (the type name if it has none)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def guard(page: Callable[[], None]) -> None:
    """Run a page; an unexpected exception becomes one ``st.error`` line instead of a traceback.

    Known bad inputs are handled on the pages with specific messages; this is the last resort. Streamlit's
    own control flow (``st.stop``, reruns, page switches) derives from BaseException and passes through.
    """
    try:
        page()
    except Exception as err:  # the page must keep working whatever the library raised
        st.error(f"Something went wrong on this page ({type(err).__name__}: {one_line(err)}). "
                 "Change the inputs or pick another run; the rest of the workbench still works.")
        print(traceback.format_exc(), flush=True)  # for the terminal that runs the server, not for the page


# --------------------------------------------------------------------------------------- runs root


def default_runs_root() -> str:
    """``$SGPO_LAB_RUNS`` if set, else the shipped ``demo_runs/``."""
    return os.environ.get(RUNS_ENV) or str(DEMO_ROOT)


def runs_root() -> str:
    """The runs root chosen in the sidebar."""
    return (st.session_state.get("runs_root") or "").strip() or default_runs_root()


def is_demo_root(root: str | Path) -> bool:
    if "\x00" in str(root):
        return False
    try:
        return Path(root).expanduser().resolve() == DEMO_ROOT.resolve()
    except (OSError, ValueError, RuntimeError):
        return False


MAX_ROOT_CHARS = 4096


def root_problem(root: str | Path) -> str | None:
    """Why ``root`` cannot serve as the runs root (one line), or None: it must be an existing, readable folder.

    Nothing is created: a folder that does not exist is refused, whatever the sidebar says.
    """
    text = str(root)
    if "\x00" in text:
        return "The runs root holds a NUL byte; expected the path of an existing folder"
    if len(text) > MAX_ROOT_CHARS:
        return f"The runs root is {len(text):,} characters long; expected a folder path of at most {MAX_ROOT_CHARS:,}"
    shown = text if len(text) <= 100 else text[:99] + "…"
    try:
        path = Path(text).expanduser()
        if not path.exists():
            return f"The runs root {shown!r} does not exist; expected an existing folder of run directories"
        if not path.is_dir():
            return f"The runs root {shown!r} is not a folder; expected a folder of run directories"
        with os.scandir(path) as entries:
            next(entries, None)
    except (OSError, RuntimeError, ValueError) as err:
        why = getattr(err, "strerror", None) or one_line(err)
        return f"The runs root {shown!r} cannot be read ({why}); expected a folder you can read"
    return None


def task_spec(config: dict) -> str:
    """The task a run was trained on: config.yaml's ``task`` (older runs have none: ``world``)."""
    spec = config.get("task") if isinstance(config, dict) else None
    return spec.strip() if isinstance(spec, str) and spec.strip() else DEFAULT_TASK


def _count(value, default=None) -> int | None:
    """A whole number >= 0 from a run file's field (a bool, text, a negative or a fraction gives ``default``)."""
    if isinstance(value, bool):
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and 0 <= value <= 10**12 else default


def clip(value, limit: int = 300) -> str | None:
    """A run file's message as one bounded line (None when there is none)."""
    if _text(value) is None:
        return None
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def step_total(status: dict) -> tuple[int, int]:
    """(step, total) of a status.json for a progress bar: whole numbers, total at least 1 (bad values: 0 and 1)."""
    return _count(status.get("step"), 0), max(1, _count(status.get("total"), 1))


@st.cache_data(ttl=2, show_spinner=False)
def _list_runs(root: str) -> pd.DataFrame:
    table = R.list_runs(root)
    if "task" not in table.columns:  # a library that does not list tasks: read them from config.yaml
        table = table.assign(task=[task_spec(R.read_config(p)) for p in table["path"]])
    # every cell well typed, whatever the run's files held (a seed of "abc", a step of -5, an error that is a dict)
    return table.assign(
        name=table["name"].astype(str), path=table["path"].astype(str),
        method=[clip(m, 80) or "?" for m in table["method"]], state=[clip(s, 40) or "?" for s in table["state"]],
        task=[t.strip() if isinstance(t, str) and t.strip() else DEFAULT_TASK for t in table["task"]],
        seed=pd.Series([_count(v) for v in table["seed"]], index=table.index, dtype=object),
        model=[clip(m, 200) for m in table["model"]], error=[clip(e) for e in table["error"]],
        step=[_count(v, 0) for v in table["step"]],
        total=pd.Series([_count(v) for v in table["total"]], index=table.index, dtype=object))


def runs_table(root: str | None = None, *, quiet: bool = False) -> pd.DataFrame | None:
    """The runs under the root, or None after telling the user why there are none."""
    root = root or runs_root()
    problem = root_problem(root)
    try:
        if problem:
            raise R.RunError(problem)
        table = _list_runs(root)
    except R.RunError as err:
        if not quiet:
            if is_demo_root(root):
                st.info("The shipped demo runs are not here yet (`demo_runs/`). Set a runs root in the sidebar "
                        "(a folder of run directories), or start a short run on the **Train** page.")
            else:
                st.warning(f"{one_line(err)}; set another runs root in the sidebar.")
        return None
    if table.empty:
        if not quiet:
            st.info(f"No runs under `{root}` yet. Train one on the **Train** page (`sgpo-lab train --out ...`), "
                    "or point the sidebar's runs root at a folder of run directories.")
        return None
    return table


def manifest(root: str | None = None) -> dict[str, dict]:
    """``<root>/MANIFEST.json`` (written by scripts/make_demo_runs.py: the command that made each run), or {}."""
    import json
    import stat

    try:
        path = Path(root or runs_root()).expanduser() / "MANIFEST.json"
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > 1_000_000:  # a FIFO would hang the page
            return {}
        body = json.loads(path.read_text(errors="replace"))
    except (OSError, ValueError, RecursionError):
        return {}
    return {str(k): v for k, v in body.items() if isinstance(v, dict)} if isinstance(body, dict) else {}


def run_path(name: str, root: str | None = None) -> Path:
    """The run directory of ``name``, refusing names that leave the runs root (``..``, links out)."""
    return R.resolve_run(root or runs_root(), name)


# ------------------------------------------------------------------------------------ cached loads

_LOADERS = {"metrics": R.load_metrics, "eval": R.load_eval, "instances": R.load_instances,
            "token_shifts": R.load_token_shifts}


@dataclass(frozen=True)
class Table:
    """What the views need of one run table: figure builders get only frames that hold these, well typed."""

    what: str  # how messages name it
    needed: tuple[str, ...]  # columns every view of it reads; a row without a usable value in one is skipped
    keys: tuple[str, ...]  # whole numbers >= 0 (a step, a position)
    texts: tuple[str, ...]  # text columns (other values become their text)
    numbers: tuple[str, ...] | None  # number columns (None: every column but the texts)


TABLES = {
    "metrics": Table("metrics.jsonl", ("step",), ("step",), ("phase",), None),
    "eval": Table("eval.jsonl", ("step", "family", "split", "accuracy"), ("step",), ("family", "split"),
                  ("accuracy", "pass_at_k", "k", "n_problems")),
    "instances": Table("instances table", ("step", "problem_id", "p_auto", "weight"), ("step",),
                       ("problem_id", "family", "target_text", "card"), ("p_auto", "p_guided", "weight", "kl_mean",
                                                                          "target")),
    "token_shifts": Table("token_shifts table", ("step", "problem_id", "position", "token", "kl", "logp_change",
                                                 "p_guided", "p_unguided"), ("step", "position"),
                          ("problem_id", "family", "question", "card", "token"),
                          ("kl", "logp_change", "p_guided", "p_unguided")),
}
MAX_KEY = 10**9  # a step or position past this is not one the trainer wrote


def _text(value) -> str | None:
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    return value if isinstance(value, str) else str(value)


def typed(kind: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """``frame`` with its numbers as floats (keys as ints) and its texts as str, and what was wrong (one line).

    Numbers are coerced (``pd.to_numeric(errors="coerce")``; infinities count as bad); a row whose key or needed value
    is not usable is dropped, a bad value elsewhere becomes NaN. A table that lacks a needed column is empty.
    """
    spec = TABLES[kind]
    if frame.empty:
        return frame, None
    missing = sorted(set(spec.needed) - set(frame.columns))
    if missing:
        return pd.DataFrame(), (f"its {spec.what} lacks the column{'s' if len(missing) > 1 else ''} "
                                f"{', '.join(missing)}; expected a table written by this version of the lab's trainer")
    frame = frame.reset_index(drop=True)
    drop = pd.Series(False, index=frame.index)
    bad: dict[str, str] = {}
    numbers = spec.numbers if spec.numbers is not None else [c for c in frame.columns if c not in spec.texts]
    numbers = list(dict.fromkeys([*spec.keys, *numbers]))
    for col in [c for c in numbers if c in frame.columns]:
        raw = frame[col]
        if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):  # fast path: no text in it
            num = raw.astype(float)
            failed = ~np.isfinite(num) & raw.notna()
            num = num.where(np.isfinite(num))
        else:
            try:
                num = pd.to_numeric(raw, errors="coerce").astype(float)
            except (TypeError, ValueError):  # values pandas cannot even try (nested arrays)
                num = pd.Series(np.nan, index=frame.index)
            num = num.where(np.isfinite(num))
            failed = num.isna() & raw.map(lambda v: _text(v) is not None)
        if col in spec.keys:
            failed |= num.isna() | (num < 0) | (num % 1 != 0) | (num > MAX_KEY)
        if failed.any():
            bad[col] = "a whole number ≥ 0" if col in spec.keys else "a number"
        if col in spec.keys or col in spec.needed:
            drop |= failed | num.isna()
        frame[col] = num
    for col in [c for c in spec.texts if c in frame.columns]:
        frame[col] = frame[col].map(_text)
        if col in spec.needed and frame[col].isna().any():
            drop |= frame[col].isna()
            bad[col] = "a value"
    frame = frame.loc[~drop].copy()
    for col in spec.keys:
        frame[col] = frame[col].astype("int64")
    frame = frame.reset_index(drop=True)
    if not bad and not drop.any():
        return frame, None
    wanted = "; ".join(f"{col}: {what}" for col, what in list(bad.items())[:4]) or "every needed value"
    note = (f"{int(drop.sum()):,} of the {len(drop):,} rows of its {spec.what} are skipped" if drop.any()
            else f"some values of its {spec.what} are left out") + f" (expected {wanted})"
    return frame, note


@st.cache_data(show_spinner=False, max_entries=512)
def _load(kind: str, path: str, stamp: tuple) -> tuple[pd.DataFrame, str | None]:
    """``(frame, what was wrong)`` of one run's table: never raises, so one bad run cannot blank a page."""
    try:
        return typed(kind, _LOADERS[kind](path))
    except Exception as err:  # whatever the files held: this run is reported, the others still show
        return pd.DataFrame(), f"its {TABLES[kind].what} cannot be read ({type(err).__name__}: {one_line(err)[:160]})"


def _stamp(path: str | Path) -> tuple:
    try:
        return R.run_stamp(path)
    except (OSError, ValueError):
        return ()


def load(kind: str, path: str | Path, name: str | None = None, *, say=st.error) -> pd.DataFrame | None:
    """One table of one run (metrics | eval | instances | token_shifts), typed, cached until the run's files change.

    A table that cannot be used is None after ``say`` (``st.error``; None: silently) told why in one line; rows
    skipped for bad values are a warning.
    """
    frame, note = _load(kind, str(path), _stamp(path))
    if note and say is not None:
        who = f"Run `{name or Path(path).name}`"
        (say if frame.empty else st.warning)(f"{who}: {note}.")
    return None if note and frame.empty else frame


def run_keys(table: pd.DataFrame, names: list[str]) -> tuple:
    """``(name, group, seed, path, stamp)`` of each chosen run: everything a multi-run view depends on. The group
    (``with_groups``: the method, plus the config fields where runs of it differ) is what views pool as seeds; a
    table without groups pools by method.

    A run that cannot be found any more is left out with a one-line warning.
    """
    rows = table.set_index("name")
    keys = []
    for name in names:
        try:
            path = run_path(name)
        except R.RunError as err:
            st.warning(f"Run `{name}` is left out: {one_line(err)}.")
            continue
        group = rows.loc[name, "group"] if "group" in rows.columns else rows.loc[name, "method"]
        keys.append((name, str(group), _count(rows.loc[name, "seed"]), str(path), _stamp(path)))
    return tuple(keys)


def readable(kind: str, keys: tuple) -> tuple:
    """The runs of ``keys`` whose ``kind`` table can be shown; each other one gets a one-line warning."""
    kept = []
    for key in keys:
        frame, note = _load(kind, key[3], key[4])
        if note:
            st.warning(f"Run `{key[0]}`{' is left out' if frame.empty else ''}: {note}.")
        if not (note and frame.empty):
            kept.append(key)
    return tuple(kept)


def collect_keys(kind: str, keys: tuple) -> pd.DataFrame:
    """One table of several runs (``run_keys``) with ``run``, ``method``, ``seed`` columns, cached per run."""
    frames = [_load(kind, path, stamp)[0].assign(run=name, method=method, seed=seed)
              for name, method, seed, path, stamp in keys]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@st.cache_data(show_spinner=False, max_entries=64)
def eval_layout(keys: tuple) -> tuple[list[str], list[str]]:
    """(families, splits) the chosen runs (``run_keys``) evaluated: what their selectors offer."""
    evals = collect_keys("eval", keys)
    return families_of(evals), splits_of(evals)


def collect(kind: str, table: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """One table of several runs with ``run``, ``method``, ``seed`` columns (as ``runs.collect_*``), cached per run;
    a run whose table cannot be shown is left out with a one-line warning."""
    return collect_keys(kind, readable(kind, run_keys(table, names)))


@st.cache_resource(max_entries=64, show_spinner=False)
def run_figure(builder: str, kind: str, keys: tuple, *args, look: tuple = (), **kwargs):
    """``sgpo_lab.viz.<builder>(collect_keys(kind, keys), *args, **kwargs)``, built once per runs' files and settings.

    A resource, not a copy: ``st.plotly_chart`` only reads the figure. A live run's fragment redraws every few
    seconds; unless the writer wrote, that costs no rebuild (the figure is most of a rerun's CPU).
    """
    from sgpo_lab import viz
    from sgpo_lab.viz.style import apply_look

    return apply_look(getattr(viz, builder)(collect_keys(kind, keys), *args, **kwargs), **dict(look))


def is_empty(fig) -> bool:
    """A builder's blank 'nothing to show' figure (``viz.empty_figure``)."""
    return bool(fig.layout.meta and fig.layout.meta.get("empty"))


def run_config(name: str) -> dict:
    return R.read_config(run_path(name))


def weight_settings(config: dict) -> dict:
    """The weight formula's settings of a run's config, only the well-typed ones (the others take their defaults)."""
    out = {}
    for key in ("alpha0", "gamma", "alpha_max"):
        value = config.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < float("inf"):
            out[key] = float(value)
    if out.get("gamma") == 0:
        del out["gamma"]
    if config.get("weight") in ("pass_gap", "linear", "constant"):
        out["weight"] = config["weight"]
    if isinstance(config.get("distill"), str):
        out["distill"] = config["distill"]
    return out


# ------------------------------------------------------------------------------------- run pickers


MAIN_METHODS = ("sgpo", "grpo", "sft", "sft_grpo", "luffy")  # the paper's main table; ablations are opt-in


def default_runs(table: pd.DataFrame, limit: int = 30) -> list[str]:
    """Runs shown by default: the finished and running runs of the main methods (else of any method, else all)."""
    live = table[table["state"].isin(["finished", "running"])]
    main = live[live["method"].isin(MAIN_METHODS)]["name"].tolist()
    return (main or live["name"].tolist() or table["name"].tolist())[:limit]


def pick_run(table: pd.DataFrame, key: str, *, label: str = "Run", prefer: str = "sgpo",
             names: list[str] | None = None, reset: tuple[str, ...] = ()) -> str | None:
    """A single run picker; defaults to the first finished run of method ``prefer`` (else any of it, else the first).

    ``reset``: widget keys that go back to their defaults when another run is picked (its families differ).
    """
    names = names if names is not None else table["name"].tolist()
    if not names:
        return None
    rows = table.set_index("name")
    methods, states = rows["method"], rows["state"]
    ranked = [i for i, n in enumerate(names) if methods.get(n) == prefer and states.get(n) == "finished"]
    ranked += [i for i, n in enumerate(names) if methods.get(n) == prefer]
    first = ranked[0] if ranked else 0
    tasks = rows["task"] if "task" in rows.columns else pd.Series(dtype=str)

    def forget():
        for k in reset:
            st.session_state.pop(k, None)

    return st.selectbox(label, names, index=first, key=key, on_change=forget,
                        format_func=lambda n: f"{n}  ·  {methods.get(n, '?')}"
                                              + (f"  ·  {tasks.get(n)}" if tasks.get(n, DEFAULT_TASK) != DEFAULT_TASK
                                                 else ""))


def tasks_of(table: pd.DataFrame) -> list[str]:
    """The tasks of the runs in ``table``, the Strategy World first, then in the order the runs are listed."""
    tasks = list(dict.fromkeys(table["task"]))
    return sorted(tasks, key=lambda t: t != DEFAULT_TASK)


def pick_task(table: pd.DataFrame, key: str, *, reset: tuple[str, ...] = ()) -> tuple[str, pd.DataFrame]:
    """The task whose runs a page shows, and those runs: a picker when the root holds runs of several tasks.

    Runs of different tasks are never pooled (their families, splits and accuracies are not comparable).
    ``reset``: widget keys that go back to their defaults when the task changes (the run pickers).
    """
    tasks = tasks_of(table)
    if len(tasks) == 1:
        return tasks[0], table
    counts = table["task"].value_counts()

    def forget():
        for k in reset:
            st.session_state.pop(k, None)

    task = st.selectbox("Task", tasks, key=key, on_change=forget,
                        format_func=lambda t: f"{t}  ·  {counts.get(t, 0)} runs",
                        help="Runs of different tasks are shown apart: their problems and accuracies differ.")
    return task, table[table["task"] == task]


def with_family(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a ``family`` column: its own, else read from problem ids (``<family>-<split>-<index>``)."""
    if frame.empty or "family" in frame.columns or "problem_id" not in frame.columns:
        return frame
    return frame.assign(family=frame["problem_id"].astype(str).str.rsplit("-", n=2).str[0])


def families_of(frame: pd.DataFrame) -> list[str]:
    """The problem types (families) a run table holds, in the order they first appear; 'all' left out."""
    frame = with_family(frame)
    if frame.empty or "family" not in frame.columns:
        return []
    return [f for f in dict.fromkeys(frame["family"].dropna().astype(str)) if f != "all"]


def in_order(families: list[str], reference: list[str]) -> list[str]:
    """``families`` in ``reference``'s order (an eval table's: the task's own), the others after them."""
    rank = {f: i for i, f in enumerate(reference)}
    return sorted(families, key=lambda f: rank.get(f, len(rank)))


def splits_of(evals: pd.DataFrame) -> list[str]:
    """The splits an eval table holds (id first, then ood, then any other); ``["id"]`` when it holds none."""
    found = list(dict.fromkeys(evals["split"].dropna().astype(str))) if "split" in evals.columns else []
    order = {"id": 0, "ood": 1}
    return sorted(found, key=lambda s: order.get(s, 2)) or ["id"]


def state_badge(state: str) -> str:
    return {"running": "🟢 running", "finished": "✅ finished", "failed": "❌ failed", "crashed": "💥 crashed",
            "interrupted": "⏸ interrupted", "unreadable": "⚠️ unreadable"}.get(state, f"❔ {state}")


# -------------------------------------------------------------------------------------------- launches

MAX_LAUNCHED = 2  # runs the Train page keeps training at once, in this server (every session together)
LAUNCHED: list = []  # the processes the Train page started (subprocess.Popen)
LAUNCH_LOCK = threading.Lock()


def launched_running() -> list:
    """The processes the Train page started that still run (finished ones are forgotten)."""
    LAUNCHED[:] = [p for p in LAUNCHED if p.poll() is None]
    return list(LAUNCHED)


# ------------------------------------------------------------------------------------------ models


def shipped_sizes() -> list[str]:
    """The shipped model sizes present on disk (``sgpo_lab/assets/base/<size>``)."""
    from sgpo_lab.models import BASE_MODELS, SIZES

    return [s for s in SIZES if (BASE_MODELS / s / "config.json").exists()]


def model_stamp(spec: str) -> tuple:
    """Changes when the model files behind ``spec`` change, so a rewritten directory is reloaded."""
    from sgpo_lab.models import ModelLoadError, resolve_model_dir

    try:
        path = resolve_model_dir(spec)
        return tuple((p.name, p.stat().st_mtime_ns) for p in sorted(path.glob("*")) if p.is_file())
    except (ModelLoadError, OSError):
        return ()


SINGLE_THREAD_PARAMS = 50_000_000


def inference_threads(model) -> int:
    """Run the lab's small models on one thread, and return the thread count.

    Their matrices are too small to split: on a 2-core CPU shared with other work, a 100-token shift
    analysis on ``small`` took 26 ms on one thread and 650 ms on two (the threads wait on each other).
    Process-wide (torch has one pool); larger models keep torch's default.
    """
    import torch

    if sum(p.numel() for p in model.parameters()) < SINGLE_THREAD_PARAMS:
        torch.set_num_threads(1)
    return torch.get_num_threads()


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def _load_model(spec: str, stamp: tuple):
    from sgpo_lab.models import load_model

    model, tokenizer = load_model(spec)
    inference_threads(model)
    return model, tokenizer


def load_model(spec: str):
    """``(model, tokenizer)`` for a spec, cached; raises ``ModelLoadError`` (one line) when it cannot load."""
    return _load_model(spec, model_stamp(spec))


# ------------------------------------------------------------------------------------------- tasks

MAX_TASK_SPEC = 300  # characters of a typed task spec (a JSONL path included)


def load_task(spec: str) -> Task:
    """The task a spec names (``sgpo_lab.tasks.load_task``), any failure as a one-line ``TaskError``.

    A ``module:function`` spec imports and calls code; one naming a standard-library module (``os:abort``) is
    refused, because the call would run inside the workbench's server.
    """
    from sgpo_lab.tasks import load_task as _load

    spec = (spec or "").strip() or DEFAULT_TASK
    if len(spec) > MAX_TASK_SPEC:
        raise TaskError(f"the task spec is {len(spec):,} characters long; the limit is {MAX_TASK_SPEC}")
    kind, _, arg = spec.partition(":")
    if kind not in ("world", "reasoning-gym", "jsonl") and arg:
        top = kind.split(".")[0]
        if top in sys.stdlib_module_names or top == "builtins":
            raise TaskError(f"task {spec!r} names the standard-library module {top!r}; expected module:function "
                            "of your own code that returns a sgpo_lab.tasks.Task")
    try:
        return _load(spec)
    except TaskError:
        raise
    except Exception as err:  # a module:function task runs user code: whatever it raised, one line
        raise TaskError(f"task {spec!r} cannot be built ({type(err).__name__}: {one_line(err)})") from None


def is_world(task: Task) -> bool:
    return task.name.split(":")[0] == "world"


def typed_correct(task: Task, question: str, answer: str, completion: str) -> bool:
    """A completion of a typed question against a typed gold answer, graded as the task grades.

    The task's verifier gets a problem built from the two texts; a verifier that needs more than the gold
    answer (a reasoning-gym entry) cannot grade it, so an extracted answer equal to the gold one also counts.
    """
    family = task.families[0] if len(task.families) == 1 else ""
    problem = Problem(id="typed", family=family, split="id", question=question, answer=answer)
    try:
        if task.correct(problem, completion):
            return True
    except Exception:  # a verifier that cannot grade a problem it did not make
        pass
    got = task.extract_answer(completion)
    return got is not None and got.strip().casefold() == answer.strip().casefold()


@st.cache_data(show_spinner=False, max_entries=1024)
def _card_set(path: str, stamp: tuple) -> dict[str, list[str]] | None:
    cards = R.read_config(path).get("card_set")
    if not isinstance(cards, dict):
        return None
    return {str(f): [c for c in v if isinstance(c, str)] for f, v in cards.items() if isinstance(v, list)}


def run_card_sets(table: pd.DataFrame, task: str) -> dict[str, dict[str, list[str]]]:
    """``{run: card_set}`` of the runs of ``task`` whose config.yaml records the cards they distilled."""
    out = {}
    for name, path in zip(table[table["task"] == task]["name"], table[table["task"] == task]["path"]):
        try:
            info = (Path(path) / "config.yaml").stat()
        except OSError:
            continue
        cards = _card_set(str(path), (info.st_size, info.st_mtime_ns))
        if cards is not None:
            out[name] = cards
    return out


@st.cache_data(show_spinner=False, max_entries=16)
def _card_file(path: str, stamp: tuple) -> list[dict]:
    from sgpo_lab.cards import read_card_file

    return read_card_file(path)


def card_file(path: str) -> list[dict]:
    """The records of a card file (``sgpo_lab.cards.read_card_file``), cached until the file changes."""
    from sgpo_lab.cards import CardFileError

    try:
        info = Path(path).expanduser().stat()
    except OSError:
        raise CardFileError(f"card file {path!r} does not exist; expected a JSONL file of cards") from None
    return _card_file(path, (info.st_size, info.st_mtime_ns))


def text_key(text: str) -> str:
    """A short stable key for a widget that must reset when ``text`` changes."""
    return hashlib.sha1(text.encode()).hexdigest()[:12]


# ------------------------------------------------------------------------------------- groups of runs

GROUP_IGNORED = ("seed", "versions", "card_set", "device", "dtype", "logits_budget_mb", "rollouts_every")
MAX_GROUP_FIELDS = 3  # differing fields named in a group's label (more: "…")
LABEL_SUFFIX = ".label"  # <root>/.train-logs/<run>.label: the label typed on the Train page at launch


def run_label(path: str | Path) -> str | None:
    """The label given to a run at launch (``.train-logs/<run>.label`` beside it), or None."""
    try:
        file = Path(path).parent / ".train-logs" / (Path(path).name + LABEL_SUFFIX)
        if not file.is_file() or file.stat().st_size > 1000:
            return None
        text = " ".join(file.read_text(errors="replace").split())[:60]
    except OSError:
        return None
    return text or None


def _fmt_value(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def config_groups(configs: dict[str, dict], methods: dict[str, str], labels: dict[str, str | None]) -> dict[str, str]:
    """``{run: group}``: runs are pooled (as seeds) only when their method (or launch label) and every config field
    but the seed agree; a group is named by its method plus the fields where its configs differ from the others.

    ``grpo`` with ``lr=0.001`` next to two ``grpo`` runs at the default becomes ``grpo · lr=0.001`` and ``grpo ·
    lr=0.0003``: never one line with a band over two configs.
    """
    from sgpo_lab.config import TrainConfig

    defaults = {k: f.default for k, f in TrainConfig.model_fields.items()}
    # a field a run's config.yaml lacks (made before the field existed) counts as its default
    configs = {run: {**defaults, **{k: v for k, v in c.items() if k not in ("versions", "card_set")}}
               for run, c in configs.items()}
    base = {run: labels.get(run) or methods.get(run, "?") for run in configs}
    task = {run: task_spec(configs[run]) for run in configs}  # runs of different tasks are never shown together
    out = {}
    for name, spec in dict.fromkeys(zip(base.values(), task.values())):
        runs = [r for r in configs if base[r] == name and task[r] == spec]
        keys = sorted({k for r in runs for k in configs[r]} - set(GROUP_IGNORED) - {"__error__"})
        differ = [k for k in keys if len({repr(configs[r].get(k)) for r in runs}) > 1]
        for r in runs:
            if not differ:
                out[r] = name
                continue
            fields = [f"{k}={_fmt_value(configs[r].get(k))}" for k in differ]
            shown = ", ".join(fields[:MAX_GROUP_FIELDS]) + (", …" if len(fields) > MAX_GROUP_FIELDS else "")
            out[r] = f"{name} · {shown}"
    return out


@st.cache_data(show_spinner=False, max_entries=4096)
def _config(path: str, stamp: tuple) -> dict:
    """A run's config.yaml (``runs.read_config``), cached until the file changes."""
    return R.read_config(path)


def _file_stamp(path: Path) -> tuple:
    try:
        info = path.stat()
        return info.st_size, info.st_mtime_ns
    except OSError:
        return ()


@st.cache_data(ttl=2, show_spinner=False, max_entries=16)
def _groups(root: str, names: tuple[str, ...], paths: tuple[str, ...], methods: tuple[str, ...]) -> dict[str, str]:
    configs = {n: _config(p, _file_stamp(Path(p) / "config.yaml")) for n, p in zip(names, paths)}
    labels = {n: run_label(p) for n, p in zip(names, paths)}
    return config_groups(configs, dict(zip(names, methods)), labels)


def with_groups(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (``runs_table``) with a ``group`` column: what multi-run views pool as seeds (``config_groups``)."""
    if table is None or table.empty or "group" in table.columns:
        return table
    groups = _groups(runs_root(), tuple(table["name"]), tuple(table["path"]), tuple(table["method"]))
    return table.assign(group=[groups.get(n, m) for n, m in zip(table["name"], table["method"])])


# -------------------------------------------------------------------------------- shareable page state

QP_ROOT = "root"


def from_url(*keys: str, lists: tuple[str, ...] = (), numbers: tuple[str, ...] = (), flags: tuple[str, ...] = ()
             ) -> None:
    """Seed widget keys from the URL's query parameters (a shared link, a reload, a typed address opens that state).

    A parameter is applied when its value differs from the one last seen in this session (by this function or
    written by ``to_url``), so the page's own writes never undo a widget the user just changed.
    ``lists``: comma-separated lists; ``numbers``: whole numbers; ``flags``: "1"/"0" booleans.
    """
    seen = st.session_state.setdefault("_url_seen", {})
    for key in keys:
        raw = st.query_params.get(key)
        if raw is None or seen.get(key) == raw:
            continue
        seen[key] = raw
        try:
            st.session_state[key] = ([v for v in raw.split(",") if v] if key in lists
                                     else int(raw) if key in numbers else raw == "1" if key in flags else raw)
        except ValueError:
            pass


def to_url(*keys: str, defaults: dict | None = None) -> None:
    """Write the current values of widget keys to the URL (so the address bar is a link to this state); a value equal
    to its default in ``defaults`` is left out."""
    seen = st.session_state.setdefault("_url_seen", {})
    for key in keys:
        value = st.session_state.get(key)
        if value is None or value == [] or isinstance(value, (dict, set)) or (defaults or {}).get(key, ...) == value:
            st.query_params.pop(key, None)
            seen.pop(key, None)
            continue
        text = ("1" if value else "0") if isinstance(value, bool) else \
            ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        if len(text) <= 1500:
            if st.query_params.get(key) != text:
                st.query_params[key] = text
            seen[key] = text


def keep_root_in_url() -> None:
    """The runs root in the URL (``?root=``), so a browser reload keeps it (the demo root is the default)."""
    root = (st.session_state.get("runs_root") or "").strip()
    seen = st.session_state.setdefault("_url_seen", {})
    if root and root != default_runs_root():
        if st.query_params.get(QP_ROOT) != root:
            st.query_params[QP_ROOT] = root
        seen[QP_ROOT] = root
    else:
        st.query_params.pop(QP_ROOT, None)
        seen.pop(QP_ROOT, None)


# ------------------------------------------------------------------------ theme, presentation, figures

def dark() -> bool:
    """Whether pages and figures are dark: the sidebar's choice, else the browser's (Streamlit's own theme)."""
    choice = st.session_state.get("theme", "auto")
    if choice in ("light", "dark"):
        return choice == "dark"
    try:
        return st.context.theme.type == "dark"
    except Exception:  # outside a browser session (AppTest)
        return False


def presenting() -> bool:
    return bool(st.session_state.get("presentation", False))


def look() -> dict:
    """What figures need to follow the page: dark or light, presentation font sizes."""
    return {"dark": dark(), "big": presenting()}


PAGE_CSS = {
    "dark": """
[data-testid="stApp"], [data-testid="stHeader"] {background: #0e1117; color: #fafafa;}
[data-testid="stSidebar"] {background: #262730;}
[data-testid="stApp"] p, [data-testid="stApp"] li, [data-testid="stApp"] label, [data-testid="stApp"] h1,
[data-testid="stApp"] h2, [data-testid="stApp"] h3, [data-testid="stApp"] td, [data-testid="stApp"] th,
[data-testid="stApp"] span, [data-testid="stCaptionContainer"] {color: #fafafa;}
[data-testid="stApp"] code, [data-testid="stCode"] pre {background: #1f2430 !important; color: #f0f0f0;}
[data-baseweb="select"] > div:first-child, [data-baseweb="input"], [data-baseweb="base-input"],
[data-testid="stApp"] input:not([role="combobox"]), [data-testid="stApp"] textarea
  {background-color: #262730 !important; color: #fafafa !important;}
[data-testid="stBaseButton-secondary"], [data-testid="stPopoverButton"], [data-testid="stBaseButton-tertiary"]
  {background-color: #262730 !important; color: #fafafa !important; border-color: #555 !important;}
[data-baseweb="popover"] > div, [data-baseweb="menu"], [data-baseweb="menu"] li
  {background-color: #262730 !important; color: #fafafa !important;}
""",
    "light": """
[data-testid="stApp"], [data-testid="stHeader"] {background: #ffffff; color: #31333f;}
[data-testid="stSidebar"] {background: #f0f2f6;}
[data-testid="stApp"] p, [data-testid="stApp"] li, [data-testid="stApp"] label, [data-testid="stApp"] h1,
[data-testid="stApp"] h2, [data-testid="stApp"] h3, [data-testid="stApp"] td, [data-testid="stApp"] th,
[data-testid="stApp"] span {color: #31333f;}
""",
    "big": """
html {font-size: 21px;}
[data-testid="stSidebar"] {min-width: 13rem !important; max-width: 13rem !important;}
[data-testid="stSidebar"] > div:first-child {width: 13rem !important;}
.stMainBlockContainer {max-width: 100%; padding-left: 2rem; padding-right: 2rem;}
.tok-view {font-size: 1.35rem;}
""",
}


def page_style() -> None:
    """The CSS of the chosen theme (when it differs from the browser's) and of presentation mode."""
    css = ""
    choice = st.session_state.get("theme", "auto")
    try:
        browser = st.context.theme.type or "light"
    except Exception:
        browser = "light"
    if choice in ("light", "dark") and choice != browser:
        css += PAGE_CSS[choice]
    if presenting():
        css += PAGE_CSS["big"]
    st.session_state["_page_css"] = css  # what this run styled (the tests read it)
    if css:
        st.html(f"<style>{css}</style>")


def export_enabled() -> bool:
    """Whether figures can be exported as PNG/SVG on the server (kaleido, with a Chromium it can drive)."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return False
    return bool(os.environ.get("BROWSER_PATH") or Path("/usr/bin/chromium").exists())


def _export(fig, fmt: str) -> bytes:
    from sgpo_lab.viz.style import image_bytes

    return image_bytes(fig, fmt)


def show(fig, key: str, *, data: pd.DataFrame | None = None, name: str | None = None, themed: bool = False,
         **kwargs):
    """A figure in the page's theme and size, with its downloads: the figure (PNG, SVG, HTML) and its data (CSV).

    ``themed``: the figure is already styled (a cached ``run_figure``); otherwise it is styled here, in place.
    The plotly toolbar's camera button also saves a PNG, in the browser, at the size shown.
    """
    from sgpo_lab.viz.style import apply_look

    if not themed:
        apply_look(fig, **look())
    config = {**PLOT["config"], "toImageButtonOptions": {"format": st.session_state.get("fig_format", "png"),
                                                         "filename": name or key, "scale": 2}}
    event = st.plotly_chart(fig, key=key, theme=None, config=config, **kwargs)
    downloads(fig, key, data=data, name=name)
    return event


def downloads(fig, key: str, *, data: pd.DataFrame | None = None, name: str | None = None) -> None:
    """One "Download" menu per figure: its data as CSV, the figure as HTML, and as PNG/SVG where kaleido is."""
    name = name or key
    with st.popover("⬇ Download", use_container_width=False):
        if data is not None and not data.empty:
            st.download_button("data (CSV)", lambda d=data: d.to_csv(index=False).encode(), f"{name}.csv",
                               "text/csv", key=f"dl_csv_{key}", on_click="ignore")
        st.download_button("figure (HTML, interactive)", lambda f=fig: f.to_html(include_plotlyjs=True,
                                                                                  full_html=True),
                           f"{name}.html", "text/html", key=f"dl_html_{key}", on_click="ignore")
        if export_enabled():
            st.download_button("figure (PNG)", lambda f=fig: _export(f, "png"), f"{name}.png", "image/png",
                               key=f"dl_png_{key}", on_click="ignore")
            st.download_button("figure (SVG)", lambda f=fig: _export(f, "svg"), f"{name}.svg", "image/svg+xml",
                               key=f"dl_svg_{key}", on_click="ignore")
        else:
            st.caption("PNG: the camera in the figure's toolbar. PNG/SVG files from the server need `kaleido` "
                       "(`pip install kaleido`; it drives the installed Chromium).")


def download_table(frame: pd.DataFrame, key: str, name: str) -> None:
    if frame is not None and not frame.empty:
        st.download_button("⬇ table (CSV)", lambda f=frame: f.to_csv(index=False).encode(), f"{name}.csv",
                           "text/csv", key=f"dl_tab_{key}", on_click="ignore", type="tertiary")


def refresh_runs() -> None:
    """Forget the cached runs listing (a new run shows at once)."""
    _list_runs.clear()
    _groups.clear()
