"""Strategy cards for any task, made as the paper makes them, and ranked by a measured criterion.

    extract_cards   a strong model reads a few solved train problems of each type and writes k candidate
                    cards "Problem type: ... / Strategy: ... / Key steps: 1. ... 2. ..." with every number
                    stripped (the Strategy World's rule-based solver serves when no model is given);
    rank_cards      each candidate's guided pass rate of the student on held-out problems, best first;
    write_card_file the JSONL card file a run reads (``sgpo_lab.cards.read_card_file`` reads it back).

Held-out problems are never evaluation problems, nor the train problems a run draws by default: for the world
they are drawn with a seed of their own (``HELDOUT_SEED``), skipping questions of its id split and first train
problems; for any other task they are the tail of the train split (``heldout_problems``).
``rank_candidates`` / ``rank_all`` rank the world's own candidates (``sgpo-lab rank-strategies``).

This file knows tasks, prompts, sampling and evaluation; it knows nothing of training, runs or the CLI.
"""

from __future__ import annotations

import json
import random
import re
from functools import lru_cache
from pathlib import Path

import torch
from tqdm.auto import tqdm

from sgpo_lab import rollout
from sgpo_lab.cards import MAX_CARD_CHARS
from sgpo_lab.evaluate import MAX_NEW_TOKENS, correct_counts
from sgpo_lab.prompts import Prompter
from sgpo_lab.tasks import Problem, Task, TaskError, load_task
from sgpo_lab.world import problems as W
from sgpo_lab.world.strategies import extract_candidates
from sgpo_lab.world.tasks import FAMILIES, detect_strategy

HELDOUT_SEED = W.WORLD_SEED + 1  # the world's held-out problems: same sizes as train, a seed no split uses
# A world family's question space is small (mul has 147 ID-size questions): a seed of its own does not keep
# held-out questions out of the id split or the train problems a run draws (64 per family by default), so
# those are skipped by question.
WORLD_TRAIN_GUARD = 64
# For a task whose train split has no fixed size, held-out problems start after this many train problems per
# type: far past the 64 a run trains on by default (a run with train_problems above it would overlap).
HELDOUT_OFFSET = 1024
WORLD_SOLVER = "world-solver"  # the strong_model of cards the world's rule-based solver wrote

MAX_K = 64
MAX_PROBLEMS_PER_TYPE = 64
MAX_RANK_PROBLEMS = 1000
MAX_SAMPLES = 64
MAX_TOKENS = 4096

CARD_FORM = "'Problem type / Strategy / Key steps'"
EXTRACTION_INSTRUCTION = (
    "Below is a problem and a correct solution. Abstract the solution into a strategy card that would help "
    "with any problem of the same type.\n"
    "Write exactly three lines and nothing else:\n"
    "Problem type: <the kind of problem, in words>\n"
    "Strategy: <the idea of the method, in words>\n"
    "Key steps: 1. <first step> 2. <second step> 3. <third step>\n"
    "Use no numbers, no digits and not the answer: the card must fit every problem of this type."
)


