"""Evaluation: pass rates with and without the strategy, greedy accuracy and pass@k, the task report.

All numbers here are about a model on a task's problems (the Strategy World by default); nothing here trains.
- pass rate: the share of ``n`` temperature-1 samples that verify (what RL sees as ``p_auto`` / ``p_guided``);
- greedy accuracy: the share of problems whose greedy completion verifies;
- pass@k: the share of problems with at least one verified answer among k samples.
A problem's card is, in order: ``strategies[problem.id]``, ``cards[problem.family]``, the task's own card.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sgpo_lab.prompts import Prompter
from sgpo_lab.rollout import sample
from sgpo_lab.tasks import Problem, Task, check_count, load_task

MAX_NEW_TOKENS = 144


def card_of(task: Task, problem: Problem, cards: dict[str, str] | None = None,
            strategies: dict[str, str] | None = None) -> str:
    """The card a problem is guided with: a per-problem override, a run's card for its family, or the task's."""
    if strategies and problem.id in strategies:
        return strategies[problem.id]
    if cards and problem.family in cards:
        return cards[problem.family]
    return task.card(problem)


def prompts_for(problems: list[Problem], *, guided: bool, strategies: dict[str, str] | None = None,
                task: Task | None = None, prompter: Prompter | None = None, tokenizer=None,
                cards: dict[str, str] | None = None) -> list[str]:
    """Autonomous or guided prompts of ``problems`` (plain world-format prompts unless a prompter is given)."""
    task = load_task(task)
    prompter = prompter or Prompter(tokenizer, "plain", task.question_prefix, task.answer_prefix)
    if not guided:
        return [prompter.autonomous(p.question) for p in problems]
    return [prompter.guided(p.question, card_of(task, p, cards, strategies)) for p in problems]


@torch.no_grad()
def correct_counts(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, problems: list[Problem], *,
                   guided: bool, n: int, temperature: float = 1.0, greedy: bool = False,
                   generator: torch.Generator | None = None, strategies: dict[str, str] | None = None,
                   task: Task | str | None = None, prompter: Prompter | None = None,
                   cards: dict[str, str] | None = None, max_new_tokens: int = MAX_NEW_TOKENS) -> list[int]:
    """How many of ``n`` samples per problem verify (``greedy``: one greedy sample each, n ignored)."""
    task = load_task(task)
    n = 1 if greedy else n
    if n < 1:
        raise ValueError(f"samples per problem must be >= 1, got {n}")
    check_count(n * len(problems), "samples")
    prompts = [pr for pr in prompts_for(problems, guided=guided, strategies=strategies, task=task, prompter=prompter,
                                        tokenizer=tokenizer, cards=cards) for _ in range(n)]
    out = sample(model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                 greedy=greedy, generator=generator)
    ok = [task.correct(p, text) for text, p in zip(out.texts, (p for p in problems for _ in range(n)))]
    return [sum(ok[i * n:(i + 1) * n]) for i in range(len(problems))]


@dataclass
class EvalRow:
    family: str
    split: str
    accuracy: float  # greedy, unguided
    pass_at_k: float
    k: int
    n_problems: int


def evaluate(model, tokenizer, problems: list[Problem], **kwargs) -> list[EvalRow]:
    """Greedy accuracy and pass@k of the (unguided by default) policy, per family and split, plus 'all' averages."""
    return evaluate_problems(model, tokenizer, problems, **kwargs)[0]


def evaluate_problems(model, tokenizer, problems: list[Problem], *, k: int = 4,
                      generator: torch.Generator | None = None, guided: bool = False, task: Task | str | None = None,
                      prompter: Prompter | None = None, cards: dict[str, str] | None = None,
                      max_new_tokens: int = MAX_NEW_TOKENS) -> tuple[list[EvalRow], list[dict]]:
    """``evaluate``'s rows, and one record per problem (its id, family, split, whether the greedy completion
    verified, how many of the k samples did): what paired comparisons across methods and seeds need."""
    if k < 1:
        raise ValueError(f"k of pass@k must be >= 1, got {k}")
    common = {"guided": guided, "task": task, "prompter": prompter, "cards": cards, "max_new_tokens": max_new_tokens}
    greedy = correct_counts(model, tokenizer, problems, n=1, greedy=True, **common)
    sampled = correct_counts(model, tokenizer, problems, n=k, generator=generator, **common)
    families = list(dict.fromkeys(p.family for p in problems))
    rows: list[EvalRow] = []
    for split in sorted({p.split for p in problems}):
        per_family = []
        for family in families:
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
    records = [{"problem_id": p.id, "family": p.family, "split": p.split, "greedy_correct": bool(greedy[i]),
                "pass_count": int(sampled[i]), "k": k} for i, p in enumerate(problems)]
    return rows, records


def task_report(model, tokenizer, *, task: Task | str | None = None, n_problems: int = 32, n_samples: int = 8,
                seed: int = 0, splits: tuple[str, ...] | None = None, families: list[str] | None = None,
                prompter: Prompter | None = None, cards: dict[str, str] | None = None,
                max_new_tokens: int = MAX_NEW_TOKENS) -> list[dict]:
    """Per family and split: the sampled pass rate without and with the problem's strategy card."""
    task = load_task(task)
    if n_problems < 1 or n_samples < 1:
        raise ValueError(f"problems and samples must be >= 1, got {n_problems} and {n_samples}")
    generator = torch.Generator().manual_seed(seed)
    families = task.check_families(families)
    splits = splits or tuple(s for s in ("id", "ood") if s in task.splits)
    common = {"n": n_samples, "generator": generator, "task": task, "prompter": prompter, "cards": cards,
              "max_new_tokens": max_new_tokens}
    rows = []
    for split in splits:
        task.check_split(split)
        problems = task.problems(split, n_problems, families=families)
        check_count(len(problems) * n_samples * 2, "samples")
        auto = correct_counts(model, tokenizer, problems, guided=False, **common)
        guid = correct_counts(model, tokenizer, problems, guided=True, **common)
        for family in families:
            idx = [i for i, p in enumerate(problems) if p.family == family]
            if not idx:
                continue
            rows.append({"family": family, "split": split,
                         "unguided": sum(auto[i] for i in idx) / (n_samples * len(idx)),
                         "guided": sum(guid[i] for i in idx) / (n_samples * len(idx))})
    return rows


def world_report(model, tokenizer, **kwargs) -> list[dict]:
    """``task_report`` on the Strategy World (the shipped models' report)."""
    return task_report(model, tokenizer, task="world", **kwargs)
