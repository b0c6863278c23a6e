"""Figure builders (sgpo_lab.viz) on synthetic run directories: shapes, colours, numbers, bad input.

``write_synthetic_runs`` writes small, deterministic run directories with ``RunWriter`` (several
methods x seeds, a live run, a corrupt run); the app and browser tests import it from here.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from sgpo_lab import viz
from sgpo_lab.runs import (
    RunWriter,
    collect_eval,
    collect_metrics,
    collect_token_shifts,
    list_runs,
    load_instances,
    load_token_shifts,
    read_config,
    run_stamp,
)

FAMILIES = ("sum", "count", "equation", "mul")
# Final ID accuracy each method climbs to (the synthetic world's "truth"), and how much the probe KL shrinks.
TARGET = {"sgpo": 0.7, "grpo": 0.45, "sft": 0.3, "sft_grpo": 0.5, "luffy": 0.55}
ABSORB = {"sgpo": 0.85, "grpo": 0.3, "sft": 0.1, "sft_grpo": 0.3, "luffy": 0.35}
PROBE = {"sum": ("sum 6 3 5 8", " left 6+3=9 9+5=14 14+8=22 #22"),
         "count": ("count over 4 in 3 8 1 9", " 3:0 8:1 1:1 9:2 #2"),
         "equation": ("3x+5=17", " 17-5=12 12/3=4 #4"),
         "mul": ("23*4", " 20*4=80 3*4=12 80+12=92 #92")}


def _shift_rows(step: int, total: int, method: str, rng: random.Random) -> list[dict]:
    rows = []
    fade = 1 - ABSORB.get(method, 0.6) * step / total
    for fam, (question, completion) in PROBE.items():
        tokens = list(completion) + ["<eos>"]
        for pos, tok in enumerate(tokens):
            decision = tok.isdigit() and pos > 0 and completion[pos - 1] in "=# "
            kl = (1.4 if decision else 0.05) * fade * (0.8 + 0.4 * rng.random())
            p_unguided = 0.25 + 0.5 * rng.random()
            p_guided = min(0.99, p_unguided * math.exp(kl))
            alts = [tok, "1", "2", "+", " "][:5]
            rows.append({"step": step, "problem_id": f"{fam}-id-0000", "family": fam, "question": question,
                         "position": pos, "token": tok, "kl": kl, "logp_change": math.log(p_guided / p_unguided),
                         "p_guided": p_guided, "p_unguided": p_unguided, "top_guided": alts,
                         "top_guided_p": [p_guided, 0.1, 0.05, 0.02, 0.01], "top_unguided": alts[::-1],
                         "top_unguided_p": [0.3, 0.2, 0.1, 0.05, p_unguided]})
    return rows


def write_run(out: Path, method: str, seed: int, *, steps: int = 20, upto: int | None = None,
              state: str = "finished") -> Path:
    """One synthetic run of ``method``: metrics, evals every steps/4, instances, probe shifts at 0, steps/2, steps."""
    rng = random.Random(f"{method}/{seed}")
    w = RunWriter(out)
    w.write_config({"method": method, "model": "tiny", "steps": steps, "seed": seed, "weight": "pass_gap",
                    "alpha0": 0.5, "gamma": 0.1, "alpha_max": 0.8, "kl_delta": 1.0,
                    "distill": "kl" if method.startswith("sgpo") else "none"})
    upto = steps if upto is None else upto
    base = 0.1 + 0.02 * rng.random()
    target = TARGET.get(method, 0.55)
    for step in range(0, upto + 1):
        frac = step / steps
        if step % max(1, steps // 4) == 0:
            rows = []
            for split, drop in (("id", 1.0), ("ood", 0.6)):
                accs = []
                for fam in FAMILIES:
                    acc = min(1.0, max(0.0, base + (target - base) * frac * drop + rng.gauss(0, 0.03)))
                    accs.append(acc)
                    rows.append({"step": step, "family": fam, "split": split, "accuracy": acc,
                                 "pass_at_k": min(1.0, acc + 0.15), "k": 4, "n_problems": 4})
                rows.append({"step": step, "family": "all", "split": split, "accuracy": sum(accs) / 4,
                             "pass_at_k": min(1.0, sum(accs) / 4 + 0.15), "k": 4, "n_problems": 16})
            w.append("eval.jsonl", rows)
        if step in (0, steps // 2, steps):
            w.table_part("token_shifts", step, _shift_rows(step, steps, method, rng))
        if step == 0:
            continue
        sft = method == "sft" or (method == "sft_grpo" and step <= steps // 4)
        p_auto = None if sft else min(1.0, 0.1 + 0.6 * frac * target + 0.05 * rng.random())
        inst = []
        if method.startswith("sgpo"):
            for i in range(4):
                pa = round(rng.choice([0, 0.125, 0.25, 0.5, 0.75, 1.0]) * (0.5 + frac), 3)
                pa = min(pa, 1.0)
                pg = min(1.0, pa + rng.choice([0, 0.25, 0.5]))
                weight = min(0.8, 0.5 * max(0.0, pg - pa) / (pa + 0.1)) if pg > 0 else 0.0
                fam = FAMILIES[(step + i) % 4]
                inst.append({"step": step, "problem_id": f"{fam}-train-{(step * 3 + i) % 8:04d}", "family": fam,
                             "p_auto": pa, "p_guided": pg, "weight": weight, "kl_mean": 0.3 * (1 - frac) + 0.05,
                             "target": 0 if pg > 0 else -1, "target_text": " 1+2=3 #3" if pg > 0 else ""})
            w.table_part("instances", step, inst)
        weights = [r["weight"] for r in inst] or [0.0]
        w.append("metrics.jsonl", {
            "step": step, "phase": "sft" if sft else "rl", "loss": 1.5 * (1 - frac) + 0.1 * rng.random(),
            "loss_grpo": 0.0 if sft else 0.05 * rng.gauss(0, 1), "loss_distill": sum(weights) / 4 * 0.3,
            "loss_sft": 1.2 * (1 - frac) if sft else 0.0, "p_auto": p_auto,
            "p_guided": None if sft else min(1.0, (p_auto or 0) + 0.3), "reward_mean": p_auto,
            "entropy": 1.2 - 0.5 * frac + 0.05 * rng.random(), "kl_mean": 0.3 * (1 - frac) if inst else None,
            "clipped_frac": 0.1 * (1 - frac) if inst else None, "n_targets": len(inst),
            "weight_mean": sum(weights) / len(weights), "weight_max": max(weights),
            "weight_nonzero": sum(x > 0 for x in weights) / len(weights), "grpo_clip_frac": 0.01, "grad_norm": 0.5,
            "completion_len": 20.0, "lr": 3e-4, "time_step": 0.5})
    w.status(state, step=upto, total=steps)
    return out


def write_synthetic_runs(root: Path, methods=("sgpo", "grpo", "sft", "sft_grpo", "luffy"), seeds=(0, 1, 2), *,
                         live: bool = True, corrupt: bool = True, steps: int = 20, ablations=()) -> Path:
    """A runs root like the shipped demo: ``<method>-s<seed>`` runs, plus a live run and a corrupt one."""
    root = Path(root)
    for method in methods:
        for seed in seeds:
            write_run(root / f"{method}-s{seed}", method, seed, steps=steps)
    for method in ablations:
        write_run(root / f"{method}-s0", method, 0, steps=steps)
    if live:
        write_run(root / "live" / "sgpo-live", "sgpo", 7, upto=12, state="running")
    if corrupt:
        bad = root / "broken" / "sgpo-corrupt"
        write_run(bad, "sgpo", 9)
        (bad / "status.json").write_text('{"state": "runn')  # truncated mid-write
        with open(bad / "metrics.jsonl", "a") as fh:
            fh.write('{"step": 21, "loss": 0.')  # a writer killed mid-append
        (bad / "eval.jsonl").write_text("not json at all\n\x00\x01\n")
        part = sorted((bad / "token_shifts").glob("part-*.parquet"))[-1]
        part.write_bytes(b"PAR1 truncated")
        (bad / "config.yaml").write_text("method: [unclosed\n")
    return root


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    return write_synthetic_runs(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def evals(runs_root):
    frame = collect_eval(list_runs(runs_root))
    return frame[frame["run"].str.match(r"^\w+-s\d$")]  # the finished method x seed grid only


# ------------------------------------------------------------------------------------------ stats


def test_t_quantile_matches_tables():
    for df, value in {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 9: 2.262, 29: 2.045}.items():
        assert viz.t_quantile(0.975, df) == pytest.approx(value, rel=2e-3)
    assert viz.t_quantile(0.5, 5) == pytest.approx(0.0, abs=1e-12)


def test_mean_ci_by_hand():
    mean, half, n = viz.mean_ci([1.0, 2.0, 3.0])  # s = 1, t_{0.975, 2} = 4.303
    assert (mean, n) == (2.0, 3)
    assert half == pytest.approx(4.303 / math.sqrt(3), rel=1e-3)
    assert math.isnan(viz.mean_ci([0.4])[1]) and viz.mean_ci([None, float("nan")])[2] == 0


def test_ema_debiased_and_skips_nan():
    assert viz.ema([1.0, 1.0, 1.0], 0.9).tolist() == pytest.approx([1.0, 1.0, 1.0])  # no pull towards 0
    out = viz.ema([0.0, np.nan, 1.0], 0.5)
    assert np.isnan(out[1]) and out[2] == pytest.approx((0.5 * 0.5 * 0 + 0.5 * 1.0) / 0.75)
    assert viz.ema([1.0, 2.0], 0).tolist() == [1.0, 2.0]
    grouped = viz.ema_by([0.0, 1.0, 5.0, 7.0], ["a", "a", "b", "b"], 0.5)  # restarts at each new key
    assert grouped.tolist() == pytest.approx([*viz.ema([0.0, 1.0], 0.5), *viz.ema([5.0, 7.0], 0.5)])


# ------------------------------------------------------------------------------------- token view


def _table(tokens, kl, logp=None):
    n = len(tokens)
    return pd.DataFrame({"position": range(n), "token": tokens, "kl": kl,
                         "logp_change": logp if logp is not None else [0.0] * n, "p_guided": [0.5] * n,
                         "p_unguided": [0.25] * n, "top_guided": [["a", "<b>"]] * n, "top_guided_p": [[0.5, 0.2]] * n,
                         "top_unguided": [["c"]] * n, "top_unguided_p": [[0.3]] * n})


def test_token_layout_wraps_and_breaks_lines():
    boxes = viz.token_layout(["ab", "c", "\n", "d", "efg", "h"], wrap=4)
    assert [b[0] for b in boxes] == [0, 0, 0, 1, 1, 2]  # "\n" ends line 0; "h" does not fit after "defg"
    assert boxes[0][1:] == (0.0, 2.0) and boxes[4][1:] == (1.0, 4.0) and boxes[5][1:] == (0.0, 1.0)
    assert viz.display_token(" ") == "␣" and viz.display_token("\n") == "↵" and viz.display_token("") == "∅"


def test_token_figure_colours_follow_the_value():
    fig = viz.token_shift_figure(_table(list("ab c"), [0.0, 2.0, 1.0, 0.0]), "kl")
    fills = [s.fillcolor for s in fig.layout.shapes]
    assert len(fills) == 4 and fills[0] == fills[3] != fills[1]
    # sequential from white: zero KL is the lightest, the largest the darkest
    assert sum(map(int, fills[0][4:-1].split(","))) > sum(map(int, fills[2][4:-1].split(","))) > \
        sum(map(int, fills[1][4:-1].split(",")))
    assert fig.layout.meta["vmax"] == 2.0 and fig.data[0].marker.cmin == 0
    assert list(fig.data[0].text) == ["a", "b", "␣", "c"]
    hover = fig.data[0].customdata[1]
    assert "0.500" in hover and "0.250" in hover and "&lt;b&gt;" in hover and "top without" in hover


def test_token_figure_diverging_range_is_symmetric_and_user_set():
    fig = viz.token_shift_figure(_table(list("abc"), [0, 0, 0], [-1.0, 0.0, 0.5]), "logp_change", vmax=0.5)
    assert (fig.data[0].marker.cmin, fig.data[0].marker.cmax) == (-0.5, 0.5)
    fills = [s.fillcolor for s in fig.layout.shapes]
    red, mid, blue = (tuple(map(int, f[4:-1].split(","))) for f in fills)
    assert red[0] > red[2] and blue[2] > blue[0]  # RdBu: negative red, positive blue
    assert mid[0] > 200 and mid[2] > 200  # zero change is near white
    with pytest.raises(ValueError, match="unknown value"):
        viz.token_shift_figure(_table(["a"], [0.1]), "entropy")


def test_token_figure_on_a_real_shift_table(tmp_path):
    from sgpo_lab.models import build_model
    from sgpo_lab.shifts import token_shifts
    from sgpo_lab.world.tokenizer import build_char_tokenizer

    tok = build_char_tokenizer()
    model = build_model("tiny", tok).eval()
    table = token_shifts(model, tok, "sum 3 8 5", "Problem type: list sum\nStrategy: add", " 3+8=11\n11+5=16 #16")
    fig = viz.token_shift_figure(table, wrap=12)
    assert len(fig.layout.shapes) == len(table) == len(" 3+8=11\n11+5=16 #16")
    assert fig.layout.shapes[8].y0 < fig.layout.shapes[7].y0  # the token after "\n" starts a new line
    assert isinstance(fig.to_json(), str)  # serialisable (numpy arrays in top-k lists)


# ------------------------------------------------------------------------------------- absorption


def test_absorption_curve_shrinks_for_sgpo(runs_root):
    shifts = load_token_shifts(runs_root / "sgpo-s0")
    summary = viz.probe_summary(shifts)
    mean = summary.groupby("step")["kl"].mean()
    assert mean.loc[20] < 0.4 * mean.loc[0]
    fig = viz.absorption_curve_figure(shifts, step=10)
    assert len(fig.data) == 4 + 1 and fig.data[-1].name == "mean over probes"
    assert list(fig.data[-1].y) == pytest.approx(mean.tolist())
    assert any(s.type == "line" and s.x0 == 10 for s in fig.layout.shapes)


def test_absorption_curve_compares_runs(runs_root):
    shifts = collect_token_shifts([runs_root / "sgpo-s0", runs_root / "grpo-s0"])
    fig = viz.absorption_curve_figure(shifts)
    assert [t.name for t in fig.data] == ["sgpo-s0", "grpo-s0"]
    assert fig.data[0].y[-1] < fig.data[1].y[-1]  # sgpo absorbed more than grpo


def test_absorption_heatmap_and_slider(runs_root):
    shifts = load_token_shifts(runs_root / "sgpo-s0")
    heat = viz.absorption_heatmap_figure(shifts, "sum-id-0000")
    z = np.array(heat.data[0].z)
    assert z.shape == (3, len(PROBE["sum"][1]) + 1) and z[-1].sum() < z[0].sum()
    assert "&lt;eos&gt;" in heat.layout.xaxis.ticktext
    slider = viz.absorption_slider_figure(shifts, "sum-id-0000")
    steps = slider.layout.sliders[0].steps
    assert [s.label for s in steps] == ["0", "10", "20"]
    first, last = steps[0].args[1]["shapes"], steps[-1].args[1]["shapes"]
    assert [s["fillcolor"] for s in first] != [s["fillcolor"] for s in last]
    with pytest.raises(ValueError, match="no probe"):
        viz.absorption_heatmap_figure(shifts, "nope-id-0000")


# ---------------------------------------------------------------------------------------- weights


def test_weight_figures(runs_root):
    inst = load_instances(runs_root / "sgpo-s0")
    heat = viz.weight_heatmap_figure(inst)
    z = np.array(heat.data[0].z, dtype=float)
    assert z.shape == (inst["problem_id"].nunique(), inst["step"].nunique())
    assert np.isfinite(z).sum() == len(inst.drop_duplicates(["problem_id", "step"]))
    assert np.nanmax(z) == pytest.approx(inst["weight"].max())
    dist = viz.weight_distribution_figure(inst, max_boxes=5)
    assert len(set(dist.data[0].x)) == 5  # 20 steps pooled into 5 bins
    scatter = viz.weight_vs_pass_figure(inst, read_config(runs_root / "sgpo-s0"))
    assert scatter.data[-1].mode == "markers" and len(scatter.data[-1].y) == len(inst)
    assert sum(t.mode == "lines" for t in scatter.data) == 4  # formula curves for four p_guided levels


def test_weight_curves_are_the_trainers_formula():
    curves = viz.weight_curves({"weight": "pass_gap", "alpha0": 0.5, "gamma": 0.1, "alpha_max": 0.8}, (1.0,), n=11)
    row = curves[np.isclose(curves["p_auto"], 0.5)].iloc[0]
    assert row["weight"] == pytest.approx(min(0.8, 0.5 * 0.5 / 0.6))
    assert curves["weight"].iloc[0] == pytest.approx(0.8) and curves["weight"].iloc[-1] == 0


# ----------------------------------------------------------------------------------------- curves


def test_aggregate_mean_and_band_by_hand():
    frame = pd.DataFrame({"method": ["a"] * 6, "run": ["r0", "r1", "r2"] * 2, "step": [1, 1, 1, 2, 2, 2],
                          "v": [0.1, 0.2, 0.3, 0.5, 0.5, 0.5]})
    agg = viz.aggregate(frame, "v")
    first = agg.iloc[0]
    assert first["mean"] == pytest.approx(0.2) and first["n"] == 3
    assert first["hi"] - first["mean"] == pytest.approx(4.303 * 0.1 / math.sqrt(3), rel=1e-3)
    assert agg.iloc[1]["hi"] == pytest.approx(0.5)  # no spread, no band


def test_accuracy_figure_panels_methods_and_band(evals):
    fig = viz.accuracy_figure(evals, families=("all", "sum"), splits=("id", "ood"))
    assert len(fig.layout.annotations) == 4  # one title per panel
    means = [t for t in fig.data if t.mode == "lines+markers"]
    assert len(means) == 4 * 5 and sorted({t.name for t in means}) == sorted(TARGET)
    assert sum(t.showlegend for t in means) == 5
    sgpo_id = next(t for t in means if t.name == "sgpo" and t.xaxis == "x")
    manual = evals[(evals.method == "sgpo") & (evals.family == "all") & (evals.split == "id")]
    assert list(sgpo_id.y) == pytest.approx(manual.groupby("step")["accuracy"].mean().tolist())
    bands = [t for t in fig.data if t.fill == "toself"]
    assert len(bands) == 20
    smoothed = viz.accuracy_figure(evals, smooth=0.8)
    assert list(next(t for t in smoothed.data if t.name == "sgpo").y) != list(sgpo_id.y)
    seeds = viz.accuracy_figure(evals, families=("all",), splits=("id",), show_seeds=True, methods=["sgpo"])
    assert sum(t.mode == "lines" and t.fill is None for t in seeds.data) == 3  # one thin line per seed


def test_pass_at_k_label_and_metrics_figure(runs_root, evals):
    fig = viz.accuracy_figure(evals, "pass_at_k", splits=("ood",))
    assert fig.layout.yaxis.title.text == "pass@4"
    metrics = collect_metrics([runs_root / "sft-s0", runs_root / "sgpo-s0"])
    mfig = viz.metrics_figure(metrics, ["loss", "p_auto", "not_a_metric"])
    assert [a.text for a in mfig.layout.annotations][:2] == ["total loss", "p_auto (autonomous pass rate)"]
    sft_p_auto = next(t for t in mfig.data if t.name == "sft" and t.xaxis == "x2")
    assert len(sft_p_auto.x) == 0  # SFT steps have no p_auto: no points, no crash


def test_empty_inputs_give_a_blank_figure_not_an_error():
    empty = pd.DataFrame()
    builders = (viz.accuracy_figure, viz.metrics_figure, viz.weight_heatmap_figure, viz.weight_distribution_figure,
                viz.weight_vs_pass_figure, viz.absorption_curve_figure)
    for fig in [b(empty) for b in builders] + [viz.token_shift_figure(pd.DataFrame(columns=["token", "kl"]))]:
        assert isinstance(fig, go.Figure) and fig.layout.meta["empty"]
    paper_only = viz.comparison_figure(viz.comparison_table(empty))  # no lab runs yet: the paper's bars alone
    assert np.isnan(np.array(paper_only.data[0].y, dtype=float)).all()
    assert 6.7 in list(paper_only.data[1].y)


# ------------------------------------------------------------------------------------- comparison


def test_final_results_by_hand(evals):
    res = viz.final_results(evals).set_index("method")
    finals = evals[(evals.method == "sgpo") & (evals.family == "all") & (evals.split == "id") & (evals.step == 20)]
    assert res.loc["sgpo", "mean"] == pytest.approx(finals["accuracy"].mean())
    assert res.loc["sgpo", "n"] == 3 and res.loc["sgpo", "ci"] > 0
    base = evals[(evals.family == "all") & (evals.split == "id") & (evals.step == 0)].groupby("seed")["accuracy"].mean()
    assert res.loc["base", "mean"] == pytest.approx(base.mean())
    assert res.loc["sgpo", "mean"] > res.loc["grpo", "mean"] > res.loc["base", "mean"]


def test_comparison_table_beside_the_paper(evals):
    table = viz.comparison_table(evals)
    assert table["paper"].tolist()[:6] == ["base", "SFT", "SFT+GRPO", "HPT", "LUFFY", "SGPO"]
    sgpo = table[table["method"] == "sgpo"].iloc[0]
    assert sgpo["paper_1.5B"] == 29.9 and sgpo["paper_7B"] == 52.1 and sgpo["paper_1.5B_gain"] == pytest.approx(6.7)
    assert "±" in sgpo["lab"] and sgpo["seeds"] == 3
    assert table[table["paper"] == "HPT"].iloc[0]["lab"] == "—"
    assert "grpo" in table["method"].tolist()  # a lab method without a paper row is still listed
    assert len(viz.PAPER_RESULTS) == 14 and {r.name for r in viz.PAPER_RESULTS} >= {"reverse KL", "w/o KL clipping"}
    fig = viz.comparison_figure(table)
    assert [t.name for t in fig.data] == ["lab (Strategy World)", "paper, Qwen2.5-1.5B", "paper, Qwen2.5-7B"]


# --------------------------------------------------------------------------------- runs additions


def test_collect_and_stamp(runs_root):
    frame = collect_eval(runs_root)
    assert {"run", "method", "seed"} <= set(frame.columns)
    assert "broken/sgpo-corrupt" not in set(frame["run"])  # its eval.jsonl is garbage: no rows, no crash
    assert set(frame["method"]) >= set(TARGET)
    before = run_stamp(runs_root / "live" / "sgpo-live")
    RunWriter(runs_root / "live" / "sgpo-live").append("metrics.jsonl", {"step": 13, "loss": 0.1})
    assert run_stamp(runs_root / "live" / "sgpo-live") != before
