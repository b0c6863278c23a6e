"""Curves over training: accuracy (ID and OOD, per family and averaged) and the training metrics.

Input is many runs in one frame with ``run``, ``method`` and ``seed`` columns (``runs.collect_eval`` /
``runs.collect_metrics``). Each method is drawn as the mean over its runs (seeds) with a t confidence
band (``level``, 95% by default; none with a single seed). Smoothing (an EMA, ``stats.ema``) is
applied to each run before the mean, so the band stays a band over seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sgpo_lab.viz.stats import ema_by, t_quantile
from sgpo_lab.viz.style import (
    METHOD_COLORS,
    SPLIT_LABELS,
    TEMPLATE,
    empty_figure,
    group_colors,
    method_color,
    metric_label,
    rgba,
)

EVAL_METRICS = ("accuracy", "pass_at_k")
DEFAULT_TRAINING_METRICS = ("loss", "loss_grpo", "loss_distill", "entropy", "clipped_frac", "p_auto")


def aggregate(frame: pd.DataFrame, value: str, *, x: str = "step", group: str = "method", smooth: float = 0.0,
              level: float = 0.95) -> pd.DataFrame:
    """Mean and confidence interval of ``value`` over runs, per ``group`` and ``x``.

    Each run (``run`` column; ``seed`` if there is none) is EMA-smoothed along ``x`` first.
    Returns columns ``group, x, mean, lo, hi, n`` (``lo``/``hi`` NaN where fewer than two runs).
    """
    unit = "run" if "run" in frame.columns else "seed"
    if frame.empty or value not in frame.columns:
        return pd.DataFrame(columns=[group, x, "mean", "lo", "hi", "n"])
    data = frame[[group, unit, x, value]].copy()
    data[value] = pd.to_numeric(data[value], errors="coerce")
    data = data.sort_values([group, unit, x])
    if smooth:
        data[value] = ema_by(data[value], zip(data[group], data[unit]), smooth)
    # Vectorised mean_ci: mean ± t_{(1+level)/2, n-1} * s / sqrt(n) per (group, x); no band for n < 2.
    stats = data.groupby([group, x], sort=True)[value].agg(["mean", "std", "count"]).reset_index()
    stats = stats[stats["count"] > 0]
    t = {n: t_quantile((1 + level) / 2, n - 1) for n in stats["count"].unique() if n > 1}
    half = stats["count"].map(t).astype(float) * stats["std"] / np.sqrt(stats["count"])
    return pd.DataFrame({group: stats[group], x: stats[x], "mean": stats["mean"], "lo": stats["mean"] - half,
                         "hi": stats["mean"] + half, "n": stats["count"]}).reset_index(drop=True)


def _method_traces(agg: pd.DataFrame, raw: pd.DataFrame | None, method: str, value: str, *, show_legend: bool,
                   level: float, percent: bool, color: str | None = None) -> list[go.Scatter]:
    """One method's (or group's) traces in one panel: its confidence band, each run (optional) and the mean."""
    color = color or method_color(method)
    fmt = ".1%" if percent else ".3f"
    traces = []
    part = agg[agg["method"] == method]
    band = part.dropna(subset=["lo", "hi"])
    if len(band):
        traces.append(go.Scatter(x=np.r_[band["step"], band["step"][::-1]], y=np.r_[band["hi"], band["lo"][::-1]],
                                 mode="lines", fill="toself", fillcolor=rgba(color, 0.18), line={"width": 0},
                                 hoverinfo="skip", legendgroup=method, showlegend=False,
                                 name=f"{method} {level:.0%} band"))
    if raw is not None:
        for run, seed_part in raw[raw["method"] == method].groupby("run"):
            traces.append(go.Scatter(x=seed_part["step"], y=seed_part[value], mode="lines",
                                     line={"color": rgba(color, 0.45), "width": 1}, legendgroup=method,
                                     showlegend=False, name=str(run),
                                     hovertemplate=f"{run}<br>step %{{x}}: %{{y:{fmt}}}<extra></extra>"))
    half = (part["hi"] - part["mean"]).to_numpy()
    traces.append(go.Scatter(
        x=part["step"], y=part["mean"], mode="lines+markers", name=method, legendgroup=method,
        showlegend=show_legend, line={"color": color, "width": 2.5 if method == "sgpo" else 2}, marker={"size": 5},
        customdata=np.stack([half, part["n"].to_numpy()], axis=-1),
        hovertemplate=f"{method}<br>step %{{x}}: %{{y:{fmt}}} ± %{{customdata[0]:{fmt}}} "
                      "(%{customdata[1]} runs)<extra></extra>"))
    return traces


def wrap_title(text: str, width: int = 30) -> str:
    """A subplot title on at most two lines (``<br>``), so neighbouring titles never run into each other."""
    import textwrap

    lines = textwrap.wrap(str(text), width) or [""]
    return "<br>".join([lines[0], " ".join(lines[1:])] if len(lines) > 1 else lines)


def _add_all(fig: go.Figure, placed: list[tuple[go.Scatter, int, int]]) -> None:
    """Add every (trace, row, col) in one call: far cheaper than one ``add_trace`` per trace."""
    if placed:
        traces, rows, cols = zip(*placed)
        fig.add_traces(list(traces), rows=list(rows), cols=list(cols))


def _smoothed(frame: pd.DataFrame, value: str, smooth: float) -> pd.DataFrame:
    raw = frame.sort_values(["run", "step"]).copy()
    raw[value] = pd.to_numeric(raw[value], errors="coerce")
    if smooth:
        raw[value] = ema_by(raw[value], raw["run"], smooth)
    return raw


def _methods(frame: pd.DataFrame, methods) -> list[str]:
    """The methods to draw: as given, else those present with SGPO first and the baselines after (legend order)."""
    present = list(dict.fromkeys(frame["method"].astype(str)))
    if methods is None:
        order = {m: i for i, m in enumerate(METHOD_COLORS)}
        methods = sorted(present, key=lambda m: (order.get(m.split(" · ")[0], len(order)), m))
    return [m for m in methods if m in present]


def accuracy_figure(evals: pd.DataFrame, metric: str = "accuracy", *, families=("all",), splits=("id", "ood"),
                    smooth: float = 0.0, level: float = 0.95, show_seeds: bool = False, methods=None,
                    title: str | None = None) -> go.Figure:
    """Accuracy (or pass@k) against training step: a panel per family (rows) and split (columns).

    Args:
        evals: ``collect_eval`` frame (run, method, seed, step, family, split, accuracy, pass_at_k, k).
        metric: ``"accuracy"`` (greedy, unguided) or ``"pass_at_k"``.
        families: rows; ``"all"`` is the average over the four families.
        splits: columns, among ``"id"`` and ``"ood"``.
        smooth: EMA factor in [0, 1) applied per run before averaging.
        level: confidence level of the band over runs.
        show_seeds: also draw each run as a thin line.
        methods: which methods, in legend order (default: all present).
    """
    if metric not in EVAL_METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of: {', '.join(EVAL_METRICS)}")
    if evals.empty:
        return empty_figure("no evaluations recorded yet")
    families, splits = list(families), list(splits)
    if not families or not splits:
        return empty_figure("choose at least one family and one split")
    methods = _methods(evals, methods)
    colors = group_colors(methods)
    has_k = metric == "pass_at_k" and "k" in evals.columns and evals["k"].notna().any()
    k = int(evals["k"].dropna().iloc[0]) if has_k else None
    label = f"pass@{k}" if k else metric_label(metric)
    titles = [f"{SPLIT_LABELS.get(s, s)} · {'average of families' if f == 'all' else f}" for f in families
              for s in splits]
    fig = make_subplots(rows=len(families), cols=len(splits), shared_xaxes=True, shared_yaxes=True,
                        subplot_titles=titles, vertical_spacing=0.12 / max(1, len(families) - 1) + 0.04,
                        horizontal_spacing=0.05)
    first, placed = True, []
    for r, family in enumerate(families, 1):
        for c, split in enumerate(splits, 1):
            part = evals[(evals["family"] == family) & (evals["split"] == split) & evals["method"].isin(methods)]
            agg = aggregate(part, metric, smooth=smooth, level=level)
            raw = _smoothed(part, metric, smooth) if show_seeds else None
            for m in methods:
                placed += [(t, r, c) for t in _method_traces(agg, raw, m, metric, show_legend=first, level=level,
                                                             percent=True, color=colors[m])]
            first = False
    _add_all(fig, placed)
    fig.update_yaxes(range=[-0.02, 1.02], tickformat=".0%")
    fig.update_yaxes(title_text=label, col=1)
    fig.update_xaxes(title_text="training step", row=len(families))
    fig.update_layout(template=TEMPLATE, title=title, height=120 + 250 * len(families),
                      margin={"l": 60, "r": 10, "t": 60, "b": 40}, legend={"title": {"text": "method"}},
                      hovermode="closest")
    return fig


def metrics_figure(metrics: pd.DataFrame, columns=DEFAULT_TRAINING_METRICS, *, smooth: float = 0.0,
                   level: float = 0.95, show_seeds: bool = False, methods=None, cols: int = 2,
                   title: str | None = None) -> go.Figure:
    """Training metrics (loss terms, entropy, clipped fraction, ...) against step, one panel per metric.

    ``metrics`` is a ``collect_metrics`` frame; missing values (e.g. p_auto on SFT steps) leave gaps.
    """
    if metrics.empty:
        return empty_figure("no training steps recorded yet")
    columns = [c for c in columns if c in metrics.columns]
    if not columns:
        return empty_figure("none of the chosen metrics is recorded by these runs")
    methods = _methods(metrics, methods)
    colors = group_colors(methods)
    rows = (len(columns) + cols - 1) // cols
    titles = [wrap_title(metric_label(c)) for c in columns]
    fig = make_subplots(rows=rows, cols=min(cols, len(columns)), subplot_titles=titles,
                        shared_xaxes=True, vertical_spacing=0.16 / max(1, rows - 1) + 0.04, horizontal_spacing=0.1)
    part = metrics[metrics["method"].isin(methods)]
    placed = []
    for i, col in enumerate(columns):
        r, c = i // cols + 1, i % cols + 1
        agg = aggregate(part, col, smooth=smooth, level=level)
        raw = _smoothed(part, col, smooth) if show_seeds else None
        for m in methods:
            placed += [(t, r, c) for t in _method_traces(agg, raw, m, col, show_legend=i == 0, level=level,
                                                         percent=False, color=colors[m])]
    _add_all(fig, placed)
    fig.update_xaxes(title_text="training step", row=rows)
    fig.update_layout(template=TEMPLATE, title=title, height=100 + 250 * rows,
                      margin={"l": 60, "r": 10, "t": 60, "b": 40}, legend={"title": {"text": "method"}},
                      hovermode="closest")
    return fig
