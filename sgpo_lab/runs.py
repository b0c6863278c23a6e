"""The run directory: the contract between training and viewing (docs/design.md, "The run directory").

    run/
      config.yaml            the resolved config, seed, package versions
      status.json            {"state": running|finished|failed|interrupted, "step", "total", "error", ...}
      metrics.jsonl          one JSON row per step
      eval.jsonl             one JSON row per (evaluation step, family, split)
      eval_problems/part-*.parquet per evaluation step and problem: greedy_correct, pass_count of k (paired stats)
      instances/part-*.parquet     per problem and step: p_auto, p_guided, weight, kl_mean, target
      token_shifts/part-*.parquet  per probe token at probe steps: kl, probabilities, top-k lists
      rollouts/part-*.parquet      per sampled completion of an RL step (every rollouts_every steps): text, token
                                   ids, reward, autonomous or guided, target; the problem's pass rates, weight, card
      checkpoints/step-NNNNNN/     save_pretrained safetensors + tokenizer (+ trainer state to resume)
      probes.json            the probe completions, fixed at step 0
      .sgpo-lab-run          the marker: this folder is a run the lab wrote (only such a folder is overwritten)
      .lock                  held (flock) by the process writing the run: a second writer is refused

Writes are atomic (write to a temporary name, then rename), JSONL rows are appended whole and
flushed, so a reader may watch a run while it is written. The reader tolerates a truncated last line
and a run with no rows yet. Reading never leaves the chosen runs root, reads only regular files of
bounded size, and a run it cannot read is listed with the reason instead of hiding the others.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

STATES = ("running", "finished", "failed", "interrupted")
MARKER = ".sgpo-lab-run"
LOCK = ".lock"
# what --overwrite removes: the entries the lab writes into a run directory, and nothing else
LAB_ENTRIES = ("config.yaml", "status.json", "metrics.jsonl", "eval.jsonl", "eval_problems", "instances",
               "token_shifts",
               "checkpoints", "probes.json", "rollouts", MARKER)
MAX_RUN_FILE_BYTES = {"config.yaml": 1_000_000, "status.json": 100_000}
MAX_JSONL_BYTES = 200_000_000
# config.yaml keys beside the TrainConfig fields: the versions that ran and the card set the run distilled
CONFIG_EXTRAS = ("versions", "card_set")


class RunError(ValueError):
    """A run directory that cannot be read as asked."""


class RunDirError(ValueError):
    """An output directory that cannot be used as asked."""


# ------------------------------------------------------------------------------ the output folder


class RunLock:
    """An exclusive lock on a run directory (``flock`` on ``.lock``), held while one process writes the run.

    The operating system drops it when the process ends, however it ends, so a dead writer never blocks a resume.
    """

    def __init__(self, run: Path):
        import fcntl

        self.path = run / LOCK
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.fh.seek(0)
            owner = self.fh.read(100).strip() or "another process"
            self.fh.close()
            raise RunDirError(f"run {str(run)!r} is being written by {owner}; expected it to finish or be stopped "
                              "first (one writer per run)") from None
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(f"pid {os.getpid()} on {socket.gethostname()}")
        self.fh.flush()

    def release(self) -> None:
        if not self.fh.closed:
            self.fh.close()


def _forbidden_target(out: Path) -> str | None:
    """Why ``out`` may never be replaced (the filesystem root, the home folder, the working folder or a parent)."""
    resolved, cwd = out.resolve(), Path.cwd().resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve():
        return "it is the filesystem root or the home folder"
    if resolved == cwd or resolved in cwd.parents:
        return "it is the working folder or one of its parents"
    return None


def prepare_out_dir(out: Path, *, resume: bool, overwrite: bool) -> RunLock:
    """Make ``out`` ready for a run and lock it; refuse to clobber anything the lab did not write.

    A non-empty folder needs ``resume`` or ``overwrite``; ``overwrite`` removes only the lab's own entries of a
    folder that holds the lab's run marker. Returns the lock, held until the writer is done.
    """
    if resume and overwrite:
        raise RunDirError("choose one of --resume and --overwrite")
    if not str(out).strip() or "\x00" in str(out):
        raise RunDirError(f"output {str(out)!r} is not a usable folder name; expected e.g. runs/my-run")
    if out.exists() and not out.is_dir():
        raise RunDirError(f"output {str(out)!r} is a file; expected a directory for the run")
    busy = out.exists() and any(p.name != LOCK for p in out.iterdir())
    if busy and not (resume or overwrite):
        raise RunDirError(f"output directory {str(out)!r} already exists; pass --resume to continue it "
                          "or --overwrite to replace it")
    if resume and not busy:
        raise RunDirError(f"nothing to resume in {str(out)!r}; expected a run directory")
    if busy and not (out / MARKER).is_file():
        what = "replace" if overwrite else "resume"
        raise RunDirError(f"refusing to {what} {str(out)!r}: it is not a run directory the lab wrote "
                          f"(no {MARKER} marker); expected a folder made by 'sgpo-lab train'")
    if overwrite and busy and (why := _forbidden_target(out)):
        raise RunDirError(f"refusing to overwrite {str(out)!r}: {why}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = RunLock(out)
    except OSError as err:
        raise RunDirError(f"cannot write to output directory {str(out)!r}: {err.strerror or err}") from None
    if overwrite and busy:
        import shutil

        for name in LAB_ENTRIES:
            entry = out / name
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.exists() or entry.is_symlink():
                entry.unlink()
    return lock


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
    body = read_config(run)
    if "__error__" in body:
        raise RunDirError(f"cannot resume {str(run)!r}: {body['__error__']}")
    from sgpo_lab.config import as_made

    return as_made({k: v for k, v in body.items() if k not in CONFIG_EXTRAS})


# ----------------------------------------------------------------------------------------- writing


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


PART_TABLES = ("instances", "token_shifts", "eval_problems", "rollouts")


def merge_parts(folder: Path) -> None:
    """One Parquet file per table instead of one per step (a tenth of the bytes); the readers take either.

    The merged file takes the last part's name, so a writer that resumes later adds parts after it."""
    parts = sorted(folder.glob("part-*.parquet"))
    if len(parts) > 1:
        merged = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
        atomic_write_parquet(parts[-1], merged)
        for part in parts[:-1]:
            part.unlink()


