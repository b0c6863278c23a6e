"""The absorption view: the same probe completions across training, the strategy's shift shrinking (or not).

The trainer records, at probe steps, the shift table of a fixed probe set on completions fixed at
step 0 (a run's ``token_shifts``). As SGPO distils the strategy into the unguided policy,
pi(. | x) moves towards pi(. | x, s) and the per-token KL between them falls: the strategy has been
*absorbed*. A baseline that does not distil (GRPO) may shrink it less, or not at all.

Three pictures of one table (``load_token_shifts`` or ``collect_token_shifts``):
- ``absorption_curve_figure``: mean token KL per probe (and their mean) against step; one line per run
  when several runs are given;
- ``absorption_heatmap_figure``: one probe, step x token position;
- ``absorption_slider_figure``: one probe's token view with a step slider (one colour range for all steps).
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from sgpo_lab.viz.style import MONO, TEMPLATE, empty_figure, family_color, method_color
from sgpo_lab.viz.tokens import SCALES, VALUE_LABELS, VALUES, default_vmax, display_token, token_shift_figure

SUMMARY_LABELS = {"kl": "mean token KL(guided || unguided)", "logp_change": "mean |log p change|"}


def _check(shifts: pd.DataFrame, value: str) -> None:
    if value not in VALUES:
        raise ValueError(f"unknown value {value!r}; expected one of: {', '.join(VALUES)}")
    missing = {"step", "problem_id", "position", "token", value} - set(shifts.columns)
    if missing and not shifts.empty:
        raise ValueError(f"token_shifts table lacks columns {sorted(missing)}")


def probe_summary(shifts: pd.DataFrame, value: str = "kl") -> pd.DataFrame:
    """Per (run if present, step, probe): the mean token KL (or mean |log p change|) of the probe's completion."""
    _check(shifts, value)
    keys = [k for k in ("run", "method", "seed") if k in shifts.columns] + ["step", "problem_id", "family"]
    keys = [k for k in keys if k in shifts.columns]
    v = pd.to_numeric(shifts[value], errors="coerce")
    frame = shifts[keys].assign(v=v.abs() if value == "logp_change" else v)
    return frame.groupby(keys, dropna=False, sort=True)["v"].mean().rename(value).reset_index()


def absorption_curve_figure(shifts: pd.DataFrame, value: str = "kl", *, step: int | None = None,
                            title: str | None = None) -> go.Figure:
    """The strategy's shift on the probe set against training step.

    One run: a thin line per probe problem (coloured by family) and their mean in bold. Several runs
    (a ``run`` column, e.g. from ``collect_token_shifts``): one line per run, the mean over its probes,
    coloured by method. ``step`` draws a dashed marker at that step (the step the app's slider shows).
    """
    if shifts.empty:
        return empty_figure("no token shifts recorded (probe_every = 0, or the run has not probed yet)")
    summary = probe_summary(shifts, value)
    fig = go.Figure()
    runs = pd.unique(shifts["run"]).tolist() if "run" in shifts.columns else [None]  # in the order given
    if len(runs) > 1:
        for run in runs:
            part = summary[summary["run"] == run]
            mean = part.groupby("step")[value].mean()
            method = part["method"].iloc[0] if "method" in part.columns else run
            fig.add_trace(go.Scatter(x=mean.index, y=mean.values, mode="lines+markers", name=str(run),
                                     line={"color": method_color(method), "width": 2}, legendgroup=str(method),
                                     hovertemplate=f"{run}<br>step %{{x}}<br>%{{y:.3f}}<extra></extra>"))
    else:
        for pid, part in summary.groupby("problem_id", sort=True):
            fam = part["family"].iloc[0] if "family" in part.columns else "all"
            fig.add_trace(go.Scatter(x=part["step"], y=part[value], mode="lines+markers", name=str(pid),
                                     line={"color": family_color(fam), "width": 1}, marker={"size": 5},
                                     opacity=0.65, legendgroup=str(fam),
                                     hovertemplate=f"{pid}<br>step %{{x}}<br>%{{y:.3f}}<extra></extra>"))
        mean = summary.groupby("step")[value].mean()
        fig.add_trace(go.Scatter(x=mean.index, y=mean.values, mode="lines+markers", name="mean over probes",
                                 line={"color": "black", "width": 3},
                                 hovertemplate="mean<br>step %{x}<br>%{y:.3f}<extra></extra>"))
    if step is not None:
        fig.add_vline(x=step, line_dash="dash", line_color="#888")
    fig.update_layout(template=TEMPLATE, title=title, height=360, margin={"l": 60, "r": 10, "t": 40, "b": 40},
                      xaxis_title="training step", yaxis_title=SUMMARY_LABELS[value], legend={"font": {"size": 11}},
                      yaxis={"rangemode": "tozero"})
    return fig


