"""Compare: the lab's final numbers (mean ± CI over seeds) beside the paper's."""

import common
import streamlit as st

from sgpo_lab.viz import PAPER_SOURCE, comparison_figure, comparison_table

SHOWN = ["paper", "method", "seeds", "lab", "lab_gain", "paper_1.5B", "paper_1.5B_gain", "paper_7B", "paper_7B_gain"]


def main():
    st.title("Compare with the paper")
    table = common.runs_table()
    if table is None:
        return
    task, table = common.pick_task(table, "cmp_task", reset=("cmp_runs", "cmp_family", "cmp_split"))
    finished = table[table["state"] == "finished"]["name"].tolist()
    names = st.multiselect(f"Runs of `{task}` (finished ones by default)", table["name"].tolist(),
                           default=finished or common.default_runs(table), key="cmp_runs")
    evals = common.collect("eval", table, names)
    c1, c2, c3, c4 = st.columns(4)
    split = c1.radio("Split", common.splits_of(evals), format_func=str.upper, horizontal=True, key="cmp_split")
    family = c2.selectbox("Family", ["all", *common.families_of(evals)], key="cmp_family",
                          format_func=lambda f: "average of families" if f == "all" else f)
    metric = c3.radio("Metric", ["accuracy", "pass_at_k"], horizontal=True, key="cmp_metric")
    last_n = c4.number_input("Final = mean of the last N evaluations", 1, 5, 1, key="cmp_last")
    if evals.empty:
        st.info("No evaluations in the chosen runs yet; the table shows the paper's numbers alone.")
    result = comparison_table(evals, split=split, family=family, metric=metric, last_n=int(last_n))
    shown = result[SHOWN].copy()
    for col in SHOWN[5:]:  # the paper's numbers as text: "—" where the paper has none
        shown[col] = [("—" if v is None or v != v else f"{v:+.1f}" if col.endswith("gain") else f"{v:.1f}")
                      for v in shown[col]]
    st.dataframe(shown, hide_index=True, height=38 + 35 * len(shown), column_config={
        "lab": "lab, % (mean ± 95% CI)", "lab_gain": "lab gain over base", "paper_1.5B": "paper 1.5B, %",
        "paper_1.5B_gain": "paper 1.5B gain", "paper_7B": "paper 7B, %", "paper_7B_gain": "paper 7B gain"})
    st.caption(f"Paper: {PAPER_SOURCE}. Lab: task `{task}`, {split.upper()} split, {len(names)} runs. Absolute "
               "numbers are not comparable across the two settings; gains over the base model and the ordering of "
               "methods are.")
    st.plotly_chart(comparison_figure(result), key="cmp_fig", **common.PLOT)


common.guard(main)
