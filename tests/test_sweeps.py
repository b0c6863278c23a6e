"""Sweeps and their statistics: the quick preset end to end (and resumed), paired statistics by hand."""

import json
import math
import subprocess
import sys

import pandas as pd
import pytest

from sgpo_lab import runs as R
from sgpo_lab.stats import mean_ci, paired, t_quantile, t_two_sided_p, verdict
from sgpo_lab.sweeps import PRESETS, SweepError, compare_table, plan, run_sweep


def test_t_distribution_against_tables():
    assert abs(t_quantile(0.975, 9) - 2.262) < 2e-3 and abs(t_quantile(0.975, 2) - 4.303) < 2e-3
    assert abs(t_two_sided_p(2.262, 9) - 0.05) < 1e-3
    assert abs(t_two_sided_p(1.0, 1) - 0.5) < 1e-9  # Cauchy: P(|T| > 1) = 1/2
    assert abs(t_two_sided_p(0.0, 5) - 1.0) < 1e-12


def test_paired_difference_by_hand():
    a = {0: 0.50, 1: 0.60, 2: 0.55, 3: 0.70, 9: 0.9}  # seed 9 has no partner: left out
    ref = {0: 0.40, 1: 0.45, 2: 0.50, 3: 0.52}
    d = [0.10, 0.15, 0.05, 0.18]
    mean = sum(d) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 3)
    se = sd / 2
    got = paired(a, ref)
    assert got.n == 4 and abs(got.diff - mean) < 1e-12
    assert abs(got.half_width - t_quantile(0.975, 3) * se) < 1e-12
    assert abs(got.p - t_two_sided_p(mean / se, 3)) < 1e-12 and got.p < 0.05
    assert abs(got.mdd - (t_quantile(0.975, 3) + t_quantile(0.8, 3)) * se) < 1e-12
    assert verdict(got) == "reproduced" and verdict(got, expect="lower") == "not reproduced"
    assert verdict(paired({0: 0.5, 1: 0.4}, {0: 0.4, 1: 0.5})) == "mixed"
    assert mean_ci([1.0])[2] == 1 and math.isnan(mean_ci([1.0])[1])


def test_compare_table_pairs_by_seed():
    rows = [{"variant": v, "seed": s, "split": "id", "family": "all", "accuracy": acc}
            for v, accs in {"ref": [0.1, 0.2, 0.3], "new": [0.2, 0.25, 0.5]}.items() for s, acc in enumerate(accs)]
    table = compare_table(pd.DataFrame(rows), "ref").set_index("variant")
    assert abs(table.loc["new", "diff_vs_ref"] - (0.1 + 0.05 + 0.2) / 3) < 1e-12
    assert math.isnan(table.loc["ref"].get("diff_vs_ref", math.nan))


def test_bad_sweep_requests_are_one_line_errors(tmp_path):
    with pytest.raises(SweepError, match="unknown preset 'nope'"):
        plan("nope")
    with pytest.raises(SweepError, match="--seeds must be from 1"):
        plan("main", 0)
    with pytest.raises(SweepError, match="--jobs must be from 1"):
        run_sweep("quick", tmp_path, jobs=0)
    assert {"quick", "main", "ablations", "constraints", "teacher", "scaling"} <= set(PRESETS)
    assert [v.name for v in PRESETS["main"].variants] == ["sgpo", "sft", "grpo", "sft_grpo", "luffy"]
    # claims (b) and (c) get 10 seeds by default, the other ablations 5; --seeds sets every variant
    counts = pd.Series([j.variant.name for j in plan("ablations")[1]]).value_counts()
    assert counts["sgpo_nll"] == counts["sgpo_rkl"] == counts["sgpo"] == 10 and counts["sgpo_const_w"] == 5
    assert set(pd.Series([j.variant.name for j in plan("ablations", 3)[1]]).value_counts()) == {3}
    assert [j.name for j in plan("scaling", 1, variants=["tiny-sgpo", "small-sgpo"])[1]] == ["tiny-sgpo-s0",
                                                                                             "small-sgpo-s0"]
    with pytest.raises(SweepError, match="unknown variant\\(s\\) 'huge-sgpo' of preset 'scaling'"):
        plan("scaling", variants=["huge-sgpo"])


