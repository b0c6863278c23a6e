"""The claims report: each claim of the paper, measured from sweep folders, with a verdict that follows from the data.

``sgpo-lab claims --from sweeps/`` reads the sweeps under a folder (``sgpo-lab compare --preset main|ablations|
constraints|teacher|scaling --out sweeps/<preset>``) and writes ``reports/claims.md`` and ``reports/claims.json``.
Every verdict follows from 95% intervals over seeds (``sgpo_lab.stats.verdict``): *reproduced* when the interval
of the difference lies on the paper's side of 0, *not reproduced* when it lies on the other side, *mixed* when it
straddles 0 (the data cannot tell at this power; the minimum detectable difference says how large a difference
could hide). A claim whose sweep is missing says so and how to run it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from sgpo_lab import runs as R
from sgpo_lab.stats import mean_ci, paired, verdict

# The paper's averages over MATH500, AMC23, OlympiadBench, AIME24 (secondary sources; arXiv 2606.24064).
PAPER = {
    "1.5B": {"base": 23.2, "sft": 22.2, "sft_grpo": 26.9, "luffy": 28.5, "sgpo": 29.9},
    "7B": {"base": 42.2, "sft": 42.7, "luffy": 48.8, "sft_grpo": 49.9, "sgpo": 52.1, "sgpo_no_distill": 49.9,
           "sgpo_no_grpo": 48.6, "sgpo_no_constraints": 45.3, "sgpo_no_clip": 48.7, "sgpo_random_target": 48.1,
           "sgpo_const_w": 50.9, "sgpo_nll": 49.3, "sgpo_rkl": 50.9},
}


def _seed_values(summary: pd.DataFrame, variant: str, split: str, metric: str = "accuracy") -> dict[int, float]:
    part = summary[(summary["variant"] == variant) & (summary["split"] == split) & (summary["family"] == "all")]
    return dict(zip(part["seed"].astype(int), part[metric].astype(float)))


def _fmt(x: float, scale: float = 100) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{scale * x:.1f}"


def _comparison(summary: pd.DataFrame, a: str, b: str, split: str, expect: str = "higher") -> dict:
    cmp = paired(_seed_values(summary, a, split), _seed_values(summary, b, split))
    return {"a": a, "b": b, "split": split, **cmp.to_dict(), "verdict": verdict(cmp, expect=expect)}


def _overall(verdicts: list[str]) -> str:
    if not verdicts:
        return "not measured"
    if all(v == "reproduced" for v in verdicts):
        return "reproduced"
    if all(v == "not reproduced" for v in verdicts):
        return "not reproduced"
    return "mixed"


def _line(c: dict) -> str:
    p_value = f"{c['p']:.3f}" if math.isfinite(c["p"]) else "n/a"
    diff = f"{100 * c['diff']:+.1f}" if math.isfinite(c["diff"]) else "n/a"
    return (f"| `{c['a']}` vs `{c['b']}` | {c['split'].upper()} | {c['n']} | {_fmt(c['mean_a'])} | "
            f"{_fmt(c['mean_ref'])} | {diff} ± {_fmt(c['half_width'])} | {p_value} | {_fmt(c['mdd'])} | "
            f"{c['verdict']} |")


HEADER = ["| comparison | split | seeds | A (%) | B (%) | A - B (95% CI) | p | min. detectable | verdict |",
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]


def _load(root: Path, preset: str) -> tuple[pd.DataFrame | None, Path]:
    folder = root / preset
    path = folder / "summary.parquet"
    return (pd.read_parquet(path) if path.is_file() else None), folder


def _missing(preset: str) -> dict:
    return {"verdict": "not measured", "lines": [f"Not measured yet: run `sgpo-lab compare --preset {preset} "
                                                 f"--out <folder>/{preset}` and rerun `sgpo-lab claims`."]}


def claim_a(root: Path) -> dict:
    summary, _ = _load(root, "main")
    if summary is None:
        return _missing("main")
    comps = [_comparison(summary, "sgpo", b, split) for b in ("sft", "grpo", "sft_grpo", "luffy")
             for split in ("id", "ood")]
    paper = PAPER["1.5B"]
    lines = [*HEADER, *(_line(c) for c in comps), "",
             f"The paper (Qwen2.5-1.5B-Instruct, avg over four math benchmarks): SGPO {paper['sgpo']}, SFT "
             f"{paper['sft']}, SFT->GRPO {paper['sft_grpo']}, LUFFY {paper['luffy']}; at 7B SGPO "
             f"{PAPER['7B']['sgpo']} vs GRPO (w/o distillation) {PAPER['7B']['sgpo_no_distill']}."]
    return {"verdict": _overall([c["verdict"] for c in comps]), "comparisons": comps, "lines": lines}


def _ablation(root: Path, other: str, paper_key: str, what: str) -> dict:
    summary, _ = _load(root, "ablations")
    if summary is None:
        return _missing("ablations")
    comps = [_comparison(summary, "sgpo", other, split) for split in ("id", "ood")]
    lines = [*HEADER, *(_line(c) for c in comps), "",
             f"The paper (7B): SGPO {PAPER['7B']['sgpo']} vs {what} {PAPER['7B'][paper_key]}."]
    return {"verdict": _overall([c["verdict"] for c in comps]), "comparisons": comps, "lines": lines}


def claim_b(root: Path) -> dict:
    return _ablation(root, "sgpo_nll", "sgpo_nll", "NLL on the same guided trajectories")


def claim_c(root: Path) -> dict:
    return _ablation(root, "sgpo_rkl", "sgpo_rkl", "reverse KL")


def _run_dirs(folder: Path, variant: str) -> list[Path]:
    return sorted(p for p in folder.glob(f"{variant}-s*") if (p / R.MARKER).is_file())


def claim_d(root: Path) -> dict:
    summary, folder = _load(root, "ablations")
    if summary is None:
        return _missing("ablations")
    rows, lines = {}, [*HEADER]
    comps = [_comparison(summary, "sgpo", "sgpo_no_constraints", split) for split in ("id", "ood")]
    lines += [_line(c) for c in comps]
    for variant in ("sgpo", "sgpo_no_constraints", "sgpo_no_clip"):
        finals, minima = {}, {}
        for run in _run_dirs(folder, variant):
            m = R.load_metrics(run)
            if m.empty or "entropy" not in m:
                continue
            seed = int(run.name.rpartition("-s")[2])
            entropy = pd.to_numeric(m["entropy"], errors="coerce")
            finals[seed], minima[seed] = float(entropy.tail(5).mean()), float(entropy.min())
        rows[variant] = (finals, minima)
    ent = paired(rows.get("sgpo_no_constraints", ({}, {}))[0], rows.get("sgpo", ({}, {}))[0])
    entropy_verdict = verdict(ent, expect="lower")
    lines += ["", "| variant | final entropy (nats, mean of the last 5 steps) | lowest entropy in training |",
              "| --- | --- | --- |"]
    for variant, (finals, minima) in rows.items():
        f, fh, n = mean_ci(list(finals.values()))
        lo, loh, _ = mean_ci(list(minima.values()))
        lines.append(f"| {variant} ({n} seeds) | {_fmt(f, 1)} ± {_fmt(fh, 1)} | {_fmt(lo, 1)} ± {_fmt(loh, 1)} |")
    lines += ["", f"Entropy, no constraints minus SGPO: {ent.diff:+.3f} ± {_fmt(ent.half_width, 1)} nats "
              f"({entropy_verdict} for 'collapses')."
              f" The paper (7B): without all proximal constraints {PAPER['7B']['sgpo_no_constraints']} vs SGPO "
              f"{PAPER['7B']['sgpo']}, with abrupt entropy collapse."]
    return {"verdict": _overall([c["verdict"] for c in comps] + [entropy_verdict]), "comparisons": comps,
            "entropy": ent.to_dict(), "lines": lines}


def _sgpo_runs(root: Path) -> list[Path]:
    for preset in ("main", "ablations"):
        runs = _run_dirs(root / preset, "sgpo")
        if runs:
            return runs
    return []


def claim_e(root: Path) -> dict:
    runs = _sgpo_runs(root)
    corr = {}
    for run in runs:
        inst = R.load_instances(run)
        if inst.empty:
            continue
        w, pa = pd.to_numeric(inst["weight"], errors="coerce"), pd.to_numeric(inst["p_auto"], errors="coerce")
        ok = w.notna() & pa.notna()
        if ok.sum() > 2 and w[ok].std() > 0 and pa[ok].std() > 0:
            corr[int(run.name.rpartition("-s")[2])] = float(np.corrcoef(w[ok], pa[ok])[0, 1])
    if not corr:
        return _missing("main")
    zero = dict.fromkeys(corr, 0.0)
    cmp = paired(corr, zero)
    v = verdict(cmp, expect="lower")
    lines = [f"Correlation of the weight w_i with p_auto over every (step, problem) of each `sgpo` run: "
             f"{cmp.mean_a:+.2f} ± {_fmt(cmp.half_width, 1)} over {cmp.n} seeds ({v}).",
             "The lab's weight is min(alpha_max, alpha0 * max(0, p_g - p_a) / (p_a + gamma)) (its inferred formula), "
             "so a falling weight is by design; the measurement checks it acts on the problems training meets."]
    return {"verdict": v, "correlation": cmp.to_dict(), "lines": lines}


def claim_f(root: Path) -> dict:
    runs = _sgpo_runs(root)
    shares, tokens = {}, {}
    for run in runs:
        ts = R.load_token_shifts(run)
        if ts.empty:
            continue
        first = ts[ts["step"] == ts["step"].min()]
        kl = pd.to_numeric(first["kl"], errors="coerce").fillna(0).to_numpy()
        if kl.sum() <= 0:
            continue
        order = np.argsort(-kl)
        top = order[: max(1, math.ceil(0.1 * len(kl)))]
        shares[int(run.name.rpartition("-s")[2])] = float(kl[top].sum() / kl.sum())
        for tok in first["token"].iloc[top]:
            tokens[tok] = tokens.get(tok, 0) + 1
    if not shares:
        return _missing("main")
    mean, half, n = mean_ci(list(shares.values()))
    v = "reproduced" if mean - (half if math.isfinite(half) else 0) > 0.5 else (
        "not reproduced" if mean + (half if math.isfinite(half) else 0) < 0.2 else "mixed")
    common = ", ".join(f"`{t!r}` ({c})" for t, c in sorted(tokens.items(), key=lambda kv: -kv[1])[:8])
    lines = [f"Share of the probe completions' total KL(guided || unguided) carried by the top 10% of tokens, at "
             f"the start of training: {_fmt(mean)}% ± {_fmt(half)} over {n} seeds (uniform would be 10%).",
             f"Tokens most often in the top 10%: {common}.",
             "Verdict rule (the lab's): reproduced when the lower end of the interval is above 50%, not reproduced "
             "when the upper end is below 20%."]
    return {"verdict": v, "share": {"mean": mean, "half_width": half, "n": n}, "tokens": tokens, "lines": lines}


def claim_g(root: Path) -> dict:
    summary, _ = _load(root, "scaling")
    if summary is None:
        return _missing("scaling")
    gains, lines = {}, ["| size | base ID (%) | sgpo ID (%) | gain (points, mean ± CI) |", "| --- | --- | --- | --- |"]
    for size in ("tiny", "small", "medium"):
        after = _seed_values(summary, f"{size}-sgpo", "id")
        base = _seed_values(summary, f"{size}-sgpo@base", "id")
        gains[size] = {s: after[s] - base[s] for s in after if s in base}
        g, gh, _ = mean_ci(list(gains[size].values()))
        b, _, _ = mean_ci(list(base.values()))
        a, _, _ = mean_ci(list(after.values()))
        lines.append(f"| {size} | {_fmt(b)} | {_fmt(a)} | {_fmt(g)} ± {_fmt(gh)} |")
    cmp = paired(gains.get("medium", {}), gains.get("tiny", {}))
    v = verdict(cmp)
    lines += ["", f"Gain of medium minus gain of tiny: {100 * cmp.diff:+.1f} ± {_fmt(cmp.half_width)} points ({v}). "
              "The paper: +6.7 at 1.5B, +9.9 at 7B over the base model."]
    return {"verdict": v, "gains": {k: dict(v_) for k, v_ in gains.items()}, "lines": lines}


CLAIMS: dict[str, tuple[str, Callable[[Path], dict]]] = {
    "a": ("SGPO beats SFT, GRPO, SFT->GRPO and LUFFY (ID and OOD)", claim_a),
    "b": ("Forward KL beats NLL on the same targets", claim_b),
    "c": ("Forward KL beats reverse KL", claim_c),
    "d": ("Without the proximal constraints: lower accuracy and entropy collapse", claim_d),
    "e": ("The adaptive weight falls as the autonomous pass rate rises", claim_e),
    "f": ("Selectivity: the KL concentrates on a few decision tokens", claim_f),
    "g": ("The gain over the base model grows with model size", claim_g),
}


def write_claims(root: str | Path, out: str | Path = "reports") -> dict:
    """Measure every claim from the sweeps under ``root``; write claims.md and claims.json under ``out``."""
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise ValueError(f"sweeps folder {str(root)!r} does not exist; expected a folder of 'sgpo-lab compare' "
                         "outputs (main/, ablations/, ...)")
    results = {key: {"title": title, **fn(root)} for key, (title, fn) in CLAIMS.items()}
    out.mkdir(parents=True, exist_ok=True)
    md = ["# The paper's claims, measured in the Strategy World", "",
          f"From the sweeps under `{root}` (`sgpo-lab claims --from {root}`). Accuracy is greedy, unguided, over "
          "the full ID and OOD splits; intervals are 95% t intervals over seeds, comparisons paired by seed.", "",
          "| claim | verdict |", "| --- | --- |",
          *(f"| ({k}) {r['title']} | {r['verdict']} |" for k, r in results.items()), ""]
    for key, r in results.items():
        md += [f"## ({key}) {r['title']}: {r['verdict']}", "", *r["lines"], ""]
    R.atomic_write_text(out / "claims.md", "\n".join(md))
    body = {k: {kk: vv for kk, vv in r.items() if kk != "lines"} for k, r in results.items()}
    R.atomic_write_text(out / "claims.json", json.dumps(body, indent=2, default=float))
    return results
