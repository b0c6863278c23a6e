"""The run directory: the contract between training and viewing (DESIGN.md §3).

    run/
      config.yaml            the resolved config, seed, package versions
      status.json            {"state": running|finished|failed|interrupted, "step", "total", "error", ...}
      metrics.jsonl          one JSON row per step
      eval.jsonl             one JSON row per (evaluation step, family, split)
      instances/part-*.parquet     per problem and step: p_auto, p_guided, weight, kl_mean, target
      token_shifts/part-*.parquet  per probe token at probe steps: kl, probabilities, top-k lists
      checkpoints/step-NNNNNN/     save_pretrained safetensors + tokenizer (+ trainer state to resume)

Writes are atomic (write to a temporary name, then rename), JSONL rows are appended whole and
flushed, so a reader may watch a run while it is written. The reader tolerates a truncated last line
and a run with no rows yet. Reading never leaves the chosen runs root.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

STATES = ("running", "finished", "failed", "interrupted")
# config.yaml keys beside the TrainConfig fields: the versions that ran and the card set the run distilled
CONFIG_EXTRAS = ("versions", "card_set")


class RunError(ValueError):
    """A run directory that cannot be read as asked."""


class RunDirError(ValueError):
    """An output directory that cannot be used as asked."""


# ------------------------------------------------------------------------------ the output folder


def prepare_out_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber: an existing non-empty dir needs --resume or --overwrite (and only a run is overwritten)."""
    import shutil

    if resume and overwrite:
        raise RunDirError("choose one of --resume and --overwrite")
    if out.exists() and not out.is_dir():
        raise RunDirError(f"output {str(out)!r} is a file; expected a directory for the run")
    busy = out.exists() and any(out.iterdir())
    if busy and not (resume or overwrite):
        raise RunDirError(f"output directory {str(out)!r} already exists; pass --resume to continue it "
                          "or --overwrite to replace it")
    if resume and not busy:
        raise RunDirError(f"nothing to resume in {str(out)!r}; expected a run directory with checkpoints")
    if overwrite and busy:
        if not is_run(out):
            raise RunDirError(f"refusing to overwrite {str(out)!r}: it is not a run directory")
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise RunDirError(f"cannot write to output directory {str(out)!r}: {err.strerror or err}") from None


# ------------------------------------------------------------------------------ checkpoints


def save_checkpoint(run: Path, step: int, model, tokenizer, optimizer) -> Path:
    """``checkpoints/step-NNNNNN``: weights and tokenizer (safetensors), the optimizer's state; written atomically."""
    import shutil

    from safetensors.torch import save_file

    final = Path(run) / "checkpoints" / f"step-{step:06d}"
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    state = optimizer.state_dict()
    tensors = {f"{idx}.{name}": t.contiguous() for idx, s in state["state"].items() for name, t in s.items()}
    save_file(tensors, tmp / "optimizer.safetensors")
    (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "param_groups": state["param_groups"]}))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def load_optimizer_state(checkpoint: Path, optimizer) -> int:
    """Restore the optimizer of a checkpoint (safetensors, no pickle); returns the checkpoint's step."""
    from safetensors.torch import load_file

    meta = json.loads((checkpoint / "trainer_state.json").read_text())
    state: dict[int, dict] = {}
    for key, t in load_file(checkpoint / "optimizer.safetensors").items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = t
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return int(meta["step"])


# ------------------------------------------------------------------------------ the resolved config


