"""The token-shift view: a completion laid out as text, each token a box coloured by what the strategy does to it.

Input is a shift table (``sgpo_lab.shifts.token_shifts``, or one probe's rows of a run's
``token_shifts``): one row per completion token with ``kl`` = KL(q_t || p_t) between the guided and
unguided next-token distributions, ``logp_change`` = log q_t(y_t) - log p_t(y_t), the token's
probability under each, and both top-k lists.

Layout: tokens flow left to right in a monospace grid of ``wrap`` cells per line (a token is as
wide as its text); a newline token ends its line. Spaces show as ``␣`` and newlines as ``↵`` so
nothing is invisible. Each box is a layout shape (an SVG path, so it can be inspected in a
browser); an invisible marker per token carries the hover text and the colour bar.

Colour: ``kl`` on a sequential scale from 0 (white) to ``vmax``; ``logp_change`` on a diverging
scale over [-vmax, vmax]: blue where the strategy makes the token likelier, red where it makes it
less likely. Works the same in Streamlit and in a notebook.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import plotly.colors as pc
import plotly.graph_objects as go

from sgpo_lab.viz.style import MONO, TEMPLATE

VALUES = ("kl", "logp_change")
SCALES = {"kl": "Reds", "logp_change": "RdBu"}
VALUE_LABELS = {"kl": "KL(guided || unguided)", "logp_change": "log p change"}
COLORBAR_TITLES = {"kl": "KL", "logp_change": "Δ log p"}  # short: a one-line view is only ~100 px tall
_GAP = 0.08  # horizontal gap between boxes, in cells
_HALF_HEIGHT = 0.4  # half of a box's height; lines are one unit apart
_ROW_PX = 30


def display_token(token: str) -> str:
    """A token's text with whitespace made visible: space -> ␣, newline -> ↵, tab -> ⇥, empty -> ∅."""
    if token == "":
        return "∅"
    return token.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")


def default_vmax(values, value: str) -> float:
    """The colour range's end: the largest |value| (at least 1e-3 so a flat table still has a scale)."""
    x = np.abs(pd.to_numeric(pd.Series(values, dtype="object"), errors="coerce").to_numpy(dtype=float))
    x = x[np.isfinite(x)]
    return float(max(x.max() if len(x) else 0.0, 1e-3))


def token_layout(tokens: list[str], wrap: int = 40) -> list[tuple[int, float, float]]:
    """``(line, x0, x1)`` of every token's box: greedy wrapping at ``wrap`` cells; a newline token ends a line."""
    if wrap < 1:
        raise ValueError(f"wrap must be >= 1 cell, got {wrap}")
    boxes, line, col = [], 0, 0.0
    for tok in tokens:
        width = float(max(1, len(display_token(tok))))
        if col > 0 and col + width > wrap:
            line, col = line + 1, 0.0
        boxes.append((line, col, col + width))
        col += width
        if "\n" in tok:
            line, col = line + 1, 0.0
    return boxes


def _colors(values: np.ndarray, value: str, vmax: float) -> tuple[list[str], np.ndarray]:
    """Fill colours and their position on the colour scale (0..1); NaN values get a grey box."""
    if value == "kl":
        frac = values / vmax
    else:
        frac = (values / vmax + 1) / 2
    frac = np.clip(np.nan_to_num(frac, nan=0.0), 0.0, 1.0)
    fills = pc.sample_colorscale(SCALES[value], frac.tolist())
    fills = [f if np.isfinite(v) else "rgb(220, 220, 220)" for f, v in zip(fills, values)]
    return fills, frac


def _luminance(rgb: str) -> float:
    r, g, b = pc.unlabel_rgb(rgb)
    return (0.299 * r + 0.587 * g + 0.114 * b) / 255


def _fmt_top(tokens, probs) -> str:
    if tokens is None or probs is None:
        return "—"
    try:
        pairs = list(zip(list(tokens), list(probs)))
    except TypeError:
        return "—"
    return " · ".join(f"{html.escape(repr(str(t)))} {float(p):.2f}" for t, p in pairs) or "—"


def hover_texts(table: pd.DataFrame) -> list[str]:
    """Hover text per token: the token, its KL and log-prob change, p with and without the strategy, both top-k."""
    out = []
    cols = set(table.columns)
    for i, row in enumerate(table.itertuples(index=False)):
        get = row._asdict().get
        position = get("position", i)
        lines = [f"<b>{html.escape(repr(str(get('token'))))}</b>   position {position}",
                 f"KL(guided || unguided) = {_num(get('kl'))}   log p change = {_num(get('logp_change'), signed=True)}",
                 f"p(token | with strategy) = {_num(get('p_guided'))}",
                 f"p(token | without) = {_num(get('p_unguided'))}"]
        if "top_guided" in cols:
            lines.append("top with strategy: " + _fmt_top(get("top_guided"), get("top_guided_p")))
        if "top_unguided" in cols:
            lines.append("top without: " + _fmt_top(get("top_unguided"), get("top_unguided_p")))
        out.append("<br>".join(lines))
    return out


