"""Shared look of the lab's figures: one colour per method and per family, fonts, labels.

Colours are stable across figures and runs: a method keeps its colour whichever subset is shown.
"""

from __future__ import annotations

import plotly.colors as pc

from sgpo_lab.metrics import EVAL_LABELS, METRICS

MONO = "Menlo, Consolas, 'DejaVu Sans Mono', 'Liberation Mono', monospace"
TEMPLATE = "plotly_white"

# SGPO in strong red, its ablations in warm tones, the baselines in cool ones; legends follow this order.
METHOD_COLORS: dict[str, str] = {
    "sgpo": "#d62728",
    "grpo": "#1f77b4",
    "sft": "#8c564b",
    "sft_grpo": "#9467bd",
    "luffy": "#2ca02c",
    "sgpo_rkl": "#ff7f0e",
    "sgpo_nll": "#e377c2",
    "sgpo_const_w": "#bcbd22",
    "sgpo_no_clip": "#f4a582",
    "sgpo_random_target": "#b2182b",
    "sgpo_no_constraints": "#fdae61",
    "sgpo_no_grpo": "#ff9896",
    "sgpo_no_distill": "#17becf",
    "base": "#7f7f7f",
}
FAMILY_COLORS: dict[str, str] = {"sum": "#1f77b4", "count": "#ff7f0e", "equation": "#2ca02c", "mul": "#9467bd",
                                 "all": "#333333"}
SPLIT_LABELS = {"id": "ID", "ood": "OOD"}
METRIC_LABELS: dict[str, str] = {**EVAL_LABELS, **{name: label for name, (label, _) in METRICS.items()}}
_FALLBACK = pc.qualitative.Dark24


def method_color(method: str) -> str:
    """The colour of a method (stable: unknown names get a colour from a hash of the name)."""
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    return _FALLBACK[sum(map(ord, str(method))) % len(_FALLBACK)]


def family_color(family: str) -> str:
    return FAMILY_COLORS.get(family, _FALLBACK[sum(map(ord, str(family))) % len(_FALLBACK)])


def rgba(color: str, alpha: float) -> str:
    """``#rrggbb`` or ``rgb(...)`` as an ``rgba(...)`` string with the given alpha (for confidence bands)."""
    r, g, b = pc.hex_to_rgb(color) if color.startswith("#") else pc.unlabel_rgb(color)
    return f"rgba({int(r)}, {int(g)}, {int(b)}, {alpha})"


def metric_label(name: str) -> str:
    return METRIC_LABELS.get(name, name)


def empty_figure(message: str, *, height: int = 220):
    """A blank figure that says why it is blank (no rows yet, nothing selected), instead of raising."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"size": 14, "color": "#666"})
    fig.update_layout(template=TEMPLATE, height=height, xaxis={"visible": False}, yaxis={"visible": False},
                      margin={"l": 20, "r": 20, "t": 30, "b": 20}, meta={"empty": True})
    return fig
