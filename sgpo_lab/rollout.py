"""Rollouts: batched sampling with a KV cache, and scoring one completion under two contexts.

Two operations serve the whole lab:

- ``sample``: many prompts at once, decoded token by token with a KV cache; a prompt repeated for a
  group is read once. Returns completion token ids that end with EOS (when the model stopped), their
  texts, and on request the logits each token was drawn from. The lab's own Llama models decode with
  ``fastdecode`` (the rows of a group share one copy of their prompt's cache), any other model with its
  own forward; both give the model's distribution (greedy completions are the same token for token).
- ``completion_logits``: the logits a model assigns to *given* completion tokens after *given*
  prompts, in one batched forward pass. Prompts are left-padded and completions right-padded, so
  completion token t of every row sits in the same column: scoring the same completions after the
  guided prompts (teacher) and after the autonomous prompts (student) gives two (B, T, V) tensors
  aligned position by position. Position ids follow the attention mask, so padding does not
  change a score.

This file knows models and tokenizers, not losses, methods or the trainer.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sgpo_lab import fastdecode
from sgpo_lab.world.tokenizer import check_text


@dataclass
class Rollouts:
    """Sampled completions: ``prompts[i]`` was followed by ``completion_ids[i]`` (EOS included if reached)."""

    prompts: list[str]
    completion_ids: list[list[int]]
    texts: list[str]
    finished: list[bool]
    logits: list[torch.Tensor] | None = None  # with keep_logits: (len(completion_ids[i]), V), before temperature

    def split(self, n: int) -> tuple[Rollouts, Rollouts]:
        """The first ``n`` rows and the rest."""
        def part(rows: slice) -> Rollouts:
            return Rollouts(self.prompts[rows], self.completion_ids[rows], self.texts[rows], self.finished[rows],
                            self.logits[rows] if self.logits is not None else None)
        return part(slice(None, n)), part(slice(n, None))


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: list[str], *, check: bool = True) -> list[list[int]]:
    """Token ids of each prompt with the tokenizer's own special tokens (BOS for the lab tokenizer)."""
    if check:
        for p in prompts:
            check_text(tokenizer, p, what="prompt")
    return [list(ids) for ids in tokenizer(prompts, add_special_tokens=True)["input_ids"]]


def _left_pad(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    return ids, mask  # (B, P), (B, P)


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).clamp(min=0)  # (B, L): 0 at each row's first real token