def _num(v, signed: bool = False) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(v):
        return "—"
    return f"{v:+.3f}" if signed else f"{v:.3f}"


def token_shift_figure(table: pd.DataFrame, value: str = "kl", *, vmax: float | None = None, wrap: int = 40,
                       title: str | None = None, height: int | None = None) -> go.Figure:
    """The completion of a shift table as coloured token boxes, with hover details and a colour bar.

    Args:
        table: one row per token, in order; needs ``token`` and ``value``'s column; uses ``kl``,
            ``logp_change``, ``p_guided``, ``p_unguided``, ``top_guided(_p)``, ``top_unguided(_p)`` for hover.
        value: ``"kl"`` (sequential, 0..vmax) or ``"logp_change"`` (diverging, -vmax..vmax).
        vmax: end of the colour range (default: the table's largest |value|); values beyond it saturate.
        wrap: cells per line.
        title: figure title.
        height: pixels (default: from the number of lines).

    Returns:
        A figure whose ``layout.shapes`` are the token boxes (fill = colour of the token's value) and whose
        single scatter trace holds the token texts, hover texts and the colour bar. ``layout.meta`` records
        ``value``, ``vmax`` and ``n_tokens``.
    """
    if value not in VALUES:
        raise ValueError(f"unknown value {value!r}; expected one of: {', '.join(VALUES)}")
    if "token" not in table.columns or value not in table.columns:
        raise ValueError(f"the shift table needs 'token' and {value!r} columns; got {list(table.columns)}")
    if table.empty:
        from sgpo_lab.viz.style import empty_figure

        return empty_figure("no tokens to show")
    tokens = [str(t) for t in table["token"]]
    values = pd.to_numeric(table[value], errors="coerce").to_numpy(dtype=float)
    vmax = float(vmax) if vmax is not None and vmax > 0 else default_vmax(values, value)
    boxes = token_layout(tokens, wrap)
    fills, _ = _colors(values, value, vmax)
    shapes = [{"type": "rect", "xref": "x", "yref": "y", "x0": x0, "x1": x1 - _GAP, "y0": -line - _HALF_HEIGHT,
               "y1": -line + _HALF_HEIGHT, "fillcolor": fill, "line": {"width": 0}, "layer": "below"}
              for (line, x0, x1), fill in zip(boxes, fills)]
    xs = [(x0 + x1 - _GAP) / 2 for _, x0, x1 in boxes]
    ys = [-line for line, _, _ in boxes]
    text_colors = ["white" if _luminance(f) < 0.5 else "#222" for f in fills]
    labels = [html.escape(display_token(t)) for t in tokens]
    cmin = 0.0 if value == "kl" else -vmax
    fig = go.Figure(go.Scatter(
        x=xs, y=ys, mode="markers+text", text=labels, textfont={"family": MONO, "size": 14, "color": text_colors},
        textposition="middle center", customdata=hover_texts(table), hovertemplate="%{customdata}<extra></extra>",
        marker={"symbol": "square", "size": 18, "opacity": 0, "color": values, "colorscale": SCALES[value],
                "cmin": cmin, "cmax": vmax, "showscale": True,
                "colorbar": {"title": {"text": COLORBAR_TITLES[value], "side": "right"}, "thickness": 12, "len": 1.0}},
        showlegend=False, name="tokens",
    ))
    n_lines = boxes[-1][0] + 1
    fig.update_layout(
        template=TEMPLATE, shapes=shapes, title=title, hovermode="closest", dragmode=False,
        height=height or max(160, 70 + _ROW_PX * n_lines + (40 if title else 0)),
        margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
        xaxis={"visible": False, "range": [-0.5, wrap + 0.5], "fixedrange": True},
        yaxis={"visible": False, "range": [-(n_lines - 1) - 0.6, 0.6], "fixedrange": True},
        hoverlabel={"font": {"family": MONO, "size": 12, "color": "#222"}, "align": "left", "bgcolor": "white",
                    "bordercolor": "#999"},
        meta={"value": value, "vmax": vmax, "n_tokens": len(tokens)},
    )
    return fig


