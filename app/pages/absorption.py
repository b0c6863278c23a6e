"""Absorption: the same probe completions across training; does the strategy's shift shrink?"""

import common
import streamlit as st

from sgpo_lab.viz import absorption_curve_figure, absorption_heatmap_figure, token_shift_figure
from sgpo_lab.viz.tokens import VALUE_LABELS, default_vmax

NEEDED = {"step", "problem_id", "position", "token", "kl", "logp_change", "p_guided", "p_unguided"}


def main():
    st.title("Absorption")
    st.caption("The trainer re-scores a fixed probe set (completions fixed at step 0) at probe steps. As SGPO distils "
               "the strategy into the unguided policy, pi(.|x) moves towards pi(.|x, s) and the per-token KL falls.")
    table = common.runs_table()
    if table is None:
        return
    name = common.pick_run(table, "abs_run")
    shifts = common.load("token_shifts", common.run_path(name))
    if shifts.empty:
        st.info(f"Run `{name}` has no token shifts recorded (probe_every = 0, or its token_shifts files are "
                "missing or unreadable).")
        return
    missing = sorted(NEEDED - set(shifts.columns))
    if missing:
        st.error(f"Run `{name}`'s token_shifts table lacks the columns {', '.join(missing)}; "
                 "it was not written by this version of the lab's trainer.")
        return
    c1, c2 = st.columns([1, 3])
    value = c1.radio("Colour by", ["kl", "logp_change"], format_func=VALUE_LABELS.get, key="abs_value")
    others = [n for n in table["name"] if n != name]
    compare = c2.multiselect("Compare the mean shift with other runs", others, key="abs_compare")

    steps = sorted(int(s) for s in shifts["step"].unique())
    step = st.select_slider("Step", steps, value=steps[-1], key="abs_step") if len(steps) > 1 else steps[0]
    curve = common.collect("token_shifts", table, [name, *compare]) if compare else shifts
    st.plotly_chart(absorption_curve_figure(curve, value, step=step), key="abs_curve", **common.PLOT)

    probes = shifts.drop_duplicates("problem_id").set_index("problem_id")
    question = probes["question"] if "question" in probes.columns else probes.index.to_series()
    probe = st.selectbox("Probe problem", probes.index.tolist(), key="abs_probe",
                         format_func=lambda p: f"{p}:  {question[p]}")
    rows = shifts[shifts["problem_id"] == probe]
    vmax = default_vmax(rows[value], value)  # one range for every step: the fading is real
    at_step = rows[rows["step"] == step].sort_values("position")
    st.plotly_chart(token_shift_figure(at_step, value, vmax=vmax, title=f"step {step}"), key="abs_tokens",
                    **common.PLOT)
    st.plotly_chart(absorption_heatmap_figure(shifts, probe, value, vmax=vmax), key="abs_heat", **common.PLOT)


common.guard(main)
