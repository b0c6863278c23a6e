"""Any reasoning-gym dataset as a Task: ``reasoning-gym:DATASET`` (e.g. ``reasoning-gym:basic_arithmetic``).

Splits come from disjoint seeds: ``train`` is the dataset drawn with seed TRAIN_SEED, ``id`` with seed ID_SEED
(ID_SIZE problems at most). A train question that is also among the ID_SIZE id questions is dropped from
train, so the two never share a question. There is no ``ood`` split. One family: the dataset's name.

Each question is the dataset's question plus ANSWER_INSTRUCTION (the final answer goes between ``<answer>``
and ``</answer>``, the format reasoning-gym's own prompts use; it also holds multi-line answers such as grids).
The dataset's ``score_answer(answer, entry)`` grades; correct is a score of 1.0, because some datasets give
partial credit (an answer that contains the gold one among other text scores below 1). reasoning-gym has no
worked solutions, so this task has no expert responses (no sft, sft_grpo or luffy on it).

This file knows reasoning-gym and the Task interface: no model, tokenizer or trainer.
"""

from __future__ import annotations

import difflib
import re
import threading
from typing import Any

from sgpo_lab.tasks.answers import extract_final_answer
from sgpo_lab.tasks.base import Problem, Task, TaskError, check_count

TRAIN_SEED = 1
ID_SEED = 2
ID_SIZE = 200  # the id split's problems at most: train is checked against all of them
TRAIN_MAX = 4096  # train problems at most (the world's bound too)
# how far down the train stream to look for TRAIN_MAX problems once id duplicates are dropped; reasoning-gym
# builds entries lazily by index, so a dataset this size costs nothing until an entry is read
_TRAIN_STREAM = TRAIN_MAX + ID_SIZE
ANSWER_INSTRUCTION = "Write the final answer between <answer> and </answer>."

_ANSWER_OPEN = re.compile(r"<answer>", re.IGNORECASE)


def dataset_names() -> list[str]:
    """Every dataset reasoning-gym registers, sorted."""
    from reasoning_gym.factory import DATASETS

    return sorted(DATASETS)


def dataset_title(name: str) -> str:
    """The "Problem type" line of a dataset's card: ``basic_arithmetic`` -> ``Basic arithmetic``."""
    return name.replace("_", " ").strip().capitalize()


def generic_card(name: str) -> str:
    """A neutral card in the paper's form for any dataset; users bring better ones with card files."""
    steps = ("restate what is asked and the form the answer must take",
             "work through it one step at a time, writing each intermediate result",
             "check the result against every condition of the question",
             "write the final answer between <answer> and </answer>")
    return (f"Problem type: {dataset_title(name)}\nStrategy: work it out step by step, then check it\n"
            "Key steps: " + " ".join(f"{i}. {step}" for i, step in enumerate(steps, 1)))


def extract_tagged_answer(completion: str) -> str | None:
    """The answer in the last ``<answer>...</answer>``; an unclosed last ``<answer>`` runs to the end of the text
    (a model cut off at its token budget, or ending at EOS without the closing tag). Otherwise the shared
    ``extract_final_answer`` formats (``\\boxed{}``, ``####``, ``#``)."""
    if not isinstance(completion, str):
        return None
    opens = list(_ANSWER_OPEN.finditer(completion))
    if opens:
        rest = completion[opens[-1].end():]
        close = rest.lower().find("</answer>")
        found = (rest if close == -1 else rest[:close]).strip()
        if found:
            return found
    return extract_final_answer(completion)


