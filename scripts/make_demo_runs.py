"""Make the shipped demo runs under demo_runs/ (the app's default runs root) with the lab's own CLI.

    .venv/bin/python scripts/make_demo_runs.py            # all runs below (about 30-40 min on 2 cores)
    .venv/bin/python scripts/make_demo_runs.py sgpo-s0    # just some of them

Every run is `sgpo-lab train --method M --seed S --steps N --out demo_runs/M-sS` on the shipped `small` model;
demo_runs/MANIFEST.json records each exact command, its seed and wall time. To keep the repository small,
optimizer states are dropped and model weights are kept only for the final checkpoint of `sgpo-s0` (the
absorption and explore views use it); the token-shift tables keep every probe step of every run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "demo_runs"
STEPS = 60
MAIN = ["sgpo", "grpo", "sft", "sft_grpo", "luffy"]
ABLATIONS = ["sgpo_no_distill", "sgpo_no_clip", "sgpo_rkl", "sgpo_nll", "sgpo_no_constraints", "sgpo_const_w"]
RUNS = {f"{m}-s{s}": (m, s) for s in (0, 1) for m in MAIN} | {f"{m}-s0": (m, 0) for m in ABLATIONS}
KEEP_WEIGHTS = {"sgpo-s0"}


def make(name: str, method: str, seed: int) -> dict:
    cmd = ["sgpo-lab", "train", "--method", method, "--seed", str(seed), "--steps", str(STEPS),
           "--out", f"demo_runs/{name}", "--overwrite"]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sgpo_lab.cli", *cmd[1:]], cwd=ROOT, check=True)
    seconds = time.perf_counter() - start
    run = OUT / name
    checkpoints = sorted((run / "checkpoints").glob("step-*"))
    for ckpt in checkpoints:
        (ckpt / "optimizer.safetensors").unlink(missing_ok=True)
        (ckpt / "trainer_state.json").unlink(missing_ok=True)
        if name not in KEEP_WEIGHTS or ckpt != checkpoints[-1]:
            shutil.rmtree(ckpt)
    return {"name": name, "method": method, "seed": seed, "steps": STEPS, "command": " ".join(cmd),
            "seconds": round(seconds, 1)}


def main(names: list[str]) -> None:
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        sys.exit(f"unknown demo run(s) {unknown}; expected some of: {', '.join(RUNS)}")
    OUT.mkdir(exist_ok=True)
    manifest_path = OUT / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    for name in names or list(RUNS):
        manifest[name] = make(name, *RUNS[name])
        manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