def _css_color(fill: str) -> str:
    return fill if fill.startswith(("rgb", "#")) else "rgb(220, 220, 220)"


def token_html(table: pd.DataFrame, value: str = "kl", *, vmax: float | None = None, pinned: int | None = None,
               label: str | None = None) -> str:
    """The token view as HTML: each token a box whose colour is its value and whose glyphs sit inside it.

    Boxes are inline blocks sized by their own text (``em`` units), so glyphs and boxes scale together with the
    page's font size, the browser's zoom and presentation mode, and lines wrap at the container's width. The
    hover title of a box gives what the figure's hover gives (value, both probabilities, both top-k lists);
    ``pinned`` (a position) is outlined. Returns a ``<div class="tok-view">`` (with its legend line).
    """
    if value not in VALUES:
        raise ValueError(f"unknown value {value!r}; expected one of: {', '.join(VALUES)}")
    if table.empty:
        return '<div class="tok-view"><em>no tokens to show</em></div>'
    values = pd.to_numeric(table[value], errors="coerce").to_numpy(dtype=float)
    vmax = float(vmax) if vmax is not None and vmax > 0 else default_vmax(values, value)
    fills, _ = _colors(values, value, vmax)
    tips = [t.replace("<br>", "\n").replace("<b>", "").replace("</b>", "") for t in hover_texts(table)]
    positions = table["position"].tolist() if "position" in table.columns else list(range(len(table)))
    spans = []
    for tok, fill, tip, pos in zip(table["token"].astype(str), fills, tips, positions):
        ink = "#fff" if _luminance(fill) < 0.5 else "#222"
        cls = "tok tok-pin" if pinned is not None and pos == pinned else "tok"
        spans.append(f'<span class="{cls}" data-pos="{pos}" style="background:{_css_color(fill)};color:{ink}" '
                     f'title="{html.escape(html.unescape(tip), quote=True)}">{html.escape(display_token(tok))}</span>'
                     + ("<br>" if "\n" in tok else ""))
    scale = "white → red: KL 0 → " if value == "kl" else "blue ← 0 → red: Δ log p ±"
    legend = f'<div class="tok-legend">{html.escape(label or VALUE_LABELS[value])} · {scale}{vmax:.3g}</div>'
    style = ("<style>.tok-view{font-family:" + MONO.replace("'", "") + ";font-size:1rem;line-height:2.1;"
             "overflow-wrap:anywhere}.tok{display:inline-block;padding:0 .18em;margin:0 .12em .18em 0;border-radius:"
             ".2em;white-space:pre;min-width:.7em;text-align:center;line-height:1.6}.tok-pin{outline:.15em solid "
             "#0072B2;outline-offset:.05em}.tok-legend{font-family:sans-serif;font-size:.8em;opacity:.8}</style>")
    return f'{style}<div class="tok-view">{"".join(spans)}{legend}</div>'


def topk_figure(row, *, title: str | None = None) -> go.Figure:
    """One token's two next-token distributions as bars: the top-k with the strategy and without it."""
    from plotly.subplots import make_subplots

    from sgpo_lab.viz.style import empty_figure

    get = row.get if hasattr(row, "get") else (lambda k, d=None: getattr(row, k, d))
    pairs = {}
    for side in ("guided", "unguided"):
        toks, probs = get(f"top_{side}"), get(f"top_{side}_p")
        try:
            pairs[side] = [(display_token(str(t)), float(p)) for t, p in zip(list(toks), list(probs))]
        except TypeError:
            pairs[side] = []
    if not any(pairs.values()):
        return empty_figure("no top-k lists recorded for this token")
    token = display_token(str(get("token", "")))
    fig = make_subplots(rows=1, cols=2, subplot_titles=["with the strategy: p(· | x, s)", "without it: p(· | x)"],
                        horizontal_spacing=0.14)
    for c, side in enumerate(("guided", "unguided"), 1):
        items = pairs[side][::-1]
        fig.add_trace(go.Bar(x=[p for _, p in items], y=[f"{t!r}" for t, _ in items], orientation="h",
                             marker_color=["#D55E00" if t == token else "#0072B2" for t, _ in items],
                             text=[f"{p:.2f}" for _, p in items], textposition="outside", showlegend=False,
                             hovertemplate="%{y}: %{x:.3f}<extra></extra>"), row=1, col=c)
    fig.update_xaxes(range=[0, 1.15], tickformat=".0%")
    fig.update_layout(template=TEMPLATE, title=title, height=110 + 30 * max(len(v) for v in pairs.values()),
                      margin={"l": 70, "r": 20, "t": 100 if title else 60, "b": 30})
    return fig
