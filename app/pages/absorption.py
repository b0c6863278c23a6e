"""Absorption: the same probe completions across training; does the strategy's shift shrink?"""

import common
import streamlit as st

from sgpo_lab.viz import absorption_curve_figure, absorption_heatmap_figure, token_shift_figure
from sgpo_lab.viz.tokens import VALUE_LABELS, default_vmax


def main():
    st.title("Absorption")
    st.caption("The trainer re-scores a fixed probe set (completions fixed at step 0) at probe steps. As SGPO distils "
               "the strategy into the unguided policy, pi(.|x) moves towards pi(.|x, s) and the per-token KL falls.")
    table = common.runs_table()
    if table is None:
        return
    name = common.pick_run(table, "abs_run", reset=("abs_probe", "abs_step", "abs_compare"))
    shifts = common.load("token_shifts", common.run_path(name), name)
    if shifts is None:
        return
    if shifts.empty:
        st.info(f"Run `{name}` has no token shifts recorded (probe_every = 0, or its token_shifts files are "
                "missing or unreadable).")
        return
    c1, c2 = st.columns([1, 3])
    value = c1.radio("Colour by", ["kl", "logp_change"], format_func=VALUE_LABELS.get, key="abs_value")
    task = table.set_index("name").loc[name, "task"]
    others = [n for n, t in zip(table["name"], table["task"]) if n != name and t == task]  # never across tasks
    compare = c2.multiselect("Compare the mean shift with other runs", others, key="abs_compare",
                             help=f"Runs of the same task (`{task}`).")

    steps = sorted(int(s) for s in shifts["step"].unique())
    step = st.select_slider("Step", steps, value=steps[-1], key="abs_step") if len(steps) > 1 else steps[0]
    curve = common.collect("token_shifts", table, [name, *compare]) if compare else shifts
    st.plotly_chart(absorption_curve_figure(curve, value, step=step), key="abs_curve", **common.PLOT)

    probes = shifts.drop_duplicates("problem_id").set_index("problem_id")
    question = probes["question"] if "question" in probes.columns else probes.index.to_series()
    probe = st.selectbox("Probe problem", probes.index.tolist(), key="abs_probe",
                         format_func=lambda p: f"{p}:  {short(question[p])}")
    rows = shifts[shifts["problem_id"] == probe]
    show_card(rows)
    vmax = default_vmax(rows[value], value)  # one range for every step: the fading is real
    at_step = rows[rows["step"] == step].sort_values("position")
    st.plotly_chart(token_shift_figure(at_step, value, vmax=vmax, title=f"step {step}"), key="abs_tokens",
                    **common.PLOT)
    st.plotly_chart(absorption_heatmap_figure(shifts, probe, value, vmax=vmax), key="abs_heat", **common.PLOT)


def short(text, limit: int = 90) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def show_card(rows):
    """The probe's question and the card it was guided with (runs before card sets were recorded have none)."""
    cards = list(dict.fromkeys(rows["card"].dropna().astype(str))) if "card" in rows.columns else []
    with st.expander("The probe's question and card" + (f" ({len(cards)} cards over the steps)" if len(cards) > 1
                                                         else "")):
        if "question" in rows.columns:
            st.code(str(rows["question"].iloc[0]), language=None, wrap_lines=True)
        for card in cards:
            st.code(card or "(no card: the guided prompt is the unguided one)", language=None, wrap_lines=True)
        if not cards:
            st.caption("This run's probes did not record their card (it was made before cards were recorded).")


common.guard(main)
