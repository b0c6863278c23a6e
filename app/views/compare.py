"""Compare: the lab's final numbers (mean ± CI over seeds) beside the paper's; and a finished sweep's table
(``sgpo-lab compare``: mean ± CI per variant, the paired difference to the preset's reference, p, MDD)."""

from pathlib import Path

import common
import pandas as pd
import streamlit as st

from sgpo_lab import sweeps as S
from sgpo_lab.viz import PAPER_SOURCE, comparison_figure, comparison_table, sweep_figure

SHOWN = ["paper", "method", "seeds", "lab", "lab_gain", "paper_1.5B", "paper_1.5B_gain", "paper_7B", "paper_7B_gain"]


def main():
    st.title("Compare with the paper")
    runs_tab, sweeps_tab = st.tabs(["Runs beside the paper", "Sweeps: variants and seeds"])
    with runs_tab:
        runs_section()
    with sweeps_tab:
        sweeps_section()


def runs_section():
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


# ------------------------------------------------------------------------------------------ sweeps

SWEEPS_ROOT = common.REPO_ROOT / "sweeps"
METRICS = S.METRIC_NAMES  # accuracy, pass_at_k: their labels


def _label(folder: Path) -> str:
    """A sweep folder as shown: relative to the repository when inside it."""
    try:
        return str(folder.resolve().relative_to(common.REPO_ROOT))
    except ValueError:
        return str(folder)


@st.cache_data(show_spinner=False, ttl=10)
def sweep_folders(root: str) -> dict[str, str]:
    """{label: path} of the finished sweeps under the repository's ``sweeps/`` and under the runs root."""
    bases = [SWEEPS_ROOT] + ([Path(root).expanduser()] if common.root_problem(root) is None else [])
    found: dict[str, str] = {}
    for base in bases:
        for folder in S.find_sweeps(base):
            if str(folder.resolve()) not in found.values():
                found[_label(folder)] = str(folder.resolve())
    return found


def _stamp(folder: str) -> tuple:
    try:
        return tuple((s.st_mtime_ns, s.st_size) for s in (Path(folder, n).stat() for n in ("sweep.json",
                                                                                          "summary.parquet")))
    except OSError:
        return ()


@st.cache_data(show_spinner=False, max_entries=16)
def read_sweep(folder: str, stamp: tuple) -> tuple[dict, pd.DataFrame, str | None]:
    """``(sweep.json, summary, what was wrong)``: never raises, so a broken folder is one line on the page."""
    try:
        return *S.load_sweep(folder), None
    except S.SweepError as err:
        return {}, pd.DataFrame(), str(err)


def about(record: dict, summary: pd.DataFrame) -> str:
    """What the sweep is: its preset, runs and the command that made it."""
    preset = S.PRESETS.get(record.get("preset")) if isinstance(record.get("preset"), str) else None
    runs = len(summary.loc[~summary["variant"].str.endswith("@base"), ["variant", "seed"]].drop_duplicates())
    text = f"Preset `{record.get('preset')}`" + (f" ({preset.description})" if preset else "") + f": {runs} runs"
    if isinstance(record.get("command"), str):
        text += f", made with `{common.clip(record['command'], 200)}`"
    return text + ". Each run's final evaluation on the same problems; seeds are the unit."


def sweeps_section():
    folders = sweep_folders(common.runs_root())
    if not folders:
        st.info("No finished sweep under `sweeps/` or the runs root (a sweep folder holds `sweep.json` and "
                "`summary.parquet`). Make one with `sgpo-lab compare --preset main --out sweeps/main`.")
        return
    common.from_url("sw_sweep", "sw_split", "sw_metric")
    if st.session_state.get("sw_sweep") not in folders:
        st.session_state.sw_sweep = "sweeps/main" if "sweeps/main" in folders else next(iter(folders))
    c1, c2, c3 = st.columns([2, 1, 1])
    choice = c1.selectbox("Sweep", list(folders), key="sw_sweep",
                          help="Folders written by `sgpo-lab compare --out`, under `sweeps/` and the runs root.")
    record, summary, problem = read_sweep(folders[choice], _stamp(folders[choice]))
    if problem:
        st.error(f"Sweep `{choice}`: {problem}.")
        return
    if summary.empty:
        st.info(f"Sweep `{choice}` has no finished runs in its summary yet.")
        return
    splits = sorted(set(summary["split"]), key=lambda s: (s not in ("id", "ood"), s != "id", s))
    if st.session_state.get("sw_split") not in splits:
        st.session_state.sw_split = splits[0]
    if st.session_state.get("sw_metric") not in METRICS:
        st.session_state.sw_metric = "accuracy"
    split = c2.radio("Split", splits, format_func=str.upper, horizontal=True, key="sw_split")
    metric = c3.radio("Metric", list(METRICS), format_func=METRICS.get, horizontal=True, key="sw_metric")
    common.to_url("sw_sweep", "sw_split", "sw_metric")
    st.caption(about(record, summary))
    try:
        show_sweep(choice, record, summary, split, metric)
    except (KeyError, TypeError, ValueError) as err:  # values no `sgpo-lab compare` writes
        st.error(f"Sweep `{choice}` cannot be compared ({type(err).__name__}: {common.one_line(err)[:200]}).")


def show_sweep(choice: str, record: dict, summary: pd.DataFrame, split: str, metric: str) -> None:
    reference, table = S.sweep_compare(record, summary, metric=metric, split=split)
    if table.empty:
        st.info(f"Sweep `{choice}` has no final {METRICS[metric]} on {split.upper()}.")
        return
    shown = S.format_compare(table, reference)
    st.dataframe(shown, hide_index=True, height=38 + 35 * len(shown))
    name = f"sweep-{Path(choice).name}-{split}-{metric}"
    common.download_table(table, "sw", name)
    st.caption(f"{split.upper()}, {METRICS[metric]}, average of families. " + S.read_compare(table, reference))
    fig = sweep_figure(summary, table, metric=metric, split=split)
    common.show(fig, "sw_fig", data=table, name=name)
    st.caption("Bars: mean over seeds with its 95% t interval; dots: the seeds; dashed: the base model (step 0).")


common.guard(main)
