"""Sweeps: methods x seeds (x sizes) as a resumable pool of training runs, and their summary.

``sgpo-lab compare --preset main --seeds 10 --jobs 2 --out sweeps/main`` writes one run directory per
(variant, seed) under ``--out`` with the lab's own ``sgpo-lab train``, ``--jobs`` at a time (one torch thread
each), then ``summary.parquet`` (one row per run, split and family at the final step; per-problem results stay in
each run's ``eval_problems``) and ``summary.md`` (mean ± 95% t interval per variant, and the paired difference
to the preset's reference with its interval, p-value and minimum detectable difference, ``sgpo_lab.stats``).

Resumable: a finished run is kept, an unfinished one continues with ``--resume`` (from its last checkpoint,
or from step 0), so an interrupted or crashed sweep picks up where it stopped. This file knows the CLI's
commands and run directories, not models.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sgpo_lab import runs as R
from sgpo_lab.stats import mean_ci, paired

# what every full preset shares: the default run on `small`, evaluated on the full ID and OOD splits
# (no stored rollouts: they would make a shipped sweep ten times larger; the demo runs keep theirs)
FULL = {"model": "small", "steps": 60, "eval_problems": 64, "rollouts_every": 0}
# fields that change what a run stores, not what it trains: a finished run may be reused across them
STORAGE_ONLY = ("rollouts_every", "checkpoint_every")


@dataclass(frozen=True)
class Variant:
    """One arm of a sweep: a method preset and the fields it changes."""

    name: str
    method: str
    fields: dict[str, Any] = field(default_factory=dict)
    seeds: int | None = None  # its default number of seeds when not the preset's (a claim that needs more)


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    variants: tuple[Variant, ...]
    seeds: int  # the default number of seeds
    reference: str  # the variant every other is compared with
    common: dict[str, Any] = field(default_factory=dict)


def _v(name: str, method: str | None = None, seeds: int | None = None, **fields: Any) -> Variant:
    return Variant(name, method or name, fields, seeds)


ABLATIONS = ("sgpo_rkl", "sgpo_nll", "sgpo_const_w", "sgpo_no_clip", "sgpo_random_target", "sgpo_no_constraints",
             "sgpo_no_grpo", "sgpo_no_distill")
PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("quick", "grpo vs sgpo on tiny, a few minutes: for classrooms and CI",
           (_v("grpo"), _v("sgpo")), 2, "grpo",
           {"model": "tiny", "steps": 8, "eval_problems": 8, "eval_every": 0, "probe_problems": 1,
            "problems_per_step": 4, "checkpoint_every": 0}),
    Preset("main", "the paper's main comparison: sft, grpo, sft_grpo, luffy, sgpo",
           tuple(_v(m) for m in ("sgpo", "sft", "grpo", "sft_grpo", "luffy")), 10, "sgpo", FULL),
    # claims (b) and (c) compare sgpo with sgpo_nll and sgpo_rkl: those three get 10 seeds, the others 5
    Preset("ablations", "the paper's eight ablations beside sgpo",
           tuple(_v(m, seeds=10 if m in ("sgpo", "sgpo_nll", "sgpo_rkl") else None) for m in ("sgpo", *ABLATIONS)),
           5, "sgpo", FULL),
    Preset("constraints", "the KL clip readings (hard, scale, none, pointwise) with live and frozen teachers",
           tuple(_v(f"sgpo-{clip}-{teacher}", "sgpo", kl_clip=clip, teacher=teacher)
                 for teacher in ("live", "frozen") for clip in ("hard", "scale", "none", "pointwise")),
           5, "sgpo-hard-live", FULL),
    Preset("teacher", "sgpo with the live teacher (the paper) vs a frozen copy of the start",
           (_v("sgpo-live", "sgpo", teacher="live"), _v("sgpo-frozen", "sgpo", teacher="frozen")), 5, "sgpo-live",
           FULL),
    Preset("scaling", "tiny, small, medium: grpo and sgpo (the base model is every run's step-0 evaluation)",
           tuple(_v(f"{size}-{m}", m, model=size) for size in ("tiny", "small", "medium") for m in ("grpo", "sgpo")),
           5, "small-sgpo", {"steps": 60, "eval_problems": 64, "rollouts_every": 0}),
)}
MAX_SEEDS = 100
MAX_JOBS = 8


class SweepError(ValueError):
    """A sweep that cannot run as asked."""


@dataclass(frozen=True)
class Job:
    name: str  # the run directory's name: <variant>-s<seed>
    variant: Variant
    seed: int

    def command(self, out: Path, common: dict[str, Any], *, resume: bool) -> list[str]:
        fields = {**common, **self.variant.fields}
        cmd = [sys.executable, "-m", "sgpo_lab.cli", "train", "--out", str(out / self.name)]
        if resume:
            return [*cmd, "--resume"]
        cmd += ["--method", self.variant.method, "--seed", str(self.seed)]
        for key, value in fields.items():
            cmd += ["--set", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
        return cmd


def plan(preset: str, seeds: int | None = None, *, overrides: dict[str, Any] | None = None,
         variants: list[str] | None = None) -> tuple[Preset, list[Job], dict[str, Any]]:
    """The preset, its (variant, seed) jobs, and the fields every run gets; ``variants``: only these arms."""
    if preset not in PRESETS:
        raise SweepError(f"unknown preset {preset!r}; expected one of: {', '.join(PRESETS)}")
    p = PRESETS[preset]
    n = p.seeds if seeds is None else seeds
    if not 1 <= n <= MAX_SEEDS:
        raise SweepError(f"--seeds must be from 1 to {MAX_SEEDS}, got {n}")
    names = [v.name for v in p.variants]
    unknown = [v for v in variants or [] if v not in names]
    if unknown:
        raise SweepError(f"unknown variant(s) {', '.join(map(repr, unknown))} of preset {preset!r}; expected some "
                         f"of: {', '.join(names)}")
    chosen = [v for v in p.variants if not variants or v.name in variants]
    counts = {v.name: n if seeds is not None or v.seeds is None else v.seeds for v in chosen}
    jobs = [Job(f"{v.name}-s{s}", v, s) for s in range(max(counts.values())) for v in chosen
            if s < counts[v.name]]  # seed-major: an interrupted sweep has every variant at similar counts
    return p, jobs, {**p.common, **(overrides or {})}


def _trained_fields(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k not in STORAGE_ONLY}


def find_reusable(job: Job, common: dict[str, Any], sources: list[Path]) -> Path | None:
    """A finished run under ``sources`` trained with exactly this job's config and package versions, or None.

    Runs are deterministic given their config (the lab's replay test), so such a run is this job's run;
    fields that only change what is stored (``STORAGE_ONLY``) may differ."""
    from sgpo_lab.config import as_made, make_config

    want = _trained_fields(make_config(job.variant.method, seed=job.seed,
                                       **{**common, **job.variant.fields}).model_dump())
    versions = R.resolved_config({})["versions"]
    for source in sources:
        if not source.is_dir():
            raise SweepError(f"--reuse folder {str(source)!r} does not exist; expected a folder of runs")
        for run in sorted(p for p in source.iterdir() if (p / R.MARKER).is_file()):
            if R.read_status(run).get("state") != "finished":
                continue
            body = R.read_config(run)
            if body.get("versions") != versions:
                continue
            have = as_made({k: v for k, v in body.items() if k not in R.CONFIG_EXTRAS})
            if _trained_fields({**want, **have}) == want and set(have) <= set(want) | set(STORAGE_ONLY):
                return run
    return None


def run_sweep(preset: str, out: str | Path, *, seeds: int | None = None, jobs: int = 2,
              overrides: dict[str, Any] | None = None, keep_checkpoints: bool = False, progress: bool = True,
              reuse: list[str | Path] | None = None, variants: list[str] | None = None) -> pd.DataFrame:
    """Run (or continue) a sweep into ``out``; returns its summary frame (also written beside the runs).

    ``reuse``: folders of finished runs (other sweeps); a job whose exact run is there is copied, not retrained.
    ``variants``: run only these arms of the preset (the others can follow later into the same folder)."""
    p, todo, common = plan(preset, seeds, overrides=overrides, variants=variants)
    if not 1 <= jobs <= MAX_JOBS:
        raise SweepError(f"--jobs must be from 1 to {MAX_JOBS}, got {jobs}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / ".logs").mkdir(exist_ok=True)
    sweep_file = out / "sweep.json"
    record = json.loads(sweep_file.read_text()) if sweep_file.is_file() else {}
    if record and record.get("preset") != preset:
        raise SweepError(f"{str(out)!r} holds a sweep of preset {record.get('preset')!r}; expected a new folder "
                         f"for preset {preset!r}")
    command = " ".join(["sgpo-lab", *sys.argv[1:]]) if sys.argv[1:2] == ["compare"] else None
    commands = record.get("commands") or [c for c in [record.get("command")] if c]  # every distinct invocation
    record = {"preset": preset, "seeds": seeds or p.seeds, "jobs": jobs, "common": common, "command": command,
              "commands": [*commands, *([command] if command and command not in commands else [])],
              "run_seconds": record.get("run_seconds", {}), "reused": record.get("reused", {})}
    R.atomic_write_text(sweep_file, json.dumps(record, indent=2))
    pending = [j for j in todo if R.read_status(out / j.name).get("state") != "finished"]
    sources = [Path(s) for s in reuse or []]
    for job in list(pending) if sources else []:
        found = find_reusable(job, common, sources)
        if found is None or (out / job.name).exists():
            continue
        shutil.copytree(found, out / job.name, ignore=shutil.ignore_patterns("checkpoints", ".lock"))
        (out / job.name / "checkpoints").mkdir(exist_ok=True)
        record["reused"][job.name] = str(found)
        pending.remove(job)
    R.atomic_write_text(sweep_file, json.dumps(record, indent=2))
    start = time.perf_counter()
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), initial=len(todo) - len(pending), desc=f"compare {preset}", disable=not progress)
    running: dict[str, tuple[subprocess.Popen, float, Any]] = {}
    failures: list[str] = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                job = pending.pop(0)
                resume = (out / job.name / R.MARKER).is_file()
                log = open(out / ".logs" / f"{job.name}.log", "a")  # closed when the job ends
                proc = subprocess.Popen(job.command(out, common, resume=resume), stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
                running[job.name] = (proc, time.perf_counter(), log)
            time.sleep(0.2)
            for name, (proc, t0, log) in list(running.items()):
                if proc.poll() is None:
                    continue
                log.close()
                del running[name]
                bar.update(1)
                if proc.returncode != 0:
                    failures.append(name)
                    continue
                record["run_seconds"][name] = round(time.perf_counter() - t0, 1)
                if not keep_checkpoints:  # what a shipped sweep keeps: no weights, one file per table
                    shutil.rmtree(out / name / "checkpoints", ignore_errors=True)
                    (out / name / "checkpoints").mkdir(exist_ok=True)
                    R.compact(out / name)
                R.atomic_write_text(sweep_file, json.dumps(record, indent=2))
    except KeyboardInterrupt:
        for proc, _, _log in running.values():  # each run checkpoints what it has and says "interrupted"
            proc.send_signal(signal.SIGINT)
        for proc, _, log in running.values():
            proc.wait(timeout=120)
            log.close()
        raise
    finally:
        bar.close()
    record["wall_seconds"] = round(time.perf_counter() - start, 1)
    R.atomic_write_text(sweep_file, json.dumps(record, indent=2))
    if failures:
        raise SweepError(f"{len(failures)} run(s) failed: {', '.join(failures[:5])}; see {out / '.logs'} and run "
                         "the same command again to continue")
    return write_summary(out, p)


# ------------------------------------------------------------------------------------------ summary


def summarize(out: str | Path, preset: Preset | None = None) -> pd.DataFrame:
    """One row per run, split and family at the run's final evaluation: accuracy and pass@k."""
    out = Path(out)
    if preset is None:
        record = json.loads((out / "sweep.json").read_text())
        preset = PRESETS[record["preset"]]
    names = {v.name for v in preset.variants}
    rows = []
    for run in sorted(p for p in out.iterdir() if p.is_dir() and (p / R.MARKER).is_file()):
        variant, _, seed = run.name.rpartition("-s")
        if variant not in names or not seed.isdigit() or R.read_status(run).get("state") != "finished":
            continue  # an unfinished run's last evaluation is not its final one
        ev = R.load_eval(run)
        if ev.empty:
            continue
        final = int(ev["step"].max())
        for r in ev[ev["step"] == final].to_dict("records"):
            rows.append({"variant": variant, "seed": int(seed), "step": final, "split": r["split"],
                         "family": r["family"], "accuracy": r["accuracy"], "pass_at_k": r["pass_at_k"],
                         "k": r.get("k"), "n_problems": r.get("n_problems")})
        base = ev[ev["step"] == int(ev["step"].min())]
        for r in base.to_dict("records"):
            rows.append({"variant": f"{variant}@base", "seed": int(seed), "step": int(r["step"]),
                         "split": r["split"], "family": r["family"], "accuracy": r["accuracy"],
                         "pass_at_k": r["pass_at_k"], "k": r.get("k"), "n_problems": r.get("n_problems")})
    return pd.DataFrame(rows)


def compare_table(summary: pd.DataFrame, reference: str, *, metric: str = "accuracy", split: str = "id",
                  family: str = "all") -> pd.DataFrame:
    """Per variant: mean ± 95% CI over seeds, and the paired difference to ``reference`` (CI, p, MDD)."""
    part = summary[(summary["split"] == split) & (summary["family"] == family)
                   & ~summary["variant"].str.endswith("@base")]
    by_variant = {v: dict(zip(g["seed"], g[metric])) for v, g in part.groupby("variant", sort=False)}
    ref = by_variant.get(reference, {})
    rows = []
    for variant, values in by_variant.items():
        mean, half, n = mean_ci(list(values.values()))
        row = {"variant": variant, "seeds": n, "mean": mean, "ci95": half}
        if variant != reference and ref:
            cmp = paired(values, ref)
            row.update({"diff_vs_ref": cmp.diff, "diff_ci95": cmp.half_width, "p": cmp.p, "mdd": cmp.mdd})
        rows.append(row)
    return pd.DataFrame(rows)


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}"


