"""Make the shipped demo runs under demo_runs/ (the app's default runs root) with the lab's own CLI.

    .venv/bin/python scripts/make_demo_runs.py                 # all runs below, two at a time, one thread each
    .venv/bin/python scripts/make_demo_runs.py sgpo-s0 grpo-s0 # just some of them
    .venv/bin/python scripts/make_demo_runs.py --jobs 1 ...    # one at a time (when another job holds a core)

Every run is `sgpo-lab train --method M --seed S --steps N --out demo_runs/M-sS` on the shipped `small` model;
demo_runs/MANIFEST.json records each exact command, its seed and wall time. To keep the repository small,
optimizer states are dropped and model weights are kept only for the final checkpoint of `sgpo-s0` (the
absorption and explore views use it); the token-shift tables keep every probe step of every run, their per-step
Parquet parts merged into one file per table.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sgpo_lab import runs as R

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "demo_runs"
STEPS = 60
MAIN = ["sgpo", "grpo", "sft", "sft_grpo", "luffy"]
ABLATIONS = ["sgpo_rkl", "sgpo_nll", "sgpo_const_w", "sgpo_no_clip", "sgpo_random_target", "sgpo_no_constraints",
             "sgpo_no_grpo", "sgpo_no_distill"]
EXTENSIONS = ["distill_frozen"]  # the lab's own variants (not in the paper)
# three seeds of every method and extension (a 95% band) and seed 0 of every ablation preset
RUNS = ({f"{m}-s{s}": (m, s) for m in MAIN + EXTENSIONS for s in (0, 1, 2)}
        | {f"{m}-s0": (m, 0) for m in ABLATIONS})
KEEP_WEIGHTS = {"sgpo-s0"}
JOBS = 2


def command(name: str, method: str, seed: int) -> list[str]:
    return ["sgpo-lab", "train", "--method", method, "--seed", str(seed), "--steps", str(STEPS),
            "--out", f"demo_runs/{name}", "--overwrite"]


def launch(name: str, method: str, seed: int) -> subprocess.Popen:
    # one torch thread per run, two runs side by side: the small models train faster that way on 2 cores
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(OUT / f".{name}.log", "w") as log:  # the child keeps its own handle
        return subprocess.Popen([sys.executable, "-m", "sgpo_lab.cli", *command(name, method, seed)[1:]], cwd=ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT)


def tidy(name: str, method: str, seed: int, seconds: float, jobs: int) -> dict:
    run = OUT / name
    for table in ("instances", "token_shifts"):
        R.merge_parts(run / table)
    checkpoints = sorted((run / "checkpoints").glob("step-*"))
    for ckpt in checkpoints:
        (ckpt / "optimizer.safetensors").unlink(missing_ok=True)
        (ckpt / "trainer_state.json").unlink(missing_ok=True)
        if name not in KEEP_WEIGHTS or ckpt != checkpoints[-1]:
            shutil.rmtree(ckpt)
    return {"name": name, "method": method, "seed": seed, "steps": STEPS,
            "command": " ".join(command(name, method, seed)), "seconds": round(seconds, 1),
            "threads": 1, "side_by_side": jobs}


def main(names: list[str], jobs: int = JOBS) -> None:
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        sys.exit(f"unknown demo run(s) {unknown}; expected some of: {', '.join(RUNS)}")
    OUT.mkdir(exist_ok=True)
    manifest_path = OUT / "MANIFEST.json"
    todo, running = list(names or RUNS), {}
    while todo or running:
        while todo and len(running) < jobs:
            name = todo.pop(0)
            running[name] = (launch(name, *RUNS[name]), time.perf_counter())
        time.sleep(1)
        for name, (proc, start) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            if proc.returncode != 0:
                sys.exit(f"{name} failed (exit {proc.returncode}); see demo_runs/.{name}.log")
            (OUT / f".{name}.log").unlink()
            record = tidy(name, *RUNS[name], time.perf_counter() - start, jobs)
            # read again before writing: another invocation may be making other runs side by side
            manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
            manifest[name] = record
            manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n")
            print(f"{name}: {manifest[name]['seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--jobs"]:
        main(args[2:], jobs=int(args[1]))
    else:
        main(args)
