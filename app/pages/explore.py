"""Explore: one model, one problem, one strategy card: completions with and without it, and the token shift.

Nothing loads until the user picks a model. Models are cached by spec (``common.load_model``);
completions and shift tables are cached by their inputs, so changing only the view re-renders at once.
"""

import common
import pandas as pd
import streamlit as st

from sgpo_lab.models import ModelLoadError
from sgpo_lab.runs import list_checkpoints
from sgpo_lab.viz import token_shift_figure
from sgpo_lab.viz.tokens import VALUE_LABELS, default_vmax
from sgpo_lab.world.tasks import FAMILIES, verify

MAX_QUESTION = 300  # characters; the world's longest question is under 40
MAX_STRATEGY = 600
MAX_COMPLETION = 400
SOURCES = {"shipped": "shipped size", "checkpoint": "run checkpoint", "directory": "local HF model directory"}


@st.cache_data(show_spinner=False, max_entries=512)
def world_problem(family: str, split: str, index: int):
    from sgpo_lab.world.problems import make_problems

    return make_problems(family, split, index + 1)[index]


@st.cache_data(show_spinner="Sampling completions…", max_entries=64)
def completions(spec: str, stamp: tuple, question: str, strategy: str, answer: str | None, n: int, seed: int,
                max_new_tokens: int) -> dict:
    """Greedy and ``n`` sampled completions with the strategy (guided) and without it (unguided).

    ``stamp`` (the model files' ``common.model_stamp``) is only a cache key: a rewritten model is re-sampled.
    """
    import torch

    from sgpo_lab.rollout import sample
    from sgpo_lab.world.prompts import autonomous_prompt, guided_prompt

    model, tok = common.load_model(spec)
    prompts = {"guided": guided_prompt(question, strategy), "unguided": autonomous_prompt(question)}
    greedy = sample(model, tok, list(prompts.values()), max_new_tokens=max_new_tokens, greedy=True)
    many = sample(model, tok, [p for p in prompts.values() for _ in range(n)], max_new_tokens=max_new_tokens,
                  generator=torch.Generator().manual_seed(seed))
    out = {}
    for i, side in enumerate(prompts):
        texts = many.texts[i * n:(i + 1) * n]
        out[side] = {"greedy": greedy.texts[i], "greedy_ids": tuple(greedy.completion_ids[i]), "samples": texts,
                     "ok": [verify(t, answer) for t in texts] if answer else None,
                     "greedy_ok": verify(greedy.texts[i], answer) if answer else None}
    return out


@st.cache_data(show_spinner="Scoring the completion under both prompts…", max_entries=128)
def shift_table(spec: str, stamp: tuple, question: str, strategy: str, completion: tuple | str) -> pd.DataFrame:
    from sgpo_lab.shifts import token_shifts

    model, tok = common.load_model(spec)
    return token_shifts(model, tok, question, strategy, list(completion) if isinstance(completion, tuple)
                        else completion)


def choose_model() -> str | None:
    source = st.radio("Model", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="ex_source")
    if source == "shipped":
        sizes = common.shipped_sizes()
        if not sizes:
            st.info("No shipped model is on disk yet (`sgpo_lab/assets/base/<size>`). Pick a run checkpoint or a "
                    "local model directory instead.")
            return None
        return st.selectbox("Size", sizes, index=None, placeholder="choose a size to load", key="ex_size")
    if source == "checkpoint":
        table = common.runs_table()
        if table is None:
            return None
        name = st.selectbox("Run", table["name"].tolist(), index=None, placeholder="choose a run", key="ex_run")
        if not name:
            return None
        checkpoints = [str(p) for p in list_checkpoints(common.run_path(name))][::-1]
        if not checkpoints:
            st.warning(f"Run `{name}` has no complete checkpoint yet.")
            return None
        return st.selectbox("Checkpoint", checkpoints, format_func=lambda p: p.rsplit("/", 1)[-1], key="ex_ckpt")
    path = st.text_input("Model directory", key="ex_dir", placeholder="/path/to/model (config.json + *.safetensors)")
    return path.strip() or None


def choose_problem() -> tuple[str, str | None, str | None]:
    """(question, gold answer or None, the problem's own strategy card or None)."""
    kind = st.radio("Problem", ["world", "typed"], horizontal=True, key="ex_kind",
                    format_func={"world": "a world problem", "typed": "type one"}.get)
    if kind == "world":
        c1, c2, c3 = st.columns(3)
        family = c1.selectbox("Family", list(FAMILIES), key="ex_family")
        split = c2.selectbox("Split", ["id", "ood"], key="ex_split", format_func=str.upper)
        index = int(c3.number_input("Index", 0, 63, 0, key="ex_index"))
        p = world_problem(family, split, index)
        st.markdown(f"`{p.id}`: **{p.question}** → `{p.answer}` · expert (terse): `{p.expert_response.strip()}`")
        return p.question, p.answer, p.strategy
    question = st.text_input("Question", key="ex_question", placeholder="e.g. sum 3 8 5 2, or a world id sum-id-0003")
    answer = st.text_input("Gold answer (optional: scores the completions)", key="ex_answer").strip() or None
    return question, answer, None


def choose_strategy(own: str | None) -> str:
    from sgpo_lab.world.strategies import all_cards

    cards = {c.card_id: c.text for c in all_cards()}
    options = (["own"] if own else []) + list(cards) + ["none"]
    labels = {"own": "the problem's own card", "none": "no strategy"}
    choice = st.selectbox("Strategy card", options, key="ex_card", format_func=lambda c: labels.get(c, c))
    text = own if choice == "own" else "" if choice == "none" else cards[choice]
    # Keyed by the card, so picking another card resets the editor to that card's text.
    return st.text_area("Card text (edit freely)", value=text, height=110, key=f"ex_card_text::{choice}::{text}")