def write_summary(out: str | Path, preset: Preset) -> pd.DataFrame:
    """summary.parquet and summary.md of a sweep folder."""
    out = Path(out)
    summary = summarize(out, preset)
    R.atomic_write_parquet(out / "summary.parquet", summary)
    record = json.loads((out / "sweep.json").read_text()) if (out / "sweep.json").is_file() else {}
    lines = [f"# Sweep `{preset.name}`: {preset.description}", ""]
    made = record.get("commands") or [c for c in [record.get("command")] if c]
    if made:
        lines += ["Made with " + ", then ".join(f"`{c}`" for c in made) + ".", ""]
    secs = list(record.get("run_seconds", {}).values())
    if secs:
        lines += [f"Runs: {len(secs)}, {sum(secs) / len(secs):.0f} s each on average (one torch thread, "
                  f"{record.get('jobs')} side by side); wall time of the last invocation: "
                  f"{record.get('wall_seconds', float('nan')):.0f} s.", ""]
    splits = [s for s in ("id", "ood") if s in set(summary.get("split", []))]
    for split in splits:
        for metric, label in (("accuracy", "greedy accuracy"), ("pass_at_k", "pass@k")):
            table = compare_table(summary, preset.reference, metric=metric, split=split)
            lines += [f"## {split.upper()} {label} (%, mean ± 95% CI over seeds; difference to "
                      f"`{preset.reference}`, paired by seed on the same problems)", "",
                      "| variant | seeds | mean | ± | diff | ± | p | min. detectable diff |",
                      "| --- | --- | --- | --- | --- | --- | --- | --- |"]
            for r in table.to_dict("records"):
                cells = [r["variant"], str(r["seeds"]), _pct(r["mean"]), _pct(r["ci95"]), "", "", "", ""]
                if r.get("diff_vs_ref") == r.get("diff_vs_ref") and "diff_vs_ref" in r:
                    p_value = "n/a" if r["p"] != r["p"] else f"{r['p']:.3f}"
                    cells[4:] = [f"{100 * r['diff_vs_ref']:+.1f}", _pct(r["diff_ci95"]), p_value, _pct(r["mdd"])]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
    R.atomic_write_text(out / "summary.md", "\n".join(lines))
    return summary