def resolved_config(fields: dict[str, Any], *, card_set: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """What config.yaml holds: the config's fields, the package versions, and the cards per problem type."""
    import platform

    import torch
    import transformers

    import sgpo_lab

    return {**fields, "versions": {"sgpo_lab": sgpo_lab.__version__, "torch": str(torch.__version__),
                                   "transformers": transformers.__version__, "python": platform.python_version()},
            **({"card_set": card_set} if card_set is not None else {})}


def read_run_config(run: str | Path) -> dict[str, Any]:
    """The config fields a run was made with (config.yaml without its extras): what ``--resume`` rebuilds."""
    return {k: v for k, v in read_config(run).items() if k not in CONFIG_EXTRAS}


# ----------------------------------------------------------------------------------------- writing


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


class RunWriter:
    """Writes one run directory as training goes."""

    def __init__(self, root: str | Path):
        self.dir = Path(root)
        for sub in ("instances", "token_shifts", "checkpoints"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_text(self.dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))

    def status(self, state: str, *, step: int, total: int, error: str | None = None, **extra: Any) -> None:
        if state not in STATES:
            raise ValueError(f"unknown run state {state!r}; expected one of: {', '.join(STATES)}")
        body = {"state": state, "step": step, "total": total, "error": error, "updated": time.time(), **extra}
        atomic_write_text(self.dir / "status.json", json.dumps(body) + "\n")

    def append(self, name: str, rows: list[dict[str, Any]] | dict[str, Any]) -> None:
        """Append whole JSON lines to ``name`` (metrics.jsonl, eval.jsonl)."""
        rows = [rows] if isinstance(rows, dict) else rows
        with open(self.dir / name, "a") as fh:
            fh.write("".join(json.dumps(r) + "\n" for r in rows))
            fh.flush()

    def table_part(self, table: str, step: int, rows: list[dict[str, Any]]) -> None:
        """One Parquet part of ``instances`` or ``token_shifts``, named by step."""
        if rows:
            atomic_write_parquet(self.dir / table / f"part-{step:06d}.parquet", pd.DataFrame(rows))

    def truncate_after(self, step: int) -> None:
        """Drop rows written after ``step`` (resuming from that step's checkpoint rewrites them)."""
        for name, key in (("metrics.jsonl", "step"), ("eval.jsonl", "step")):
            path = self.dir / name
            if path.exists():
                keep = [r for r in read_jsonl(path) if r.get(key, -1) <= step]
                atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in keep))
        for table in ("instances", "token_shifts"):
            for part in (self.dir / table).glob("part-*.parquet"):
                if int(part.stem.split("-")[1]) > step:
                    part.unlink()


