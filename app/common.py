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
from pathlib import Path
from typing import Callable

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


def collect(kind: str, table: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """One table of several runs with ``run``, ``method``, ``seed`` columns (as ``runs.collect_*``), cached per run."""
    frames = []
    rows = table.set_index("name")
    for name in names:
        frame = load(kind, run_path(name))
        if not frame.empty:
            frames.append(frame.assign(run=name, method=rows.loc[name, "method"], seed=rows.loc[name, "seed"]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def run_config(name: str) -> dict:
    return R.read_config(run_path(name))


# ------------------------------------------------------------------------------------- run pickers


def default_runs(table: pd.DataFrame, limit: int = 30) -> list[str]:
    """Runs shown by default: the finished and running ones (all if none is)."""
    ok = table[table["state"].isin(["finished", "running"])]["name"].tolist()
    return (ok or table["name"].tolist())[:limit]


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


def _model_stamp(spec: str) -> tuple:
    """Changes when the model files behind ``spec`` change, so a rewritten directory is reloaded."""
    from sgpo_lab.models import ModelLoadError, resolve_model_dir

    try:
        path = resolve_model_dir(spec)
        return tuple((p.name, p.stat().st_mtime_ns) for p in sorted(path.glob("*")) if p.is_file())
    except (ModelLoadError, OSError):
        return ()


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def _load_model(spec: str, stamp: tuple):
    from sgpo_lab.models import load_model

    return load_model(spec)


def load_model(spec: str):
    """``(model, tokenizer)`` for a spec, cached; raises ``ModelLoadError`` (one line) when it cannot load."""
    return _load_model(spec, _model_stamp(spec))