# ------------------------------------------------------------------------------------------ reading sweeps
# The Compare page and notebook 05 read finished sweeps: find the folders, load one, and show compare_table's
# numbers as text (percent, one decimal), as a sentence, and as bars with each seed as a dot.

SUMMARY_COLUMNS = ("variant", "seed", "split", "family", "accuracy", "pass_at_k")
MAX_SCANNED = 5000  # folders find_sweeps looks into at most (a runs root may be any folder)
NAN = float("nan")
METRIC_NAMES = {"accuracy": "greedy accuracy", "pass_at_k": "pass@k"}


def is_sweep(folder: Path) -> bool:
    """Whether ``folder`` holds a finished sweep: sweep.json and summary.parquet."""
    return (folder / "sweep.json").is_file() and (folder / "summary.parquet").is_file()


def find_sweeps(root: str | Path, depth: int = 2) -> list[Path]:
    """Sweep folders (``is_sweep``) at ``root`` or at most ``depth`` levels below it, sorted by path.

    A sweep's own run directories and hidden folders are not searched; unreadable folders are skipped."""
    found: list[Path] = []
    queue = [(Path(root).expanduser(), depth)]
    scanned = 0
    while queue and scanned < MAX_SCANNED:
        folder, left = queue.pop(0)
        scanned += 1
        try:
            if is_sweep(folder):
                found.append(folder)
                continue
            if left > 0 and folder.is_dir():
                queue += [(p, left - 1) for p in sorted(folder.iterdir())
                          if not p.name.startswith(".") and p.is_dir()]
        except OSError:
            continue
    return sorted(found)