def compact(run: str | Path) -> None:
    """Merge each per-step table of a finished run into one file (what a shipped run keeps)."""
    for table in PART_TABLES:
        merge_parts(Path(run) / table)


class _PlainDumper(yaml.SafeDumper):
    """Safe YAML without anchors: the readers refuse aliases, so a value repeated is written out again."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


class RunWriter:
    """Writes one run directory as training goes."""

    def __init__(self, root: str | Path):
        self.dir = Path(root)
        for sub in ("instances", "token_shifts", "eval_problems", "checkpoints", "rollouts"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        if not (self.dir / MARKER).exists():
            atomic_write_text(self.dir / MARKER, json.dumps({"written_by": "sgpo-lab", "created": time.time()}) + "\n")

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_text(self.dir / "config.yaml", yaml.dump(config, Dumper=_PlainDumper, sort_keys=False))

    def status(self, state: str, *, step: int, total: int, error: str | None = None, **extra: Any) -> None:
        if state not in STATES:
            raise ValueError(f"unknown run state {state!r}; expected one of: {', '.join(STATES)}")
        body = {"state": state, "step": step, "total": total, "error": error, "updated": time.time(),
                "pid": os.getpid(), "host": socket.gethostname(), **extra}
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

    def truncate_after(self, step: int, *, drop_eval_at: int | None = None) -> None:
        """Drop rows written after ``step`` (resuming from that step's checkpoint rewrites them), and any torn line.

        ``drop_eval_at``: also drop that step's evaluation rows (an interrupted evaluation is redone whole).
        """
        for name in ("metrics.jsonl", "eval.jsonl"):
            path = self.dir / name
            if path.exists():
                keep = [r for r in read_jsonl(path) if _int(r.get("step"), -1) <= step
                        and not (name == "eval.jsonl" and r.get("step") == drop_eval_at)]
                atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in keep))
        for table in ("instances", "token_shifts", "eval_problems", "rollouts"):
            for part in (self.dir / table).glob("part-*.parquet"):
                if _int(part.stem.split("-")[-1], -1) > step:
                    part.unlink()


# ----------------------------------------------------------------------------------------- reading


def _regular_file(path: Path, limit: int) -> Path:
    """``path`` if it is a regular file (not a FIFO, device or folder, links followed) of at most ``limit`` bytes."""
    st = path.stat()  # FileNotFoundError passes to the caller
    if not stat.S_ISREG(st.st_mode):
        raise RunError(f"{path.name} is not a regular file")
    if st.st_size > limit:
        raise RunError(f"{path.name} is {st.st_size:,} bytes; expected at most {limit:,}")
    return path


def _int(value: Any, default: int = 0) -> int:
    """A non-negative integer field of a run file (``default`` for anything else: text, negatives, floats)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a partial or corrupt line (a writer mid-append) is skipped, not an error.

    A missing, unreadable, oversized or non-regular file reads as no rows.
    """
    rows = []
    try:
        text = _regular_file(Path(path), MAX_JSONL_BYTES).read_text(errors="replace")
    except (OSError, RunError):
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
    if "\x00" in str(root) or "\x00" in str(name):
        raise RunError("a runs root or run name holds a NUL byte; expected a plain folder name")
    try:
        base = Path(root).expanduser().resolve()
        if not base.is_dir():
            raise RunError(f"runs root {str(root)!r} does not exist or is not a directory")
        path = (base / name).resolve()
    except (OSError, ValueError) as err:
        raise RunError(f"cannot read {str(name)!r} under {str(root)!r}: {err}") from None
    if path != base and base not in path.parents:
        raise RunError(f"run {name!r} is outside the runs root {str(root)!r}")
    if not path.is_dir():
        raise RunError(f"no run called {name!r} under {str(root)!r}")
    return path


def is_run(path: Path) -> bool:
    try:
        return (path / "status.json").exists() or (path / "config.yaml").exists() or (path / MARKER).exists()
    except OSError:
        return False


LIST_COLUMNS = ["name", "method", "task", "seed", "model", "state", "step", "total", "error", "path"]


def list_runs(root: str | Path) -> pd.DataFrame:
    """One row per run directory under ``root`` (searched two levels deep): name, method, task, state, step, ...

    A run whose files cannot be read is still listed, with state ``unreadable`` and the reason in ``error``.
    """
    if "\x00" in str(root):
        raise RunError("the runs root holds a NUL byte; expected a folder path")
    try:
        base = Path(root).expanduser().resolve()
    except (OSError, ValueError) as err:
        raise RunError(f"runs root {str(root)!r} cannot be read: {err}") from None
    if not base.is_dir():
        raise RunError(f"runs root {str(root)!r} does not exist or is not a directory")
    rows = []
    for path in _candidate_dirs(base):
        try:
            path = path.resolve()
            if base not in path.parents:
                continue  # a link pointing out of the root
            rows.append(_run_row(base, path))
        except Exception as err:  # one unreadable run must not hide the others
            rows.append({"name": path.name, "method": "?", "task": "?", "seed": None, "model": None,
                         "state": "unreadable", "step": 0, "total": None, "error": f"{type(err).__name__}: {err}"[:200],
                         "path": str(path)})
    return pd.DataFrame(rows, columns=LIST_COLUMNS)


def _candidate_dirs(base: Path) -> list[Path]:
    found = []
    for first in _children(base):
        found.append(first)
        found += _children(first)
    return sorted(p for p in found if is_run(p))


def _children(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return []


def _run_row(base: Path, path: Path) -> dict[str, Any]:
    status, config = read_status(path), read_config(path)
    problem = status.get("error") if status.get("state") == "unreadable" else None
    if config.get("__error__"):
        problem = config["__error__"]
    return {"name": str(path.relative_to(base)), "method": str(config.get("method", "?")),
            "task": str(config.get("task", "world")), "seed": config.get("seed"), "model": config.get("model"),
            "state": "unreadable" if problem else status.get("state", "?"), "step": _int(status.get("step")),
            "total": _int(status.get("total"), None) if status.get("total") is not None else config.get("steps"),
            "error": problem or status.get("error"), "path": str(path)}


def _alive(pid: Any, host: Any) -> bool | None:
    """Whether a writer process still runs (None: cannot tell, e.g. it ran on another machine)."""
    if not isinstance(pid, int) or host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def read_status(run: str | Path) -> dict[str, Any]:
    """status.json, or ``{"state": "unknown"|"unreadable", "error": ...}`` when it is missing or unreadable.

    A run whose status says ``running`` but whose writer is gone reads as ``crashed``.
    """
    try:
        body = json.loads(_regular_file(Path(run) / "status.json", MAX_RUN_FILE_BYTES["status.json"])
                          .read_text(errors="replace"))
    except FileNotFoundError:
        return {"state": "unknown", "error": "no status.json"}
    except (OSError, RunError) as err:
        return {"state": "unreadable", "error": f"status.json cannot be read ({err})"}
    except ValueError as err:
        return {"state": "unknown", "error": f"status.json is not valid JSON ({str(err)[:100]})"}
    if not isinstance(body, dict):
        return {"state": "unknown", "error": "status.json is not an object"}
    if body.get("state") not in (*STATES, "crashed"):
        body["state"] = "unknown"
    if body.get("state") == "running" and _alive(body.get("pid"), body.get("host")) is False:
        body["state"] = "crashed"
        body["error"] = body.get("error") or f"the training process (pid {body.get('pid')}) is gone; resume with " \
                                             "'sgpo-lab train --out RUN --resume'"
    return body


def read_config(run: str | Path) -> dict[str, Any]:
    """config.yaml as a mapping ({} when missing; ``{"__error__": reason}`` when it cannot be read)."""
    from sgpo_lab.config import parse_yaml

    try:
        text = _regular_file(Path(run) / "config.yaml", MAX_RUN_FILE_BYTES["config.yaml"]).read_text(errors="replace")
        body = parse_yaml(text, what="config file config.yaml")
    except FileNotFoundError:
        return {}
    except (OSError, RunError, ValueError) as err:
        return {"__error__": f"config.yaml cannot be read ({str(err)[:160]})"}
    return body if isinstance(body, dict) else {"__error__": "config.yaml is not a mapping"}


def load_metrics(run: str | Path) -> pd.DataFrame:
    """metrics.jsonl as a DataFrame (one row per step; empty if none yet)."""
    return pd.DataFrame(read_jsonl(Path(run) / "metrics.jsonl"))


def load_eval(run: str | Path) -> pd.DataFrame:
    """eval.jsonl as a DataFrame: step, family (incl. 'all'), split, accuracy, pass_at_k, k."""
    return pd.DataFrame(read_jsonl(Path(run) / "eval.jsonl"))


def _load_table(run: str | Path, table: str) -> pd.DataFrame:
    parts = []
    try:
        files = sorted((Path(run) / table).glob("part-*.parquet"))
    except OSError:
        return pd.DataFrame()
    for part in files:
        try:
            parts.append(pd.read_parquet(_regular_file(part, MAX_JSONL_BYTES)))
        except Exception:  # a corrupt part (pyarrow raises several types): skip it, keep the rest readable
            continue
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def load_instances(run: str | Path) -> pd.DataFrame:
    """Per (step, problem): p_auto, p_guided, weight, kl_mean, target."""
    return _load_table(run, "instances")


def load_eval_problems(run: str | Path) -> pd.DataFrame:
    """Per (evaluation step, problem): family, split, greedy_correct, pass_count, k (empty for older runs)."""
    return _load_table(run, "eval_problems")


def load_rollouts(run: str | Path, step: int | None = None) -> pd.DataFrame:
    """Per sampled completion of the RL steps stored (``rollouts_every``): step, problem_id, kind (auto | guided),
    index, text, completion_ids, reward, finished, target, and the problem's question, answer, card, p_auto,
    p_guided, weight. ``step``: only that step's part (one file read). Empty for runs made before rollouts were kept.
    """
    if step is None:
        return _load_table(run, "rollouts")
    try:
        return pd.read_parquet(_regular_file(Path(run) / "rollouts" / f"part-{int(step):06d}.parquet",
                                             MAX_JSONL_BYTES))
    except Exception:  # missing or corrupt part: no rows
        return pd.DataFrame()


def rollout_steps(run: str | Path) -> list[int]:
    """The steps whose rollouts a run stored (from the part names: nothing is read)."""
    try:
        names = [p.stem.split("-")[-1] for p in (Path(run) / "rollouts").glob("part-*.parquet")]
    except OSError:
        return []
    return sorted(int(n) for n in names if n.isdigit())


def load_token_shifts(run: str | Path) -> pd.DataFrame:
    """Per (step, probe problem, position): token, kl, p_guided, p_unguided, top-k lists."""
    return _load_table(run, "token_shifts")


def list_checkpoints(run: str | Path) -> list[Path]:
    """Complete checkpoints of a run (``step-NNNNNN`` folders holding config.json), oldest first."""
    try:
        found = list((Path(run) / "checkpoints").glob("step-*"))
    except OSError:
        return []
    ckpts = [p for p in found if p.name[5:].isdigit() and (p / "config.json").is_file()]
    return sorted(ckpts, key=lambda p: int(p.name[5:]))


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
                 *sorted(run.glob("instances/part-*.parquet")), *sorted(run.glob("token_shifts/part-*.parquet")),
                 *sorted(run.glob("eval_problems/part-*.parquet")), *sorted(run.glob("rollouts/part-*.parquet"))]:
        try:
            st = path.stat()
        except OSError:
            continue
        stamp.append((str(path.relative_to(run)), st.st_size, st.st_mtime_ns))
    return tuple(stamp)
