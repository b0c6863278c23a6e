"""Absorption: the same probe completions across training; does the strategy's shift shrink?"""

import common
import pandas as pd
import streamlit as st

from sgpo_lab.viz import absorption_curve_figure, absorption_heatmap_figure
from sgpo_lab.viz.absorption import absorption_story
from sgpo_lab.viz.style import apply_look
from sgpo_lab.viz.tokens import VALUE_LABELS, default_vmax, token_html

URL_KEYS = ("abs_run", "abs_probe", "abs_step", "abs_value")


@st.cache_resource(max_entries=32, show_spinner=False)
def curve_figure(keys: tuple, value: str, step: int, look: tuple):
    frame = common.collect_keys("token_shifts", keys) if len(keys) > 1 else common._load("token_shifts", keys[0][3],
                                                                                         keys[0][4])[0]
    return apply_look(absorption_curve_figure(frame, value, step=step), **dict(look))


@st.cache_resource(max_entries=32, show_spinner=False)
def heatmap_figure(path: str, stamp: tuple, probe: str, value: str, vmax: float, look: tuple):
    shifts = common._load("token_shifts", path, stamp)[0]
    return apply_look(absorption_heatmap_figure(shifts, probe, value, vmax=vmax), **dict(look))


@st.cache_data(max_entries=32, show_spinner=False)
def story(path: str, stamp: tuple, value: str) -> str:
    return absorption_story(common._load("token_shifts", path, stamp)[0], value)


def main():
    st.title("Absorption")
    st.caption("The trainer re-scores a fixed probe set (completions fixed at step 0) at probe steps. If the student "
               "absorbs the strategy, π(·|x) moves towards π(·|x, s) at the tokens where the card decides, and their "
               "KL fades. What this run shows is said under the first figure, from its data.")
    table = common.runs_table()
    if table is None:
        return
    common.from_url(*URL_KEYS, numbers=("abs_step",))
    if st.session_state.get("abs_run") not in set(table["name"]):
        st.session_state.pop("abs_run", None)
    name = common.pick_run(table, "abs_run", reset=("abs_probe", "abs_step", "abs_compare"))
    path = common.run_path(name)
    stamp = common._stamp(path)
    shifts = common.load("token_shifts", path, name)
    if shifts is None:
        return
    if shifts.empty:
        st.info(f"Run `{name}` has no token shifts recorded (probe_every = 0, or its token_shifts files are "
                "missing or unreadable).")
        return
    c1, c2 = st.columns([1, 3])
    if st.session_state.get("abs_value") not in (None, "kl", "logp_change"):
        st.session_state.pop("abs_value")
    value = c1.radio("Colour by", ["kl", "logp_change"], format_func=VALUE_LABELS.get, key="abs_value")
    task = table.set_index("name").loc[name, "task"]
    others = [n for n, t in zip(table["name"], table["task"]) if n != name and t == task]  # never across tasks
    compare = c2.multiselect("Compare the mean shift with other runs", others, key="abs_compare",
                             help=f"Runs of the same task (`{task}`).")

    steps = sorted(int(s) for s in shifts["step"].unique())
    if st.session_state.get("abs_step") not in steps:
        st.session_state.pop("abs_step", None)
    step = (st.select_slider("Step", steps, value=None if "abs_step" in st.session_state else steps[-1], key="abs_step")
            if len(steps) > 1 else steps[0])
    keys = common.run_keys(common.with_groups(table), [name, *compare]) if compare else ((name, "", None, str(path),
                                                                                            stamp),)
    fig = curve_figure(keys, value, step, tuple(common.look().items()))
    common.show(fig, "abs_curve", themed=True, data=shifts.drop(columns=[c for c in shifts.columns
                                                                         if c.startswith("top_")]),
                name=f"{name}-absorption")
    st.caption(story(str(path), stamp, value) + (" Thin lines: one per probe, coloured by family; thick: their mean."
                                                 if not compare else " One line per run (mean over its probes)."))

    probes = shifts.drop_duplicates("problem_id").set_index("problem_id")
    question = probes["question"] if "question" in probes.columns else probes.index.to_series()
    if st.session_state.get("abs_probe") not in set(probes.index):
        st.session_state.pop("abs_probe", None)
    probe = st.selectbox("Probe problem", probes.index.tolist(), key="abs_probe",
                         format_func=lambda p: f"{p}:  {short(question[p])}")
    common.to_url(*URL_KEYS)
    rows = shifts[shifts["problem_id"] == probe]
    show_card(rows)
    vmax = default_vmax(rows[value], value)  # one range for every step: the fading is real
    at_step = rows[rows["step"] == step].sort_values("position")
    st.markdown(f"**Step {step}**: the probe's completion, each token coloured by {VALUE_LABELS[value]} "
                "(hover a token for its probabilities and both top-k lists).")
    st.html(token_html(at_step, value, vmax=vmax))
    st.caption(step_caption(rows, value, step, steps) + verdict(rows, table.set_index("name").loc[name, "task"]))
    heat = heatmap_figure(str(path), stamp, probe, value, vmax, tuple(common.look().items()))
    common.show(heat, "abs_heat", themed=True, name=f"{name}-{probe}-heatmap",
                data=rows[["step", "position", "token", value]])
    st.caption("Rows: probe steps; columns: the completion's tokens. A column that fades from dark to light is a "
               "decision the student absorbed; one that darkens is a token whose shift grew.")


def step_caption(rows: pd.DataFrame, value: str, step: int, steps: list[int]) -> str:
    """Which token of this probe carries the most shift at the first step, and what became of it by ``step``."""
    v = pd.to_numeric(rows[value], errors="coerce").abs()
    frame = rows.assign(v=v)
    first = frame[frame["step"] == steps[0]].set_index("position")
    now = frame[frame["step"] == step].set_index("position")
    if first.empty or now.empty or first["v"].isna().all():
        return ""
    pos = first["v"].idxmax()
    tok = repr(str(first.loc[pos, "token"]))
    then, later = first.loc[pos, "v"], now["v"].get(pos, float("nan"))
    what = "|log p change|" if value == "logp_change" else "KL"
    return (f"At step {steps[0]} the token with the largest {what} is {tok} at position {pos} ({then:.2f}); at step "
            f"{step} it is {later:.2f}. The mean over this probe's tokens goes {first['v'].mean():.2f} → "
            f"{now['v'].mean():.2f}.")


def verdict(rows: pd.DataFrame, task: str) -> str:
    """✓/✗ and the gold answer of the probe's completion (a world task: the world computes the answer)."""
    if task.split(":")[0] != "world" or "question" not in rows.columns:
        return ""
    import worldcheck

    question = str(rows["question"].iloc[0])
    gold = worldcheck.gold_answer(question)
    first = rows[rows["step"] == rows["step"].min()].sort_values("position")
    text = "".join(str(t) for t in first["token"] if str(t) != "<eos>")
    if gold is None:
        return ""
    from sgpo_lab.world.tasks import verify

    notes = worldcheck.notation_notes(None, [text])
    line = worldcheck.verdict_line(verify(text, gold), gold, question, text, world=True)
    return f" The probe's completion (fixed at step 0): {line}. " + " ".join(notes[1:])


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