def test_quick_sweep_writes_a_summary_and_resumes(tmp_path):
    out = tmp_path / "sweep"
    micro = {"steps": 2, "eval_problems": 2, "group_size": 2, "guided_size": 2, "max_new_tokens": 8,
             "problems_per_step": 2, "families": ["sum"]}
    summary = run_sweep("quick", out, seeds=2, jobs=2, overrides=micro, progress=False)
    names = {f"{v}-s{s}" for v in ("grpo", "sgpo") for s in (0, 1)}
    assert {p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")} == names
    assert set(summary["variant"]) == {"grpo", "sgpo", "grpo@base", "sgpo@base"}
    final = summary[~summary["variant"].str.endswith("@base")]
    assert set(final["step"]) == {2} and set(final["split"]) == {"id", "ood"}
    text = (out / "summary.md").read_text()
    assert "| sgpo | 2 |" in text and "difference to `grpo`" in text
    assert pd.read_parquet(out / "summary.parquet").shape == summary.shape
    assert not R.load_eval_problems(out / "sgpo-s0").empty
    # a finished run is compacted: no checkpoints, one Parquet file per table, and the readers see every step
    assert [p.name for p in (out / "sgpo-s0" / "instances").iterdir()] == ["part-000002.parquet"]
    assert sorted(R.load_instances(out / "sgpo-s0")["step"].unique()) == [1, 2]
    assert not any((out / "sgpo-s0" / "checkpoints").iterdir())

    # an interrupted run (as a Ctrl-C leaves it) is continued; finished runs are left alone
    done = (out / "grpo-s0" / "metrics.jsonl").stat().st_mtime_ns
    rows = R.read_jsonl(out / "sgpo-s1" / "metrics.jsonl")[:1]
    (out / "sgpo-s1" / "metrics.jsonl").write_text(json.dumps(rows[0]) + "\n")
    R.RunWriter(out / "sgpo-s1").status("interrupted", step=1, total=2)
    again = run_sweep("quick", out, seeds=2, jobs=2, overrides=micro, progress=False)
    assert R.read_status(out / "sgpo-s1")["state"] == "finished"
    assert [r["step"] for r in R.read_jsonl(out / "sgpo-s1" / "metrics.jsonl")] == [1, 2]
    assert (out / "grpo-s0" / "metrics.jsonl").stat().st_mtime_ns == done
    assert again.shape == summary.shape

    # --reuse: runs trained with exactly the same config are copied (a storage-only field may differ) ...
    copied = run_sweep("quick", tmp_path / "copy", seeds=2, jobs=1, overrides={**micro, "rollouts_every": 0},
                       progress=False, reuse=[out])
    assert set(json.loads((tmp_path / "copy" / "sweep.json").read_text())["reused"]) == names
    assert copied.sort_values(list(copied.columns[:4])).reset_index(drop=True).equals(
        again.sort_values(list(again.columns[:4])).reset_index(drop=True))
    # ... and a run that trained differently is not
    other = run_sweep("quick", tmp_path / "other", seeds=1, jobs=1, overrides={**micro, "lr": 1e-4},
                      progress=False, reuse=[out])
    assert json.loads((tmp_path / "other" / "sweep.json").read_text())["reused"] == {}
    assert R.read_config(tmp_path / "other" / "sgpo-s0")["lr"] == 1e-4 and not other.empty
    with pytest.raises(SweepError, match="does not exist"):
        run_sweep("quick", tmp_path / "none", seeds=1, overrides=micro, progress=False, reuse=[tmp_path / "nope"])


def test_compare_cli_refuses_a_folder_of_another_preset(tmp_path):
    (tmp_path / "sweep.json").write_text(json.dumps({"preset": "main"}))
    result = subprocess.run([sys.executable, "-m", "sgpo_lab.cli", "compare", "--preset", "quick", "--out",
                             str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "holds a sweep of preset 'main'" in result.stderr


def _synthetic(folder, variants: dict, preset: str):
    """A summary.parquet of made-up per-seed accuracies: {variant: [acc per seed]} (same for id and ood)."""
    rows = [{"variant": v, "seed": s, "step": 60, "split": split, "family": "all", "accuracy": acc,
             "pass_at_k": acc} for v, accs in variants.items() for s, acc in enumerate(accs) for split in ("id", "ood")]
    (folder / preset).mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(folder / preset / "summary.parquet")


def test_claims_verdicts_follow_the_intervals(tmp_path):
    from sgpo_lab.claims import write_claims

    sweeps = tmp_path / "sweeps"
    clearly_better = [0.50, 0.52, 0.55, 0.51, 0.53]
    _synthetic(sweeps, {"sgpo": clearly_better, "sft": [0.1] * 4 + [0.12], "grpo": [0.30, 0.31, 0.33, 0.29, 0.32],
                        "sft_grpo": [0.2, 0.21, 0.22, 0.2, 0.19], "luffy": [0.3, 0.32, 0.3, 0.31, 0.33]}, "main")
    _synthetic(sweeps, {"sgpo": clearly_better, "sgpo_nll": [0.6, 0.62, 0.65, 0.61, 0.63],  # NLL better: not
                        "sgpo_rkl": [0.40, 0.60, 0.45, 0.62, 0.50],  # straddles: mixed
                        "sgpo_no_constraints": [0.5, 0.52, 0.55, 0.51, 0.53]}, "ablations")
    results = write_claims(sweeps, tmp_path / "reports")
    assert results["a"]["verdict"] == "reproduced"
    assert results["b"]["verdict"] == "not reproduced"
    assert results["c"]["verdict"] == "mixed"
    assert results["g"]["verdict"] == "not measured"
    text = (tmp_path / "reports" / "claims.md").read_text()
    assert "| (a) SGPO beats SFT, GRPO, SFT->GRPO and LUFFY (ID and OOD) | reproduced |" in text
    assert "sgpo-lab compare --preset scaling" in text
    assert json.loads((tmp_path / "reports" / "claims.json").read_text())["b"]["verdict"] == "not reproduced"
    # every measured claim has its figure beside the report (a PNG, or interactive HTML where kaleido cannot run)
    for key in ("a", "b", "c"):
        shown = list((tmp_path / "reports" / "figures").glob(f"{key}.*"))
        assert shown and f"figures/{shown[0].name}" in text
    assert not list((tmp_path / "reports" / "figures").glob("g.*"))


def test_clip_and_teacher_questions_follow_the_intervals(tmp_path):
    from sgpo_lab.claims import write_claims

    sweeps = tmp_path / "sweeps"
    base = [0.40, 0.42, 0.45, 0.41, 0.43]
    accs = {f"sgpo-{clip}-{teacher}": base for clip in ("hard", "scale", "none", "pointwise")
            for teacher in ("live", "frozen")}
    accs["sgpo-scale-frozen"] = [a + 0.10 + 0.01 * i for i, a in enumerate(base)]  # clearly best
    accs["sgpo-none-live"] = [a - 0.20 for a in base]  # clearly worse
    _synthetic(sweeps, accs, "constraints")
    results = write_claims(sweeps, tmp_path / "reports")
    assert results["clip"]["verdict"] == "kl_clip=scale, teacher=frozen"
    text = (tmp_path / "reports" / "claims.md").read_text()
    assert "**The lab recommends `kl_clip=scale` with a frozen teacher**" in text
    assert "Worse than the default beyond the noise (ID): `sgpo-none-live`." in text
    # with no teacher sweep, the teacher question reads the constraints sweep's hard-clip pair (equal here)
    assert results["teacher"]["verdict"] == "no difference beyond the noise"

    accs["sgpo-scale-frozen"] = [a + 0.01 * (-1) ** i for i, a in enumerate(base)]  # within the noise
    (sweeps / "constraints" / "summary.parquet").unlink()
    (sweeps / "constraints").rmdir()
    _synthetic(sweeps, accs, "constraints")
    again = write_claims(sweeps, tmp_path / "reports")
    assert again["clip"]["verdict"].startswith("kl_clip=hard, teacher=live")


def test_readme_main_sweep_figures_match_the_shipped_summary():
    """Every figure of the README's main-sweep table comes from sweeps/main/summary.parquet."""
    from pathlib import Path

    from sgpo_lab.sweeps import PRESETS

    root = Path(__file__).parents[1]
    table = compare_table(pd.read_parquet(root / "sweeps" / "main" / "summary.parquet"), PRESETS["main"].reference)
    readme = (root / "README.md").read_text()
    for r in table.to_dict("records"):
        cell = f"| {r['variant']} | {100 * r['mean']:.1f} ± {100 * r['ci95']:.1f} |"
        assert cell in readme, cell
        if r["variant"] != "sgpo":
            assert f"+{-100 * r['diff_vs_ref']:.1f} ± {100 * r['diff_ci95']:.1f}" in readme, r["variant"]


def test_scaling_claim_compares_the_sizes_measured(tmp_path):
    from sgpo_lab.claims import write_claims

    sweeps = tmp_path / "sweeps"
    _synthetic(sweeps, {"tiny-sgpo": [0.20, 0.22, 0.21], "tiny-sgpo@base": [0.15, 0.15, 0.15],
                        "small-sgpo": [0.45, 0.47, 0.46], "small-sgpo@base": [0.11, 0.11, 0.11]}, "scaling")
    result = write_claims(sweeps, tmp_path / "reports")["g"]
    assert result["verdict"] == "reproduced"  # gains 6 vs 35 points
    assert set(result["gains"]) == {"tiny", "small"}
    text = (tmp_path / "reports" / "claims.md").read_text()
    assert "| medium | not run | not run | not run |" in text and "Gain of small minus gain of tiny" in text
    # three sizes: every step of the order must hold; one that does not makes the claim mixed
    two = {"tiny-sgpo": [0.20, 0.22, 0.21], "tiny-sgpo@base": [0.15, 0.15, 0.15],
           "small-sgpo": [0.45, 0.47, 0.46], "small-sgpo@base": [0.11, 0.11, 0.11]}
    for medium, expected in (([0.40, 0.45, 0.41], "not reproduced"),  # gains 20-25 after small's 34-36
                             ([0.50, 0.66, 0.58], "mixed"),  # straddles small's
                             ([0.60, 0.66, 0.63], "reproduced")):
        _synthetic(sweeps, {**two, "medium-sgpo": medium, "medium-sgpo@base": [0.20, 0.20, 0.21]}, "scaling")
        result = write_claims(sweeps, tmp_path / "reports")["g"]
        assert set(result["gains"]) == {"tiny", "small", "medium"} and result["verdict"] == expected, medium
    assert "Gain of medium minus gain of small" in (tmp_path / "reports" / "claims.md").read_text()


def test_readme_sweep_tables_are_rows_of_the_shipped_summaries():
    """A README table marked ``<!-- rows of sweeps/NAME/summary.md -->`` holds only rows of that summary (which
    ``sgpo-lab compare`` writes from summary.parquet): no README figure can drift from the shipped sweeps."""
    import re
    from pathlib import Path

    root = Path(__file__).parents[1]
    readme = (root / "README.md").read_text().splitlines()
    marked = [(i, m.group(1)) for i, line in enumerate(readme)
              if (m := re.fullmatch(r"<!-- rows of (sweeps/[\w-]+/summary\.md) -->", line.strip()))]
    shipped = {f"sweeps/{p.parent.name}/summary.md" for p in (root / "sweeps").glob("*/summary.md")}
    assert {name for _, name in marked} >= shipped - {"sweeps/main/summary.md"}, "a shipped sweep without a table"
    for i, name in marked:
        summary = set((root / name).read_text().splitlines())
        rows = []
        for line in readme[i + 1:]:
            if not line.startswith("|"):
                break
            rows.append(line)
        assert len(rows) > 2, name
        for line in rows:
            assert line in summary, f"{name}: {line}"


def test_a_run_made_before_length_buckets_resumes_and_compares_without_them(tmp_path):
    """A config.yaml without ``length_buckets`` was made by the padded scorer: resume and --reuse read it so."""
    import yaml

    from sgpo_lab.config import make_config
    from sgpo_lab.sweeps import Job, find_reusable

    run = tmp_path / "old" / "grpo-s0"
    cfg = make_config("grpo", seed=0, **PRESETS["quick"].common)
    body = {k: v for k, v in cfg.model_dump().items() if k != "length_buckets"}
    run.mkdir(parents=True)
    (run / R.MARKER).write_text("")
    (run / "config.yaml").write_text(yaml.safe_dump(R.resolved_config(body)))
    R.RunWriter(run).status("finished", step=cfg.steps, total=cfg.steps)
    assert R.read_run_config(run)["length_buckets"] is False
    job = Job("grpo-s0", PRESETS["quick"].variants[0], 0)
    assert find_reusable(job, PRESETS["quick"].common, [tmp_path / "old"]) is None  # new runs score by length
    (run / "config.yaml").write_text(yaml.safe_dump(R.resolved_config(cfg.model_dump())))
    assert find_reusable(job, PRESETS["quick"].common, [tmp_path / "old"]) == run