# ----------------------------------------------------------------------------------------- reading


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a partial or corrupt line (a writer mid-append) is skipped, not an error."""
    rows = []
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return rows
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def resolve_run(root: str | Path, name: str) -> Path:
    """The run ``name`` under ``root``; refuses names that leave the root (``..``, absolute paths, links out)."""
    base = Path(root).expanduser().resolve()
    if not base.is_dir():
        raise RunError(f"runs root {str(root)!r} does not exist or is not a directory")
    path = (base / name).resolve()
    if path != base and base not in path.parents:
        raise RunError(f"run {name!r} is outside the runs root {str(root)!r}")
    if not path.is_dir():
        raise RunError(f"no run called {name!r} under {str(root)!r}")
    return path


def is_run(path: Path) -> bool:
    return (path / "status.json").exists() or (path / "config.yaml").exists()


def list_runs(root: str | Path) -> pd.DataFrame:
    """One row per run directory under ``root`` (searched two levels deep): name, method, state, step, total, ..."""
    base = Path(root).expanduser().resolve()
    if not base.is_dir():
        raise RunError(f"runs root {str(root)!r} does not exist or is not a directory")
    rows = []
    for path in sorted(p for p in [*base.glob("*"), *base.glob("*/*")] if p.is_dir() and is_run(p)):
        path = path.resolve()
        if base not in path.parents:
            continue  # a link pointing out of the root
        status = read_status(path)
        config = read_config(path)
        rows.append({"name": str(path.relative_to(base)), "method": config.get("method", "?"),
                     "seed": config.get("seed"), "model": config.get("model"), "state": status.get("state", "?"),
                     "step": status.get("step", 0), "total": status.get("total", config.get("steps")),
                     "error": status.get("error"), "path": str(path)})
    columns = ["name", "method", "seed", "model", "state", "step", "total", "error", "path"]
    return pd.DataFrame(rows, columns=columns)


def read_status(run: str | Path) -> dict[str, Any]:
    """status.json, or ``{"state": "unknown", "error": ...}`` when it is missing or unreadable."""
    try:
        body = json.loads((Path(run) / "status.json").read_text())
        return body if isinstance(body, dict) else {"state": "unknown", "error": "status.json is not an object"}
    except FileNotFoundError:
        return {"state": "unknown", "error": "no status.json"}
    except ValueError as err:
        return {"state": "unknown", "error": f"status.json is not valid JSON ({err})"}


def read_config(run: str | Path) -> dict[str, Any]:
    try:
        body = yaml.safe_load((Path(run) / "config.yaml").read_text())
        return body if isinstance(body, dict) else {}
    except (FileNotFoundError, yaml.YAMLError):
        return {}


def load_metrics(run: str | Path) -> pd.DataFrame:
    """metrics.jsonl as a DataFrame (one row per step; empty if none yet)."""
    return pd.DataFrame(read_jsonl(Path(run) / "metrics.jsonl"))


def load_eval(run: str | Path) -> pd.DataFrame:
    """eval.jsonl as a DataFrame: step, family (incl. 'all'), split, accuracy, pass_at_k, k."""
    return pd.DataFrame(read_jsonl(Path(run) / "eval.jsonl"))


def _load_table(run: str | Path, table: str) -> pd.DataFrame:
    parts = []
    for part in sorted((Path(run) / table).glob("part-*.parquet")):
        try:
            parts.append(pd.read_parquet(part))
        except Exception:  # a corrupt part (pyarrow raises several types): skip it, keep the rest readable
            continue
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def load_instances(run: str | Path) -> pd.DataFrame:
    """Per (step, problem): p_auto, p_guided, weight, kl_mean, target."""
    return _load_table(run, "instances")


def load_token_shifts(run: str | Path) -> pd.DataFrame:
    """Per (step, probe problem, position): token, kl, p_guided, p_unguided, top-k lists."""
    return _load_table(run, "token_shifts")


def list_checkpoints(run: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    ckpts = [p for p in (Path(run) / "checkpoints").glob("step-*") if (p / "config.json").exists()]
    return sorted(ckpts, key=lambda p: int(p.name.split("-")[1]))


# ------------------------------------------------------------------------------ many runs at once


def run_paths(runs: str | Path | list[str | Path] | pd.DataFrame) -> list[tuple[str, Path]]:
    """``(name, path)`` of the runs meant by ``runs``: a runs root, one run directory, a list of run
    directories, or a ``list_runs`` frame (its ``name`` and ``path`` columns)."""
    if isinstance(runs, pd.DataFrame):
        return [(str(n), Path(p)) for n, p in zip(runs["name"], runs["path"])]
    if isinstance(runs, (str, Path)):
        path = Path(runs).expanduser()
        if is_run(path):
            return [(path.name, path)]
        return run_paths(list_runs(path))
    return [(Path(p).name, Path(p)) for p in runs]


def _collect(runs, loader) -> pd.DataFrame:
    frames = []
    for name, path in run_paths(runs):
        frame = loader(path)
        if frame.empty:
            continue
        config = read_config(path)
        frames.append(frame.assign(run=name, method=config.get("method", "?"), seed=config.get("seed")))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def collect_eval(runs: str | Path | list[str | Path] | pd.DataFrame) -> pd.DataFrame:
    """``load_eval`` of many runs in one frame, with ``run``, ``method`` and ``seed`` columns (empty if none)."""
    return _collect(runs, load_eval)


def collect_metrics(runs: str | Path | list[str | Path] | pd.DataFrame) -> pd.DataFrame:
    """``load_metrics`` of many runs in one frame, with ``run``, ``method`` and ``seed`` columns (empty if none)."""
    return _collect(runs, load_metrics)


def collect_token_shifts(runs: str | Path | list[str | Path] | pd.DataFrame) -> pd.DataFrame:
    """``load_token_shifts`` of many runs in one frame, with ``run``, ``method`` and ``seed`` columns."""
    return _collect(runs, load_token_shifts)


def run_stamp(run: str | Path) -> tuple:
    """A cheap fingerprint of a run's files (names, sizes, mtimes): it changes whenever the writer writes.

    Viewers key their caches on it, so a live run is re-read only when it has new rows.
    """
    run = Path(run)
    stamp = []
    for path in [run / "status.json", run / "config.yaml", run / "metrics.jsonl", run / "eval.jsonl",
                 *sorted(run.glob("instances/part-*.parquet")), *sorted(run.glob("token_shifts/part-*.parquet"))]:
        try:
            st = path.stat()
        except OSError:
            continue
        stamp.append((str(path.relative_to(run)), st.st_size, st.st_mtime_ns))
    return tuple(stamp)