def _probe_rows(shifts: pd.DataFrame, problem_id: str, value: str) -> pd.DataFrame:
    _check(shifts, value)
    if "run" in shifts.columns and shifts["run"].nunique() > 1:
        raise ValueError("several runs in the table; pass one run's token_shifts")
    rows = shifts[shifts["problem_id"] == problem_id]
    if rows.empty:
        known = ", ".join(map(str, sorted(shifts["problem_id"].unique())[:8]))
        raise ValueError(f"no probe {problem_id!r} in the table; probes: {known}")
    return rows.sort_values(["step", "position"])


def absorption_heatmap_figure(shifts: pd.DataFrame, problem_id: str, value: str = "kl", *,
                              vmax: float | None = None, title: str | None = None) -> go.Figure:
    """One probe's completion (x: token position, labelled by token) against training step (y).

    The completion is the same at every step (fixed at step 0), so a column is one token's shift over
    training: a column fading from dark to light is a decision the student has absorbed.
    """
    if shifts.empty:
        return empty_figure("no token shifts recorded")
    rows = _probe_rows(shifts, problem_id, value)
    grid = rows.pivot_table(index="step", columns="position", values=value, aggfunc="mean")
    tokens = rows.drop_duplicates("position").set_index("position")["token"].reindex(grid.columns)
    z = grid.to_numpy(dtype=float)
    vmax = float(vmax) if vmax and vmax > 0 else default_vmax(z.ravel(), value)
    labels = [html.escape(display_token(str(t))) for t in tokens]  # '<eos>' would read as an HTML tag
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(len(labels))), y=[f"step {s}" for s in grid.index], colorscale=SCALES[value],
        zmin=0 if value == "kl" else -vmax, zmax=vmax, xgap=1, ygap=1,
        customdata=np.tile(np.array(labels, dtype=object), (len(grid.index), 1)),  # (steps, positions)
        hovertemplate="%{y}<br>token '%{customdata}' (position %{x})<br>" + VALUE_LABELS[value]
                      + " = %{z:.3f}<extra></extra>",
        colorbar={"title": {"text": VALUE_LABELS[value], "side": "right"}, "thickness": 12},
    ))
    fig.update_layout(template=TEMPLATE, title=title, height=max(220, 90 + 28 * len(grid.index)),
                      margin={"l": 70, "r": 10, "t": 40 if title else 10, "b": 40},
                      xaxis={"tickmode": "array", "tickvals": list(range(len(labels))), "ticktext": labels,
                             "tickangle": 0, "tickfont": {"family": MONO, "size": 12}, "title": "completion token"},
                      yaxis={"autorange": "reversed"})
    return fig


