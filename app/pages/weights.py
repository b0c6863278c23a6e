"""Weights: SGPO's adaptive per-problem weight w_i over training (when the strategy's shift is distilled)."""

import common
import streamlit as st

from sgpo_lab.viz import weight_distribution_figure, weight_heatmap_figure, weight_vs_pass_figure


def main():
    st.title("Adaptive weights")
    st.caption("w_i = min(alpha_max, alpha_0 · max(0, p_guided - p_auto) / (p_auto + gamma)), and 0 when no guided "
               "rollout is correct: strong where the student fails and the strategy helps, vanishing as it learns.")
    table = common.runs_table()
    if table is None:
        return
    name = common.pick_run(table, "weights_run", reset=("weights_families", "weights_steps"))
    path = common.run_path(name)
    inst = common.load("instances", path, name)
    if inst is None:
        return
    inst = common.with_family(inst)
    if inst.empty:
        method = table.set_index("name").loc[name, "method"]
        st.info(f"Run `{name}` ({method}) recorded no per-problem weights: only methods that distil the strategy "
                "(sgpo and its ablations) write them, and only once a step has finished.")
        return
    # the problem types this run trained on, in its evaluations' order (the task's own)
    evals = common.load("eval", path, name, say=None)
    known = common.in_order(common.families_of(inst), common.families_of(evals if evals is not None else inst))
    c1, c2 = st.columns([2, 3])
    families = c1.multiselect("Families", known, default=known, key="weights_families",
                              help=f"The problem types of task `{table.set_index('name').loc[name, 'task']}` "
                                   "this run trained on.")
    lo, hi = int(inst["step"].min()), int(inst["step"].max())
    steps = c2.slider("Steps", lo, hi, (lo, hi), key="weights_steps") if hi > lo else (lo, hi)
    part = inst[inst["family"].isin(families) & inst["step"].between(*steps)]
    if part.empty:
        st.info("No problems in this selection; widen the families or steps.")
        return
    st.subheader("Per problem and step")
    st.plotly_chart(weight_heatmap_figure(part), key="weights_heat", **common.PLOT)
    left, right = st.columns(2)
    with left:
        st.subheader("Distribution per step")
        st.plotly_chart(weight_distribution_figure(part), key="weights_dist", **common.PLOT)
    with right:
        st.subheader("Weight against p_auto")
        settings = common.weight_settings(common.run_config(name))  # only its well-typed formula settings
        st.plotly_chart(weight_vs_pass_figure(part, settings), key="weights_scatter", **common.PLOT)
    st.caption(f"{len(part)} (step, problem) rows; {(part['weight'] > 0).mean():.0%} with w_i > 0; "
               f"mean w_i {part['weight'].mean():.3f}.")


common.guard(main)
