"""Explore: one model, one problem of any task, one strategy card: completions with and without it, and the token shift.

Nothing loads until the user picks a model. Models are cached by spec (``common.load_model``), tasks by spec
(``sgpo_lab.tasks.load_task``); completions and shift tables are cached by their inputs, so changing only the
view re-renders at once. Prompts are the task's for the model's tokenizer (``Prompter.for_task``: its chat
template when it has one), shown as the model sees them.
"""

from dataclasses import dataclass

import common
import pandas as pd
import streamlit as st
import worldcheck

from sgpo_lab.models import ModelLoadError
from sgpo_lab.runs import list_checkpoints
from sgpo_lab.tasks import DEFAULT_TASK, TASK_KINDS, Problem, Task, TaskError
from sgpo_lab.viz.tokens import VALUE_LABELS, default_vmax, display_token, token_html, topk_figure

MAX_QUESTION = 1_000  # characters of a typed question (the world's are under 40, a GSM8K one a few hundred)
MAX_ANSWER = 1_000  # characters of a typed gold answer
MAX_STRATEGY = 4_000  # characters of a card (as sgpo_lab.cards.MAX_CARD_CHARS)
MAX_COMPLETION = 1_000  # characters of a typed completion
MAX_TASK_QUESTION = 4_000  # a task's own question longer than this is refused (sgpo_lab.shifts.MAX_TEXT_CHARS)
MAX_INDEX = 256  # problems per split and family the index picker reaches
MAX_ID = 200  # characters of a typed problem id
MAX_PATH = 1_000  # characters of a card file path
MAX_RUN_CARDS = 24  # card options taken from the runs' card sets
SOURCES = {"shipped": "shipped size", "checkpoint": "run checkpoint", "directory": "local HF model directory"}
OTHER_TASK = "(type a task spec)"
KINDS_HELP = "Task specs: " + "; ".join(f"`{k}`: {v}" for k, v in TASK_KINDS.items())


@dataclass
class Pick:
    """The problem to explore: its question, gold answer (None: typed without one), own card, and its verifier."""

    question: str
    gold: str | None
    own: str | None
    family: str | None
    problem: Problem | None  # a task problem (its verifier gets all of it); None for a typed question


def prompter(task_spec: str, tok):
    from sgpo_lab.prompts import Prompter

    return Prompter.for_task(common.load_task(task_spec), tok, "auto")


@st.cache_data(show_spinner="Sampling completions…", max_entries=64)
def completions(spec: str, stamp: tuple, task_spec: str, question: str, card: str, n: int, seed: int,
                max_new_tokens: int) -> dict:
    """Greedy and ``n`` sampled completions with the card (guided) and without it (unguided).

    ``stamp`` (the model files' ``common.model_stamp``) is only a cache key: a rewritten model is re-sampled.
    Sampling stops at any of the model's end ids (``rollout.sample``'s default).
    """
    import torch

    from sgpo_lab.rollout import sample

    model, tok = common.load_model(spec)
    p = prompter(task_spec, tok)
    prompts = {"guided": p.guided(question, card), "unguided": p.autonomous(question)}
    greedy = sample(model, tok, list(prompts.values()), max_new_tokens=max_new_tokens, greedy=True)
    many = sample(model, tok, [pr for pr in prompts.values() for _ in range(n)], max_new_tokens=max_new_tokens,
                  generator=torch.Generator().manual_seed(seed))
    return {side: {"greedy": greedy.texts[i], "greedy_ids": tuple(greedy.completion_ids[i]),
                   "samples": many.texts[i * n:(i + 1) * n]} for i, side in enumerate(prompts)}


@st.cache_data(show_spinner="Scoring the completion under both prompts…", max_entries=128)
def shift_table(spec: str, stamp: tuple, task_spec: str, question: str, card: str,
                completion: tuple | str) -> pd.DataFrame:
    from sgpo_lab.shifts import token_shifts

    model, tok = common.load_model(spec)
    return token_shifts(model, tok, question, card, list(completion) if isinstance(completion, tuple)
                        else completion, prompter=prompter(task_spec, tok))