def check_range(value: int, low: int, high: int, what: str) -> int:
    """A user-given size, bounded before any work starts (one-line ValueError otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what} must be an integer from {low} to {high}, got {value!r}")
    return value


def is_world(task: Task) -> bool:
    return task.name == "world" or task.name.startswith("world:")


# --------------------------------------------------------------------------------------------- parsing

_LABEL = r"[*_#\s]*{}[*_\s]*:[*_\s]*"  # tolerates markdown around a label ("**Strategy:**")
_FIELDS = (r"problem\s+type", r"strategy", r"key\s+steps")  # in the order a card holds them
_FIELD_RE = re.compile("|".join(f"(?P<f{i}>" + _LABEL.format(name) + ")" for i, name in enumerate(_FIELDS)),
                       re.IGNORECASE)
_STEP_MARK = re.compile(r"(?:^|(?<=\s))(?:\d{1,2}[.)]|[-*\u2022])\s+")
_PLACEHOLDER = re.compile(r"^<[^<>]*>$")
_KEY_STEP_MARKERS = re.compile(r"(?:^|(?<=\s))\d{1,2}\. ")


def _one_line(text: str) -> str:
    return " ".join(text.replace("*", " ").split()).strip(" .;:-")


def parse_card(text: str) -> str | None:
    """The card in a model's output, as three lines ``Problem type: ...``, ``Strategy: ...``, ``Key steps: 1. ...``.

    The fields are read in that order (case and markdown around the labels are tolerated); the card ends at the
    first blank line after the key steps or at a second card. Key steps become "1. a 2. b ..." whether they were
    numbered, bulleted or plain. None when a field is missing, empty, an unfilled ``<placeholder>`` or the card
    is too long.
    """
    found: dict[int, tuple[int, int]] = {}
    for m in _FIELD_RE.finditer(text or ""):
        i = int(next(k for k, v in m.groupdict().items() if v is not None)[1:])
        if i in found:
            if i == 0 and 2 in found:  # a second card begins: the first one is complete
                break
            continue
        if i != len(found):  # out of order (a key step before the strategy): not the card's shape
            return None
        found[i] = m.span()
    if len(found) < 3:
        return None
    ends = [found[1][0], found[2][0], len(text)]
    raw = [text[found[i][1]:ends[i]] for i in range(3)]
    raw[2] = re.split(r"\n\s*\n|(?i:problem\s+type\s*:)", raw[2].lstrip(), maxsplit=1)[0]
    kind, idea = _one_line(raw[0]), _one_line(raw[1])
    steps = [_one_line(s) for s in _STEP_MARK.split(" ".join(raw[2].split()))]
    steps = [s for s in steps if s]
    if not kind or not idea or not steps or any(_PLACEHOLDER.match(f) for f in (kind, idea, *steps)):
        return None
    card = (f"Problem type: {kind}\nStrategy: {idea}\nKey steps: "
            + " ".join(f"{n}. {s}" for n, s in enumerate(steps, 1)))
    return card if len(card) <= MAX_CARD_CHARS else None


def card_leaks(card: str, problem: Problem) -> str | None:
    """Why a card gives away its source problem (None: it does not).

    A card may hold no digit at all but the "1. 2. 3." markers of its key steps; in particular none of the
    question's numbers. The gold answer may not appear as a word either (a number, or a text of three characters
    or more: shorter answers such as "a" or "no" are too common as words to test).
    """
    answer = (problem.answer or "").strip()
    lowered = card.lower()
    testable = len(answer) >= 3 or re.fullmatch(r"-?\d+(?:\.\d+)?", answer)
    if testable and re.search(rf"(?<!\w){re.escape(answer.lower())}(?!\w)", lowered):
        return f"it holds the gold answer {answer!r}"
    lines = card.split("\n")
    body = "\n".join(_KEY_STEP_MARKERS.sub(" ", ln) if ln.startswith("Key steps:") else ln for ln in lines)
    digits = re.findall(r"\d+(?:\.\d+)?", body)
    from_question = [d for d in digits if re.search(rf"(?<![\d.]){re.escape(d)}(?![\d]|\.\d)", problem.question)]
    if from_question:
        return f"it copies the number {from_question[0]} from the question"
    if digits:
        return f"it holds the number {digits[0]}"
    return None


# ------------------------------------------------------------------------------------------ extraction

def extraction_prompt(problem: Problem, solution: str) -> str:
    """The instruction a strong model reads to abstract one solved problem into a card (before rendering)."""
    return f"{EXTRACTION_INSTRUCTION}\n\nProblem: {problem.question.strip()}\nSolution: {solution.strip()}"


def _render(prompter: Prompter, text: str) -> str:
    """The extraction instruction as the strong model's prompt, opened with the card's first label.

    Through the chat template (as a user turn) when the prompter is in chat style, else as plain text; either
    way the model continues after "Problem type:", which keeps small models on the card's form.
    """
    opening = "Problem type:"
    if prompter.style == "chat":
        return prompter.autonomous(text) + opening
    return f"{text}\n\n{opening}"


def _world_cards(task: Task, problems_per_type: int) -> list[dict]:
    """The world's rule-based strong solver: its expert responses read by ``world.strategies.extract_candidates``."""
    records = []
    for family in task.families:
        problems = task.problems("train", problems_per_type, families=[family])
        cards = extract_candidates(family, [(p.question, task.expert(p)) for p in problems])
        for n, card in enumerate(cards):
            used = [p for p in problems if detect_strategy(family, task.expert(p), p.question) == card.strategy]
            records.append({"family": family, "card": card.text, "card_id": f"{family}/cand-{n}",
                            "source_problem": (used or problems)[0].id, "source": "expert",
                            "strong_model": WORLD_SOLVER, "world_card_id": card.card_id})
    return records


