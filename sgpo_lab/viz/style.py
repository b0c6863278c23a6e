"""Shared look of the lab's figures: one colour per method and per family, fonts, labels.

Colours are stable across figures and runs: a method keeps its colour whichever subset is shown.
"""

from __future__ import annotations

import plotly.colors as pc

from sgpo_lab.metrics import EVAL_LABELS, METRICS

MONO = "Menlo, Consolas, 'DejaVu Sans Mono', 'Liberation Mono', monospace"
TEMPLATE = "plotly_white"

# One colour per method and ablation, fixed per name, from colour-blind-safe palettes (Okabe & Ito for SGPO and the
# baselines; Paul Tol's "muted" and "dark" sets for the ablations), checked apart in CIELAB (tests/test_classroom.py).
# SGPO in vermillion, its ablations in other hues, the baselines in blues and greens; legends follow this order.
METHOD_COLORS: dict[str, str] = {
    "sgpo": "#D55E00",
    "grpo": "#0072B2",
    "sft": "#009E73",
    "sft_grpo": "#56B4E9",
    "luffy": "#CC79A7",
    "sgpo_rkl": "#E69F00",
    "sgpo_nll": "#332288",
    "sgpo_const_w": "#999933",
    "sgpo_no_clip": "#EE6677",
    "sgpo_random_target": "#882255",
    "sgpo_no_constraints": "#DDCC77",
    "sgpo_no_grpo": "#AA4499",
    "sgpo_no_distill": "#117733",
    "distill_frozen": "#8C564B",
    "base": "#7F7F7F",
}
# for names not above (a group "sgpo · lr=0.001", a user's label): Tol's "light" and "bright" sets, by a stable hash
EXTRA_COLORS = ("#EE8866", "#77AADD", "#BBCC33", "#FFAABB", "#99DDFF", "#44BB99", "#AAAA00", "#44AA99",
                "#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377")
FAMILY_COLORS: dict[str, str] = {"sum": "#0072B2", "count": "#E69F00", "equation": "#009E73", "mul": "#CC79A7",
                                 "all": "#333333"}
SPLIT_LABELS = {"id": "ID", "ood": "OOD"}
METRIC_LABELS: dict[str, str] = {**EVAL_LABELS, **{name: label for name, (label, _) in METRICS.items()}}
_FALLBACK = EXTRA_COLORS


def _stable_hash(text: str) -> int:
    import zlib

    return zlib.crc32(str(text).encode())


def method_color(method: str) -> str:
    """The colour of a method (fixed per name). A group named ``<method> · <fields>`` (runs whose configs differ)
    or any other name gets a colour of ``EXTRA_COLORS`` from a stable hash of its whole name."""
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    return EXTRA_COLORS[_stable_hash(method) % len(EXTRA_COLORS)]


def group_colors(names) -> dict[str, str]:
    """Distinct colours for the lines of one figure: a method's own colour, and for any other name (a group of runs
    whose configs differ, a launch label) the first colour of ``EXTRA_COLORS`` not yet taken, in sorted-name order,
    so two groups of one figure never share a colour and the same set of names always gets the same colours."""
    names = list(dict.fromkeys(map(str, names)))
    out = {n: METHOD_COLORS[n] for n in names if n in METHOD_COLORS}
    free = [c for c in EXTRA_COLORS if c not in out.values()]
    for i, name in enumerate(sorted(n for n in names if n not in out)):
        out[name] = free[i % len(free)] if free else method_color(name)
    return out


def family_color(family: str) -> str:
    return FAMILY_COLORS.get(family, _FALLBACK[_stable_hash(family) % len(_FALLBACK)])


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


DARK_BG = "#0e1117"
LIGHT_FONT = "#31333f"
DARK_FONT = "#fafafa"
BIG_FONT = 20  # presentation mode: base font size of figures (ticks 18, titles 24)


def apply_look(fig, *, dark: bool = False, big: bool = False):
    """Style a figure for the page it is shown on, in place: a dark or light background and grid, and in
    presentation mode larger fonts (ticks, legends, titles, hover).

    Returns ``fig``. Idempotent: applying the same look twice changes nothing.
    """
    import plotly.io as pio

    template = pio.templates["plotly_dark" if dark else "plotly_white"]
    fig.update_layout(template=template, paper_bgcolor=DARK_BG if dark else "white",
                      plot_bgcolor=DARK_BG if dark else "white", font_color=DARK_FONT if dark else LIGHT_FONT)
    base = BIG_FONT if big else 14
    fig.update_layout(font_size=base, legend_font_size=base - 1, hoverlabel_font_size=base - 1,
                      title_font_size=base + 4)
    fig.update_xaxes(tickfont_size=base - 1, title_font_size=base)
    fig.update_yaxes(tickfont_size=base - 1, title_font_size=base)
    for ann in fig.layout.annotations or ():  # subplot titles, messages
        ann.font.size = base
        if big and ann.text and ann.yanchor == "bottom" and not ann.showarrow:  # a subplot title: narrower lines
            import textwrap

            ann.text = "<br>".join(textwrap.wrap(ann.text.replace("<br>", " "), 22)[:3])
        if dark and ann.font.color in (None, "#666", "#333"):
            ann.font.color = "#bbbbbb"
    if dark:
        fig.update_traces(selector={"type": "scatter", "name": "mean over probes"}, line_color=DARK_FONT)
    return fig


def image_bytes(fig, fmt: str = "png", *, width: int | None = None, height: int | None = None,
                scale: float = 2, timeout: float = 90) -> bytes:
    """The figure as PNG or SVG bytes, drawn by kaleido (an optional package) in a local Chromium.

    Debian's ``/usr/bin/chromium`` is used when no ``BROWSER_PATH`` is set, so nothing is downloaded. The
    drawing runs in a daemon thread and gives up after ``timeout`` seconds (TimeoutError), so a browser that
    never answers cannot hang the caller."""
    import os
    import threading
    from pathlib import Path

    import plotly.io as pio

    if "BROWSER_PATH" not in os.environ and Path("/usr/bin/chromium").exists():
        os.environ["BROWSER_PATH"] = "/usr/bin/chromium"
    result: dict = {}

    def draw() -> None:
        try:
            result["bytes"] = pio.to_image(fig, format=fmt, width=width or fig.layout.width or 1100,
                                           height=height or fig.layout.height or 500, scale=scale)
        except Exception as err:
            result["error"] = err

    worker = threading.Thread(target=draw, daemon=True)
    worker.start()
    worker.join(timeout)
    if "error" in result:
        raise result["error"]
    if "bytes" not in result:
        raise TimeoutError(f"the {fmt.upper()} export did not finish within {timeout:.0f} s")
    return result["bytes"]