# ------------------------------------------------------------------------------------------ pickers


def choose_model(table) -> tuple[str | None, str | None]:
    """(model spec, the run it comes from when it is a run checkpoint)."""
    source = st.radio("Model", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="ex_source")
    if source == "shipped":
        sizes = common.shipped_sizes()
        if not sizes:
            st.info("No shipped model is on disk yet (`sgpo_lab/assets/base/<size>`). Pick a run checkpoint or a "
                    "local model directory instead.")
            return None, None
        return st.selectbox("Size", sizes, index=None, placeholder="choose a size to load", key="ex_size"), None
    if source == "checkpoint":
        if table is None:
            common.runs_table()  # says why there are none
            return None, None
        name = st.selectbox("Run", table["name"].tolist(), index=None, placeholder="choose a run", key="ex_run")
        if not name:
            return None, None
        try:
            checkpoints = [str(p) for p in list_checkpoints(common.run_path(name))][::-1]
        except (OSError, ValueError) as err:  # a checkpoints folder the lab did not write (step-abc)
            st.error(f"Run `{name}`'s checkpoints cannot be listed ({common.one_line(err)}); expected "
                     "checkpoints/step-NNNNNN folders.")
            return None, None
        if not checkpoints:
            st.warning(f"Run `{name}` has no complete checkpoint yet.")
            return None, None
        return st.selectbox("Checkpoint", checkpoints, format_func=lambda p: p.rsplit("/", 1)[-1],
                            key="ex_ckpt"), name
    path = st.text_input("Model directory", key="ex_dir", placeholder="/path/to/model (config.json + *.safetensors)")
    return path.strip() or None, None


def choose_task(table) -> tuple[str, Task | None]:
    """(task spec, the task or None after a one-line error): the runs' tasks and the world, or a typed spec."""
    known = [DEFAULT_TASK, *[t for t in (common.tasks_of(table) if table is not None else []) if t != DEFAULT_TASK]]
    choice = st.selectbox("Task", [*known, OTHER_TASK], key="ex_task",
                          help="The world, the tasks of the runs under the runs root, or any task spec. " + KINDS_HELP)
    spec = choice
    if choice == OTHER_TASK:
        spec = st.text_input("Task spec", key="ex_task_spec", max_chars=common.MAX_TASK_SPEC, help=KINDS_HELP,
                             placeholder="reasoning-gym:basic_arithmetic, jsonl:/path/to/file.jsonl, world:sum,count")
        spec = spec.strip()
        if not spec:
            st.info("Type a task spec (e.g. `reasoning-gym:basic_arithmetic`), or pick a task above.")
            return spec, None
    try:
        return spec, common.load_task(spec)
    except TaskError as err:
        st.error(common.one_line(err))
        return spec, None


def choose_problem(task: Task) -> Pick | None:
    kind = st.radio("Problem", ["task", "typed"], horizontal=True, key="ex_kind",
                    format_func={"task": "a problem of the task", "typed": "type one"}.get)
    return task_problem(task) if kind == "task" else typed_problem(task)


