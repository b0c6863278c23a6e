"""Shared parts of the workbench pages: the runs root, cached loaders, run pickers and one-line errors.

Pages stay short: they pick, call ``sgpo_lab`` and show. Everything cached lives here:
models with ``st.cache_resource`` (keyed by spec; loaded only for inference, never trained in place),
run data with ``st.cache_data`` keyed by the run's file stamp (``runs.run_stamp``), so a live run is
re-read when, and only when, its writer has written. Run names are resolved with ``runs.resolve_run``:
reading never leaves the chosen runs root.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import streamlit as st

from sgpo_lab import runs as R

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
    try:
        return Path(root).expanduser().resolve() == DEMO_ROOT.resolve()
    except OSError:
        return False


@st.cache_data(ttl=2, show_spinner=False)
def _list_runs(root: str) -> pd.DataFrame:
    return R.list_runs(root)


def runs_table(root: str | None = None, *, quiet: bool = False) -> pd.DataFrame | None:
    """The runs under the root, or None after telling the user why there are none."""
    root = root or runs_root()
    try:
        table = _list_runs(root)
    except R.RunError as err:
        if not quiet:
            if is_demo_root(root):
                st.info("The shipped demo runs are not here yet (`demo_runs/`). Set a runs root in the sidebar "
                        "(a folder of run directories), or start a short run on the **Train** page.")
            else:
                st.warning(f"{one_line(err)}. Choose an existing folder of run directories in the sidebar.")
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

    try:
        body = json.loads((Path(root or runs_root()).expanduser() / "MANIFEST.json").read_text())
    except (OSError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def run_path(name: str, root: str | None = None) -> Path:
    """The run directory of ``name``, refusing names that leave the runs root (``..``, links out)."""
    return R.resolve_run(root or runs_root(), name)


# ------------------------------------------------------------------------------------ cached loads

_LOADERS = {"metrics": R.load_metrics, "eval": R.load_eval, "instances": R.load_instances,
            "token_shifts": R.load_token_shifts}


@st.cache_data(show_spinner=False, max_entries=512)
def _load(kind: str, path: str, stamp: tuple) -> pd.DataFrame:
    return _LOADERS[kind](path)


def load(kind: str, path: str | Path) -> pd.DataFrame:
    """One table of one run (metrics | eval | instances | token_shifts), cached until the run's files change."""
    return _load(kind, str(path), R.run_stamp(path))


def run_keys(table: pd.DataFrame, names: list[str]) -> tuple:
    """``(name, method, seed, path, stamp)`` of each chosen run: everything a multi-run view depends on."""
    rows = table.set_index("name")
    keys = []
    for name in names:
        path = run_path(name)
        keys.append((name, str(rows.loc[name, "method"]), rows.loc[name, "seed"], str(path), R.run_stamp(path)))
    return tuple(keys)


def collect_keys(kind: str, keys: tuple) -> pd.DataFrame:
    """One table of several runs (``run_keys``) with ``run``, ``method``, ``seed`` columns, cached per run."""
    frames = [_load(kind, path, stamp).assign(run=name, method=method, seed=seed)
              for name, method, seed, path, stamp in keys]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def collect(kind: str, table: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """One table of several runs with ``run``, ``method``, ``seed`` columns (as ``runs.collect_*``), cached per run."""
    return collect_keys(kind, run_keys(table, names))


@st.cache_resource(max_entries=64, show_spinner=False)
def run_figure(builder: str, kind: str, keys: tuple, *args, **kwargs):
    """``sgpo_lab.viz.<builder>(collect_keys(kind, keys), *args, **kwargs)``, built once per runs' files and settings.

    A resource, not a copy: ``st.plotly_chart`` only reads the figure. A live run's fragment redraws every few
    seconds; unless the writer wrote, that costs no rebuild (the figure is most of a rerun's CPU).
    """
    from sgpo_lab import viz

    return getattr(viz, builder)(collect_keys(kind, keys), *args, **kwargs)


def is_empty(fig) -> bool:
    """A builder's blank 'nothing to show' figure (``viz.empty_figure``)."""
    return bool(fig.layout.meta and fig.layout.meta.get("empty"))


def run_config(name: str) -> dict:
    return R.read_config(run_path(name))


# ------------------------------------------------------------------------------------- run pickers


MAIN_METHODS = ("sgpo", "grpo", "sft", "sft_grpo", "luffy")  # the paper's main table; ablations are opt-in


def default_runs(table: pd.DataFrame, limit: int = 30) -> list[str]:
    """Runs shown by default: the finished and running runs of the main methods (else of any method, else all)."""
    live = table[table["state"].isin(["finished", "running"])]
    main = live[live["method"].isin(MAIN_METHODS)]["name"].tolist()
    return (main or live["name"].tolist() or table["name"].tolist())[:limit]


def pick_run(table: pd.DataFrame, key: str, *, label: str = "Run", prefer: str = "sgpo",
             names: list[str] | None = None) -> str | None:
    """A single run picker; defaults to the first finished run of method ``prefer`` (else any of it, else the first)."""
    names = names if names is not None else table["name"].tolist()
    if not names:
        return None
    rows = table.set_index("name")
    methods, states = rows["method"], rows["state"]
    ranked = [i for i, n in enumerate(names) if methods.get(n) == prefer and states.get(n) == "finished"]
    ranked += [i for i, n in enumerate(names) if methods.get(n) == prefer]
    first = ranked[0] if ranked else 0
    return st.selectbox(label, names, index=first, key=key,
                        format_func=lambda n: f"{n}  ·  {methods.get(n, '?')}")


def state_badge(state: str) -> str:
    return {"running": "🟢 running", "finished": "✅ finished", "failed": "❌ failed",
            "interrupted": "⏸ interrupted"}.get(state, f"❔ {state}")


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
