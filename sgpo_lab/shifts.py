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
from sgpo_lab.prompts import Prompter
from sgpo_lab.rollout import completion_logits, encode_prompts, sample
from sgpo_lab.world.tokenizer import check_text

MAX_TEXT_CHARS = 4_000  # a question, card or completion longer than this is refused before any forward pass

SHIFT_COLUMNS = ["position", "token", "kl", "logp_change", "p_guided", "p_unguided",
                 "top_guided", "top_guided_p", "top_unguided", "top_unguided_p"]


@dataclass
class ShiftItem:
    """One completion to analyse: question, strategy card and the completion's token ids."""

    question: str
    strategy: str
    completion_ids: list[int]


def _token_text(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> list[str]:
    """Each token as readable text: its own decoding, or for a byte-level piece that is not whole UTF-8 on its own
    (half of a multi-byte character), its bytes written as ``<0xE2>``."""
    out = []
    for i in ids:
        text = tokenizer.decode([i])
        if "\ufffd" in text:
            piece = tokenizer.convert_ids_to_tokens(i) or ""
            raw = _byte_level_bytes(piece)
            text = "".join(f"<0x{b:02X}>" for b in raw) if raw is not None else text
        out.append(text)
    return out


def _byte_level_bytes(piece: str) -> bytes | None:
    """The bytes a GPT-2-style byte-level token stands for (None when ``piece`` is not such a token)."""
    table = _byte_decoder()
    try:
        return bytes(table[ch] for ch in piece)
    except KeyError:
        return None


def _byte_decoder() -> dict[str, int]:
    # GPT-2's printable stand-ins for the 256 bytes: printable bytes map to themselves, the rest to 256 + n
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("\xa1"), ord("\xac") + 1), *range(ord("\xae"), 256)]
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


@torch.no_grad()
def shift_tables(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, items: list[ShiftItem], *,
                 top_k: int = 5, prompter: Prompter | None = None) -> list[pd.DataFrame]:
    """Per-token shift tables for many completions, in two batched forward passes (guided, unguided).

    ``prompter`` builds both contexts (default: the world's plain prompts).
    """
    if not items:
        return []
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    prompter = prompter or Prompter(tokenizer)
    guided = encode_prompts(tokenizer, [prompter.guided(it.question, it.strategy) for it in items])
    unguided = encode_prompts(tokenizer, [prompter.autonomous(it.question) for it in items])
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
                 greedy: bool = True, seed: int = 0, prompter: Prompter | None = None) -> pd.DataFrame:
    """The shift table of one completion: given as text or token ids, or sampled from the guided policy.

    ``prompter`` builds the two contexts (default: the world's plain prompts; ``Prompter.for_task`` for a
    task's and a chat model's). The frame's ``attrs`` hold the completion text and whether it was sampled.
    """
    if not question.strip():
        raise ValueError("the problem is empty; expected a question such as 'sum 3 8 5'")
    for what, text in (("problem", question), ("strategy", strategy),
                       ("completion", completion if isinstance(completion, str) else "")):
        if len(text) > MAX_TEXT_CHARS:
            raise ValueError(f"the {what} has {len(text):,} characters; expected at most {MAX_TEXT_CHARS:,}")
    prompter = prompter or Prompter(tokenizer)
    check_text(tokenizer, question, what="problem")
    check_text(tokenizer, strategy, what="strategy")
    sampled = completion is None
    if sampled:
        out = sample(model, tokenizer, [prompter.guided(question, strategy)], max_new_tokens=max_new_tokens,
                     greedy=greedy, generator=torch.Generator().manual_seed(seed))
        ids = out.completion_ids[0]
    elif isinstance(completion, str):
        check_text(tokenizer, completion, what="completion")
        ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    else:
        ids = list(completion)
    if not ids:
        raise ValueError("the completion is empty; expected at least one token")
    table = shift_tables(model, tokenizer, [ShiftItem(question, strategy, ids)], top_k=top_k, prompter=prompter)[0]
    table.attrs.update(completion=tokenizer.decode(ids, skip_special_tokens=True), sampled=sampled)
    return table