def task_problem(task: Task) -> Pick | None:
    """A problem of the task by split, family and index, or by its id."""
    c1, c2, c3, c4 = st.columns([1, 1.5, 0.8, 1.7])
    splits = list(task.splits)
    split = c1.selectbox("Split", splits, index=splits.index("id") if "id" in splits else 0, key="ex_split",
                         format_func=str.upper)
    family = c2.selectbox("Family", list(task.families), key="ex_family")
    index = int(c3.number_input("Index", 0, MAX_INDEX - 1, 0, key="ex_index"))
    wanted = c4.text_input("or a problem id", key="ex_pid", max_chars=MAX_ID,
                           placeholder=f"e.g. {family}-{split}-0003").strip()
    if family is None:
        st.warning(f"Task `{task.name}` has no problem types.")
        return None
    if wanted and (why := id_problem(task, wanted)):
        st.error(why)
        return None
    try:
        if wanted:
            problem = task.find(wanted)
            if problem is None:
                st.error(f"`{wanted}` is not a problem id of `{task.name}`; expected e.g. "
                         f"`{family}-{split}-0003`.")
                return None
        else:
            size = task.split_size(split, family)
            if size is not None and index >= size:
                st.error(f"Index {index} is out of range: the {split.upper()} split of `{family}` holds {size} "
                         f"problems (0 to {size - 1}).")
                return None
            found = task.problems(split, index + 1, families=[family])
            if index >= len(found):
                st.error(f"Index {index} is out of range: the {split.upper()} split of `{family}` holds "
                         f"{len(found)} problems.")
                return None
            problem = found[index]
    except ValueError as err:  # TaskError, a world split with fewer distinct problems
        st.error(common.one_line(err))
        return None
    st.caption(f"`{problem.id}` · {problem.family} · {problem.split.upper()} split · the question as the task "
               "writes it:")
    st.code(problem.question, language=None, wrap_lines=True)
    gold = f"`{problem.answer}`" if problem.answer else "none stored (the task's verifier decides)"
    expert = f" · expert response: `{short(problem.expert_response, 160)}`" if problem.expert_response else ""
    st.markdown(f"Gold answer: {gold}{expert}")
    if len(problem.question) > MAX_TASK_QUESTION:
        st.error(f"This problem is {len(problem.question):,} characters long; the limit is {MAX_TASK_QUESTION:,}.")
        return None
    return Pick(problem.question, problem.answer, task.card(problem) or None, problem.family, problem)


def made_on_demand(task: Task) -> bool:
    """Whether the task makes its problems when asked (the world, reasoning-gym): finding an id builds its split."""
    try:
        return not task.families or any(task.split_size(s, task.families[0]) is None for s in task.splits)
    except Exception:  # a task of the user's own code: assume the costly kind
        return True


def id_problem(task: Task, text: str) -> str | None:
    """Why a typed problem id is refused before the task looks for it (one line), or None.

    A task that makes its problems on demand would build every problem up to the id's index: past the index
    picker's reach (``MAX_INDEX``) the id is refused at once, whatever its task's id format.
    """
    if len(text) > MAX_ID:
        return f"The problem id is {len(text):,} characters long; the limit is {MAX_ID}."
    index = text.rpartition("-")[2]
    if index.isascii() and index.isdigit() and (len(index) > 6 or int(index) >= MAX_INDEX) and made_on_demand(task):
        family, split = (task.families or ("family",))[0], "id" if "id" in task.splits else (*task.splits, "id")[0]
        return (f"Problem id `{short(text, 60)}` is out of reach: this page explores problems 0 to {MAX_INDEX - 1} of "
                f"each split of `{task.name}`; expected an id such as `{family}-{split}-0003`.")
    return None


def typed_problem(task: Task) -> Pick | None:
    """A typed question (an id of the task's means that problem), with an optional gold answer."""
    example = "sum 3 8 5 2, or a world id sum-id-0003" if common.is_world(task) else "a question, or a problem id"
    question = st.text_input("Question", key="ex_question", placeholder=f"e.g. {example}")
    answer = st.text_input("Gold answer (optional: scores the completions)", key="ex_answer").strip() or None
    if not question.strip():
        st.warning("The problem is empty: type a question such as `sum 3 8 5 2`." if common.is_world(task)
                   else "The problem is empty: type a question.")
        return None
    if len(question) > MAX_QUESTION:
        st.error(f"The problem is {len(question):,} characters long; the limit is {MAX_QUESTION:,}. "
                 "Type one question.")
        return None
    if answer and len(answer) > MAX_ANSWER:
        st.error(f"The gold answer is {len(answer):,} characters long; the limit is {MAX_ANSWER:,}.")
        return None
    text = question.strip()
    if len(text) <= MAX_ID and " " not in text and "\n" not in text:  # a typed id (sum-id-0003) means that problem
        if why := id_problem(task, text):
            st.error(why)
            return None
        try:
            found = task.find(text)
        except ValueError as err:
            st.error(common.one_line(err))
            return None
        if found is not None:  # a typed gold answer replaces the task's (and its verifier, which needs the task's)
            st.caption(f"`{found.id}` is **{short(found.question, 200)}** (answer `{found.answer}`).")
            return Pick(found.question, answer or found.answer, task.card(found) or None, found.family,
                        found if answer is None else None)
    family = task.families[0] if len(task.families) == 1 else None
    if common.is_world(task):
        parsed = worldcheck.parse_question(question)
        if parsed is not None:
            family = parsed.family
            if answer is None:
                answer = parsed.answer
                st.caption(f"A `{parsed.family}` question of the world: its gold answer is **`{parsed.answer}`** "
                           "(computed by the world; type another above to grade against it instead).")
            elif answer != parsed.answer:
                st.warning(f"The world computes `{parsed.answer}` for this question; the completions are graded "
                           f"against your `{answer}`.")
        else:
            st.caption("Not one of the world's question formats (`sum 3 8 5 2`, `count over 4 in 9 3 5`, `3x+5=17`, "
                       "`23*4`): type a gold answer to grade the completions.")
    return Pick(question, answer, None, family, None)


