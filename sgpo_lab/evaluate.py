"""Evaluation: pass rates with and without the strategy, greedy accuracy and pass@k, the world report.

All numbers here are about a model on Strategy World problems; nothing here trains.
- pass rate: the share of ``n`` temperature-1 samples that verify (what RL sees as ``p_auto`` / ``p_guided``);
- greedy accuracy: the share of problems whose greedy completion verifies;
- pass@k: the share of problems with at least one verified answer among k samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sgpo_lab.rollout import sample
from sgpo_lab.world.problems import Problem, world_problems
from sgpo_lab.world.prompts import autonomous_prompt, guided_prompt
from sgpo_lab.world.tasks import FAMILIES, verify

MAX_NEW_TOKENS = 144


def prompts_for(problems: list[Problem], *, guided: bool, strategies: dict[str, str] | None = None) -> list[str]:
    """Autonomous or guided prompts; ``strategies`` maps problem id to a card text overriding the default."""
    if not guided:
        return [autonomous_prompt(p.question) for p in problems]
    strategies = strategies or {}
    return [guided_prompt(p.question, strategies.get(p.id, p.strategy)) for p in problems]


@torch.no_grad()
def correct_counts(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, problems: list[Problem], *,
                   guided: bool, n: int, temperature: float = 1.0, greedy: bool = False,
                   generator: torch.Generator | None = None, strategies: dict[str, str] | None = None) -> list[int]:
    """How many of ``n`` samples per problem verify (``greedy``: one greedy sample each, n ignored)."""
    n = 1 if greedy else n
    prompts = [pr for pr in prompts_for(problems, guided=guided, strategies=strategies) for _ in range(n)]
    out = sample(model, tokenizer, prompts, max_new_tokens=MAX_NEW_TOKENS, temperature=temperature,
                 greedy=greedy, generator=generator)
    ok = [verify(text, p.answer) for text, p in zip(out.texts, (p for p in problems for _ in range(n)))]
    return [sum(ok[i * n:(i + 1) * n]) for i in range(len(problems))]


@dataclass
class EvalRow:
    family: str
    split: str
    accuracy: float  # greedy, unguided
    pass_at_k: float
    k: int
    n_problems: int


def evaluate(model, tokenizer, problems: list[Problem], *, k: int = 4, generator: torch.Generator | None = None,
             guided: bool = False) -> list[EvalRow]:
    """Greedy accuracy and pass@k of the (unguided by default) policy, per family and split, plus 'all' averages."""
    greedy = correct_counts(model, tokenizer, problems, guided=guided, n=1, greedy=True)
    sampled = correct_counts(model, tokenizer, problems, guided=guided, n=k, generator=generator)
    rows: list[EvalRow] = []
    for split in sorted({p.split for p in problems}):
        per_family = []
        for family in FAMILIES:
            idx = [i for i, p in enumerate(problems) if p.family == family and p.split == split]
            if not idx:
                continue
            row = EvalRow(family, split, sum(greedy[i] for i in idx) / len(idx),
                          sum(sampled[i] > 0 for i in idx) / len(idx), k, len(idx))
            rows.append(row)
            per_family.append(row)
        if per_family:
            rows.append(EvalRow("all", split, sum(r.accuracy for r in per_family) / len(per_family),
                                sum(r.pass_at_k for r in per_family) / len(per_family), k,
                                sum(r.n_problems for r in per_family)))
    return rows


def world_report(model, tokenizer, *, n_problems: int = 32, n_samples: int = 8, seed: int = 0,
                 splits: tuple[str, ...] = ("id", "ood"), families: list[str] | None = None) -> list[dict]:
    """Per family and split: the sampled pass rate without and with the problem's strategy card."""
    generator = torch.Generator().manual_seed(seed)
    families = families or list(FAMILIES)
    rows = []
    for split in splits:
        problems = world_problems(split, n_problems, families=families)
        auto = correct_counts(model, tokenizer, problems, guided=False, n=n_samples, generator=generator)
        guid = correct_counts(model, tokenizer, problems, guided=True, n=n_samples, generator=generator)
        for family in families:
            idx = [i for i, p in enumerate(problems) if p.family == family]
            rows.append({"family": family, "split": split,
                         "unguided": sum(auto[i] for i in idx) / (n_samples * len(idx)),
                         "guided": sum(guid[i] for i in idx) / (n_samples * len(idx))})
    return rows