def absorption_slider_figure(shifts: pd.DataFrame, problem_id: str, value: str = "kl", *,
                             vmax: float | None = None, wrap: int = 40) -> go.Figure:
    """One probe's token view (``token_shift_figure``) with a plotly slider over the recorded steps.

    One colour range for every step (default: the largest |value| over all steps), so the fading is real.
    Self-contained: the slider works in a notebook, in a saved HTML file and in the app alike.
    """
    if shifts.empty:
        return empty_figure("no token shifts recorded")
    rows = _probe_rows(shifts, problem_id, value)
    vmax = float(vmax) if vmax and vmax > 0 else default_vmax(rows[value], value)
    steps = sorted(rows["step"].unique().tolist())
    frames = [token_shift_figure(rows[rows["step"] == s], value, vmax=vmax, wrap=wrap) for s in steps]
    fig = go.Figure(frames[-1])
    question = rows["question"].iloc[0] if "question" in rows.columns else problem_id
    slider_steps = []
    for s, f in zip(steps, frames):
        trace = f.data[0]
        slider_steps.append({
            "label": str(s), "method": "update",
            "args": [{"marker.color": [trace.marker.color], "customdata": [trace.customdata],
                      "textfont.color": [trace.textfont.color]},
                     {"shapes": f.layout.shapes, "title.text": f"{problem_id}: {question} — step {s}"}],
        })
    fig.update_layout(
        title=f"{problem_id}: {question} — step {steps[-1]}",
        height=(fig.layout.height or 200) + 90, margin={"l": 10, "r": 10, "t": 50, "b": 10},
        sliders=[{"active": len(steps) - 1, "steps": slider_steps, "currentvalue": {"prefix": "step "},
                  "pad": {"t": 10}}],
        meta={**fig.layout.meta, "steps": steps},
    )
    return fig


def _trend(values: list[float]) -> str:
    first, last, peak = values[0], values[-1], max(values)
    if last < 0.8 * first:
        return "falls"
    if last > 1.25 * first:
        return "rises" if peak <= 1.05 * last else "rises, then falls back part of the way"
    return "stays about level"


def absorption_story(shifts: pd.DataFrame, value: str = "kl") -> str:
    """What one run's absorption data shows, in words that agree with it: the mean over probes step by step,
    whether it falls or rises, and the token whose shift fell most (the decision the student absorbed)."""
    if shifts.empty:
        return "No token shifts recorded."
    summary = probe_summary(shifts, value)
    mean = summary.groupby("step")[value].mean()
    steps, values = mean.index.tolist(), mean.tolist()
    path = " → ".join(f"{v:.2f}" for v in values[:6]) + (" → … → " + f"{values[-1]:.2f}" if len(values) > 6 else "")
    what = SUMMARY_LABELS[value]
    text = (f"The {what}, averaged over the {summary['problem_id'].nunique()} probes, goes {path} from step "
            f"{steps[0]} to step {steps[-1]}: it {_trend(values)}." if len(values) > 1
            else f"Only step {steps[0]} is recorded yet ({what} {values[0]:.2f}).")
    if len(values) > 1:
        v = pd.to_numeric(shifts[value], errors="coerce")
        rows = shifts.assign(v=v.abs() if value == "logp_change" else v)
        first = rows[rows["step"] == steps[0]].set_index(["problem_id", "position"])["v"]
        last = rows[rows["step"] == steps[-1]].set_index(["problem_id", "position"])["v"]
        drop = (first - last.reindex(first.index)).dropna()
        if len(drop) and drop.max() > 0:
            pid, pos = drop.idxmax()
            tok = rows[(rows["problem_id"] == pid) & (rows["position"] == pos)]["token"].iloc[0]
            text += (f" The token whose shift fell most is {display_token(str(tok))!r} at position {pos} of `{pid}`: "
                     f"{first[(pid, pos)]:.2f} → {last[(pid, pos)]:.2f}"
                     + (" (absorbed: the unguided model now makes that decision as the strategy does)"
                        if last[(pid, pos)] < 0.25 * first[(pid, pos)] else "") + ".")
            if _trend(values) != "falls":
                text += (" So the mean over all tokens is not the whole story: a decision can be absorbed while "
                         "other tokens' shifts grow; the step-by-token heatmap shows which columns fade and which "
                         "darken.")
    return text
