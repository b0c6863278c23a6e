"""A lean sampler for the lab's own Llama models: the same model and distribution, about twice as fast on a CPU.

Sampling is most of an RL step here, and HF's token-by-token forward pays twice for it on a CPU:
the Python of many small modules, and every row reading its own copy of its prompt's keys and values.
A group of G rollouts of one question holds G copies of the same prompt cache, and the guided prompt,
card included, is about 150 characters (one token each). This decoder instead:

- reads each distinct prompt once with the model's own forward (the prefill) and keeps one copy of its
  keys and values; the rows of a group attend to it together, as one matrix product per group;
- keeps the generated tokens' keys and values per row, in tensors that grow by doubling;
- runs a decode step directly on the weights: RMSNorm, fused QKV, rotary embedding, attention over
  prompt + generated keys, SwiGLU MLP (norm weights folded into the next projection).

Only the arithmetic order changes: logits agree with the model's forward to float rounding (tested, with
greedy completions equal). ``supports(model)`` says whether a model is one this decoder computes exactly
(Llama, default rotary, no biases, one KV head per head, tied or untied head); rollout.sample uses HF's
forward for any other model. This file knows models and tensors, not prompts, losses or the trainer.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel


def supports(model: PreTrainedModel) -> bool:
    """Whether ``decode`` computes this model exactly (else use the model's own forward)."""
    c = model.config
    rope = getattr(c, "rope_parameters", None) or {"rope_type": "default"}
    return (c.model_type == "llama" and rope.get("rope_type", "default") == "default"
            and not c.attention_bias and not getattr(c, "mlp_bias", False) and c.hidden_act == "silu"
            and c.num_key_value_heads == c.num_attention_heads
            and getattr(c, "head_dim", c.hidden_size // c.num_attention_heads) * c.num_attention_heads
            == c.hidden_size and getattr(c, "pretraining_tp", 1) == 1)


class _Weights:
    """The model's weights arranged for one decode step (views and small copies; the model is unchanged)."""

    def __init__(self, model: PreTrainedModel):
        c, core = model.config, model.model
        self.heads, self.eps = c.num_attention_heads, c.rms_norm_eps
        self.head_dim = c.hidden_size // c.num_attention_heads
        self.embed = core.embed_tokens.weight  # (V, d)
        self.head = model.lm_head.weight * core.norm.weight  # (V, d): final norm folded in
        D = self.head_dim
        # HF's rotary pairs dimension i with i + D/2 of each head; putting each pair side by side lets one complex
        # product rotate it. Queries and keys get the same reordering, so their dot products are unchanged.
        self.pairs = torch.stack([torch.arange(D // 2), torch.arange(D // 2) + D // 2], 1).reshape(-1)  # (D,)
        rows = (torch.arange(self.heads)[:, None] * D + self.pairs).reshape(-1)  # (d,) the same in every head
        self.layers = []
        for layer in core.layers:
            a, m = layer.self_attn, layer.mlp
            w_in, w_post = layer.input_layernorm.weight, layer.post_attention_layernorm.weight  # (d,)
            q = a.q_proj.weight[rows] * D ** -0.5  # attention's 1/sqrt(D) applied to the queries
            qkv = torch.cat([q, a.k_proj.weight[rows], a.v_proj.weight]) * w_in  # (3d, d)
            gate_up = torch.cat([m.gate_proj.weight, m.up_proj.weight]) * w_post  # (2f, d)
            self.layers.append((qkv, a.o_proj.weight, gate_up, m.down_proj.weight))
        theta = (getattr(c, "rope_parameters", None) or {}).get("rope_theta", getattr(c, "rope_theta", 10000.0))
        self.inv_freq = 1.0 / theta ** (torch.arange(0, D, 2, dtype=torch.float) / D)  # (D/2,)

    def rotary(self, positions: torch.Tensor) -> torch.Tensor:
        """exp(i * position * frequency), (N, D/2) complex: Llama's rotary embedding at integer positions (N,)."""
        angles = positions[:, None].float() * self.inv_freq  # (N, D/2)
        return torch.polar(torch.ones_like(angles), angles)


def _rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm without its weight (folded into the next projection): x / sqrt(mean(x^2) + eps)."""
    return x * (x * x).mean(-1, keepdim=True).add_(eps).rsqrt_()


def cache_argument(model: PreTrainedModel) -> str:
    """The forward's KV-cache argument: transformers 5 calls it ``cache``, 4.x ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _prompt_cache(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer (keys, values), each (U, H, P, D), from a transformers cache of any recent version."""
    if hasattr(cache, "layers"):  # transformers >= 4.56
        return [(layer.keys, layer.values) for layer in cache.layers]
    if hasattr(cache, "key_cache"):
        return list(zip(cache.key_cache, cache.value_cache))
    return [(k, v) for k, v in cache]  # legacy tuples


class Draws:
    """The tokens drawn so far, (B, T) with ``pad`` after each row's end, and optionally their logits (B, T, V).

    ``eos`` is one end id or several (an instruct model's generation config often names two): any of them ends a row.

    Both decoders draw through it: the argmax, or a draw from softmax(logits / temperature).
    """

    def __init__(self, rows: int, steps: int, vocab: int, *, eos: int | list[int], pad: int, greedy: bool,
                 temperature: float, generator: torch.Generator | None, keep_logits: bool, device: torch.device):
        self.pad, self.greedy, self.temperature, self.generator = pad, greedy, temperature, generator
        self.end_ids = torch.tensor([eos] if isinstance(eos, int) else list(eos), dtype=torch.long, device=device)
        self.tokens = torch.full((rows, steps), pad, dtype=torch.long, device=device)
        self.logits = torch.zeros(rows, steps, vocab, device=device) if keep_logits else None

    def draw(self, logits: torch.Tensor, rows: torch.Tensor, done: torch.Tensor, n: int) -> torch.Tensor:
        """Step n's token (A,) of the active ``rows`` from their logits (A, V); marks rows that end in ``done``."""
        if self.greedy or self.temperature == 0:
            nxt = logits.argmax(-1)
        else:
            try:
                nxt = torch.multinomial(torch.softmax(logits / self.temperature, -1), 1, generator=self.generator)[:, 0]
            except RuntimeError:  # NaN or inf probabilities: the model (or the temperature) is broken, not the input
                raise ValueError("the model's next-token probabilities hold NaN or inf; expected a model with finite "
                                 "weights (was it trained into NaN?) and a temperature around 1") from None
        nxt = nxt.masked_fill(done, self.pad)
        self.tokens[rows, n] = nxt
        if self.logits is not None:
            self.logits[rows, n] = logits
        done |= torch.isin(nxt, self.end_ids)  # any of the model's end ids ends a row
        return nxt

    def first(self, steps: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Tokens (B, steps) and logits (B, steps, V) or None."""
        return self.tokens[:, :steps], self.logits[:, :steps] if self.logits is not None else None


def _prefill(model: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor) -> tuple[list, torch.Tensor]:
    """Keys and values (U, H, P, D) per layer and last-token logits (U, V) of U left-padded prompts.

    Read with the model's own forward, in passes of similar lengths: a short autonomous prompt batched with
    long guided ones would otherwise be read at the long ones' width.
    """
    cache_arg = cache_argument(model)
    lengths = mask.sum(-1).tolist()
    passes: list[list[int]] = []
    for u in sorted(range(len(lengths)), key=lengths.__getitem__):  # shortest first
        if passes and not (lengths[u] > 2 * lengths[passes[-1][0]] and lengths[u] > lengths[passes[-1][0]] + 32):
            passes[-1].append(u)
        else:
            passes.append([u])
    kv: list[tuple[torch.Tensor, torch.Tensor]] = []
    logits = torch.empty(0)
    for group in passes:
        rows, width = torch.tensor(group, device=ids.device), max(lengths[u] for u in group)
        ids_p, mask_p = ids[rows, -width:], mask[rows, -width:]  # left-padded: the real tokens are the last ones
        out = model(input_ids=ids_p, attention_mask=mask_p, position_ids=(mask_p.cumsum(-1) - 1).clamp(min=0),
                    use_cache=True)
        if not len(logits):
            logits = torch.empty(len(lengths), out.logits.shape[-1], device=ids.device)  # (U, V)
        logits[rows] = out.logits[:, -1].float()
        for i, (k, v) in enumerate(_prompt_cache(getattr(out, cache_arg))):  # (n, H, width, D) each
            if i == len(kv):
                kv.append(tuple(t.new_zeros(len(lengths), t.shape[1], ids.shape[1], t.shape[3]) for t in (k, v)))
            kv[i][0][rows, :, -width:], kv[i][1][rows, :, -width:] = k, v
    return kv, logits


def _moved(steps: torch.Tensor, room: int) -> torch.Tensor:
    """The filled steps (A, H, D, n) of a step cache, in a new cache with room for ``room`` steps."""
    out = steps.new_empty(*steps.shape[:-1], room)
    out[..., : steps.shape[-1]] = steps
    return out


@torch.inference_mode()
def decode(model: PreTrainedModel, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, row_prompt: torch.Tensor,
           *, max_new_tokens: int, eos: int | list[int], pad: int, greedy: bool, temperature: float,
           generator: torch.Generator | None, keep_logits: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sample one completion per row, row b continuing prompt ``row_prompt[b]``; returns tokens (B, T) and logits.

    ``prompt_ids`` and ``prompt_mask`` (U, P) hold the U distinct prompts, left-padded. A row is ``pad``
    after its EOS; T ends at the step where every row has ended (or at ``max_new_tokens``). Rows that have
    ended leave the batch a quarter at a time, so a few long completions do not make every short one pay.
    With ``keep_logits`` also returns the logits (B, T, V) each token was drawn from (before temperature).
    """
    w = _Weights(model)
    H, D, device, dtype = w.heads, w.head_dim, prompt_ids.device, w.embed.dtype
    (U, P), B, T = prompt_ids.shape, len(row_prompt), max_new_tokens

    # prefill with the model's own forward: one copy of each prompt's keys/values, (U, H, P, D) per layer
    prompt_kv, logits = _prefill(model, prompt_ids, prompt_mask)
    # keys transposed, their dimensions in the queries' order: (U, H, D, P); values (U, H, P, D)
    prompt_kv = [(k[..., w.pairs].transpose(-1, -2).contiguous(), v) for k, v in prompt_kv]
    logits = logits[row_prompt]  # (B, V)
    rotations = w.rotary(torch.arange(P + T)).to(device)  # (P + T, D/2)
    start = prompt_mask.sum(-1)  # (U,) position of each prompt's first generated token

    # each row's cell in a (U, G) grid: its prompt, and its place among the rows that share that prompt
    rows = torch.arange(B, device=device)  # original row of each batch row
    group_of = row_prompt.to(device)
    order = torch.argsort(group_of, stable=True)
    slot = torch.empty_like(group_of)
    slot[order] = rows - torch.searchsorted(group_of[order], group_of[order])  # rank among its prompt's rows
    G = int(slot.max()) + 1
    prompt_bias = torch.zeros(U, H, G, P, device=device, dtype=dtype).masked_fill(
        ~prompt_mask.bool()[:, None, None, :], float("-inf"))  # (U, H, G, P): no attention to padding
    # the generated tokens' keys and values, (A, H, D, room) per layer, only the first n steps ever read; the room
    # doubles when it runs out (most rows have ended by then, and fresh memory costs a page fault per 4 KB)
    gen_k = [torch.empty(B, H, D, min(T, 32), device=device, dtype=dtype) for _ in w.layers]
    gen_v = [torch.empty(B, H, D, min(T, 32), device=device, dtype=dtype) for _ in w.layers]
    draws = Draws(B, T, logits.shape[-1], eos=eos, pad=pad, greedy=greedy, temperature=temperature,
                  generator=generator, keep_logits=keep_logits, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)  # per batch row
    for n in range(T):
        nxt = draws.draw(logits, rows, done, n)  # (A,)
        if bool(done.all()) or n + 1 == T:
            return draws.first(n + 1)
        if int(done.sum()) * 4 >= len(done):  # drop ended rows from the batch, and prompts no row continues
            keep = (~done).nonzero().squeeze(1)
            rows, slot, nxt, done = rows[keep], slot[keep], nxt[keep], done[keep]
            for cache in gen_k + gen_v:  # moved to the front of the same memory (fresh memory costs page faults)
                cache[: len(keep), ..., :n] = cache[keep, ..., :n]
            alive, group_of = torch.unique(group_of[keep], return_inverse=True)
            U, P, start = len(alive), int(start[alive].max()), start[alive]  # left-padded: the real tokens are last
            prompt_kv = [(k[alive, ..., -P:], v[alive, :, -P:]) for k, v in prompt_kv]
            prompt_bias = prompt_bias[alive, ..., -P:]
        A, room = len(rows), gen_k[0].shape[-1]
        if n == room:
            gen_k, gen_v = ([_moved(c[:A, ..., :n], min(2 * room, T)) for c in caches] for caches in (gen_k, gen_v))
        rotation = rotations[start[group_of] + n][:, None]  # (A, 1, D/2)
        x = w.embed[nxt]  # (A, d)
        for i, (w_qkv, w_o, w_gate_up, w_down) in enumerate(w.layers):
            qkv = F.linear(_rms(x, w.eps), w_qkv).view(A, 3 * H, D)
            qk = torch.view_as_complex(qkv[:, : 2 * H].reshape(A, 2 * H, D // 2, 2).float())  # queries and keys
            qk = torch.view_as_real(qk * rotation).to(dtype).view(A, 2 * H, D)  # rotated together
            q, k, v = qk[:, :H], qk[:, H:], qkv[:, 2 * H:]  # (A, H, D)
            gen_k[i][:A, ..., n], gen_v[i][:A, ..., n] = k, v
            keys_p, values_p = prompt_kv[i]  # (U, H, D, P), (U, H, P, D)
            keys_g = gen_k[i][:A].flatten(0, 1)[..., : n + 1]  # (A * H, D, n + 1)
            values_g = gen_v[i][:A].flatten(0, 1)[..., : n + 1].transpose(1, 2)  # (A * H, n + 1, D)
            # a prompt's keys serve its whole group: its rows' queries side by side, one product per prompt and head
            grid = q.new_zeros(U, H, G, D)
            grid[group_of, :, slot] = q
            s_prompt = torch.baddbmm(prompt_bias.reshape(U * H, G, P), grid.view(U * H, G, D),
                                     keys_p.reshape(U * H, D, P)).view(U, H, G, P)[group_of, :, slot]
            s_gen = torch.bmm(q.reshape(A * H, 1, D), keys_g).view(A, H, n + 1)  # each row's own tokens
            attn = torch.softmax(torch.cat([s_prompt, s_gen], -1), -1)  # (A, H, P + n + 1)
            grid = attn.new_zeros(U, H, G, P)
            grid[group_of, :, slot] = attn[..., :P]
            o = torch.bmm(grid.view(U * H, G, P), values_p.reshape(U * H, P, D)).view(U, H, G, D)[group_of, :, slot]
            o = o + torch.bmm(attn[..., P:].reshape(A * H, 1, n + 1), values_g).view(A, H, D)
            x = x + F.linear(o.view(A, H * D), w_o)
            gate, up = F.linear(_rms(x, w.eps), w_gate_up).chunk(2, -1)
            x = x + F.linear(F.silu(gate) * up, w_down)
        logits = F.linear(_rms(x, w.eps), w.head).float()  # (A, V)
    return draws.first(0)  # max_new_tokens == 0: nothing sampled