def choose_card(task: Task, task_spec: str, pick: Pick | None, table) -> str | None:
    """The card text: the problem's own, one of the runs' card sets, the world's library, a card file, or typed."""
    family = pick.family if pick else None
    options: dict[str, tuple[str, str]] = {}  # value -> (label, card text)
    if pick and pick.own:
        options["own"] = ("the problem's own card", pick.own)
    seen = {text for _, text in options.values()}
    for run, card_set in (common.run_card_sets(table, task_spec).items() if table is not None else []):
        for fam, cards in card_set.items():
            if family is not None and fam != family:
                continue
            for i, text in enumerate(cards):
                if text not in seen and len(options) < MAX_RUN_CARDS:
                    seen.add(text)
                    suffix = f" #{i + 1}" if len(cards) > 1 else ""
                    options[f"run:{run}:{fam}:{i}"] = (f"run {run}'s card{suffix}" + ("" if family else f" ({fam})"),
                                                       text)
    if common.is_world(task):
        from sgpo_lab.world.strategies import all_cards

        options.update({c.card_id: (c.card_id, c.text) for c in all_cards()})
    options["file"] = ("a card from a card file", "")
    options["none"] = ("no strategy", "")
    choice = st.selectbox("Strategy card", list(options), key="ex_card", format_func=lambda c: options[c][0])
    text = options[choice][1]
    if choice == "file":
        text = file_card(family)
        if text is None:
            return None
    # Keyed by the card, so picking another card resets the editor to that card's text.
    edited = st.text_area("Card text (edit freely)", value=text, height=130,
                          key=f"ex_card_text::{choice}::{common.text_key(text)}")
    if common.is_world(task) and len(edited) <= MAX_STRATEGY:
        from sgpo_lab.world.strategies import resolve_strategy

        resolved = resolve_strategy(edited)  # "sum/left_to_right" names a card of the world's library
        if resolved != edited:
            st.caption(f"`{edited.strip()}` names the world card: {short(resolved, 300)}")
        return resolved
    return edited


def file_card(family: str | None) -> str | None:
    """A card of the problem's type from a JSONL card file (``sgpo-lab strategies extract`` or ``rank``)."""
    from sgpo_lab.cards import CardFileError

    path = st.text_input("Card file", key="ex_card_file", max_chars=MAX_PATH,
                         placeholder="/path/to/cards.jsonl (one {\"family\": ..., \"card\": ...} per line)").strip()
    if not path:
        st.info("Type the path of a card file.")
        return None
    try:
        records = common.card_file(path)
    except CardFileError as err:
        st.error(common.one_line(err))
        return None
    mine = [r for r in records if family is None or r["family"] == family]
    if not mine:
        families = ", ".join(sorted({r["family"] for r in records}))
        st.warning(f"The card file has no card for `{family}`; it has cards for: {families}.")
        return None

    def label(i: int) -> str:
        r = mine[i]
        rate = r.get("guided_pass_rate")
        return (f"{r.get('card_id') or f'card {i + 1}'} ({r['family']})"
                + (f" · guided pass rate {rate:.2f}" if isinstance(rate, (int, float)) else ""))

    return mine[st.selectbox("Card of the file", range(len(mine)), key="ex_card_pick", format_func=label)]["card"]


