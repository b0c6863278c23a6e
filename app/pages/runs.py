"""Runs: the runs under the runs root, their accuracy curves, training metrics, and live progress."""

import streamlit as st

import common
from sgpo_lab.runs import read_status
from sgpo_lab.viz import DEFAULT_TRAINING_METRICS, accuracy_figure, metrics_figure
from sgpo_lab.viz.style import METRIC_LABELS
from sgpo_lab.world.tasks import FAMILIES

LIVE_EVERY_S = 2.0


def status_table(table):
    shown = table[["name", "method", "seed", "model", "state", "step", "total", "error"]].copy()
    shown["progress"] = [min(1.0, s / t) if t else 0.0 for s, t in zip(shown["step"].fillna(0), shown["total"])]
    shown["state"] = shown["state"].map(common.state_badge)
    st.dataframe(shown, hide_index=True, height=min(400, 38 + 35 * len(shown)), column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
        "error": st.column_config.TextColumn("error", width="medium")})


def live_panel(table, names):
    """Progress of the chosen runs that are still being written; reruns itself while any is running."""
    running = [n for n in names if table.set_index("name").loc[n, "state"] == "running"]
    if not running:
        return

    @st.fragment(run_every=LIVE_EVERY_S)
    def watch():
        st.subheader("Live")
        for name in running:
            status = read_status(common.run_path(name))
            step, total = status.get("step") or 0, status.get("total") or 1
            st.progress(min(1.0, step / total), text=f"{name}: {common.state_badge(status.get('state', '?'))}, "
                                                     f"step {step}/{total}")
            metrics = common.load("metrics", common.run_path(name))
            if not metrics.empty:
                last = metrics.iloc[-1]
                cols = st.columns(4)
                for col, key in zip(cols, ("loss", "p_auto", "entropy", "clipped_frac")):
                    value = last.get(key)
                    col.metric(key, "—" if value is None or value != value else f"{value:.3f}")

    watch()


def main():
    st.title("Runs")
    table = common.runs_table()
    if table is None:
        return
    with st.expander(f"{len(table)} runs under `{common.runs_root()}`", expanded=False):
        status_table(table)
    bad = table[table["state"].isin(["failed", "unknown"])]
    for name, state, error in zip(bad["name"], bad["state"], bad["error"]):
        st.warning(f"Run `{name}` is {state}: {error or 'no reason recorded'}")

    names = st.multiselect("Runs to show", table["name"].tolist(), default=common.default_runs(table), key="runs_sel")
    if not names:
        st.info("Choose at least one run.")
        return
    live_panel(table, names)

    st.subheader("Accuracy")
    c1, c2, c3, c4, c5 = st.columns([1.2, 2, 1.3, 1.3, 1])
    metric = c1.radio("Metric", ["accuracy", "pass_at_k"], key="runs_metric", horizontal=True,
                      format_func=lambda m: {"accuracy": "greedy accuracy", "pass_at_k": "pass@k"}[m])
    families = c2.multiselect("Families", ["all", *FAMILIES], default=["all"], key="runs_families",
                              format_func=lambda f: "average of families" if f == "all" else f)
    splits = c3.multiselect("Splits", ["id", "ood"], default=["id", "ood"], key="runs_splits",
                            format_func=str.upper)
    smooth = c4.slider("Smoothing (EMA)", 0.0, 0.95, 0.0, 0.05, key="runs_smooth")
    seeds = c5.toggle("Each seed", key="runs_seeds")
    evals = common.collect("eval", table, names)
    if evals.empty:
        st.info("These runs have no evaluations yet (eval.jsonl is empty or unreadable).")
    else:
        fig = accuracy_figure(evals, metric, families=families, splits=splits, smooth=smooth, show_seeds=seeds)
        st.plotly_chart(fig, key="runs_acc", **common.PLOT)
        st.caption("Mean over the runs (seeds) of each method, with a 95% t confidence band; "
                   "'average of families' is the mean over sum, count, equation and mul.")

    st.subheader("Training metrics")
    metrics = common.collect("metrics", table, names)
    if metrics.empty:
        st.info("These runs have no training steps recorded yet.")
        return
    available = [m for m in METRIC_LABELS if m in metrics.columns and m not in ("accuracy", "pass_at_k")]
    chosen = st.multiselect("Metrics", available, key="runs_metrics",
                            default=[m for m in DEFAULT_TRAINING_METRICS if m in available])
    st.plotly_chart(metrics_figure(metrics, chosen, smooth=smooth, show_seeds=seeds), key="runs_metrics_fig",
                    **common.PLOT)


common.guard(main)
