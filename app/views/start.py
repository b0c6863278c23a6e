"""Start: SGPO's story in five steps, each one click into the page and the state that shows it; the notebooks."""

import common
import streamlit as st

# each step: (title, what to look at, page, the widget state that shows it, button label)
STEPS = [
    ("1 · A strategy card shifts the model's next-token distribution",
     "Give the shipped `small` model the sum `sum-id-0000` with and without its strategy card. Without the card it "
     "usually picks a wrong method; with it, it opens with the card's decision (`right`: a running total from the "
     "right). Colour each token by KL(guided ‖ unguided): the decision token lights up (KL ≈ 1.9), the rest stays "
     "pale. That shift is what SGPO distils.",
     "views/explore.py",
     {"ex_source": "shipped", "ex_size": "small", "ex_task": "world", "ex_kind": "task", "ex_split": "id",
      "ex_family": "sum", "ex_index": 0, "ex_pid": "", "ex_which": "guided", "ex_value": "kl"},
     "Explore a card's shift"),
    ("2 · Training absorbs the shift",
     "The trainer re-scores fixed probe completions during training. In `sgpo-s0` the decision token of "
     "`sum-id-0000` falls from KL 1.91 to 0.02: the unguided model now makes the strategy's decision by itself. "
     "The mean over all probe tokens does not fall (it rises 0.18 → 0.50 → 0.42): read the heatmap, not only the "
     "mean.",
     "views/absorption.py", {"abs_run": "sgpo-s0", "abs_probe": "sum-id-0000", "abs_value": "kl"},
     "Open Absorption"),
    ("3 · The adaptive weight decides where to distil",
     "w_i = min(alpha_max, alpha_0 · max(0, p_guided - p_auto) / (p_auto + gamma)): large where the student "
     "fails and the card helps, zero once the student solves the problem alone or when no guided rollout is right.",
     "views/weights.py", {"weights_run": "sgpo-s0", "weights_view": "family"}, "Open Weights"),
    ("4 · What the student learns: accuracy over training",
     "SGPO against GRPO, SFT, SFT+GRPO and LUFFY, three seeds each (mean and 95% band), on ID and OOD problems. "
     "Read each sampled completion and its reward on the **Rollouts** page.",
     "views/runs.py", {"runs_families": ["all"]}, "Open Runs"),
    ("5 · Against the paper",
     "The lab's final accuracies and gains over the base model beside the paper's Qwen2.5 numbers: absolute "
     "numbers differ, the ordering and the gains are what to compare.",
     "views/compare.py", {}, "Open Compare"),
]
NOTEBOOKS = [("01_quickstart", "a run end to end: problems, cards, completions, a short training, its curves"),
             ("02_token_shifts", "the token-shift view by hand: KL and log-probability change per token"),
             ("03_sgpo_step_by_step", "one SGPO step phase by phase, checked against the trainer"),
             ("04_adaptive_weights", "the weight formula, its settings, and a run's weights"),
             ("05_compare_methods", "the methods' curves and final numbers (ablations on request)"),
             ("06_classroom_exercises", "exercises with hidden solutions and checks that say what is off")]


def go(page: str, state: dict) -> None:
    for key, value in state.items():
        st.session_state[key] = value
    st.session_state["_go"] = page


def main():
    if (target := st.session_state.pop("_go", None)) is not None:
        st.switch_page(target)
    st.title("Strategy-Guided Policy Optimization, in five steps")
    st.markdown(
        "A small model can often solve a problem **when it is told how** (a *strategy card*: a few lines naming the "
        "method), and fails without it. SGPO trains the model to make the strategy's decisions **without** the card: "
        "besides the usual RL reward (GRPO), it distils the shift that the card causes in the model's own "
        "next-token distribution, weighted per problem by how much the card helps. Each step below opens the page "
        "that shows it, already set up.")
    table = common.runs_table(quiet=True)
    names = set(table["name"]) if table is not None else set()
    steps = list(STEPS)
    if "sgpo-s0" in names:  # step 2 in this root's own numbers (the shipped run's, unless the root has another one)
        path = common.run_path("sgpo-s0")
        shifts = common._load("token_shifts", str(path), common._stamp(path))[0]
        if not shifts.empty:
            from sgpo_lab.viz.absorption import absorption_story

            title, _, page, state, label = steps[1]
            steps[1] = (title, "The trainer re-scores fixed probe completions during training. In `sgpo-s0`: "
                        + absorption_story(shifts, "kl"), page, state, label)
    for title, text, page, state, label in steps:
        with st.container(border=True):
            left, right = st.columns([4, 1.3], vertical_alignment="center")
            left.markdown(f"**{title}**")
            left.markdown(text)
            run = state.get("abs_run") or state.get("weights_run")
            missing = run is not None and run not in names
            right.button(label, key=f"start_{page}", on_click=go, args=(page, state), type="primary",
                         disabled=missing, use_container_width=True,
                         help=f"needs run `{run}` under the runs root (the shipped demo runs have it)" if missing
                         else None)
    st.subheader("The notebooks")
    st.markdown("Open them with `JUPYTER_CONFIG_DIR=.jupyter .venv/bin/jupyter lab notebooks/` from the repository "
                "root (saving then never writes outputs into the tracked notebooks). The teacher's guide is "
                "`notebooks/README.md`: a 50-minute lesson plan with the app, and expected answers to every question.")
    st.markdown("\n".join(f"- `notebooks/{n}.ipynb`: {what}" for n, what in NOTEBOOKS))
    st.caption("Words used on every page: **guided** = the prompt with the strategy card, **autonomous** (unguided) "
               "= without it; **p_auto / p_guided** = the share of a problem's sampled completions that are right "
               "without / with the card; **KL** = how far the card moves the next-token distribution at a token.")


common.guard(main)