def short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --------------------------------------------------------------------------------------------- page


def main():
    st.title("Explore")
    st.caption("How does a strategy card change what the model writes, token by token? Tokens are coloured by "
               "KL(π(·|x, s) ‖ π(·|x)): where they light up, the strategy changes the model's mind, and that is "
               "where SGPO's distillation gradient p_t - q_t lands.")
    table = common.runs_table(quiet=True)
    spec, run = choose_model(table)
    task_spec, task = choose_task(table)
    if task is None:
        return
    if run is not None and table is not None:
        trained = table.set_index("name").loc[run, "task"]
        if trained != task_spec:
            st.caption(f"Run `{run}` was trained on `{trained}`; pick that task above for its problems and cards.")
    pick = choose_problem(task)
    card = choose_card(task, task_spec, pick, table)
    c1, c2, c3 = st.columns(3)
    n = int(c1.slider("Samples per prompt (N)", 1, 32, 8, key="ex_n"))
    seed = int(c2.number_input("Seed", 0, 10**6, 0, key="ex_seed"))
    max_new = int(c3.slider("Max new tokens", 8, 256, 96, 8, key="ex_max_new"))
    if pick is None or card is None:
        return
    if len(card) > MAX_STRATEGY:
        st.error(f"The strategy card is {len(card):,} characters long; the limit is {MAX_STRATEGY:,}.")
        return
    if spec is None:
        st.info("Choose a model above to see completions and the token-shift view.")
        return
    try:
        model, tok = common.load_model(spec)
    except ModelLoadError as err:
        st.error(f"Cannot load the model: {err}")
        return
    st.caption(f"Model: `{spec}` · {sum(p.numel() for p in model.parameters()):,} parameters · "
               f"vocabulary {len(tok)} · task `{task.name}`")
    from sgpo_lab.world.tokenizer import check_text

    try:
        check_text(tok, pick.question, what="problem")
        check_text(tok, card, what="strategy")
        show_prompts(prompter(task_spec, tok), pick.question, card)
    except ValueError as err:  # characters outside a character vocabulary, a chat template that fails
        st.error(common.one_line(err))
        return
    if not card.strip():
        st.info("No strategy: the guided prompt is the unguided one, so every shift is zero.")

    res = completions(spec, common.model_stamp(spec), task_spec, pick.question, card, n, seed, max_new)
    show_completions(res, n, task, task_spec, pick)
    show_shift(spec, task_spec, pick.question, card, res, task, pick, table)


def show_prompts(p, question: str, card: str):
    how = "the model's chat template" if p.style == "chat" else "plain text (the tokenizer has no chat template)"
    with st.expander(f"The prompts as the model sees them: {how}"):
        left, right = st.columns(2)
        left.markdown("**Guided** x, s")
        left.code(p.guided(question, card), language=None, wrap_lines=True)
        right.markdown("**Autonomous** x")
        right.code(p.autonomous(question), language=None, wrap_lines=True)


@st.cache_data(show_spinner=False, max_entries=256)
def _verdicts(task_spec: str, key: tuple, _problem: Problem | None, question: str, gold: str | None,
              texts: tuple[str, ...]) -> list[bool]:
    task = common.load_task(task_spec)
    if _problem is not None:
        return [task.correct(_problem, t) for t in texts]
    return [common.typed_correct(task, question, gold, t) for t in texts]


def verdicts(task_spec: str, pick: Pick, texts: list[str]) -> list[bool] | None:
    """Each completion verified as the task verifies (None: a typed question without a gold answer); cached,
    because some verifiers (math-verify) take milliseconds per answer."""
    if pick.problem is None and pick.gold is None:
        return None
    key = (pick.problem.id, pick.problem.split, pick.problem.answer) if pick.problem is not None else ()
    return _verdicts(task_spec, key, pick.problem, pick.question, pick.gold, tuple(texts))


