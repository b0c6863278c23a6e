"""The update with length buckets against one padded batch, side by side: the figures the README quotes.

Samples ``--batches`` RL steps of a method from the base model once, then times ``loss_terms`` + the backward
pass on those same batches with ``length_buckets`` off (every row padded to the step's longest) and on, in
alternating rounds, for each forward-pass cost given. Prints the total time of each, the ratio to the padded
batch, and the largest difference in loss and gradient. It is not a timed test.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_buckets.py [--method grpo] [--model small] [--batches 6]
        [--rounds 4] [--fixed 32,64,128]
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time

import torch

import sgpo_lab.rollout as rollout
import sgpo_lab.trainer as trainer_module
from sgpo_lab.config import make_config
from sgpo_lab.trainer import Trainer, step_generator

MAX_BATCHES, MAX_ROUNDS = 50, 20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="grpo")
    ap.add_argument("--model", default="small")
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--fixed", default=str(rollout.FORWARD_FIXED_TOKENS),
                    help="forward-pass costs to try, in tokens, comma-separated")
    args = ap.parse_args()
    if not (1 <= args.batches <= MAX_BATCHES and 1 <= args.rounds <= MAX_ROUNDS):
        ap.error(f"--batches must be 1-{MAX_BATCHES} and --rounds 1-{MAX_ROUNDS}")
    try:
        costs = [int(x) for x in args.fixed.split(",")]
    except ValueError:
        ap.error(f"--fixed must be whole numbers separated by commas, got {args.fixed!r}")

    cfg = make_config(args.method, model=args.model, eval_every=0, probe_problems=0, checkpoint_every=0)
    with tempfile.TemporaryDirectory() as out:
        tr = Trainer(cfg, out, progress=False)
        batches = []
        for step in range(1, args.batches + 1):
            rows, gen = tr.step_rows(step), step_generator(cfg.seed, step)
            sampled = tr.sample_rollouts(rows, gen)
            scores = tr.score(rows, sampled)
            batches.append((rows, sampled, tr.advantages(rows, sampled, scores), tr.targets(rows, sampled, scores,
                                                                                         gen)))

        def step_of(batch) -> tuple[float, float, torch.Tensor]:
            start = time.perf_counter()
            terms = tr.loss_terms(*batch)
            if terms.pending is not None:
                terms.pending.backward()
            seconds = time.perf_counter() - start
            grad = torch.cat([p.grad.flatten() for p in tr.model.parameters() if p.grad is not None])
            tr.opt.zero_grad(set_to_none=True)
            return seconds, terms.loss, grad

        modes = ["padded", *costs]
        total = {m: 0.0 for m in modes}
        reference, worst = {}, {m: (0.0, 0.0) for m in costs}
        for _ in range(args.rounds):
            for mode in modes:
                tr.cfg = cfg.model_copy(update={"length_buckets": mode != "padded"})
                trainer_module.micro_batches = functools.partial(rollout.micro_batches,
                                                                 fixed=0 if mode == "padded" else mode)
                for k, batch in enumerate(batches):
                    seconds, loss, grad = step_of(batch)
                    total[mode] += seconds
                    if mode == "padded":
                        reference.setdefault(k, (loss, grad))
                    else:
                        loss0, grad0 = reference[k]
                        dl, dg = worst[mode]
                        worst[mode] = (max(dl, abs(loss - loss0)), max(dg, float((grad - grad0).abs().max())))
        trainer_module.micro_batches = rollout.micro_batches
    print(f"{args.method} on {args.model}: loss terms + backward on {args.batches} sampled batches, {args.rounds} "
          f"rounds, {torch.get_num_threads()} torch thread(s)")
    print(f"  padded (one batch): {total['padded']:.2f} s")
    for mode in costs:
        dl, dg = worst[mode]
        print(f"  length buckets, a forward pass counted as {mode} tokens: {total[mode]:.2f} s, "
              f"{total[mode] / total['padded']:.2f}x; largest difference: loss {dl:.1e}, gradient {dg:.1e}")


if __name__ == "__main__":
    main()
