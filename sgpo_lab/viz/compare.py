"""The comparison table: the lab's final numbers (mean ± CI over seeds) beside the paper's
(docs/design.md, "The paper's constants and numbers").

The paper reports accuracy (%) averaged over MATH500, AMC23, OlympiadBench and AIME24 for
Qwen2.5-1.5B/7B-Instruct; the lab reports accuracy on the Strategy World. Absolute numbers are not
comparable; the *gain over the base model* and the *ordering* of methods are, so the table shows
both, and ``comparison_figure`` draws the gains side by side.

"base" in the lab is the step-0 evaluation of the runs (every method starts from the same base model).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from sgpo_lab.viz.stats import mean_ci
from sgpo_lab.viz.style import TEMPLATE, empty_figure, group_colors, method_color, rgba

PAPER_SOURCE = ("Shi et al., Beyond Trajectory Imitation: Strategy-Guided Policy Optimization, arXiv 2606.24064: "
                "accuracy (%) averaged over MATH500, AMC23, OlympiadBench, AIME24")


class PaperRow(NamedTuple):
    name: str  # as the paper names it
    method: str | None  # the lab's method (preset) that plays its part; None: not in the lab
    qwen_1_5b: float | None  # Qwen2.5-1.5B-Instruct
    qwen_7b: float | None  # Qwen2.5-7B-Instruct


PAPER_RESULTS: tuple[PaperRow, ...] = (
    PaperRow("base", "base", 23.2, 42.2),
    PaperRow("SFT", "sft", 22.2, 42.7),
    PaperRow("SFT+GRPO", "sft_grpo", 26.9, None),
    PaperRow("HPT", None, 28.2, None),
    PaperRow("LUFFY", "luffy", 28.5, None),
    PaperRow("SGPO", "sgpo", 29.9, 52.1),
    PaperRow("w/o distillation", "sgpo_no_distill", None, 49.9),
    PaperRow("w/o autonomous GRPO", "sgpo_no_grpo", None, 48.6),
    PaperRow("w/o all proximal constraints", "sgpo_no_constraints", None, 45.3),
    PaperRow("w/o KL clipping", "sgpo_no_clip", None, 48.7),
    PaperRow("w/o target selection", "sgpo_random_target", None, 48.1),
    PaperRow("w/o adaptive weight", "sgpo_const_w", None, 50.9),
    PaperRow("NLL on the same guided trajectories", "sgpo_nll", None, 49.3),
    PaperRow("reverse KL", "sgpo_rkl", None, 50.9),
)


def paper_table() -> pd.DataFrame:
    """``PAPER_RESULTS`` as a frame: name, method, qwen_1_5b, qwen_7b."""
    return pd.DataFrame(PAPER_RESULTS, columns=PaperRow._fields)


def final_results(evals: pd.DataFrame, *, split: str = "id", family: str = "all", metric: str = "accuracy",
                  last_n: int = 1, level: float = 0.95) -> pd.DataFrame:
    """Per method: the final value of each run (mean of its last ``last_n`` evaluations), then mean ± CI over runs.

    Also a ``base`` row: the step-0 value, one per seed (every run of a seed starts from the same model).
    ``gain`` is per run final minus its seed's base, averaged the same way.
    Returns columns method, n, mean, ci, gain, gain_ci (accuracies as fractions).
    """
    columns = ["method", "n", "mean", "ci", "gain", "gain_ci"]
    if evals.empty:
        return pd.DataFrame(columns=columns)
    part = evals[(evals["split"] == split) & (evals["family"] == family)].copy()
    part[metric] = pd.to_numeric(part[metric], errors="coerce")
    part = part.dropna(subset=[metric])
    if part.empty:
        return pd.DataFrame(columns=columns)
    base_per_run = part[part["step"] == 0].set_index("run")[metric]
    seed_of = part.drop_duplicates("run").set_index("run")["seed"]
    base_per_seed = base_per_run.groupby(seed_of.reindex(base_per_run.index)).mean()
    rows = []
    if len(base_per_seed):
        mean, half, n = mean_ci(base_per_seed.to_numpy(), level)
        rows.append({"method": "base", "n": n, "mean": mean, "ci": half, "gain": 0.0, "gain_ci": np.nan})
    trained = part[part["step"] > 0]
    finals = (trained.sort_values("step").groupby(["method", "run"])[metric]
              .apply(lambda s: s.tail(last_n).mean()).reset_index())
    for method, group in finals.groupby("method", sort=False):
        mean, half, n = mean_ci(group[metric].to_numpy(), level)
        base = group["run"].map(seed_of).map(base_per_seed)
        g_mean, g_half, _ = mean_ci((group[metric] - base).to_numpy(), level)
        rows.append({"method": method, "n": n, "mean": mean, "ci": half, "gain": g_mean, "gain_ci": g_half})
    return pd.DataFrame(rows, columns=columns)


def _pm(mean: float, half: float) -> str:
    if not np.isfinite(mean):
        return "—"
    return f"{mean:.1f}" if not np.isfinite(half) else f"{mean:.1f} ± {half:.1f}"


def comparison_table(evals: pd.DataFrame, *, split: str = "id", family: str = "all", metric: str = "accuracy",
                     last_n: int = 1, level: float = 0.95) -> pd.DataFrame:
    """The lab's final numbers beside the paper's, one row per paper row (then the lab's other methods).

    Columns (percent): ``paper`` (the paper's name), ``method``, ``seeds``, ``lab`` ("mean ± CI"),
    ``lab_gain`` ("± CI", over the lab's base), ``paper_1.5B``, ``paper_1.5B_gain``, ``paper_7B``,
    ``paper_7B_gain``; plus the numeric ``lab_mean``, ``lab_ci``, ``lab_gain_mean``, ``lab_gain_ci``.
    """
    lab = final_results(evals, split=split, family=family, metric=metric, last_n=last_n, level=level)
    lab = lab.set_index("method")
    rows, seen = [], set()

    def lab_cells(method):
        if method is None or method not in lab.index:
            return {"seeds": 0, "lab": "—", "lab_gain": "—", "lab_mean": np.nan, "lab_ci": np.nan,
                    "lab_gain_mean": np.nan, "lab_gain_ci": np.nan}
        r = lab.loc[method]
        seen.add(method)
        return {"seeds": int(r["n"]), "lab": _pm(100 * r["mean"], 100 * r["ci"]),
                "lab_gain": "—" if method == "base" else _pm(100 * r["gain"], 100 * r["gain_ci"]),
                "lab_mean": 100 * r["mean"], "lab_ci": 100 * r["ci"], "lab_gain_mean": 100 * r["gain"],
                "lab_gain_ci": 100 * r["gain_ci"]}

    base15, base7 = PAPER_RESULTS[0].qwen_1_5b, PAPER_RESULTS[0].qwen_7b
    for p in PAPER_RESULTS:
        rows.append({"paper": p.name, "method": p.method or "—", **lab_cells(p.method),
                     "paper_1.5B": p.qwen_1_5b, "paper_1.5B_gain": _gain(p.qwen_1_5b, base15, p.name),
                     "paper_7B": p.qwen_7b, "paper_7B_gain": _gain(p.qwen_7b, base7, p.name)})
    for method in lab.index:
        if method not in seen:
            rows.append({"paper": "—", "method": method, **lab_cells(method), "paper_1.5B": None,
                         "paper_1.5B_gain": None, "paper_7B": None, "paper_7B_gain": None})
    order = ["paper", "method", "seeds", "lab", "lab_gain", "paper_1.5B", "paper_1.5B_gain", "paper_7B",
             "paper_7B_gain", "lab_mean", "lab_ci", "lab_gain_mean", "lab_gain_ci"]
    return pd.DataFrame(rows, columns=order)


def _gain(value, base, name) -> float | None:
    if value is None or name == "base":
        return None
    return round(value - base, 1)


def comparison_figure(table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Gain over the base model, in points: the lab (with its CI) beside the paper's 1.5B and 7B numbers.

    ``table`` is ``comparison_table``'s output; rows with no number anywhere are left out.
    """
    rows = table[table["paper"] != "base"]
    rows = rows[rows[["lab_gain_mean", "paper_1.5B_gain", "paper_7B_gain"]].notna().any(axis=1)]
    if rows.empty:
        return empty_figure("no final numbers to compare yet")
    labels = [f"{p} ({m})" if m != "—" and p != "—" else (p if m == "—" else m)
              for p, m in zip(rows["paper"], rows["method"])]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=rows["lab_gain_mean"], name="lab (Strategy World)",
                         marker_color=[method_color(m) for m in rows["method"]],
                         error_y={"type": "data", "array": rows["lab_gain_ci"].fillna(0), "visible": True}))
    fig.add_trace(go.Bar(x=labels, y=rows["paper_1.5B_gain"], name="paper, Qwen2.5-1.5B", marker_color="#bbbbbb"))
    fig.add_trace(go.Bar(x=labels, y=rows["paper_7B_gain"], name="paper, Qwen2.5-7B", marker_color="#555555"))
    fig.update_layout(template=TEMPLATE, title=title, barmode="group", height=420,
                      margin={"l": 60, "r": 10, "t": 40, "b": 140}, yaxis_title="gain over base (points)",
                      legend={"orientation": "h", "y": 1.1}, xaxis={"tickangle": -35})
    return fig



def _k_of(summary: pd.DataFrame) -> str:
    ks = pd.to_numeric(summary.get("k", pd.Series(dtype=float)), errors="coerce").dropna().unique()
    return f"pass@{int(ks[0])}" if len(ks) == 1 else "pass@k"


def sweep_figure(summary: pd.DataFrame, table: pd.DataFrame, *, metric: str = "accuracy", split: str = "id",
                   family: str = "all", title: str | None = None):
    """Bars: each variant's mean with its 95% CI (``table``, from ``compare_table``); dots: its seeds; dashed: the
    base model (the runs' step-0 evaluation, ``<variant>@base``), one line when every variant starts from it.

    ``summary`` is a sweep's ``summary.parquet`` (``sgpo_lab.sweeps.summarize``); ``table`` its
    ``sgpo_lab.sweeps.compare_table`` rows, in the order to draw."""
    label = _k_of(summary) if metric == "pass_at_k" else "greedy accuracy" if metric == "accuracy" else metric
    if table.empty:
        return empty_figure(f"No finished runs with a {label} on {split.upper()}")
    part = summary[(summary["split"] == split) & (summary["family"] == family)]
    names = table["variant"].tolist()
    colors = group_colors(names)
    fig = go.Figure()
    for i, r in enumerate(table.to_dict("records")):
        color, half = colors[r["variant"]], r["ci95"]
        pm = "n/a" if half != half else f"{100 * half:.1f}"
        fig.add_bar(x=[i], y=[100 * r["mean"]], name=r["variant"], marker_color=rgba(color, 0.45),
                    marker_line_color=color, marker_line_width=1.5, showlegend=False,
                    error_y={"type": "data", "array": [100 * half if half == half else None], "color": color,
                             "thickness": 2, "width": 10},
                    hovertemplate=f"{r['variant']}: %{{y:.1f}}% ± {pm} ({r['seeds']} seeds)<extra></extra>")
        seeds = part[part["variant"] == r["variant"]].sort_values("seed")
        offsets = [0.0] if len(seeds) == 1 else [-0.25 + 0.5 * j / (len(seeds) - 1) for j in range(len(seeds))]
        fig.add_scatter(x=[i + o for o in offsets], y=100 * seeds[metric], mode="markers", showlegend=False,
                        marker={"color": color, "size": 7, "line": {"color": "white", "width": 1}},
                        customdata=seeds["seed"], hovertemplate=f"{r['variant']} seed %{{customdata}}: "
                                                                "%{y:.1f}%<extra></extra>")
    _draw_base(fig, part, names, metric)
    fig.update_layout(template=TEMPLATE, height=430, title=title, bargap=0.35,
                      margin={"l": 60, "r": 20, "t": 50 if title else 20, "b": 60},
                      xaxis={"tickvals": list(range(len(names))), "ticktext": names, "range": [-0.6, len(names) - 0.4]},
                      yaxis={"title": f"{label}, {split.upper()}, %", "rangemode": "tozero"})
    return fig


def _draw_base(fig, part: pd.DataFrame, names: list[str], metric: str) -> None:
    levels = [100 * part.loc[part["variant"] == f"{v}@base", metric].mean() for v in names]
    known = [x for x in levels if x == x]
    if not known:
        return
    style = {"dash": "dash", "color": "#7F7F7F", "width": 2}
    if max(known) - min(known) < 1e-9:  # every run starts from the same base model
        fig.add_hline(y=known[0], line=style, annotation_text=f"base model {known[0]:.1f}%",
                      annotation_position="top right")
        return
    for i, y in enumerate(levels):
        if y == y:
            fig.add_shape(type="line", x0=i - 0.4, x1=i + 0.4, y0=y, y1=y, line=style)
    fig.add_annotation(text="dashed: each variant's base model", x=1, y=1, xref="paper", yref="paper",
                       showarrow=False, xanchor="right", yanchor="bottom")
