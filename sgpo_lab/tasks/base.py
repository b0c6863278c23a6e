"""The task interface: what the trainer, evaluator, probes, ``shifts``, the CLI and the app receive.

A ``Task`` is a value, not an import. It holds:

- problems per split (``train``, ``id`` and, where it exists, ``ood``), as ``Problem`` records;
- a verifier that gets the whole problem and a completion and returns a score, with the correctness
  threshold that turns a score into the binary reward R(y, a*) of RL (``score`` / ``correct``);
- the strategy card of each problem, or of its type (``card``);
- the answer extractor (``extract_answer``);
- the expert response of a problem where the task has them (``expert``; SFT and LUFFY need them).

How a question and a card become a prompt (plain text or the model's chat template) is the
``Prompter``'s job (``sgpo_lab.prompts``): it depends on the tokenizer, not on the task.

The Strategy World is one Task (``tasks.world``); ``reasoning-gym:DATASET``, ``jsonl:PATH`` and
``module:function`` are others (``tasks.load_task``). This file knows no model, tokenizer or trainer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

SPLITS = ("train", "id", "ood")
MAX_PROBLEMS = 100_000  # problems a task is ever asked for at once: every loop over a user-given size is bounded


class TaskError(ValueError):
    """A task that cannot be built or used as asked (one line: what was wrong, what was expected)."""


@dataclass(frozen=True)
class Problem:
    """One problem of any task.

    ``family`` is the problem type: the key of its strategy card, and the grouping of every per-type
    view (the Strategy World's four families; a reasoning-gym dataset's name; a JSONL file's ``type``).
    ``strategy`` is the task's own card text for this problem ("" when the task has none).
    ``data`` is what the task's verifier needs beyond the gold answer (a reasoning-gym entry); not compared.
    """

    id: str
    family: str
    split: str
    question: str
    answer: str
    expert_response: str | None = None
    strategy: str = ""
    data: Any = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body.pop("data")
        return body


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise TaskError(f"unknown split {split!r}; expected one of: {', '.join(SPLITS)}")
    return split


def check_count(n: int, what: str = "problems") -> int:
    """A user-given problem count, bounded before any work starts."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0 or n > MAX_PROBLEMS:
        raise TaskError(f"number of {what} must be an integer from 0 to {MAX_PROBLEMS}, got {n!r}")
    return n


class Task:
    """A task: problems, verifier, cards, answer extractor, expert responses. Subclass and override.

    Attributes every task sets: ``name`` (the spec that rebuilds it, e.g. ``reasoning-gym:basic_arithmetic``),
    ``families`` (problem types, in display order), ``splits`` (those it has), ``threshold`` (a score at or
    above it is correct).
    """

    name: str = "task"
    description: str = ""
    families: tuple[str, ...] = ()
    splits: tuple[str, ...] = ("train", "id")
    threshold: float = 1.0
    # the plain prompt's parts: "<card>\n" + question_prefix + question + answer_prefix (see sgpo_lab.prompts)
    question_prefix: str = "Q: "
    answer_prefix: str = "\nA:"

    # ------------------------------------------------------------------------------- problems

    def problems(self, split: str, n: int, *, families: list[str] | None = None) -> list[Problem]:
        """``n`` problems of each family in ``families`` (all by default), family after family; deterministic."""
        raise NotImplementedError

    def split_size(self, split: str, family: str) -> int | None:
        """How many problems a split holds per family (None: as many as asked for)."""
        return None

    def find(self, problem_id: str) -> Problem | None:
        """The problem with this id, or None if ``problem_id`` is not one of this task's ids."""
        return None

    # ------------------------------------------------------------------------------- grading

    def extract_answer(self, completion: str) -> str | None:
        """The final answer written in a completion (None: it wrote none)."""
        raise NotImplementedError

    def score(self, problem: Problem, completion: str) -> float:
        """The verifier: a score of the completion against the whole problem (1.0 = fully right)."""
        raise NotImplementedError

    def correct(self, problem: Problem, completion: str) -> bool:
        """R(y, a*) in {0, 1}: the score reaches the task's correctness threshold."""
        return self.score(problem, completion) >= self.threshold

    # ------------------------------------------------------------------------------- cards and experts

    def card(self, problem: Problem) -> str:
        """The task's own strategy card for a problem ("" when it has none; a run may bring cards)."""
        return problem.strategy

    def has_experts(self) -> bool:
        return True

    def expert(self, problem: Problem) -> str:
        """The strong model's solution to a problem (SFT and LUFFY imitate it)."""
        if not problem.expert_response:
            raise TaskError(f"task {self.name!r} has no expert response for problem {problem.id!r}; "
                            "expected a task with expert responses (e.g. a JSONL file with an 'expert' field) "
                            "for sft, sft_grpo and luffy")
        return problem.expert_response

    # ------------------------------------------------------------------------------- helpers

    def check_families(self, families: list[str] | None) -> list[str]:
        """``families`` (all of the task's by default), each checked against the task's own."""
        if not families:
            return list(self.families)
        unknown = [f for f in families if f not in self.families]
        if unknown:
            raise TaskError(f"task {self.name!r} has no problem type(s) {unknown}; "
                            f"expected some of: {', '.join(self.families)}")
        return list(families)

    def check_split(self, split: str) -> str:
        check_split(split)
        if split not in self.splits:
            raise TaskError(f"task {self.name!r} has no {split!r} split; expected one of: {', '.join(self.splits)}")
        return split

    def describe(self) -> dict[str, Any]:
        """What ``sgpo-lab tasks`` and the app show of a task."""
        return {"task": self.name, "families": list(self.families), "splits": list(self.splits),
                "threshold": self.threshold, "experts": self.has_experts(), "description": self.description}


@dataclass
class FunctionTask(Task):
    """A task assembled from plain functions and lists: the easy way to write a ``module:function`` task.

    ``problems_by_split`` maps each split to its problems; ``score_fn(problem, completion) -> float``.
    """

    name: str = "custom"
    problems_by_split: dict[str, list[Problem]] = field(default_factory=dict)
    score_fn: Callable[[Problem, str], float] | None = None
    extract_fn: Callable[[str], str | None] | None = None
    threshold: float = 1.0
    description: str = ""

    def __post_init__(self) -> None:
        if not self.problems_by_split.get("train"):
            raise TaskError(f"task {self.name!r} has no train problems; expected problems_by_split['train']")
        if self.score_fn is None:
            raise TaskError(f"task {self.name!r} has no verifier; expected score_fn(problem, completion) -> float")
        self.splits = tuple(s for s in SPLITS if self.problems_by_split.get(s))
        seen: dict[str, None] = {}
        for ps in self.problems_by_split.values():
            for p in ps:
                seen.setdefault(p.family, None)
        self.families = tuple(seen)

    def problems(self, split: str, n: int, *, families: list[str] | None = None) -> list[Problem]:
        self.check_split(split)
        check_count(n)
        out = []
        for fam in self.check_families(families):
            out += [p for p in self.problems_by_split[split] if p.family == fam][:n]
        return out

    def split_size(self, split: str, family: str) -> int | None:
        return sum(p.family == family for p in self.problems_by_split.get(split, []))

    def find(self, problem_id: str) -> Problem | None:
        return next((p for ps in self.problems_by_split.values() for p in ps if p.id == problem_id), None)

    def extract_answer(self, completion: str) -> str | None:
        if self.extract_fn is not None:
            return self.extract_fn(completion)
        from sgpo_lab.tasks.answers import extract_final_answer

        return extract_final_answer(completion)

    def score(self, problem: Problem, completion: str) -> float:
        return float(self.score_fn(problem, completion))

    def has_experts(self) -> bool:
        return any(p.expert_response for ps in self.problems_by_split.values() for p in ps)