def _why(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__


def load_sweep(folder: str | Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """``(sweep.json, summary.parquet)`` of a sweep folder; a ``SweepError`` (one line) when either is missing or
    unreadable, or the summary lacks a column ``compare_table`` needs."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise SweepError(f"sweep folder {str(folder)!r} does not exist; expected a folder written by "
                         "`sgpo-lab compare --out`")
    if not (folder / "sweep.json").is_file():
        raise SweepError(f"{str(folder)!r} holds no sweep.json; expected a folder written by `sgpo-lab compare --out`")
    try:
        record = json.loads((folder / "sweep.json").read_text())
    except (OSError, ValueError) as err:
        raise SweepError(f"{folder / 'sweep.json'} cannot be read ({_why(err)})") from None
    if not isinstance(record, dict):
        raise SweepError(f"{folder / 'sweep.json'} holds a {type(record).__name__}; expected a JSON object")
    if not (folder / "summary.parquet").is_file():
        raise SweepError(f"{str(folder)!r} has no summary.parquet yet; the sweep writes it when its runs finish")
    try:
        summary = pd.read_parquet(folder / "summary.parquet")
    except Exception as err:  # pyarrow raises its own error types for a damaged file
        raise SweepError(f"{folder / 'summary.parquet'} cannot be read ({_why(err)})") from None
    missing = [c for c in SUMMARY_COLUMNS if c not in summary.columns]
    if missing:
        raise SweepError(f"{folder / 'summary.parquet'} lacks the column(s) {', '.join(missing)}; expected a summary "
                         "written by `sgpo-lab compare`")
    wrong = [c for c in ("seed", "accuracy", "pass_at_k") if not pd.api.types.is_numeric_dtype(summary[c])]
    if wrong:
        raise SweepError(f"{folder / 'summary.parquet'}: column(s) {', '.join(wrong)} are not numbers")
    summary = summary.assign(variant=summary["variant"].astype(str), split=summary["split"].astype(str),
                             family=summary["family"].astype(str))
    return record, summary


def sweep_variants(record: dict[str, Any], summary: pd.DataFrame) -> list[str]:
    """The trained variants of a summary (no ``@base`` rows): in the preset's order, then any others."""
    present = list(dict.fromkeys(v for v in summary["variant"] if not v.endswith("@base")))
    preset = PRESETS.get(record.get("preset")) if isinstance(record.get("preset"), str) else None
    order = [v.name for v in preset.variants] if preset else []
    return [v for v in order if v in present] + [v for v in present if v not in order]


def sweep_reference(record: dict[str, Any], summary: pd.DataFrame) -> str | None:
    """The variant the others are compared with: the preset's reference, else the first variant (None: no runs)."""
    variants = sweep_variants(record, summary)
    preset = PRESETS.get(record.get("preset")) if isinstance(record.get("preset"), str) else None
    if preset and preset.reference in variants:
        return preset.reference
    return variants[0] if variants else None


def sweep_compare(record: dict[str, Any], summary: pd.DataFrame, *, metric: str = "accuracy", split: str = "id",
                  family: str = "all") -> tuple[str | None, pd.DataFrame]:
    """``(reference, compare_table)`` of a loaded sweep, its rows in the preset's order of variants."""
    reference = sweep_reference(record, summary)
    table = compare_table(summary, reference or "", metric=metric, split=split, family=family)
    if table.empty:
        return reference, table
    order = {v: i for i, v in enumerate(sweep_variants(record, summary))}
    return reference, table.sort_values("variant", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def _pm(value: float, half: float, *, signed: bool = False) -> str:
    if value != value:
        return "n/a"
    points = round(100 * value, 1) + 0.0  # + 0.0: no "-0.0"
    return f"{points:{'+' if signed else ''}.1f} ± {_pct(half)}"


def _p_value(p: float) -> str:
    return "n/a" if p != p else "< 0.001" if p < 0.001 else f"{p:.3f}"


def format_compare(table: pd.DataFrame, reference: str) -> pd.DataFrame:
    """``compare_table``'s numbers as text: means and differences in percent (points) with one decimal, p with
    three; "n/a" where a number is missing (one seed: no interval)."""
    rows = []
    for r in table.to_dict("records"):
        own = r["variant"] == reference
        rows.append({"variant": r["variant"], "seeds": int(r["seeds"]),
                     "mean ± 95% CI, %": _pm(r["mean"], r["ci95"]),
                     f"diff vs {reference} ± 95% CI, points": "reference" if own else
                     _pm(r.get("diff_vs_ref", NAN), r.get("diff_ci95", NAN), signed=True),
                     "p": "—" if own else _p_value(r.get("p", NAN)),
                     "min. detectable diff, points": "—" if own else _pct(r.get("mdd", NAN))})
    return pd.DataFrame(rows, columns=["variant", "seeds", "mean ± 95% CI, %",
                                       f"diff vs {reference} ± 95% CI, points", "p", "min. detectable diff, points"])


def read_compare(table: pd.DataFrame, reference: str) -> str:
    """What the table says, in one line: which paired differences to ``reference`` have a 95% CI that excludes 0,
    and, for the others, how small a true difference the seeds could have missed (their MDD)."""
    if table.empty:
        return "No finished runs in this sweep yet."
    others = table[table["variant"] != reference]
    if "diff_vs_ref" not in table.columns or others.empty or others["diff_vs_ref"].isna().all():
        return f"No paired differences: {reference!r} has no runs on the same seeds as the others."
    apart, within, no_ci = [], [], []
    for r in others.to_dict("records"):
        d, half = r["diff_vs_ref"], r["diff_ci95"]
        if half != half:
            no_ci.append(r["variant"])
        elif abs(d) > half:
            apart.append(f"{r['variant']} ({_pm(d, half, signed=True)} points)")
        else:
            within.append(r)
    text = (f"Paired by seed against {reference}, the 95% CI of the difference excludes 0 for "
            + (", ".join(apart) if apart else "no variant"))
    if within:
        mdd = sorted(100 * r["mdd"] for r in within)
        span = f"{mdd[0]:.1f}" if f"{mdd[0]:.1f}" == f"{mdd[-1]:.1f}" else f"{mdd[0]:.1f} to {mdd[-1]:.1f}"
        text += (f"; it includes 0 for {', '.join(r['variant'] for r in within)}, where a true difference below "
                 f"{span} points (the MDD) would likely go unseen")
    if no_ci:
        text += f"; {', '.join(no_ci)}: no interval (fewer than two paired seeds)"
    return text + "."
