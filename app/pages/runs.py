"""Runs: the runs under the runs root, their accuracy curves, training metrics, and live progress."""

import common
import streamlit as st

from sgpo_lab.runs import read_status
from sgpo_lab.viz import DEFAULT_TRAINING_METRICS
from sgpo_lab.viz.style import METRIC_LABELS

LIVE_EVERY_S = 2.0


def status_table(table):
    # st.table, not st.dataframe: plain HTML, so the first page does not wait for the data-grid component.
    shown = table[["name", "task", "method", "seed", "model", "state", "step", "total", "error"]].copy()
    shown["state"] = shown["state"].map(common.state_badge)
    shown["progress"] = [f"{s}/{t} ({min(1.0, s / t):.0%})" if t else "—"
                         for s, t in zip(shown["step"], shown["total"])]
    shown["error"] = shown["error"].fillna("")
    made = common.manifest()
    if made:  # the shipped demo runs record the command that made each one
        shown["made by"] = [str((made.get(n) or {}).get("command", "")) for n in shown["name"]]
    st.table(shown.drop(columns=["step", "total"]).set_index("name"))


def live_progress(table, running):
    st.subheader("Live")
    for name in running:
        path = common.run_path(name)
        status = read_status(path)
        step, total = common.step_total(status)
        st.progress(min(1.0, step / total), text=f"{name}: {common.state_badge(str(status.get('state', '?')))}, "
                                                 f"step {step}/{total}")
        metrics = common.load("metrics", path, name, say=None)  # the metrics panel says what is wrong with it
        if metrics is not None and not metrics.empty:
            last = metrics.iloc[-1]
            for col, key in zip(st.columns(4), ("loss", "p_auto", "entropy", "clipped_frac")):
                value = last.get(key)
                col.metric(key, "—" if value is None or value != value else f"{value:.3f}")


def main():
    st.title("Runs")
    table = common.runs_table()
    if table is None:
        return
    with st.expander(f"{len(table)} runs under `{common.runs_root()}`", expanded=False):
        status_table(table)
    bad = table[table["state"].isin(["failed", "crashed", "unknown", "unreadable"])]
    for name, state, error in zip(bad["name"], bad["state"], bad["error"]):
        st.warning(f"Run `{name}` is {state}: {error or 'no reason recorded'}")

    task, table = common.pick_task(table, "runs_task", reset=("runs_sel",))
    names = st.multiselect("Runs to show", table["name"].tolist(), default=common.default_runs(table), key="runs_sel",
                           help=f"Runs of the task `{task}`.")
    if not names:
        st.info("Choose at least one run.")
        return
    running = [n for n in names if table.set_index("name").loc[n, "state"] == "running"]
    c1, c2 = st.columns([3, 1])
    smooth = c1.slider("Smoothing (EMA per run, before the mean)", 0.0, 0.95, 0.0, 0.05, key="runs_smooth")
    seeds = c2.toggle("Each seed", key="runs_seeds", help="also draw every run as a thin line")
    every = LIVE_EVERY_S if running else None

    # Two fragments: a widget in one reruns only that one; while a chosen run is being written, both rerun on
    # their own, so progress, curves and metrics stay live.
    # A fragment's own reruns do not pass through the page's guard, so each body has its own.
    @st.fragment(run_every=every)
    def accuracy_panel():
        if running:
            common.guard(lambda: live_progress(table, running))
        common.guard(lambda: accuracy(table, names, smooth, seeds))

    @st.fragment(run_every=every)
    def metrics_panel():
        common.guard(lambda: training_metrics(table, names, smooth, seeds))

    accuracy_panel()
    metrics_panel()


def accuracy(table, names, smooth, seeds):
    st.subheader("Accuracy")
    keys = common.readable("eval", common.run_keys(table, names))
    known, split_names = common.eval_layout(keys)  # what these runs evaluated
    c1, c2, c3 = st.columns([1.2, 2.4, 1.4])
    metric = c1.radio("Metric", ["accuracy", "pass_at_k"], key="runs_metric", horizontal=True,
                      format_func=lambda m: {"accuracy": "greedy accuracy", "pass_at_k": "pass@k"}[m])
    families = c2.multiselect("Families", ["all", *known], default=["all"], key="runs_families",
                              format_func=lambda f: "average of families" if f == "all" else f)
    splits = c3.multiselect("Splits", split_names, default=split_names, key="runs_splits", format_func=str.upper)
    fig = common.run_figure("accuracy_figure", "eval", keys, metric,
                            families=tuple(families), splits=tuple(splits), smooth=smooth, show_seeds=seeds)
    if common.is_empty(fig) and families and splits:
        st.info("These runs have no evaluations yet (eval.jsonl is empty or unreadable).")
        return
    st.plotly_chart(fig, key="runs_acc", **common.PLOT)
    st.caption("Mean over the runs (seeds) of each method, with a 95% t confidence band; 'average of families' "
               f"is the mean over the families these runs evaluated ({', '.join(known) or 'none yet'}).")


def training_metrics(table, names, smooth, seeds):
    st.subheader("Training metrics")
    keys = common.readable("metrics", common.run_keys(table, names))
    metrics = common.collect_keys("metrics", keys)
    if metrics.empty:
        st.info("These runs have no training steps recorded yet.")
        return
    available = [m for m in METRIC_LABELS if m in metrics.columns and m not in ("accuracy", "pass_at_k")]
    chosen = st.multiselect("Metrics", available, key="runs_metrics",
                            default=[m for m in DEFAULT_TRAINING_METRICS if m in available])
    fig = common.run_figure("metrics_figure", "metrics", keys, tuple(chosen), smooth=smooth, show_seeds=seeds)
    st.plotly_chart(fig, key="runs_metrics_fig", **common.PLOT)


common.guard(main)