def _solutions(task: Task, model, tokenizer, problems: list[Problem], prompter: Prompter, *, tries: int,
               generator: torch.Generator, max_new_tokens: int) -> list[tuple[Problem, str, str]]:
    """(problem, solution, source) for each problem solved: its expert response, else a verified model answer."""
    solved, unsolved = [], []
    for p in problems:
        solution = None
        if task.has_experts():
            try:
                solution = task.expert(p)
            except TaskError:  # this problem has no expert response: the strong model solves it
                pass
        if solution:
            solved.append((p, solution, "expert"))
        else:
            unsolved.append(p)
    if unsolved:
        prompts = [prompter.autonomous(p.question) for p in unsolved for _ in range(tries)]
        out = rollout.sample(model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=1.0,
                             generator=generator)
        for i, p in enumerate(unsolved):
            right = [t for t in out.texts[i * tries:(i + 1) * tries] if task.correct(p, t)]
            if right:
                solved.append((p, right[0].strip(), "strong-model"))
    order = {p.id: i for i, p in enumerate(problems)}
    return sorted(solved, key=lambda s: order[s[0].id])


def extract_cards(task: Task | str, strong_model, strong_tokenizer, *, k: int = 5, problems_per_type: int = 4,
                  seed: int = 0, max_new_tokens: int = 160, prompter: Prompter | None = None,
                  strong_model_name: str | None = None, solve_max_new_tokens: int = 512) -> list[dict]:
    """Candidate strategy cards for every problem type of ``task``: up to ``k`` per type, as card-file records.

    Per type, the first ``problems_per_type`` train problems are solved (the task's expert response, else the
    strong model's own answer, kept only when it verifies; k samples each), and the strong model writes ``k``
    cards (temperature 1, seeded), each from one solved problem in turn. A card that does not parse or that
    leaks its problem (``card_leaks``) is dropped, and so is a repeat. Records: ``family``, ``card``,
    ``card_id`` (``family/cand-N``, N the sample it came from), ``source_problem``, ``source``
    (``expert`` | ``strong-model``) and ``strong_model``.

    With no strong model the world's rule-based solver serves (``world.strategies.extract_candidates``);
    any other task needs a model. A type with no valid card after all k tries is a one-line ValueError.
    """
    task = load_task(task)
    check_range(k, 1, MAX_K, "candidates per type (k)")
    check_range(problems_per_type, 1, MAX_PROBLEMS_PER_TYPE, "problems per type")
    check_range(max_new_tokens, 1, MAX_TOKENS, "max new tokens")
    check_range(solve_max_new_tokens, 1, MAX_TOKENS, "max new tokens of a solution")
    if strong_model is None:
        if is_world(task):
            return _world_cards(task, problems_per_type)
        raise ValueError(f"task {task.name!r} has no rule-based card writer; expected a strong model "
                         "(--model: a local HF model dir) to write its cards")
    if strong_tokenizer is None:
        raise ValueError("a strong model was given without its tokenizer; expected (model, tokenizer) from load_model")
    name = strong_model_name or str(getattr(getattr(strong_model, "config", None), "_name_or_path", "") or "strong")
    prompter = prompter or Prompter.for_task(task, strong_tokenizer)
    generator = torch.Generator().manual_seed(seed)
    records: list[dict] = []
    for family in tqdm(task.families, desc="extracting cards", unit="type", leave=False):
        problems = task.problems("train", problems_per_type, families=[family])
        solved = _solutions(task, strong_model, strong_tokenizer, problems, prompter, tries=k, generator=generator,
                            max_new_tokens=solve_max_new_tokens)
        if not solved:
            raise ValueError(f"the strong model solved none of the {len(problems)} train problems of type {family!r} "
                             f"in {k} tries each; expected a model that solves some (or a task with expert responses)")
        sources = [solved[i % len(solved)] for i in range(k)]
        prompts = [_render(prompter, extraction_prompt(p, solution)) for p, solution, _ in sources]
        out = rollout.sample(strong_model, strong_tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=1.0,
                             generator=generator)
        kept: dict[str, dict] = {}
        unparsed = leaked = 0
        for i, ((p, _, source), text) in enumerate(zip(sources, out.texts)):
            card = parse_card("Problem type:" + text)
            if card is None:
                unparsed += 1
            elif card_leaks(card, p) is not None:
                leaked += 1
            elif card not in kept:
                kept[card] = {"family": family, "card": card, "card_id": f"{family}/cand-{i}",
                              "source_problem": p.id, "source": source, "strong_model": name}
        if not kept:
            raise ValueError(f"the strong model wrote no card in the form {CARD_FORM} for type {family!r} in {k} "
                             f"tries ({unparsed} not in the form, {leaked} holding numbers or the answer); expected "
                             "a model that follows the instruction, try a larger --k or another model")
        records += kept.values()
    return records