def main():
    st.title("Explore")
    st.caption("How does a strategy card change what the model writes, token by token? Tokens are coloured by "
               "KL(π(·|x, s) ‖ π(·|x)): where they light up, the strategy changes the model's mind, and that is "
               "where SGPO's distillation gradient p_t - q_t lands.")
    spec = choose_model()
    question, answer, own = choose_problem()
    strategy = choose_strategy(own)
    c1, c2, c3 = st.columns(3)
    n = int(c1.slider("Samples per prompt (N)", 1, 32, 8, key="ex_n"))
    seed = int(c2.number_input("Seed", 0, 10**6, 0, key="ex_seed"))
    max_new = int(c3.slider("Max new tokens", 8, 160, 96, 8, key="ex_max_new"))

    if not question.strip():
        st.warning("The problem is empty: type a question such as `sum 3 8 5 2`.")
        return
    if len(question) > MAX_QUESTION:
        st.error(f"The problem is {len(question):,} characters long; the limit is {MAX_QUESTION}. "
                 "The world's problems are one short line.")
        return
    if len(strategy) > MAX_STRATEGY:
        st.error(f"The strategy card is {len(strategy):,} characters long; the limit is {MAX_STRATEGY}.")
        return
    if own is None:  # a typed world id (sum-id-0003) means that problem
        from sgpo_lab.world.problems import find_problem

        try:
            found = find_problem(question)
        except ValueError as err:
            st.error(common.one_line(err))
            return
        if found is not None:
            question, answer = found.question, answer or found.answer
            st.caption(f"`{found.id}` is **{found.question}** (answer `{found.answer}`).")
    if spec is None:
        st.info("Choose a model above to see completions and the token-shift view.")
        return
    try:
        model, tok = common.load_model(spec)
    except ModelLoadError as err:
        st.error(f"Cannot load the model: {err}")
        return
    st.caption(f"Model: `{spec}` · {sum(p.numel() for p in model.parameters()):,} parameters · "
               f"vocabulary {len(tok)}")
    from sgpo_lab.world.tokenizer import check_text

    try:
        check_text(tok, question, what="problem")
        check_text(tok, strategy, what="strategy")
    except ValueError as err:
        st.error(common.one_line(err))
        return
    if not strategy.strip():
        st.info("No strategy: the guided prompt is the unguided one, so every shift is zero.")

    res = completions(spec, common.model_stamp(spec), question, strategy, answer, n, seed, max_new)
    show_completions(res, n)
    show_shift(spec, question, strategy, res)


def show_completions(res: dict, n: int):
    cols = st.columns(2)
    for col, side, title in zip(cols, ("guided", "unguided"), ("With the strategy", "Without it")):
        r = res[side]
        with col:
            st.markdown(f"**{title}** (greedy)")
            st.code(r["greedy"] or "(empty completion)", language=None)
            if r["ok"] is None:
                st.caption("Type the gold answer to score the completions.")
            else:
                st.metric(f"pass rate over {n} samples", f"{sum(r['ok'])}/{n}",
                          help="temperature-1 samples whose answer (after the last #) verifies")
            with st.expander(f"{n} samples"):
                st.dataframe(pd.DataFrame({"completion": r["samples"], "verified": r["ok"] or [None] * n}),
                             hide_index=True)


def show_shift(spec: str, question: str, strategy: str, res: dict):
    st.subheader("Token shift")
    c1, c2, c3, c4 = st.columns([1.4, 1.4, 1, 1])
    options = {"guided": "greedy, with the strategy", "unguided": "greedy, without it", "typed": "type a completion"}
    which = c1.selectbox("Completion to analyse", list(options), format_func=options.get, key="ex_which")
    value = c2.radio("Colour by", ["kl", "logp_change"], format_func=VALUE_LABELS.get, key="ex_value",
                     horizontal=True)
    auto = c3.toggle("Auto range", value=True, key="ex_auto")
    vmax = c4.number_input("Range (max |value|)", 0.01, 100.0, 1.0, 0.1, key="ex_vmax", disabled=auto)
    if which == "typed":
        typed = st.text_input("Completion", key="ex_completion", placeholder="e.g.  3+8=11 11+5=16 #16")
        if not typed.strip():
            st.warning("Type a completion to analyse (it is scored, not sampled).")
            return
        if len(typed) > MAX_COMPLETION:
            st.error(f"The completion is {len(typed):,} characters long; the limit is {MAX_COMPLETION}.")
            return
        completion = typed
    else:
        completion = res[which]["greedy_ids"]
    try:
        table = shift_table(spec, common.model_stamp(spec), question, strategy, completion)
    except ValueError as err:  # empty completion, characters outside the alphabet
        st.error(common.one_line(err))
        return
    vmax = None if auto else float(vmax)
    fig = token_shift_figure(table, value, vmax=vmax)
    st.plotly_chart(fig, key="ex_tokens", **common.PLOT)
    st.caption(f"{len(table)} tokens · colour range {fig.layout.meta['vmax']:.3g} "
               f"(auto: {default_vmax(table[value], value):.3g}) · mean KL {table['kl'].mean():.3f} · "
               "hover a token for its probability with and without the strategy and both top-k lists.")
    top = table.nlargest(min(8, len(table)), "kl").copy()
    for col in ("top_guided", "top_unguided"):
        top[col] = [" ".join(repr(str(t)) for t in ts) for ts in top[col]]
    st.dataframe(top[["position", "token", "kl", "logp_change", "p_guided", "p_unguided", "top_guided",
                      "top_unguided"]], hide_index=True)


common.guard(main)
