"""Problem records of the Strategy World: seeded, deterministic splits of every family.

A problem is what the trainer, the evaluator, the app and the notebooks pass around: its id,
family, split, question, gold answer, the strong solver's terse expert response, and the id of the
strategy that expert used (whose card is the problem's default strategy).

Splits: ``train`` (RL problems, ID size), ``id`` (evaluation, ID size, disjoint from ``train``),
``ood`` (evaluation, larger size: same skill, more digits / longer inputs).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from sgpo_lab.world.strategies import strategy_card
from sgpo_lab.world.tasks import FAMILIES, check_split, get_family

WORLD_SEED = 1234
ID_SIZE = 64  # problems per family held out as the ``id`` evaluation split


@dataclass(frozen=True)
class Problem:
    id: str
    family: str
    split: str
    question: str
    answer: str
    expert_response: str
    strategy_id: str

    @property
    def strategy(self) -> str:
        """The text of the problem's default strategy card."""
        return strategy_card(self.family, self.strategy_id)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def sample_problem(family: str, split: str, rng: random.Random, index: int = 0) -> Problem:
    """One fresh problem of ``family`` at the size of ``split``, with its expert response."""
    fam = get_family(family)
    params = fam.sample(rng, check_split(split))
    strategy = rng.choice(list(fam.strategies))
    return Problem(
        id=f"{family}-{split}-{index:04d}", family=family, split=split, question=fam.question(params),
        answer=fam.answer(params), expert_response=fam.expert[strategy](params), strategy_id=strategy,
    )


def make_problems(family: str, split: str, n: int, *, seed: int = WORLD_SEED) -> list[Problem]:
    """``n`` distinct problems of one family and split; the same seed gives the same list.

    ``train`` never holds a question of the ``id`` split (they are drawn from the same sizes), so the ``id``
    split is capped at ``ID_SIZE`` problems per family.
    """
    check_split(split)
    get_family(family)
    if n < 0 or (split == "id" and n > ID_SIZE):
        raise ValueError(f"number of {split} problems must be >= 0{f' and <= {ID_SIZE}' if split == 'id' else ''}, "
                         f"got {n}")
    rng = random.Random(f"{seed}/{family}/{split}")
    taken = {p.question for p in make_problems(family, "id", ID_SIZE, seed=seed)} if split == "train" else set()
    out: list[Problem] = []
    for _ in range(50 * n + 100):
        if len(out) == n:
            break
        p = sample_problem(family, split, rng, len(out))
        if p.question not in taken:
            taken.add(p.question)
            out.append(p)
    if len(out) < n:
        raise ValueError(f"family {family!r} has fewer than {n} distinct {split} problems")
    return out


def world_problems(split: str, n_per_family: int, *, families: list[str] | None = None,
                   seed: int = WORLD_SEED) -> list[Problem]:
    """``n_per_family`` problems of each family (all four by default), family after family."""
    return [p for f in (families or list(FAMILIES)) for p in make_problems(f, split, n_per_family, seed=seed)]


def find_problem(text: str, *, seed: int = WORLD_SEED) -> Problem | None:
    """The world problem whose id is ``text`` (e.g. ``sum-id-0003``), or None if ``text`` is not such an id."""
    parts = text.strip().rsplit("-", 2)
    if len(parts) != 3 or not parts[2].isdigit() or parts[0] not in FAMILIES or parts[1] not in ("train", "id", "ood"):
        return None
    index = int(parts[2])
    if parts[1] == "id" and index >= ID_SIZE:
        raise ValueError(f"problem id {text!r} is out of range; the id split has {ID_SIZE} problems per family")
    return make_problems(parts[0], parts[1], index + 1, seed=seed)[index]