def end_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Every id that ends a completion: the tokenizer's EOS and each end id the model's generation config names.

    Instruct models often name several (Qwen2: ``<|im_end|>`` and ``<|endoftext|>``); stopping on the
    tokenizer's EOS alone lets a completion run past the turn's end.
    """
    ids: list[int] = []
    config = getattr(model, "generation_config", None)
    for value in (tokenizer.eos_token_id, getattr(config, "eos_token_id", None)):
        for i in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(i, int) and i not in ids:
                ids.append(i)
    if not ids:
        raise ValueError("the tokenizer and the model's generation config name no end-of-sequence id; expected an "
                         "eos_token in tokenizer_config.json or eos_token_id in generation_config.json")
    return ids


@torch.inference_mode()
def sample(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str], *,
           max_new_tokens: int = 96, temperature: float = 1.0, greedy: bool = False,
           generator: torch.Generator | None = None, batch_size: int = 256, keep_logits: bool = False,
           stop_ids: list[int] | None = None) -> Rollouts:
    """Sample one completion per prompt (repeat a prompt in ``prompts`` to sample a group).

    A completion ends at the first of ``stop_ids`` (default: ``end_ids(model, tokenizer)``), which it keeps.
    ``keep_logits`` also keeps, per row, the logits each token was drawn from: the policy's distribution over
    the completion in its own context, which a second forward pass would only recompute.
    """
    stops = stop_ids or end_ids(model, tokenizer)
    out = Rollouts([], [], [], [], [] if keep_logits else None)
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        ids, fin, logits = _sample_chunk(model, tokenizer, encode_prompts(tokenizer, chunk),
                                         max_new_tokens=max_new_tokens, temperature=temperature, greedy=greedy,
                                         generator=generator, keep_logits=keep_logits, stops=stops)
        out.prompts += chunk
        out.completion_ids += ids
        out.finished += fin
        if keep_logits:
            out.logits += logits
    out.texts = [tokenizer.decode([t for t in ids if t not in stops], skip_special_tokens=True)
                 for ids in out.completion_ids]
    return out


def _sample_chunk(model, tokenizer, prompt_ids, *, max_new_tokens, temperature, greedy, generator, keep_logits,
                  stops):
    """Sample until every row has emitted EOS (or ``max_new_tokens``): completions, finished flags, logits.

    A prompt repeated for a group (G rollouts of one question) is read once. The lab's own Llama models
    decode with ``fastdecode`` (the group shares one copy of its prompt's cache); any other model with
    its own forward (``_hf_decode``). Both return tokens (B, T), ``pad`` after each row's EOS, and with
    ``keep_logits`` the logits (B, T, V) each token was drawn from.
    """
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    device = next(model.parameters()).device
    distinct: dict[tuple[int, ...], int] = {}
    row_prompt = torch.tensor([distinct.setdefault(tuple(p), len(distinct)) for p in prompt_ids], device=device)
    ids, mask = (t.to(device) for t in _left_pad([list(p) for p in distinct], pad))  # (U, P)
    decode = fastdecode.decode if fastdecode.supports(model) else _hf_decode
    tokens, logits = decode(model, ids, mask, row_prompt, max_new_tokens=max_new_tokens, eos=stops, pad=pad,
                            greedy=greedy, temperature=temperature, generator=generator,
                            keep_logits=keep_logits)  # (B, T), (B, T, V) or None
    completions, finished = [], []
    stop_set = set(stops)
    for row in tokens.tolist():
        cut = next((t + 1 for t, tok in enumerate(row) if tok in stop_set), None)
        completions.append(row[:cut] if cut else row)
        finished.append(cut is not None)
    kept = [logits[i, : len(c)].clone() for i, c in enumerate(completions)] if keep_logits else None
    return completions, finished, kept


@torch.inference_mode()
def _hf_decode(model, ids, mask, row_prompt, *, max_new_tokens, eos, pad, greedy, temperature, generator,
               keep_logits=False):
    """Token-by-token decoding with the model's own forward and KV cache (any causal LM); tokens, logits.

    Rows that finish leave the batch (their cache rows are dropped), so a few long completions do not make
    every short one pay for their length.
    """
    cache_arg = fastdecode.cache_argument(model)

    def forward(step_ids, mask, positions, past):
        out = model(input_ids=step_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                    **{cache_arg: past})
        return out.logits[:, -1].float(), getattr(out, cache_arg)  # (A, V) for the A rows given

    # prefill: each distinct prompt once, then its cache rows copied to every row that repeats it
    positions = _positions(mask)
    logits, past = forward(ids, mask, positions, None)
    if len(ids) < len(row_prompt) and hasattr(past, "batch_select_indices"):
        past.batch_select_indices(row_prompt)
        logits, mask, positions = logits[row_prompt], mask[row_prompt], positions[row_prompt]
    elif len(ids) < len(row_prompt):
        ids, mask = ids[row_prompt], mask[row_prompt]  # a cache that cannot copy rows: read every prompt
        positions = _positions(mask)
        logits, past = forward(ids, mask, positions, None)

    draws = fastdecode.Draws(len(row_prompt), max_new_tokens, logits.shape[-1], eos=eos, pad=pad, greedy=greedy,
                             temperature=temperature, generator=generator, keep_logits=keep_logits, device=ids.device)
    active = torch.arange(len(row_prompt), device=ids.device)  # rows of the batch still sampling
    done = torch.zeros(len(row_prompt), dtype=torch.bool, device=ids.device)  # finished, per active row
    for t in range(max_new_tokens):
        nxt = draws.draw(logits, active, done, t)  # (A,)
        if bool(done.all()) or t + 1 == max_new_tokens:
            return draws.first(t + 1)
        if bool(done.any()) and hasattr(past, "batch_select_indices"):  # drop finished rows from the batch
            keep = (~done).nonzero().squeeze(1)
            past.batch_select_indices(keep)
            active, nxt, mask, positions, done = active[keep], nxt[keep], mask[keep], positions[keep], done[keep]
        positions = positions[:, -1:] + 1
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        logits, past = forward(nxt[:, None], mask, positions, past)
    return draws.first(0)  # max_new_tokens == 0: nothing sampled


# one more forward pass costs about as much as scoring this many more (padded) tokens: a lab model on a CPU core
FORWARD_FIXED_TOKENS = 64


def micro_batches(widths: list[int], *, vocab: int, budget_mb: float, by_length: bool = True,
                  groups: list[list[int]] | None = None, fixed: int = FORWARD_FIXED_TOKENS) -> list[list[int]]:
    """Row indices in micro-batches whose (rows, T + 1, V) float32 logits stay under ``budget_mb``.

    ``widths[r]``: row r's completion length; ``groups``: rows that must share a micro-batch (default: each row
    alone). A micro-batch pads its rows to its own longest (``completion_logits``).
    - ``by_length=False``: groups in order, as many per micro-batch as fit at the longest row of all (one
      micro-batch when everything fits), so every row pads to the step's longest.
    - ``by_length=True``: groups sorted by length and cut where padding would cost more than one more forward
      pass (``fixed`` tokens): dynamic programming over the sorted groups, minimising padded tokens + passes.
    By length, rows keep their ascending order inside a micro-batch and the micro-batches run short to long.
    """
    if not widths:
        return []
    groups = groups if groups is not None else [[r] for r in range(len(widths))]
    budget = budget_mb * 2**20

    def fits(rows: int, width: int) -> bool:
        return rows * (width + 1) * vocab * 4 <= budget

    if not by_length:
        cap = max(1, int(budget // ((max(widths) + 1) * vocab * 4)))
        if len(widths) <= cap:
            return [list(range(len(widths)))]
        per = max(1, cap // max(map(len, groups)))
        return [[r for g in groups[a:a + per] for r in g] for a in range(0, len(groups), per)]
    width_of = [max(widths[r] for r in g) for g in groups]
    order = sorted(range(len(groups)), key=lambda g: (width_of[g], g))
    n = len(order)
    best, cut = [0.0] + [float("inf")] * n, [0] * (n + 1)
    for j in range(1, n + 1):  # best[j]: cheapest cover of the j shortest groups; the last pass starts at cut[j]
        rows, w = 0, width_of[order[j - 1]]
        for i in range(j - 1, -1, -1):
            rows += len(groups[order[i]])
            if i < j - 1 and not fits(rows, w):
                break
            cost = best[i] + rows * w + fixed
            if cost < best[j]:
                best[j], cut[j] = cost, i
    passes, j = [], n
    while j > 0:
        passes.append(sorted(r for g in order[cut[j]:j] for r in groups[g]))
        j = cut[j]
    return passes[::-1]


FULL_LOGITS_BYTES = 32 * 2**20


def _keeps_logits(model: PreTrainedModel) -> bool:
    """Whether the model's forward can compute logits for its last columns only (a large vocabulary's memory)."""
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def completion_logits(model: PreTrainedModel, prompt_ids: list[list[int]], completion_ids: list[list[int]], *,
                      pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits for each completion token after its prompt, aligned by completion position.

    Returns ``logits`` (B, T, V) where ``logits[i, t]`` predicts ``completion_ids[i][t]``,
    the completion tokens (B, T) right-padded with ``pad_id``, and their mask (B, T).
    Gradient flows when the model is in grad mode (the student); wrap in ``torch.no_grad`` for a teacher.
    """
    if len(prompt_ids) != len(completion_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(completion_ids)} completions")
    width_p = max(map(len, prompt_ids))
    width_c = max(1, max(map(len, completion_ids)))
    rows, masks = [], []
    for p, c in zip(prompt_ids, completion_ids):
        rows.append([pad_id] * (width_p - len(p)) + p + c + [pad_id] * (width_c - len(c)))
        masks.append([0] * (width_p - len(p)) + [1] * (len(p) + len(c)) + [0] * (width_c - len(c)))
    device = next(model.parameters()).device
    ids = torch.tensor(rows, device=device)  # (B, P + T)
    attn = torch.tensor(masks, device=device)  # (B, P + T)
    vocab = model.get_output_embeddings().weight.shape[0]
    # with a large vocabulary only the T + 1 last columns go through the head: (B, T + 1, V), not (B, P + T, V);
    # a small one takes the full forward (as cheap, and the gradient's float rounding stays what it always was)
    if ids.numel() * vocab * 4 > FULL_LOGITS_BYTES and _keeps_logits(model):
        logits = model(input_ids=ids, attention_mask=attn, position_ids=_positions(attn),
                       logits_to_keep=width_c + 1).logits[:, :width_c].float()  # (B, T, V)
    else:
        logits = model(input_ids=ids, attention_mask=attn, position_ids=_positions(attn)).logits  # (B, P + T, V)
        logits = logits[:, width_p - 1: width_p - 1 + width_c].float()  # (B, T, V): column P-1+t predicts token t
    tokens = ids[:, width_p:width_p + width_c]  # (B, T)
    mask = attn[:, width_p:width_p + width_c].float()  # (B, T)
    return logits, tokens, mask