def show_completions(res: dict, n: int, task: Task, task_spec: str, pick: Pick):
    cols = st.columns(2)
    world = common.is_world(task)
    texts = []
    for col, side, title in zip(cols, ("guided", "unguided"), ("With the strategy", "Without it")):
        r = res[side]
        ok = verdicts(task_spec, pick, r["samples"])
        greedy_ok = verdicts(task_spec, pick, [r["greedy"]])
        texts += [r["greedy"], *r["samples"]]
        with col:
            mark = "" if greedy_ok is None else " ✓ right" if greedy_ok[0] else " ✗ wrong"
            st.markdown(f"**{title}** (greedy){mark}")
            st.code(r["greedy"] or "(empty completion)", language=None, wrap_lines=True)
            st.caption(worldcheck.verdict_line(None if greedy_ok is None else greedy_ok[0], pick.gold, pick.question,
                                               r["greedy"], world=world))
            if ok is None:
                st.caption("Type the gold answer to score the completions.")
            else:
                st.metric(f"pass rate over {n} samples", f"{sum(ok)}/{n}",
                          help=f"temperature-1 samples that `{task.name}`'s verifier accepts "
                               f"(answer extracted as the task extracts it)")
            with st.expander(f"{n} samples"):
                rows = pd.DataFrame({"": ["✓" if v else "✗" for v in ok] if ok else ["❔"] * n,
                                     "completion": r["samples"],
                                     "answer": [task.extract_answer(t) for t in r["samples"]],
                                     "gold": [pick.gold] * n})
                if world:
                    rows["wrong steps"] = [", ".join(worldcheck.wrong_steps(pick.question, t)) for t in r["samples"]]
                st.dataframe(rows, hide_index=True)
    if world:
        notes = worldcheck.notation_notes(pick.family, texts)
        if notes:
            st.caption("How to read these: " + " ".join(notes))


def show_shift(spec: str, task_spec: str, question: str, card: str, res: dict, task: Task | None = None,
               pick: Pick | None = None, table=None):
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
            st.error(f"The completion is {len(typed):,} characters long; the limit is {MAX_COMPLETION:,}.")
            return
        completion = typed
    else:
        completion = res[which]["greedy_ids"]
    try:
        table_ = shift_table(spec, common.model_stamp(spec), task_spec, question, card, completion)
    except ValueError as err:  # empty completion, characters outside the alphabet
        st.error(common.one_line(err))
        return
    if pick is not None and task is not None:
        text = table_.attrs.get("completion") or "".join(map(str, table_["token"]))
        ok = verdicts(task_spec, pick, [text])
        st.caption("This completion: " + worldcheck.verdict_line(None if ok is None else ok[0], pick.gold, question,
                                                                 text, world=common.is_world(task)))
    vmax = None if auto else float(vmax)
    shown = vmax or default_vmax(table_[value], value)
    second = second_card(task, task_spec, pick, table, card) if task is not None else None
    pinned = st.session_state.get("ex_pin")
    if second is not None:
        try:
            other = shift_table(spec, common.model_stamp(spec), task_spec, question, second[1], completion)
        except ValueError as err:
            st.error(common.one_line(err))
            other = None
        if other is not None:
            shown = vmax or max(shown, default_vmax(other[value], value))  # one colour range for both views
            left, right = st.columns(2)
            with left:
                st.markdown("**This card**")
                st.html(token_html(table_, value, vmax=shown, pinned=pinned))
                st.caption(f"mean KL {table_['kl'].mean():.3f} · largest {table_['kl'].max():.2f} at "
                           f"{str(table_.loc[table_['kl'].idxmax(), 'token'])!r}")
            with right:
                st.markdown(f"**{second[0]}**")
                st.html(token_html(other, value, vmax=shown, pinned=pinned))
                st.caption(f"mean KL {other['kl'].mean():.3f} · largest {other['kl'].max():.2f} at "
                           f"{str(other.loc[other['kl'].idxmax(), 'token'])!r}")
    else:
        st.html(token_html(table_, value, vmax=shown, pinned=pinned))
    st.caption(f"{len(table_)} tokens · colour range {shown:.3g} (auto: {default_vmax(table_[value], value):.3g}) · "
               f"mean KL {table_['kl'].mean():.3f} · hover a token for its probability with and without the strategy "
               "and both top-k lists; click a bar below (or pick a position) to pin a token.")
    pin_panel(table_)


