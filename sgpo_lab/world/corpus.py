"""The pretraining corpus: documents in which strategies appear in context and guided solutions follow them.

Each document is one problem of one family, in one of two forms:

- **guided** (``guided_share`` of documents): a strategy card, the question, and a step-by-step
  solution that follows that card. The model learns to *read* a strategy and execute it.
- **unguided**: the question alone, then a solution by a method drawn from the family's mixture:
  a correct strategy with total probability ``correct_share``, otherwise one of the family's
  plausible misconceptions, each executed just as carefully.

A share of documents (``large_share``) is drawn at the OOD sizes, so that executing a method carries
over to larger inputs; RL then trains on ID sizes only, and the OOD split asks whether what RL taught
(which method to pick) transfers to larger problems.

So the base model can execute every method, but without a strategy its prior over *which* method
to use puts most mass on wrong ones: its unguided pass rate is low but not zero, and the strategy
lifts it. SGPO's job is to move that shift into the unguided policy. Only the completion part of a
document carries the pretraining loss (the question and card are random, nothing to learn there).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sgpo_lab.world.prompts import guided_prompt
from sgpo_lab.world.strategies import make_card
from sgpo_lab.world.tasks import FAMILIES


@dataclass(frozen=True)
class CorpusMix:
    """How the corpus is mixed (the world's difficulty knobs)."""

    guided_share: float = 0.6  # share of documents with a strategy card in context
    correct_share: float = 0.3  # P(correct method | unguided question)
    brief_card_share: float = 0.2  # share of guided documents whose card has no key steps
    large_share: float = 0.15  # share of documents at OOD sizes (RL trains on ID sizes only)


@dataclass(frozen=True)
class Document:
    family: str
    method: str
    guided: bool
    prompt: str
    completion: str


def sample_document(rng: random.Random, mix: CorpusMix = CorpusMix(), family: str | None = None) -> Document:
    """One pretraining document: ID sizes, or OOD sizes with probability ``large_share``."""
    fam = FAMILIES[family or rng.choice(list(FAMILIES))]
    params = fam.sample(rng, "ood" if rng.random() < mix.large_share else "train")
    question = fam.question(params)
    if rng.random() < mix.guided_share:
        method = rng.choice(list(fam.strategies))
        style = "brief" if rng.random() < mix.brief_card_share else "full"
        prompt = guided_prompt(question, make_card(fam.name, method, style).text)
        return Document(fam.name, method, True, prompt, fam.solve(params, method))
    pool = fam.strategies if rng.random() < mix.correct_share else fam.misconceptions
    method = rng.choice(list(pool))
    return Document(fam.name, method, False, guided_prompt(question, ""), fam.solve(params, method))