# --------------------------------------------------------------------------------------------- ranking

def heldout_problems(task: Task, family: str, n: int) -> list[Problem]:
    """``n`` problems of one type that are neither evaluation problems nor the train problems a run draws by default.

    World: drawn like train problems with ``HELDOUT_SEED``, skipping every question of the id split and of the
    first ``WORLD_TRAIN_GUARD`` train problems (a seed alone did not keep them apart: mul's space is small).
    Other tasks: the tail of the train split (its last ``n`` problems), so the id/ood evaluation splits stay
    untouched and card extraction (which reads the first problems) never sees them; a run that trains on the
    whole train split does see them. A train split without a fixed size gives the ``n`` problems after the first
    ``HELDOUT_OFFSET``.
    """
    if is_world(task):
        return [Problem(id=f"{family}-heldout-{i:04d}", family=family, split="train", question=p.question,
                        answer=p.answer, expert_response=p.expert_response, strategy=p.strategy, data=p.strategy_id)
                for i, p in enumerate(_world_heldout(family, n))]
    size = task.split_size("train", family)
    if size is None:  # a generated split: problems far past those a run trains on
        return task.problems("train", HELDOUT_OFFSET + n, families=[family])[HELDOUT_OFFSET:]
    if size <= n:
        raise ValueError(f"type {family!r} of task {task.name!r} has {size} train problems, too few to hold out "
                         f"{n} and keep any for extraction; expected fewer held-out problems (--problems)")
    return task.problems("train", size, families=[family])[size - n:]


@lru_cache(maxsize=64)
def _world_heldout(family: str, n: int) -> tuple[W.Problem, ...]:
    """``n`` world problems drawn like train problems with ``HELDOUT_SEED``, none a question of the id split or of
    the first ``WORLD_TRAIN_GUARD`` train problems (nor a repeat)."""
    taken = {p.question for split, m in (("id", W.ID_SIZE), ("train", WORLD_TRAIN_GUARD))
             for p in W.make_problems(family, split, m)}
    rng = random.Random(f"{HELDOUT_SEED}/{family}/train")
    out: list[W.Problem] = []
    for _ in range(50 * n + 1000):
        if len(out) == n:
            break
        p = W.sample_problem(family, "train", rng, len(out))
        if p.question not in taken:
            taken.add(p.question)
            out.append(p)
    if len(out) < n:
        raise ValueError(f"the world's type {family!r} has fewer than {n} problems outside its id split and its "
                         f"first {WORLD_TRAIN_GUARD} train problems; expected fewer held-out problems (--problems)")
    return tuple(out)


