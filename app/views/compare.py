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
    common.from_url("cmp_runs", "cmp_split", "cmp_family", "cmp_metric", lists=("cmp_runs",))
    if "cmp_runs" in st.session_state:
        st.session_state.cmp_runs = [n for n in st.session_state.cmp_runs if n in set(table["name"])]
    names = st.multiselect(f"Runs of `{task}` (finished ones by default)", table["name"].tolist(),
                           default=None if "cmp_runs" in st.session_state else finished or common.default_runs(table),
                           key="cmp_runs")
    table = common.with_groups(table)
    evals = common.collect("eval", table, names)
    splits, fams = common.splits_of(evals), ["all", *common.families_of(evals)]
    for key, allowed in (("cmp_split", splits), ("cmp_family", fams), ("cmp_metric", ["accuracy", "pass_at_k"])):
        if st.session_state.get(key) not in (None, *allowed):
            st.session_state.pop(key)
    c1, c2, c3, c4 = st.columns(4)
    split = c1.radio("Split", splits, format_func=str.upper, horizontal=True, key="cmp_split")
    family = c2.selectbox("Family", fams, key="cmp_family",
                          format_func=lambda f: "average of families" if f == "all" else f)
    metric = c3.radio("Metric", ["accuracy", "pass_at_k"], horizontal=True, key="cmp_metric")
    last_n = c4.number_input("Final = mean of the last N evaluations", 1, 5, 1, key="cmp_last")
    common.to_url("cmp_runs", "cmp_split", "cmp_family", "cmp_metric")
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
    common.download_table(result, "cmp", "comparison")
    st.caption(f"Paper: {PAPER_SOURCE}. Lab: task `{task}`, {split.upper()} split, {len(names)} runs. Absolute "
               "numbers are not comparable across the two settings; gains over the base model and the ordering of "
               "methods are. Runs whose configs differ from their method's others appear as their own rows "
               "(`method · field=value`).")
    fig = comparison_figure(result)
    common.show(fig, "cmp_fig", data=result, name="comparison-gains")
    st.caption(gain_caption(result))


def gain_caption(result) -> str:
    """What the bars show, from the numbers drawn: the lab's largest gains, and SGPO's beside the paper's."""
    lab = result[(result["paper"] != "base") & result["lab_gain_mean"].notna()]
    if lab.empty:
        return ("Grey bars: the paper's gains over its base model (1.5B light, 7B dark); the lab's appear once runs "
                "finish.")
    best = lab.sort_values("lab_gain_mean", ascending=False).head(3)
    text = "Largest lab gains: " + ", ".join(f"{m} {g:+.1f} points" for m, g in zip(best["method"],
                                                                                     best["lab_gain_mean"]))
    sgpo = result[result["method"] == "sgpo"]
    if len(sgpo) and sgpo["lab_gain_mean"].notna().iloc[0]:
        row = sgpo.iloc[0]
        text += (f"; SGPO {row['lab_gain_mean']:+.1f} in the lab against {row['paper_1.5B_gain']:+.1f} (1.5B) and "
                 f"{row['paper_7B_gain']:+.1f} (7B) in the paper")
    return text + ". Error bars: 95% interval over seeds (none with one seed)."


common.guard(main)
