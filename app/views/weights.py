"""Weights: SGPO's adaptive per-problem weight w_i over training (when the strategy's shift is distilled)."""

import common
import streamlit as st

from sgpo_lab import viz
from sgpo_lab.viz.style import apply_look

VIEWS = {"family": "per family (mean w_i of its problems in each step's batch)",
         "top": "per problem: the 40 problems weighted most", "problem": "per problem: every problem"}
URL_KEYS = ("weights_run", "weights_view")


@st.cache_resource(max_entries=48, show_spinner=False)
def figures(path: str, stamp: tuple, families: tuple, steps: tuple, view: str, settings: tuple, look: tuple):
    """The page's three figures and its selection, built once per run files and settings."""
    inst = common.with_family(common._load("instances", path, stamp)[0])
    part = inst[inst["family"].isin(families) & inst["step"].between(*steps)]
    if part.empty:
        return part, None, None, None
    by = "family" if view == "family" else "problem"
    heat = viz.weight_heatmap_figure(part, by=by, top=40 if view == "top" else None)
    dist = viz.weight_distribution_figure(part)
    scatter = viz.weight_vs_pass_figure(part, dict(settings))
    return part, *(apply_look(f, **dict(look)) for f in (heat, dist, scatter))


def main():
    st.title("Adaptive weights")
    st.caption("w_i = min(alpha_max, alpha_0 · max(0, p_guided - p_auto) / (p_auto + gamma)), and 0 when no guided "
               "rollout is correct: strong where the student fails and the strategy helps, vanishing as it learns.")
    table = common.runs_table()
    if table is None:
        return
    common.from_url(*URL_KEYS)
    if st.session_state.get("weights_run") not in set(table["name"]):
        st.session_state.pop("weights_run", None)
    name = common.pick_run(table, "weights_run", reset=("weights_families", "weights_steps"))
    path = common.run_path(name)
    inst = common.load("instances", path, name)
    if inst is None:
        return
    inst = common.with_family(inst)
    method = table.set_index("name").loc[name, "method"]
    if inst.empty:
        st.info(f"Run `{name}` ({method}) recorded no per-problem weights: only methods that distil the strategy "
                "(sgpo and its ablations) write them, and only once a step has finished.")
        return
    if not (inst["weight"].fillna(0) != 0).any():
        st.info(f"Run `{name}` ({method}): no weights recorded: every w_i it wrote is 0. It does not distil the "
                "strategy (GRPO, SFT and the methods without distillation give every problem w_i = 0), so there is "
                "nothing to draw; pick an SGPO run.")
        return
    # the problem types this run trained on, in its evaluations' order (the task's own)
    evals = common.load("eval", path, name, say=None)
    known = common.in_order(common.families_of(inst), common.families_of(evals if evals is not None else inst))
    c1, c2, c3 = st.columns([2, 3, 2.4])
    families = c1.multiselect("Families", known, default=known, key="weights_families",
                              help=f"The problem types of task `{table.set_index('name').loc[name, 'task']}` "
                                   "this run trained on.")
    lo, hi = int(inst["step"].min()), int(inst["step"].max())
    steps = c2.slider("Steps", lo, hi, (lo, hi), key="weights_steps") if hi > lo else (lo, hi)
    if st.session_state.get("weights_view") not in VIEWS:
        st.session_state.pop("weights_view", None)
    view = c3.selectbox("Heatmap rows", list(VIEWS), format_func=VIEWS.get, key="weights_view")
    common.to_url(*URL_KEYS)
    settings = common.weight_settings(common.run_config(name))  # only its well-typed formula settings
    part, heat, dist, scatter = figures(str(path), common._stamp(path), tuple(families), tuple(steps), view,
                                        tuple(sorted(settings.items())), tuple(common.look().items()))
    if heat is None:
        st.info("No problems in this selection; widen the families or steps.")
        return
    st.subheader("Per step: " + ("each family" if view == "family" else "each problem"))
    common.show(heat, "weights_heat", themed=True, data=part, name=f"{name}-weights")
    n_problems, n_steps = part["problem_id"].nunique(), part["step"].nunique()
    filled = part.groupby(["family", "step"]).ngroups / max(1, part["family"].nunique() * n_steps)
    st.caption(f"{len(part)} (step, problem) rows: {n_problems} problems over {n_steps} steps, each problem in about "
               f"{len(part) / max(1, n_problems):.1f} batches, so a per-problem map is mostly blank"
               + (f"; per family, {filled:.0%} of the (family, step) cells hold a value (white: no problem of the "
                  "family in that step's batch)." if view == "family" else " (white: not in that step's batch).")
               + f" {(part['weight'] > 0).mean():.0%} of the rows have w_i > 0; mean w_i {part['weight'].mean():.3f}.")
    left, right = st.columns(2)
    with left:
        st.subheader("Distribution per step")
        common.show(dist, "weights_dist", themed=True, name=f"{name}-weight-distribution")
        share = part.groupby("step")["weight"].apply(lambda w: float((w > 0).mean()))
        st.caption(f"Boxes: w_i of the step's problems; dotted: the share with w_i > 0 ({share.iloc[0]:.0%} at step "
                   f"{share.index[0]}, {share.iloc[-1]:.0%} at step {share.index[-1]}).")
    with right:
        st.subheader("Weight against p_auto")
        common.show(scatter, "weights_scatter", themed=True, name=f"{name}-weight-vs-p_auto")
        zero_auto = part[part["p_auto"] >= 0.999]["weight"]
        st.caption("Each dot is a (step, problem); dotted curves are the formula for a few p_guided. "
                   + (f"Problems the student already solves alone (p_auto = 1) get w_i = {zero_auto.max():.2f} at most."
                      if len(zero_auto) else "No problem here is solved alone every time yet (p_auto < 1)."))


common.guard(main)
