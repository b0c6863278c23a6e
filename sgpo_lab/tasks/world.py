"""The Strategy World as a Task: the lab's embedded default (four families, ID and OOD splits, expert responses).

Its problems, cards, verifier and expert responses come from ``sgpo_lab.world`` unchanged: a run on
``world`` draws exactly what the lab drew before tasks were values. ``world:sum,count`` is a subset.
"""

from __future__ import annotations

from functools import lru_cache

from sgpo_lab.tasks.base import Problem, Task, TaskError, check_count
from sgpo_lab.world import problems as W
from sgpo_lab.world.prompts import ANSWER_PREFIX, QUESTION_PREFIX
from sgpo_lab.world.tasks import FAMILIES, extract_answer, verify

# A world split of more problems than this per family is refused before any is drawn (each draw is cheap,
# but the distinctness check makes huge counts slow; 64 train problems per family is the default).
WORLD_MAX_PER_FAMILY = 4096


def _as_problem(p: W.Problem) -> Problem:
    return Problem(id=p.id, family=p.family, split=p.split, question=p.question, answer=p.answer,
                   expert_response=p.expert_response, strategy=p.strategy, data=p.strategy_id)


@lru_cache(maxsize=64)
def _family_problems(family: str, split: str, n: int) -> tuple[Problem, ...]:
    return tuple(_as_problem(p) for p in W.make_problems(family, split, n))


class WorldTask(Task):
    """The Strategy World, or a subset of its families."""

    splits = ("train", "id", "ood")
    threshold = 1.0
    question_prefix = QUESTION_PREFIX
    answer_prefix = ANSWER_PREFIX
    description = ("the lab's Strategy World: four procedural families (sum, count, equation, mul), ID and larger "
                   "OOD splits, the strong solver's terse expert responses, a card per strategy")

    def __init__(self, families: list[str] | None = None):
        unknown = [f for f in families or [] if f not in FAMILIES]
        if unknown:
            raise TaskError(f"the world has no families {unknown}; expected some of: {', '.join(FAMILIES)}")
        self.families = tuple(families or FAMILIES)
        self.name = "world" if self.families == tuple(FAMILIES) else "world:" + ",".join(self.families)

    def problems(self, split: str, n: int, *, families: list[str] | None = None) -> list[Problem]:
        self.check_split(split)
        check_count(n)
        if n > WORLD_MAX_PER_FAMILY:
            raise TaskError(f"{n} {split} problems per family is too many for the world; "
                            f"expected at most {WORLD_MAX_PER_FAMILY}")
        return [p for f in self.check_families(families) for p in _family_problems(f, split, n)]

    def split_size(self, split: str, family: str) -> int | None:
        return W.ID_SIZE if split == "id" else None

    def find(self, problem_id: str) -> Problem | None:
        parts = problem_id.strip().rsplit("-", 2)
        if len(parts) == 3 and parts[2].isdigit() and int(parts[2]) >= WORLD_MAX_PER_FAMILY:
            raise TaskError(f"problem id {problem_id!r} is out of range; expected an index below "
                            f"{WORLD_MAX_PER_FAMILY}")
        found = W.find_problem(problem_id)
        return _as_problem(found) if found is not None else None

    def extract_answer(self, completion: str) -> str | None:
        return extract_answer(completion)

    def score(self, problem: Problem, completion: str) -> float:
        return float(verify(completion, problem.answer))
