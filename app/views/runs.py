"""Runs: the runs under the runs root, their accuracy curves, training metrics, and live progress.

Runs are pooled (mean and 95% band over seeds) only within a group: the same method (or launch label) and the same
config but for the seed (``common.with_groups``). The page picks up new runs: a Refresh button, and while any run
under the root is running (or a launch from the Train page is starting) it re-reads the root every 2 s.
"""

import time

import common
import streamlit as st

from sgpo_lab.runs import read_status
from sgpo_lab.viz import DEFAULT_TRAINING_METRICS
from sgpo_lab.viz.style import METRIC_LABELS

LIVE_EVERY_S = 2.0
URL_KEYS = ("runs_sel", "runs_metric", "runs_families", "runs_splits", "runs_smooth")
LAUNCH_GRACE_S = 120  # after a launch from the Train page, the root is watched this long for the new run


def status_table(table):
    # st.table, not st.dataframe: plain HTML, so the first page does not wait for the data-grid component.
    shown = table[["name", "task", "method", "group", "seed", "model", "state", "step", "total", "error"]].copy()
    shown["state"] = shown["state"].map(common.state_badge)
    shown["progress"] = [f"{s}/{t} ({min(1.0, s / t):.0%})" if t else "—"
                         for s, t in zip(shown["step"], shown["total"])]
    shown["error"] = shown["error"].fillna("")
    made = common.manifest()
    if made:  # the shipped demo runs record the command that made each one
        shown["made by"] = [str((made.get(n) or {}).get("command", "")) for n in shown["name"]]
    st.table(shown.drop(columns=["step", "total"]).set_index("name"))


def watching(table) -> bool:
    """Whether the root may change under us: a run is running, or a launch from this server is starting."""
    launched = st.session_state.get("train_launched_at", 0)
    return bool((table["state"] == "running").any() or common.launched_running()
                or time.time() - launched < LAUNCH_GRACE_S)


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
    head, button = st.columns([4, 1.4], vertical_alignment="bottom")
    head.title("Runs")
    button.button("↻ Refresh", key="runs_refresh", on_click=common.refresh_runs,
                  help="Read the runs root again (new runs, new states). While a run is running this happens every "
                       f"{LIVE_EVERY_S:.0f} s on its own.")
    table = common.runs_table()
    if table is None:
        if watching_root():
            poll_root(None)
        return
    table = common.with_groups(table)
    root = common.runs_root()
    snapshot = tuple(zip(table["name"], table["state"]))

    @st.fragment(run_every=LIVE_EVERY_S if watching(table) else None)
    def runs_panel():
        fresh = common._list_runs(root) if common.root_problem(root) is None else None
        if fresh is not None and tuple(zip(fresh["name"], fresh["state"])) != snapshot:
            st.rerun()  # a new run, or a state changed: the whole page follows
        shown = common.with_groups(fresh) if fresh is not None else table
        with st.expander(f"{len(shown)} runs under `{root}`", expanded=False):
            status_table(shown)

    bad = table[table["state"].isin(["failed", "crashed", "unknown", "unreadable"])]
    for name, state, error in zip(bad["name"], bad["state"], bad["error"]):
        st.warning(f"Run `{name}` is {state}: {error or 'no reason recorded'}")

    task, table = common.pick_task(table, "runs_task", reset=("runs_sel",))
    common.from_url(*URL_KEYS, lists=("runs_sel", "runs_families", "runs_splits"))
    if "runs_smooth" in st.session_state:
        try:
            st.session_state.runs_smooth = min(0.95, max(0.0, float(st.session_state.runs_smooth)))
        except ValueError:
            st.session_state.pop("runs_smooth")
    if "runs_sel" in st.session_state:
        st.session_state.runs_sel = [n for n in st.session_state.runs_sel if n in set(table["name"])]
    names = st.multiselect("Runs to show", table["name"].tolist(), key="runs_sel",
                           default=None if "runs_sel" in st.session_state else common.default_runs(table),
                           help=f"Runs of the task `{task}`. Runs are averaged as seeds only when their method and "
                                "config agree (but for the seed): runs whose configs differ are separate lines, "
                                "named by the fields that differ.")
    if not names:
        st.info("Choose at least one run.")
        runs_panel()
        return
    groups = table.set_index("name").loc[names, "group"]
    split = groups[groups != table.set_index("name").loc[names, "method"]]
    if len(split):
        st.caption("Runs whose configs differ are drawn apart: " + "; ".join(
            f"`{g}` ({', '.join(f'`{n}`' for n in split[split == g].index)})" for g in dict.fromkeys(split)))
    running = [n for n in names if table.set_index("name").loc[n, "state"] == "running"]
    c1, c2 = st.columns([3, 1])
    smooth = c1.slider("Smoothing of the training metrics (EMA per run, before the mean)", 0.0, 0.95,
                       None if "runs_smooth" in st.session_state else 0.0, 0.05, key="runs_smooth")
    seeds = c2.toggle("Each seed", key="runs_seeds", help="also draw every run as a thin line")
    every = LIVE_EVERY_S if running else None

    # Two fragments: a widget in one reruns only that one; while a chosen run is being written, both rerun on
    # their own, so progress, curves and metrics stay live.
    # A fragment's own reruns do not pass through the page's guard, so each body has its own.
    @st.fragment(run_every=every)
    def accuracy_panel():
        if running:
            common.guard(lambda: live_progress(table, running))
        common.guard(lambda: accuracy(table, names, seeds))
        common.to_url(*URL_KEYS)

    @st.fragment(run_every=every)
    def metrics_panel():
        common.guard(lambda: training_metrics(table, names, smooth, seeds))

    accuracy_panel()
    metrics_panel()
    runs_panel()  # after the charts: the first chart is drawn before the table of every run is built
    common.to_url(*URL_KEYS)


