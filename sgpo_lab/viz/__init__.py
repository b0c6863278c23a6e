"""Plotly figure builders: one per picture, shared by the app and the notebooks (docs/design.md, "Layers").

Every builder takes the frames that ``sgpo_lab.runs`` and ``sgpo_lab.shifts`` return and gives back a
``plotly.graph_objects.Figure``; none reads files, trains or knows about Streamlit or Jupyter. A builder
given an empty frame returns a blank figure that says why (``layout.meta["empty"]``) instead of raising.

    token view     token_shift_figure(table, value="kl"|"logp_change", vmax=None, wrap=40)
    absorption     absorption_curve_figure(shifts, value, step=None)
                   absorption_heatmap_figure(shifts, problem_id, value)
                   absorption_slider_figure(shifts, problem_id, value)       (plotly step slider)
    weights        weight_heatmap_figure(instances)
                   weight_distribution_figure(instances)
                   weight_vs_pass_figure(instances, config=None)
    curves         accuracy_figure(evals, metric, families, splits, smooth, level, show_seeds)
                   metrics_figure(metrics, columns, smooth, level, show_seeds)
    comparison     comparison_table(evals, split, family, metric) -> DataFrame;  comparison_figure(table)
                   PAPER_RESULTS: the paper's numbers (docs/design.md, "The paper's constants and numbers")
"""

from sgpo_lab.viz.absorption import (
    absorption_curve_figure,
    absorption_heatmap_figure,
    absorption_slider_figure,
    probe_summary,
)
from sgpo_lab.viz.compare import (
    PAPER_RESULTS,
    PAPER_SOURCE,
    comparison_figure,
    comparison_table,
    final_results,
    paper_table,
    sweep_figure,
)
from sgpo_lab.viz.curves import DEFAULT_TRAINING_METRICS, accuracy_figure, aggregate, metrics_figure
from sgpo_lab.viz.stats import ema, ema_by, mean_ci, t_quantile
from sgpo_lab.viz.style import METHOD_COLORS, empty_figure, method_color
from sgpo_lab.viz.tokens import display_token, token_layout, token_shift_figure
from sgpo_lab.viz.weights import weight_curves, weight_distribution_figure, weight_heatmap_figure, weight_vs_pass_figure

__all__ = [
    "DEFAULT_TRAINING_METRICS",
    "METHOD_COLORS",
    "PAPER_RESULTS",
    "PAPER_SOURCE",
    "absorption_curve_figure",
    "absorption_heatmap_figure",
    "absorption_slider_figure",
    "accuracy_figure",
    "aggregate",
    "comparison_figure",
    "comparison_table",
    "display_token",
    "ema",
    "ema_by",
    "empty_figure",
    "final_results",
    "mean_ci",
    "method_color",
    "metrics_figure",
    "paper_table",
    "probe_summary",
    "sweep_figure",
    "t_quantile",
    "token_layout",
    "token_shift_figure",
    "weight_curves",
    "weight_distribution_figure",
    "weight_heatmap_figure",
    "weight_vs_pass_figure",
]
