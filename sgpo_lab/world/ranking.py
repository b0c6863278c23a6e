"""Rank candidate strategy cards by a measured criterion: a model's guided pass rate on held-out problems.

The paper rank-selects one of several candidate cards with a scoring prompt to the strong model; the
lab measures instead: each candidate goes in front of held-out problems of its family (drawn with a
seed of their own, so none is a training or evaluation problem) and the base model's share of
verified answers over ``n_samples`` samples is the card's score.
"""

from __future__ import annotations

import torch

from sgpo_lab.evaluate import correct_counts
from sgpo_lab.world.problems import WORLD_SEED, make_problems
from sgpo_lab.world.strategies import extract_candidates
from sgpo_lab.world.tasks import FAMILIES

HELDOUT_SEED = WORLD_SEED + 1


def rank_candidates(model, tokenizer, family: str, *, n_problems: int = 16, n_samples: int = 4,
                    seed: int = 0) -> list[dict]:
    """Candidate cards of ``family`` (extracted from expert responses), best first, with their guided pass rate."""
    heldout = make_problems(family, "train", n_problems, seed=HELDOUT_SEED)
    candidates = extract_candidates(family, [(p.question, p.expert_response) for p in heldout])
    rows = []
    for card in candidates:
        counts = correct_counts(model, tokenizer, heldout, guided=True, n=n_samples,
                                generator=torch.Generator().manual_seed(seed),
                                strategies={p.id: card.text for p in heldout})
        rows.append({**card.to_dict(), "guided_pass_rate": sum(counts) / (n_samples * len(heldout))})
    return sorted(rows, key=lambda r: -r["guided_pass_rate"])


def rank_all(model, tokenizer, **kwargs) -> dict[str, list[dict]]:
    """The ranking of every family's candidates."""
    return {family: rank_candidates(model, tokenizer, family, **kwargs) for family in FAMILIES}
