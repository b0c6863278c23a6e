"""Adaptive weights over training: *when* SGPO distils, problem by problem.

Input is a run's ``instances`` table (``load_instances``): per (step, problem) the autonomous and
guided pass rates ``p_auto``, ``p_guided``, the weight ``w_i`` the trainer gave the problem's
distillation term, the mean token KL of its target. The default weight (the lab's inference;
docs/design.md, "Adaptive weight")

    w_i = min(alpha_max, alpha_0 * max(0, p_guided - p_auto) / (p_auto + gamma)),  0 if no correct guided rollout

is strong where the student fails and the strategy helps, and vanishes as the student becomes competent.

- ``weight_heatmap_figure``: problem x step, the weight (blank where the problem was not in the batch);
- ``weight_distribution_figure``: the weights' distribution per step (boxes), their mean and the share > 0;
- ``weight_vs_pass_figure``: weight against p_auto, coloured by p_guided, with the formula's curves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sgpo_lab.viz.style import TEMPLATE, empty_figure

NEEDED = ("step", "problem_id", "p_auto", "weight")


def _clean(instances: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in NEEDED if c not in instances.columns]
    if missing:
        raise ValueError(f"instances table lacks columns {missing}")
    frame = instances.copy()
    for col in ("p_auto", "p_guided", "weight", "kl_mean"):
        if col in frame.columns:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    if "family" not in frame.columns:
        frame["family"] = frame["problem_id"].astype(str).str.split("-").str[0]
    return frame


NO_WEIGHTS = ("no weights recorded: every w_i of this selection is 0 (a run that does not distil the strategy, "
              "such as GRPO, writes w_i = 0 for every problem)")
# the legend at the figure's bottom edge, under the x axis title (in the container's coordinates: no overlap at any
# height or font size, given the bottom margin)
LEGEND_BELOW = {"orientation": "h", "yref": "container", "yanchor": "bottom", "y": 0.0, "x": 0, "xanchor": "left"}


def weight_heatmap_figure(instances: pd.DataFrame, *, zmax: float | None = None, title: str | None = None,
                          by: str = "problem", top: int | None = None) -> go.Figure:
    """Step (x) x problem (y, grouped by family) heatmap of the weight ``w_i``.

    A problem appears only at the steps whose batch held it; other cells are blank. Hover shows
    p_auto, p_guided and the target's mean token KL. ``by="family"``: one row per family, the mean w_i of the
    family's problems in each step's batch (no blank cells). ``top``: only the ``top`` problems with the largest
    total weight (the others are left out, not blank). Every weight 0 (a run that does not distil): a blank figure
    that says so.
    """
    if instances.empty:
        return empty_figure("no instances recorded (SFT steps and runs without distillation write none)")
    frame = _clean(instances)
    if not (frame["weight"].fillna(0) != 0).any():
        return empty_figure(NO_WEIGHTS)
    if by == "family":
        frame = frame.assign(problem_id=frame["family"].astype(str))
    elif top is not None:
        keep = frame.groupby("problem_id")["weight"].sum().nlargest(top).index
        frame = frame[frame["problem_id"].isin(keep)]
    frame = frame.groupby(["problem_id", "family", "step"], as_index=False).mean(numeric_only=True)
    order = frame[["family", "problem_id"]].drop_duplicates().sort_values(["family", "problem_id"])
    problems = order["problem_id"].tolist()
    steps = sorted(frame["step"].unique().tolist())
    grids = {col: frame.pivot(index="problem_id", columns="step", values=col).reindex(index=problems, columns=steps)
             for col in ("weight", "p_auto", "p_guided", "kl_mean") if col in frame.columns}
    z = grids["weight"].to_numpy(dtype=float)  # (problems, steps)
    extra = np.stack([grids[c].to_numpy(dtype=float) if c in grids else np.full_like(z, np.nan)
                      for c in ("p_auto", "p_guided", "kl_mean")], axis=-1)  # (problems, steps, 3)
    top = zmax if zmax else (float(np.nanmax(z)) if np.isfinite(z).any() else 1.0)
    fig = go.Figure(go.Heatmap(
        z=z, x=steps, y=problems, colorscale="Viridis", zmin=0, zmax=max(top, 1e-6), customdata=extra,
        hovertemplate="%{y} at step %{x}<br>weight = %{z:.3f}<br>p_auto = %{customdata[0]:.2f}   "
                      "p_guided = %{customdata[1]:.2f}<br>target KL = %{customdata[2]:.3f}<extra></extra>",
        colorbar={"title": {"text": "weight w_i", "side": "right"}, "thickness": 12}, hoverongaps=False,
    ))
    row_px = 40 if by == "family" else 14
    fig.update_layout(template=TEMPLATE, title=title, height=min(900, max(220, 90 + row_px * len(problems))),
                      margin={"l": 130, "r": 10, "t": 40 if title else 10, "b": 50}, xaxis_title="training step",
                      yaxis={"title": "family (mean w_i of its problems)" if by == "family" else "problem",
                             "autorange": "reversed"})
    return fig


def weight_distribution_figure(instances: pd.DataFrame, *, max_boxes: int = 40, title: str | None = None
                               ) -> go.Figure:
    """The weights' distribution at each step (boxes), their mean, and the share of problems with w_i > 0.

    With more than ``max_boxes`` steps, neighbouring steps are pooled into ``max_boxes`` bins (labelled by
    their first step).
    """
    if instances.empty:
        return empty_figure("no instances recorded")
    frame = _clean(instances)
    steps = np.sort(frame["step"].unique())
    if len(steps) > max_boxes:
        edges = steps[np.linspace(0, len(steps) - 1, max_boxes).astype(int)]
        frame["bin"] = edges[np.searchsorted(edges, frame["step"], side="right") - 1]
    else:
        frame["bin"] = frame["step"]
    stats = frame.groupby("bin")["weight"].agg(mean="mean", nonzero=lambda w: float((w > 0).mean()))
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Box(x=frame["bin"], y=frame["weight"], name="w_i per problem", marker_color="#4c78a8",
                         boxpoints=False, showlegend=True), secondary_y=False)
    fig.add_trace(go.Scatter(x=stats.index, y=stats["mean"], mode="lines+markers", name="mean w_i",
                             line={"color": "#d62728"}), secondary_y=False)
    fig.add_trace(go.Scatter(x=stats.index, y=stats["nonzero"], mode="lines", name="share with w_i > 0",
                             line={"color": "#555", "dash": "dot"}), secondary_y=True)
    fig.update_layout(template=TEMPLATE, title=title, height=430, margin={"l": 60, "r": 60, "t": 40 if title else 10,
                                                                         "b": 140},
                      xaxis_title="training step", legend=LEGEND_BELOW)
    fig.update_yaxes(title_text="weight w_i", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="share with w_i > 0", range=[0, 1.05], secondary_y=True, showgrid=False,
                     tickformat=".0%", tickvals=[0, 0.25, 0.5, 0.75, 1])
    return fig


def weight_curves(config: dict | None, p_guided_levels=(0.25, 0.5, 0.75, 1.0), n: int = 101) -> pd.DataFrame:
    """The weight formula of a run's config (``weight``, ``alpha0``, ``gamma``, ``alpha_max``) on a p_auto grid.

    Computed by ``sgpo_lab.losses.adaptive_weight`` itself, so the curves are the trainer's formula.
    """
    from sgpo_lab.losses import adaptive_weight  # torch: imported only when curves are asked for

    config = config or {}
    kw = {k: config[k] for k in ("alpha0", "gamma", "alpha_max") if config.get(k) is not None}
    kind = config.get("weight", "pass_gap")
    grid = np.linspace(0, 1, n)
    rows = []
    for pg in p_guided_levels:
        w = adaptive_weight(grid.tolist(), [pg] * n, [True] * n, kind=kind, **kw).tolist()
        rows += [{"p_auto": a, "p_guided": pg, "weight": x} for a, x in zip(grid, w)]
    return pd.DataFrame(rows)


def weight_vs_pass_figure(instances: pd.DataFrame, config: dict | None = None, *, jitter: float = 0.012,
                          seed: int = 0, title: str | None = None) -> go.Figure:
    """Each (step, problem) as a point: weight against autonomous pass rate p_auto, coloured by p_guided.

    p_auto takes only G + 1 values, so points get a small horizontal ``jitter`` (deterministic by ``seed``).
    With ``config`` (a run's config.yaml), the formula's curves for a few p_guided levels are drawn too.
    """
    if instances.empty:
        return empty_figure("no instances recorded")
    frame = _clean(instances)
    rng = np.random.default_rng(seed)
    x = frame["p_auto"].to_numpy(dtype=float) + rng.uniform(-jitter, jitter, len(frame))
    color = frame["p_guided"] if "p_guided" in frame.columns else None
    fig = go.Figure()
    if config is not None and config.get("distill", "kl") != "none":
        curves = weight_curves(config)
        for pg, part in curves.groupby("p_guided"):
            fig.add_trace(go.Scatter(x=part["p_auto"], y=part["weight"], mode="lines", name=f"formula, p_guided={pg}",
                                     line={"color": "rgba(80,80,80,0.55)", "width": 1, "dash": "dot"},
                                     hoverinfo="skip", legendgroup="formula", showlegend=bool(pg == 1.0)))
    fig.add_trace(go.Scatter(
        x=x, y=frame["weight"], mode="markers", name="(step, problem)",
        marker={"size": 7, "opacity": 0.75, "color": color, "colorscale": "Viridis", "cmin": 0, "cmax": 1,
                "showscale": color is not None, "colorbar": {"title": {"text": "p_guided", "side": "right"},
                                                             "thickness": 12}},
        customdata=np.stack([frame["problem_id"].astype(str), frame["step"].astype(str),
                             frame["p_auto"].round(3).astype(str),
                             (frame["p_guided"].round(3).astype(str) if color is not None
                              else pd.Series(["—"] * len(frame)))], axis=-1),
        hovertemplate="%{customdata[0]} at step %{customdata[1]}<br>p_auto = %{customdata[2]}   "
                      "p_guided = %{customdata[3]}<br>weight = %{y:.3f}<extra></extra>",
    ))
    fig.update_layout(template=TEMPLATE, title=title, height=430, margin={"l": 60, "r": 10, "t": 40 if title else 10,
                                                                         "b": 140},
                      xaxis={"title": "p_auto (autonomous pass rate)", "range": [-0.05, 1.05]},
                      yaxis={"title": "weight w_i", "rangemode": "tozero"}, legend=LEGEND_BELOW)
    return fig
