"""Rollouts: for any run and step, what the model actually wrote, problem by problem.

The trainer stores each RL step's sampled completions (``rollouts/part-<step>.parquet``, every ``rollouts_every``
steps): the G autonomous and H guided completions of each problem with their rewards, the problem's pass rates,
weight, card and the guided completion chosen as the distillation target. Tokens are coloured by their per-token
KL(guided ‖ unguided) when asked: the run's checkpoint nearest before the step re-scores the completion (the
trainer keeps no per-token KL of its rollouts).
"""

import common
import pandas as pd
import streamlit as st
import worldcheck

from sgpo_lab.runs import list_checkpoints, load_rollouts, rollout_steps
from sgpo_lab.viz.tokens import token_html

KINDS = {"auto": "Autonomous (no card)", "guided": "Guided (with the card)"}
URL_KEYS = ("ro_run", "ro_step", "ro_problem")


@st.cache_data(show_spinner=False, max_entries=64)
def _step_rows(path: str, step: int, stamp: tuple) -> pd.DataFrame:
    return load_rollouts(path, step)


@st.cache_data(show_spinner="Re-scoring the completion with the run's checkpoint…", max_entries=128)
def _token_kl(checkpoint: str, stamp: tuple, task_spec: str, question: str, card: str, ids: tuple) -> pd.DataFrame:
    from sgpo_lab.prompts import Prompter
    from sgpo_lab.shifts import token_shifts

    model, tok = common.load_model(checkpoint)
    return token_shifts(model, tok, question, card, list(ids),
                        prompter=Prompter.for_task(common.load_task(task_spec), tok, "auto"))