def pin_panel(table_):
    """Per-token KL as bars (click one to pin it) and the pinned token's two top-k distributions as bars."""
    import plotly.graph_objects as go

    labels = [f"{p}:{display_token(str(t))}" for p, t in zip(table_["position"], table_["token"])]
    bars = go.Figure(go.Bar(x=labels, y=table_["kl"], marker_color="#D55E00",
                            hovertemplate="%{x}<br>KL %{y:.3f}<extra></extra>"))
    bars.update_layout(height=230, margin={"l": 50, "r": 10, "t": 10, "b": 60}, yaxis_title="KL",
                       xaxis={"tickangle": -60, "type": "category"}, dragmode=False)
    event = common.show(bars, "ex_kl_bars", data=table_.drop(columns=[c for c in table_.columns
                                                                      if c.startswith("top_")]),
                        name="token-shift", on_select="rerun", selection_mode="points")
    positions = table_["position"].tolist()
    clicked = (event.selection.points if event and getattr(event, "selection", None) else []) or []
    if clicked:
        index = clicked[0].get("point_index", clicked[0].get("pointIndex"))
        if index is not None and 0 <= int(index) < len(positions):
            st.session_state.ex_pin = positions[int(index)]
    if st.session_state.get("ex_pin") not in positions:
        st.session_state.ex_pin = int(table_.loc[table_["kl"].idxmax(), "position"])
    pos = st.selectbox("Pinned token", positions, key="ex_pin",
                       format_func=lambda p: f"{p}: {display_token(str(table_.set_index('position').loc[p, 'token']))}"
                                             f"  (KL {table_.set_index('position').loc[p, 'kl']:.3f})")
    row = table_.set_index("position").loc[pos]
    row = {**row.to_dict(), "position": pos}
    st.markdown(f"**Pinned: {display_token(str(row['token']))!r} at position {pos}**: p {row['p_unguided']:.3f} "
                f"without the card, {row['p_guided']:.3f} with it, KL {row['kl']:.2f}. The bars are the two next-token "
                "distributions at this position (the token itself in orange).")
    common.show(topk_figure(row), "ex_topk", name="pinned-token-topk")


def second_card(task: Task, task_spec: str, pick: Pick | None, table, card: str) -> tuple[str, str] | None:
    """Another card of the problem's type, to see the same completion's shift under both side by side."""
    family = pick.family if pick else None
    options: dict[str, tuple[str, str]] = {"": ("(none: one view)", "")}
    if common.is_world(task):
        from sgpo_lab.world.strategies import all_cards

        for c in all_cards():
            if (family is None or c.card_id.split("/")[0] == family) and c.text != card:
                options[c.card_id] = (f"card {c.card_id}", c.text)
    for run, card_set in (common.run_card_sets(table, task_spec).items() if table is not None else []):
        for fam, cards in card_set.items():
            for i, text in enumerate(cards):
                if (family is None or fam == family) and text != card and len(options) < 40:
                    options.setdefault(f"run:{run}:{fam}:{i}", (f"run {run}'s card ({fam})", text))
    options["none"] = ("no card at all", "")
    if st.session_state.get("ex_card2") not in options:
        st.session_state.pop("ex_card2", None)
    choice = st.selectbox("Side by side with another card (the same completion, scored under both)", list(options),
                          key="ex_card2", format_func=lambda c: options[c][0])
    return None if choice == "" else options[choice]


common.guard(main)