def watching_root() -> bool:
    return bool(common.launched_running()) or time.time() - st.session_state.get("train_launched_at", 0) \
        < LAUNCH_GRACE_S


def poll_root(snapshot):
    """No runs yet, but a launch is starting: re-read the root until its run appears."""
    @st.fragment(run_every=LIVE_EVERY_S)
    def wait():
        root = common.runs_root()
        if common.root_problem(root) is None and not common._list_runs(root).empty:
            st.rerun()
        st.caption("Waiting for the launched run to appear…")

    wait()


def accuracy(table, names, seeds):
    st.subheader("Accuracy")
    keys = common.readable("eval", common.run_keys(table, names))
    known, split_names = common.eval_layout(keys)  # what these runs evaluated
    c1, c2, c3 = st.columns([1.2, 2.4, 1.4])
    if st.session_state.get("runs_metric") not in (None, "accuracy", "pass_at_k"):
        st.session_state.pop("runs_metric")
    metric = c1.radio("Metric", ["accuracy", "pass_at_k"], key="runs_metric", horizontal=True,
                      format_func=lambda m: {"accuracy": "greedy accuracy", "pass_at_k": "pass@k"}[m])
    for key, allowed in (("runs_families", ["all", *known]), ("runs_splits", split_names)):
        if key in st.session_state:
            st.session_state[key] = [v for v in st.session_state[key] if v in allowed]
    families = c2.multiselect("Families", ["all", *known], key="runs_families",
                              default=None if "runs_families" in st.session_state else ["all"],
                              format_func=lambda f: "average of families" if f == "all" else f)
    splits = c3.multiselect("Splits", split_names, default=None if "runs_splits" in st.session_state else split_names,
                            key="runs_splits", format_func=str.upper)
    # never smoothed: each run has a handful of evaluations, and an EMA would move their final values
    fig = common.run_figure("accuracy_figure", "eval", keys, metric, families=tuple(families), splits=tuple(splits),
                            smooth=0.0, show_seeds=seeds, look=tuple(common.look().items()))
    if common.is_empty(fig) and families and splits:
        st.info("These runs have no evaluations yet (eval.jsonl is empty or unreadable).")
        return
    evals = common.collect_keys("eval", keys)
    common.show(fig, "runs_acc", themed=True, data=evals, name="accuracy")
    st.caption(accuracy_caption(evals, metric, known, keys))


def accuracy_caption(evals, metric, known, keys) -> str:
    """What to look at, from the data shown: each line's final value on the ID split (average of families)."""
    text = ("Mean over the runs (seeds) of each group, with a 95% t confidence band; 'average of families' is the "
            f"mean over the families these runs evaluated ({', '.join(known) or 'none yet'}). Accuracy is never "
            "smoothed (a run has only a few evaluations).")
    if evals.empty or metric not in evals.columns:
        return text
    part = evals[(evals["family"] == "all") & (evals["split"] == "id")]
    if part.empty:
        return text
    last = part.sort_values("step").groupby(["method", "run"]).tail(1).groupby("method")[metric].mean()
    first = part[part["step"] == part["step"].min()][metric].mean()
    best = last.sort_values(ascending=False)
    lines = ", ".join(f"{m} {v:.0%}" for m, v in best.head(6).items())
    return (f"Look at the last evaluation, ID split, average of families: {lines} (the base model starts at "
            f"{first:.0%}). " + text)


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
    fig = common.run_figure("metrics_figure", "metrics", keys, tuple(chosen), smooth=smooth, show_seeds=seeds,
                            look=tuple(common.look().items()))
    common.show(fig, "runs_metrics_fig", themed=True, data=metrics, name="training-metrics")
    st.caption("Each panel: one line per group (mean over its seeds). The distillation loss is 0 for methods that do "
               "not distil; p_auto is the share of autonomous samples that were right at that step."
               + (f" Smoothed with an EMA of {smooth:.2f} per run." if smooth else ""))


common.guard(main)