def problem_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per problem of the step: pass rates, weight, rewards as ✓/✗ counts, the target."""
    out = []
    for pid, part in rows.groupby("problem_id", sort=False):
        first = part.iloc[0]
        auto, guided = part[part["kind"] == "auto"], part[part["kind"] == "guided"]
        target = guided[guided["target"]]
        out.append({"problem": pid, "question": first["question"], "gold": first.get("answer"),
                    "autonomous ✓": f"{int(auto['reward'].sum())}/{len(auto)}",
                    "guided ✓": f"{int(guided['reward'].sum())}/{len(guided)}" if len(guided) else "—",
                    "p_auto": first["p_auto"], "p_guided": first["p_guided"], "weight w_i": first["weight"],
                    "target": target["text"].iloc[0].strip() if len(target) else "—"})
    return pd.DataFrame(out)


def completion_block(row, world: bool, key: str, kl_ready: bool, score) -> None:
    ok = bool(row["reward"] > 0)
    star = " · ★ distillation target" if bool(row.get("target", False)) else ""
    st.markdown(f"**#{int(row['index'])}** {'✓' if ok else '✗'}{star}")
    st.caption(worldcheck.verdict_line(ok, row.get("answer"), row["question"], row["text"], world=world))
    if kl_ready:
        table = score(row)
        if table is not None:
            st.html(token_html(table, "kl"))
            return
    st.code(row["text"] or "(empty completion)", language=None, wrap_lines=True)


def main():
    st.title("Rollouts")
    st.caption("What the model wrote at a training step: each problem's autonomous and guided completions with "
               "their rewards (✓ = the verifier accepts the final answer), pass rates, the adaptive weight, the "
               "card and the guided completion SGPO distilled (★).")
    table = common.runs_table()
    if table is None:
        return
    common.from_url(*URL_KEYS, numbers=("ro_step",))
    stored = {n: rollout_steps(p) for n, p in zip(table["name"], table["path"])}
    with_rollouts = [n for n in table["name"] if stored[n]]
    if not with_rollouts:
        st.info("No run under this root stored its rollouts: runs made before rollouts were recorded (the shipped "
                "demo runs among them) have none. Train a run on the **Train** page (rollouts are stored every "
                "step by default: `rollouts_every=1`), or `sgpo-lab train ... --set rollouts_every=5`.")
        return
    if st.session_state.get("ro_run") not in with_rollouts:
        st.session_state.pop("ro_run", None)
    name = common.pick_run(table, "ro_run", names=with_rollouts, reset=("ro_step", "ro_problem"))
    path = common.run_path(name)
    steps = stored[name]
    if st.session_state.get("ro_step") not in steps:
        st.session_state.pop("ro_step", None)
    step = (st.select_slider("Step", steps, value=None if "ro_step" in st.session_state else steps[-1], key="ro_step")
            if len(steps) > 1 else steps[0])
    rows = _step_rows(str(path), int(step), common._stamp(path))
    if rows.empty:
        st.warning(f"Run `{name}`'s rollouts of step {step} cannot be read.")
        return
    task_spec = common.task_spec(common.run_config(name))
    world = task_spec.split(":")[0] == "world"
    summary = problem_table(rows)
    st.dataframe(summary, hide_index=True, column_config={
        "p_auto": st.column_config.NumberColumn(format="%.2f"),
        "p_guided": st.column_config.NumberColumn(format="%.2f"),
        "weight w_i": st.column_config.NumberColumn(format="%.3f")})
    common.download_table(rows.drop(columns=["completion_ids"], errors="ignore"), "ro", f"{name}-step{step}-rollouts")
    problems = summary["problem"].tolist()
    if st.session_state.get("ro_problem") not in problems:
        st.session_state.pop("ro_problem", None)
    pid = st.selectbox("Problem", problems, key="ro_problem",
                       format_func=lambda p: f"{p}: {summary.set_index('problem').loc[p, 'question']}")
    common.to_url(*URL_KEYS)
    part = rows[rows["problem_id"] == pid]
    first = part.iloc[0]
    st.markdown(f"**{first['question']}** · gold answer `{first.get('answer')}` · p_auto {first['p_auto']:.2f} · "
                f"p_guided {first['p_guided'] if first['p_guided'] is None else round(first['p_guided'], 2)} · "
                f"weight w_i {first['weight']:.3f}")
    with st.expander("The card it was guided with"):
        st.code(first["card"] or "(no card: this method samples no guided rollouts)", language=None, wrap_lines=True)
    notes = worldcheck.notation_notes(first.get("family"), part["text"].tolist()) if world else []
    if notes:
        st.caption(" ".join(notes))

    checkpoints = [c for c in list_checkpoints(path) if int(c.name[5:]) <= int(step)]
    kl_ready = False
    if checkpoints:
        kl_ready = st.toggle(f"Colour tokens by KL(guided ‖ unguided) under `{checkpoints[-1].name}`",
                             key="ro_kl", help="Re-scores each completion with the run's checkpoint nearest before "
                                               "this step (the model at sampling time, or close to it).")
    else:
        st.caption("Tokens are not coloured: this run has no checkpoint at or before this step to re-score them with.")

    def score(row):
        ckpt = str(checkpoints[-1])
        try:
            return _token_kl(ckpt, common.model_stamp(ckpt), task_spec, row["question"],
                             row["card"] if row["card"] else "", tuple(int(t) for t in row["completion_ids"]))
        except Exception as err:  # a checkpoint that cannot load, an empty completion
            st.caption(f"(not coloured: {common.one_line(err)})")
            return None

    cols = st.columns(2)
    for col, kind in zip(cols, KINDS):
        with col:
            block = part[part["kind"] == kind].sort_values("index")
            st.subheader(f"{KINDS[kind]}: {int(block['reward'].sum())}/{len(block)} ✓" if len(block) else KINDS[kind])
            if block.empty:
                st.caption("none sampled (this method samples no guided rollouts)" if kind == "guided" else "none")
            for i, (_, row) in enumerate(block.iterrows()):
                completion_block(row, world, f"{kind}{i}", kl_ready, score)


common.guard(main)