def rank_cards(task: Task | str, model, tokenizer, records: list[dict], *, n_problems: int = 16, n_samples: int = 4,
               seed: int = 0, prompter: Prompter | None = None, max_new_tokens: int = MAX_NEW_TOKENS) -> list[dict]:
    """The records with the student's ``guided_pass_rate`` and its ``unguided_pass_rate``, best first per type.

    Every card of a type is measured on the same ``n_problems`` held-out problems (``heldout_problems``) with
    ``n_samples`` temperature-1 samples each and a generator seeded with ``seed`` afresh, so two cards differ only
    by their text. The unguided pass rate (no card) is the type's baseline, the same in each of its records.
    Types come in the task's order; ties keep the input order.
    """
    task = load_task(task)
    check_range(n_problems, 1, MAX_RANK_PROBLEMS, "held-out problems per type")
    check_range(n_samples, 1, MAX_SAMPLES, "samples per problem")
    check_range(max_new_tokens, 1, MAX_TOKENS, "max new tokens")
    if not records:
        raise ValueError("no cards to rank; expected card records such as {'family': ..., 'card': ...}")
    unknown = sorted({r["family"] for r in records} - set(task.families))
    if unknown:
        raise ValueError(f"cards of problem type(s) {unknown} that task {task.name!r} does not have; "
                         f"expected some of: {', '.join(task.families)}")
    prompter = prompter or Prompter.for_task(task, tokenizer)
    common = {"n": n_samples, "task": task, "prompter": prompter, "max_new_tokens": max_new_tokens}
    families = [f for f in task.families if any(r["family"] == f for r in records)]
    ranked: list[dict] = []
    bar = tqdm(total=len(records) + len(families), desc="ranking cards", unit="card", leave=False)
    for family in families:
        heldout = heldout_problems(task, family, n_problems)
        total = n_samples * len(heldout)
        unguided = sum(correct_counts(model, tokenizer, heldout, guided=False,
                                      generator=torch.Generator().manual_seed(seed), **common)) / total
        bar.update()
        rows = []
        for rec in (r for r in records if r["family"] == family):
            card = {p.id: rec["card"] for p in heldout}
            counts = correct_counts(model, tokenizer, heldout, guided=True, strategies=card,
                                    generator=torch.Generator().manual_seed(seed), **common)
            rows.append({**rec, "guided_pass_rate": sum(counts) / total, "unguided_pass_rate": unguided})
            bar.update()
        ranked += sorted(rows, key=lambda r: -r["guided_pass_rate"])
    bar.close()
    return ranked


def rank_candidates(model, tokenizer, family: str, *, n_problems: int = 16, n_samples: int = 4,
                    seed: int = 0) -> list[dict]:
    """The world's candidate cards of ``family`` (from the held-out problems' expert responses), best first.

    Rows are the world's ``StrategyCard`` dicts (family, strategy, style, text, card_id) with ``guided_pass_rate``,
    measured by ``rank_cards``.
    """
    task = load_task("world")
    check_range(n_problems, 1, MAX_RANK_PROBLEMS, "held-out problems per type")
    heldout = heldout_problems(task, family, n_problems)
    cards = extract_candidates(family, [(p.question, p.expert_response) for p in heldout])
    records = [{"family": family, "card": c.text, "card_id": c.card_id} for c in cards]
    scored = {r["card_id"]: r["guided_pass_rate"]
              for r in rank_cards(task, model, tokenizer, records, n_problems=n_problems, n_samples=n_samples,
                                  seed=seed)}
    return sorted(({**c.to_dict(), "guided_pass_rate": scored[c.card_id]} for c in cards),
                  key=lambda r: -r["guided_pass_rate"])


def rank_all(model, tokenizer, **kwargs) -> dict[str, list[dict]]:
    """The ranking of every world family's candidates (``sgpo-lab rank-strategies``)."""
    return {family: rank_candidates(model, tokenizer, family, **kwargs) for family in FAMILIES}


# ---------------------------------------------------------------------------------------------- files

def write_card_file(path: str | Path, records: list[dict]) -> Path:
    """Write card records as a JSONL card file (one object per line), the format ``sgpo_lab.cards`` reads."""
    for n, rec in enumerate(records, 1):
        if not isinstance(rec.get("family"), str) or not isinstance(rec.get("card"), str) or not rec["card"].strip():
            raise ValueError(f"card record {n} lacks a string 'family' and a non-empty 'card'; "
                             'expected e.g. {"family": "sum", "card": "Problem type: ..."}')
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records))
    return path