class ReasoningGymTask(Task):
    """One reasoning-gym dataset: train and id splits from disjoint seeds, graded by its own ``score_answer``."""

    splits = ("train", "id")
    threshold = 1.0

    def __init__(self, dataset: str):
        name = (dataset or "").strip()
        known = dataset_names()
        if name not in known:
            close = difflib.get_close_matches(name, known, n=4, cutoff=0.5) or known[:4]
            raise TaskError(f"unknown reasoning-gym dataset {name!r}; expected a registered name such as "
                            f"{', '.join(close)} ('sgpo-lab tasks' lists task kinds)")
        self.dataset = name
        self.name = f"reasoning-gym:{name}"
        self.families = (name,)
        self.description = (f"reasoning-gym's {name} (train seed {TRAIN_SEED}, id seed {ID_SEED}, at most "
                            f"{ID_SIZE} id problems), graded by its score_answer, correct at 1.0; no expert responses")
        self._card = generic_card(name)
        self._lock = threading.Lock()
        self._sources: dict[str, Any] = {}  # split -> the reasoning-gym dataset object
        self._built: dict[str, list[Problem]] = {"train": [], "id": []}  # split -> its problems so far, in order
        self._next: dict[str, int] = {"train": 0, "id": 0}  # split -> next index of its seed's stream to read
        self._id_questions: set[str] | None = None
        self._source("id")  # a dataset that cannot be built with a size and a seed fails here, not mid-run

    # ------------------------------------------------------------------------------- problems

    def _source(self, split: str) -> Any:
        if split not in self._sources:
            import reasoning_gym

            seed, size = (ID_SEED, ID_SIZE) if split == "id" else (TRAIN_SEED, _TRAIN_STREAM)
            try:
                self._sources[split] = reasoning_gym.create_dataset(self.dataset, size=size, seed=seed)
            except Exception as err:  # its configs raise their own types; the user needs one line
                raise TaskError(f"reasoning-gym dataset {self.dataset!r} cannot be built with size and seed "
                                f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                                "expected a dataset that needs no further configuration") from None
        return self._sources[split]

    def _problem(self, split: str, index: int, entry: dict) -> Problem:
        answer = entry.get("answer")
        return Problem(id=f"{self.dataset}-{split}-{index:04d}", family=self.dataset, split=split,
                       question=f"{entry['question'].rstrip()}\n{ANSWER_INSTRUCTION}",
                       # some datasets accept many answers and store none (any valid colouring): "" then
                       answer="" if answer is None else str(answer),
                       expert_response=None, strategy=self._card, data=entry)

    def _extend(self, split: str, n: int) -> None:
        """Read the split's seed stream until it holds ``n`` problems (or the stream ends)."""
        source, built = self._source(split), self._built[split]
        taken = self._id_question_set() if split == "train" else set()
        while len(built) < n and self._next[split] < len(source):
            entry = source[self._next[split]]
            self._next[split] += 1
            if entry["question"] in taken:
                continue  # an id question: train must not hold it
            built.append(self._problem(split, len(built), entry))
        if split == "train" and taken & {p.data["question"] for p in built}:
            raise TaskError(f"reasoning-gym {self.dataset!r}: a train question is also an id question; "
                            "expected disjoint splits")

    def _id_question_set(self) -> set[str]:
        if self._id_questions is None:
            self._extend("id", ID_SIZE)
            self._id_questions = {p.data["question"] for p in self._built["id"]}
        return self._id_questions

    def problems(self, split: str, n: int, *, families: list[str] | None = None) -> list[Problem]:
        self.check_split(split)
        check_count(n)
        limit = ID_SIZE if split == "id" else TRAIN_MAX
        if n > limit:
            raise TaskError(f"{n} {split} problems is too many for {self.name}; expected at most {limit}")
        fams = self.check_families(families)
        if not fams:
            return []
        # each split is built once, as a prefix that grows: problems(split, n) is the first n, for any n
        with self._lock:
            self._extend(split, n)
            return list(self._built[split][:n])

    def split_size(self, split: str, family: str) -> int | None:
        return ID_SIZE if split == "id" else None

    def find(self, problem_id: str) -> Problem | None:
        head, _, index = problem_id.strip().rpartition("-")
        dataset, _, split = head.rpartition("-")
        if dataset != self.dataset or split not in self.splits or not index.isdigit():
            return None
        i = int(index)
        if i >= (ID_SIZE if split == "id" else TRAIN_MAX):
            return None
        found = self.problems(split, i + 1)
        return found[i] if i < len(found) else None

    # ------------------------------------------------------------------------------- grading

    def extract_answer(self, completion: str) -> str | None:
        return extract_tagged_answer(completion)

    def score(self, problem: Problem, completion: str) -> float:
        answer = self.extract_answer(completion)
        if answer is None or not isinstance(problem.data, dict):
            return 0.0
        try:
            score = float(self._source(problem.split).score_answer(answer, problem.data))
        except Exception:  # a dataset's verifier that crashes on a model's odd answer: a wrong answer
            return 0.0
        return min(max(score, 0.0), 1.0)

    # ------------------------------------------------------------------------------- cards and experts

    def has_experts(self) -> bool:
        return False
