"""Token-shift analysis: what a strategy does to the model's next-token distribution, token by token.

For a completion y of a question x and a strategy s, at every position t:

    q_t = pi(. | x, s, y_<t)     (guided: the strategy in context, SGPO's teacher)
    p_t = pi(. | x, y_<t)        (unguided: the student)
    kl_t = KL(q_t || p_t)        the forward KL that SGPO distils (``losses.token_kl``)
    logp_change_t = log q_t(y_t) - log p_t(y_t)

plus the top-k alternatives of each distribution. Used by the trainer's probes, the CLI
(``sgpo-lab shifts``), the app and the notebooks. No training here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sgpo_lab.losses import token_kl
from sgpo_lab.rollout import completion_logits, encode_prompts, sample
from sgpo_lab.world.prompts import autonomous_prompt, guided_prompt
from sgpo_lab.world.tokenizer import check_text

SHIFT_COLUMNS = ["position", "token", "kl", "logp_change", "p_guided", "p_unguided",
                 "top_guided", "top_guided_p", "top_unguided", "top_unguided_p"]


@dataclass
class ShiftItem:
    """One completion to analyse: question, strategy card and the completion's token ids."""

    question: str
    strategy: str
    completion_ids: list[int]


def _token_text(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> list[str]:
    return [tokenizer.decode([i]) for i in ids]


@torch.no_grad()
def shift_tables(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, items: list[ShiftItem], *,
                 top_k: int = 5) -> list[pd.DataFrame]:
    """Per-token shift tables for many completions, in two batched forward passes (guided, unguided)."""
    if not items:
        return []
    guided = encode_prompts(tokenizer, [guided_prompt(it.question, it.strategy) for it in items])
    unguided = encode_prompts(tokenizer, [autonomous_prompt(it.question) for it in items])
    completions = [it.completion_ids for it in items]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    q_logits, tokens, _ = completion_logits(model, guided, completions, pad_id=pad)  # (B, T, V)
    p_logits, _, _ = completion_logits(model, unguided, completions, pad_id=pad)  # (B, T, V)
    kl = token_kl(q_logits, p_logits)  # (B, T)
    logq, logp = q_logits.log_softmax(-1), p_logits.log_softmax(-1)  # (B, T, V)
    chosen_q = logq.gather(-1, tokens[..., None]).squeeze(-1)  # (B, T)
    chosen_p = logp.gather(-1, tokens[..., None]).squeeze(-1)
    k = min(top_k, logq.shape[-1])
    top_q, top_p = logq.topk(k, -1), logp.topk(k, -1)
    tables = []
    for i, ids in enumerate(completions):
        n = len(ids)
        tables.append(pd.DataFrame({
            "position": range(n),
            "token": _token_text(tokenizer, ids),
            "kl": kl[i, :n].tolist(),
            "logp_change": (chosen_q[i, :n] - chosen_p[i, :n]).tolist(),
            "p_guided": chosen_q[i, :n].exp().tolist(),
            "p_unguided": chosen_p[i, :n].exp().tolist(),
            "top_guided": [_token_text(tokenizer, row) for row in top_q.indices[i, :n].tolist()],
            "top_guided_p": top_q.values[i, :n].exp().tolist(),
            "top_unguided": [_token_text(tokenizer, row) for row in top_p.indices[i, :n].tolist()],
            "top_unguided_p": top_p.values[i, :n].exp().tolist(),
        }, columns=SHIFT_COLUMNS))
    return tables


def token_shifts(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, question: str, strategy: str,
                 completion: str | list[int] | None = None, *, top_k: int = 5, max_new_tokens: int = 112,
                 greedy: bool = True, seed: int = 0) -> pd.DataFrame:
    """The shift table of one completion: given as text or token ids, or sampled from the guided policy.

    The frame's ``attrs`` hold the completion text and whether it was sampled.
    """
    if not question.strip():
        raise ValueError("the problem is empty; expected a question such as 'sum 3 8 5'")
    check_text(tokenizer, question, what="problem")
    check_text(tokenizer, strategy, what="strategy")
    sampled = completion is None
    if sampled:
        out = sample(model, tokenizer, [guided_prompt(question, strategy)], max_new_tokens=max_new_tokens,
                     greedy=greedy, generator=torch.Generator().manual_seed(seed))
        ids = out.completion_ids[0]
    elif isinstance(completion, str):
        check_text(tokenizer, completion, what="completion")
        ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    else:
        ids = list(completion)
    if not ids:
        raise ValueError("the completion is empty; expected at least one token")
    table = shift_tables(model, tokenizer, [ShiftItem(question, strategy, ids)], top_k=top_k)[0]
    table.attrs.update(completion=tokenizer.decode(ids, skip_special_tokens=True), sampled=sampled)
    return table
