"""The loss math of SGPO and its baselines, as small pure functions.

Every term of the objective lives here once: per-token log-probs, token-level KL
(teacher = the policy *with* the strategy in its prompt, student = the same policy
without it), KL clipping, group advantages, the GRPO clipped surrogate, LUFFY's
policy shaping, SFT/NLL, entropy, the adaptive instance weight and target
selection. A method composes these functions; it never re-derives them.

This module knows nothing of models, tokenizers, prompts or the trainer: it takes
tensors and returns tensors (plus one list of indices).

Conventions
-----------
- ``logits`` are ``(B, T, V)``: batch, position, vocabulary. Position ``t`` holds
  the distribution over the token at ``t`` (the caller does the one-token shift).
- ``logp`` / ``old_logp`` are ``(B, T)`` log-probabilities of the sampled tokens.
- ``mask`` is ``(B, T)``, float or bool, 1 on active (completion) tokens and 0 on
  prompt and padding. Masked-out positions never reach a value or a gradient.
- The teacher is always detached: no gradient can reach it, whatever the caller does.
- Softmax math runs in float32 whatever the input dtype, via ``log_softmax``.
- "token-mean" divides by the number of active tokens of the whole batch;
  "sequence-mean" divides each row by its own active-token count. An empty mask
  gives 0, never NaN.
"""

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "ALPHA0",
    "ALPHA_MAX",
    "EPS_HIGH",
    "EPS_LOW",
    "GAMMA",
    "KL_DELTA",
    "SHAPING_GAMMA",
    "adaptive_weight",
    "clipped_fraction",
    "distill_loss",
    "entropy",
    "group_advantages",
    "grpo_clip_fraction",
    "grpo_clip_fractions",
    "grpo_loss",
    "luffy_loss",
    "nll_loss_per_sequence",
    "policy_shaping",
    "select_targets",
    "sequence_mean_logprob",
    "sft_loss",
    "token_kl",
    "token_logprobs",
]

EPS_LOW = 0.2
"""GRPO lower clip: the ratio is clipped below at ``1 - EPS_LOW``."""
EPS_HIGH = 0.28
"""GRPO upper clip ("clip-higher"): the ratio is clipped above at ``1 + EPS_HIGH``."""
KL_DELTA = 1.0
"""KL clipping threshold ``delta`` for the per-token distillation loss."""
ALPHA0 = 0.5
"""Adaptive weight scale ``alpha_0``."""
GAMMA = 0.1
"""Adaptive weight smoothing ``gamma`` in ``(p_auto + gamma)``."""
ALPHA_MAX = 0.8
"""Adaptive weight cap ``alpha_max``."""
SHAPING_GAMMA = 0.1
"""LUFFY's policy-shaping constant in ``f(p) = p / (p + gamma)`` (same value as GAMMA, different role)."""

KL_DIRECTIONS = ("forward", "reverse")
KL_CLIPS = ("hard", "scale", "none", "pointwise")
WEIGHT_KINDS = ("pass_gap", "linear", "constant")
TARGET_MODES = ("best", "all", "random")


def _check_option(name: str, value: str, allowed: Sequence[str]) -> None:
    """Raise a ValueError naming the bad value and the allowed ones."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {tuple(allowed)}")


def _as_weights(mask: Tensor, like: Tensor) -> Tensor:
    """A float mask of ``like``'s dtype (bool masks become 0./1.)."""
    return mask.to(dtype=like.dtype, device=like.device)


def _masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """``sum(x * mask)`` where masked-out entries are zeroed first, so a NaN/inf there cannot leak."""
    weights = _as_weights(mask, x)
    x = x.masked_fill(weights == 0, 0.0) * weights
    return x.sum() if dim is None else x.sum(dim)


def _safe_divide(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` with 0 where ``den == 0`` (an empty mask gives 0, not NaN)."""
    return num / torch.where(den > 0, den, torch.ones_like(den))


def _sequence_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Per-row mean over active tokens: ``sum_t x * m / sum_t m``; (B, T) -> (B,)."""
    return _safe_divide(_masked_sum(x, mask, dim=-1), _as_weights(mask, x).sum(-1))


def _token_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over all active tokens of the batch: ``sum x * m / sum m``; (B, T) -> scalar."""
    return _safe_divide(_masked_sum(x, mask), _as_weights(mask, x).sum())


# --------------------------------------------------------------------------- log-probs


def token_logprobs(logits: Tensor, tokens: Tensor) -> Tensor:
    """Log-probability of each given token: ``log softmax(logits)[tokens]``.

    Args:
        logits: (B, T, V) next-token logits, position t scoring ``tokens[:, t]``.
        tokens: (B, T) long token ids.

    Returns:
        (B, T) float32 log-probabilities ``log pi(tokens_t | ...)``.
    """
    logits = logits.float()  # (B, T, V)
    # log pi(y_t) = z_{y_t} - logsumexp_v z_v
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)  # (B, T)
    return picked - torch.logsumexp(logits, dim=-1)  # (B, T)


def sequence_mean_logprob(logp: Tensor, mask: Tensor) -> Tensor:
    """Length-normalised log-likelihood of each sequence (the target-selection score).

    ``score_b = sum_t logp_{b,t} m_{b,t} / sum_t m_{b,t}``; an empty row scores 0.

    Args:
        logp: (B, T) token log-probs (e.g. guided trajectories scored by the *unguided* policy).
        mask: (B, T) 1 on active tokens.

    Returns:
        (B,) per-sequence mean log-prob.
    """
    return _sequence_mean(logp, mask)


# --------------------------------------------------------------------------- KL distillation


def _kl_from_log_probs(log_a: Tensor, log_b: Tensor) -> Tensor:
    """``KL(a || b) = sum_v a_v (log a_v - log b_v)`` over the last dim, clamped at 0 against round-off."""
    # KL(a || b) = sum_v a_v (log a_v - log b_v)
    return (log_a.exp() * (log_a - log_b)).sum(-1).clamp_min(0.0)


def _collapse_to_top_k(log_probs: Tensor, index: Tensor) -> Tensor:
    """Collapse a distribution to the k outcomes at ``index`` plus one tail bucket.

    Args:
        log_probs: (B, T, V) normalised log-probs.
        index: (B, T, k) vocabulary ids with k < V (the teacher's top-k).

    Returns:
        (B, T, k + 1) log-probs: the k picked outcomes, then ``log sum_{v not in index} p_v``.
    """
    top = log_probs.gather(-1, index)  # (B, T, k)
    rest = log_probs.scatter(-1, index, float("-inf"))  # (B, T, V), the top-k removed
    # log tail = log sum_{v not in top-k} p_v, via logsumexp so a tiny tail stays finite
    tail = torch.logsumexp(rest, dim=-1, keepdim=True)  # (B, T, 1)
    return torch.cat([top, tail], dim=-1)  # (B, T, k + 1)


def token_kl(
    teacher_logits: Tensor,
    student_logits: Tensor,
    *,
    direction: str = "forward",
    top_k: int | None = None,
) -> Tensor:
    """Per-position KL between the teacher's and the student's next-token distributions.

    With ``q = softmax(teacher_logits)`` (strategy in context, detached here) and
    ``p = softmax(student_logits)`` (no strategy):

    - ``direction="forward"`` (SGPO): ``KL_t = KL(q || p) = sum_v q_v (log q_v - log p_v)``;
      its gradient w.r.t. the student's logits is ``p - q``.
    - ``direction="reverse"`` (ablation): ``KL_t = KL(p || q) = sum_v p_v (log p_v - log q_v)``.

    ``top_k=k`` restricts the sum to the teacher's top-k tokens plus one tail bucket:
    both q and p are collapsed to k + 1 outcomes (the teacher's top-k ids, then the
    remaining mass of each distribution) and the KL is taken over those. By the
    data-processing inequality it is <= the full KL; for ``k >= V`` it equals it.

    Computed in float32 from ``log_softmax``; tiny negative round-off is clamped to 0.

    Args:
        teacher_logits: (B, T, V); detached inside, no gradient ever reaches it.
        student_logits: (B, T, V).
        direction: "forward" or "reverse".
        top_k: None for the full vocabulary, else a positive int.

    Returns:
        (B, T) non-negative KL per position (no mask applied).
    """
    _check_option("direction", direction, KL_DIRECTIONS)
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k={top_k!r} must be None or a positive int")
    log_q = torch.log_softmax(teacher_logits.detach().float(), dim=-1)  # (B, T, V) teacher
    log_p = torch.log_softmax(student_logits.float(), dim=-1)  # (B, T, V) student
    if top_k is not None and top_k < log_q.shape[-1]:
        index = log_q.topk(top_k, dim=-1).indices  # (B, T, k), the teacher's support
        log_q = _collapse_to_top_k(log_q, index)  # (B, T, k + 1)
        log_p = _collapse_to_top_k(log_p, index)  # (B, T, k + 1)
    if direction == "reverse":
        # KL(p || q) = sum_v p_v (log p_v - log q_v)
        return _kl_from_log_probs(log_p, log_q)  # (B, T)
    # KL(q || p) = sum_v q_v (log q_v - log p_v)
    return _kl_from_log_probs(log_q, log_p)  # (B, T)


def _clip_hard(kl: Tensor, delta: float) -> Tensor:
    # min(KL_t, delta): a token past delta contributes delta and no gradient
    return kl.clamp(max=delta)


def _clip_scale(kl: Tensor, delta: float) -> Tensor:
    # stopgrad(min(1, delta / KL_t)) * KL_t: value and gradient scaled down to at most delta
    scale = (delta / kl.detach()).clamp(max=1.0)  # KL_t = 0 gives inf -> 1
    return scale * kl


def _clip_none(kl: Tensor, delta: float) -> Tensor:
    return kl


def _pointwise_clipped_kl(teacher_logits: Tensor, student_logits: Tensor, direction: str, delta: float,
                          top_k: int | None) -> Tensor:
    """``sum_v clip(q_v (log q_v - log p_v), -delta, delta)`` per position (reverse: p and q swapped).

    Each vocabulary entry's term is clipped on its own (as related privileged-context self-distillation work
    does): an entry whose term is past delta gives no gradient, the others still do. (B, T), not clamped at 0.
    """
    log_q = torch.log_softmax(teacher_logits.detach().float(), dim=-1)  # (B, T, V)
    log_p = torch.log_softmax(student_logits.float(), dim=-1)  # (B, T, V)
    if top_k is not None and top_k < log_q.shape[-1]:
        index = log_q.topk(top_k, dim=-1).indices  # (B, T, k)
        log_q, log_p = _collapse_to_top_k(log_q, index), _collapse_to_top_k(log_p, index)  # (B, T, k + 1)
    log_a, log_b = (log_p, log_q) if direction == "reverse" else (log_q, log_p)
    # term_v = a_v (log a_v - log b_v), each clipped to [-delta, delta]
    return (log_a.exp() * (log_a - log_b)).clamp(-delta, delta).sum(-1)  # (B, T)


_KL_CLIP_FNS: dict[str, Callable[[Tensor, float], Tensor]] = {
    "hard": _clip_hard,
    "scale": _clip_scale,
    "none": _clip_none,
}


def distill_loss(
    teacher_logits: Tensor,
    student_logits: Tensor,
    mask: Tensor,
    *,
    direction: str = "forward",
    clip: str = "hard",
    delta: float = KL_DELTA,
    top_k: int | None = None,
) -> Tensor:
    """Per-sequence distillation loss: the sequence-mean of the clipped per-token KL.

    ``L_b = sum_t c(KL_{b,t}) m_{b,t} / sum_t m_{b,t}`` with ``KL_{b,t}`` from
    :func:`token_kl` (teacher detached) and the clip ``c``:

    - ``"hard"`` (default): ``c(KL) = min(KL, delta)``; tokens with KL > delta give no gradient.
    - ``"scale"``: ``c(KL) = stopgrad(min(1, delta / KL)) * KL``; each token's value and
      gradient are scaled so its loss is at most delta, the gradient keeps its direction.
    - ``"none"``: ``c(KL) = KL``.
    - ``"pointwise"``: each vocabulary term clipped, ``sum_v clip(q_v log(q_v / p_v), -delta, delta)``.

    Every clip is the lab's reading (the paper names per-token KL clipping at delta = 1, not its operator).
    The mean is per sequence (each row divided by its own active-token count), so the
    caller can weight problems with ``w_i`` before summing. An all-zero row gives 0.

    Args:
        teacher_logits: (B, T, V) the policy with the strategy in context.
        student_logits: (B, T, V) the policy without it, on the same tokens.
        mask: (B, T) 1 on the guided trajectory's completion tokens.
        direction: "forward" (KL(q||p), SGPO) or "reverse" (KL(p||q)).
        clip: "hard", "scale", "none" or "pointwise".
        delta: clip threshold (> 0).
        top_k: see :func:`token_kl`.

    Returns:
        (B,) per-sequence loss.
    """
    _check_option("clip", clip, KL_CLIPS)
    if delta <= 0:
        raise ValueError(f"delta={delta!r} must be > 0")
    if clip == "pointwise":
        clipped = _pointwise_clipped_kl(teacher_logits, student_logits, direction, delta, top_k)  # (B, T)
    else:
        kl = token_kl(teacher_logits, student_logits, direction=direction, top_k=top_k)  # (B, T)
        clipped = _KL_CLIP_FNS[clip](kl, delta)  # (B, T)
    # L_b = sum_t c(KL_t) m_t / sum_t m_t
    return _sequence_mean(clipped, mask)  # (B,)


@torch.no_grad()
def clipped_fraction(kl: Tensor, mask: Tensor, delta: float = KL_DELTA) -> Tensor:
    """Share of active tokens whose KL exceeds the clip threshold (for logging).

    ``frac = sum_t [KL_t > delta] m_t / sum_t m_t`` over the whole batch; 0 for an empty mask.

    Args:
        kl: (B, T) per-token KL from :func:`token_kl`.
        mask: (B, T) 1 on active tokens.
        delta: clip threshold.

    Returns:
        scalar float32 tensor in [0, 1].
    """
    return _token_mean((kl > delta).float(), mask)


# --------------------------------------------------------------------------- advantages and GRPO


def group_advantages(rewards: Tensor, *, scale: bool = True, eps: float = 1e-4) -> Tensor:
    """Group-normalised advantages (GRPO), per row = per group.

    ``A_{i,j} = (r_{i,j} - mean_j r_{i,:}) / (std_j r_{i,:} + eps)`` with the
    Bessel-corrected (unbiased, ``/(G - 1)``) std when ``scale``; ``r - mean`` otherwise.
    A group of size 1 has std 0 (not NaN), so its advantage is 0. Each row sums to 0.

    Args:
        rewards: (n_groups, G) rewards; a 1-D (G,) tensor is one group. Any numeric dtype.
        scale: divide by the group std.
        eps: added to the std.

    Returns:
        float tensor of the same shape.
    """
    rewards = torch.as_tensor(rewards).float()  # (n_groups, G)
    mean = rewards.mean(dim=-1, keepdim=True)  # (n_groups, 1)
    centred = rewards - mean  # (n_groups, G)
    if not scale:
        return centred
    group_size = rewards.shape[-1]
    if group_size > 1:
        std = rewards.std(dim=-1, keepdim=True, correction=1)  # (n_groups, 1), Bessel
    else:
        std = torch.zeros_like(mean)  # a single value has no spread
    # A = (r - mean) / (std + eps)
    return centred / (std + eps)


def _token_advantages(advantages: Tensor, like: Tensor) -> Tensor:
    """Detached advantages ready to multiply a (B, T) tensor: (B,) -> (B, 1), (B, T) kept."""
    adv = advantages.detach().to(dtype=like.dtype, device=like.device)
    return adv.unsqueeze(-1) if adv.dim() == 1 else adv  # (B, 1) or (B, T)


def _surrogate_terms(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, eps_low: float, eps_high: float
) -> tuple[Tensor, Tensor]:
    """The two PPO/GRPO surrogate terms per token: ``(ratio * A, clip(ratio) * A)``, both (B, T)."""
    # ratio = pi_theta / pi_old = exp(logp - old_logp), old_logp stop-gradient
    ratio = torch.exp(logp - old_logp.detach())  # (B, T)
    adv = _token_advantages(advantages, ratio)  # (B, 1) or (B, T)
    clipped = ratio.clamp(1.0 - eps_low, 1.0 + eps_high)  # (B, T)
    return ratio * adv, clipped * adv


def grpo_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    eps_low: float = EPS_LOW,
    eps_high: float = EPS_HIGH,
) -> Tensor:
    """GRPO's token-level clipped surrogate, token-mean over all active tokens.

    ``L = -sum_{b,t} min(r_{b,t} A_b, clip(r_{b,t}, 1 - eps_low, 1 + eps_high) A_b) m_{b,t} / sum_{b,t} m_{b,t}``
    with ``r = exp(logp - old_logp)`` (old_logp and A detached). Asymmetric clip
    (clip-higher), no reference KL. 0 for an empty mask.

    Args:
        logp: (B, T) token log-probs under the current policy (carries the gradient).
        old_logp: (B, T) token log-probs under the policy that sampled them.
        advantages: (B,) broadcast over T, or (B, T).
        mask: (B, T) 1 on completion tokens.
        eps_low: lower clip, ratio >= 1 - eps_low.
        eps_high: upper clip, ratio <= 1 + eps_high.

    Returns:
        scalar loss.
    """
    unclipped, clipped = _surrogate_terms(logp, old_logp, advantages, eps_low, eps_high)  # (B, T) each
    # L = -sum min(r A, clip(r) A) m / sum m
    return -_token_mean(torch.minimum(unclipped, clipped), mask)


@torch.no_grad()
def grpo_clip_fraction(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    eps_low: float = EPS_LOW,
    eps_high: float = EPS_HIGH,
) -> Tensor:
    """Share of active tokens where the clip is active, i.e. the min picks the clipped term.

    ``frac = sum [clip(r) A < r A] m / sum m``: the tokens that get no gradient
    (A > 0 with r > 1 + eps_high, or A < 0 with r < 1 - eps_low). For logging; 0 for an empty mask.

    Returns:
        scalar float32 tensor in [0, 1].
    """
    unclipped, clipped = _surrogate_terms(logp, old_logp, advantages, eps_low, eps_high)  # (B, T) each
    return _token_mean((clipped < unclipped).float(), mask)


@torch.no_grad()
def grpo_clip_fractions(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, *, eps_low: float = EPS_LOW,
    eps_high: float = EPS_HIGH,
) -> tuple[Tensor, Tensor]:
    """The clip's two sides apart: ``(low, high)`` shares of active tokens where it is active.

    low: ``A < 0`` and ``r < 1 - eps_low``; high: ``A > 0`` and ``r > 1 + eps_high``. Both are 0 by construction
    when ``logp == old_logp`` (one update per batch: the ratio is exactly 1). For logging.
    """
    ratio = torch.exp(logp - old_logp)  # (B, T)
    adv = _token_advantages(advantages, ratio)  # (B, 1) or (B, T)
    low = ((adv < 0) & (ratio < 1.0 - eps_low)).float()  # (B, T)
    high = ((adv > 0) & (ratio > 1.0 + eps_high)).float()
    return _token_mean(low, mask), _token_mean(high, mask)


# --------------------------------------------------------------------------- LUFFY


def policy_shaping(probs: Tensor, *, gamma: float = SHAPING_GAMMA) -> Tensor:
    """LUFFY's policy shaping ``f(p) = p / (p + gamma)``, elementwise.

    Its gradient ``gamma / (p + gamma)^2`` boosts low-probability tokens of an
    off-policy trajectory instead of letting them vanish.
    """
    # f(p) = p / (p + gamma)
    return probs / (probs + gamma)


def luffy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    off_policy: Tensor,
    *,
    eps_low: float = EPS_LOW,
    eps_high: float = EPS_HIGH,
    gamma: float = SHAPING_GAMMA,
) -> Tensor:
    """LUFFY's mixed-policy loss for a batch of mixed groups (on-policy rollouts + expert solutions).

    On-policy rows use the clipped surrogate of :func:`grpo_loss`; off-policy rows use
    the shaped probability ``f(pi_theta(y_t)) A`` with no ratio and no clipping
    (the gradient flows through ``p = exp(logp)``). Token-mean over all active tokens of both kinds:

    ``L = -(sum_on min(r A, clip(r) A) m + sum_off f(p) A m) / sum m``

    ``old_logp`` is ignored on off-policy rows (any value, even inf, is safe there).

    Args:
        logp: (B, T) token log-probs under the current policy.
        old_logp: (B, T) log-probs under the sampling policy (on-policy rows only).
        advantages: (B,) or (B, T), computed over the mixed group.
        mask: (B, T) 1 on completion tokens.
        off_policy: (B,) bool, True on expert (off-policy) rows.
        eps_low, eps_high: clip range of the on-policy term.
        gamma: policy-shaping constant.

    Returns:
        scalar loss.
    """
    off_rows = off_policy.to(device=logp.device, dtype=torch.bool).unsqueeze(-1)  # (B, 1)
    # ratio = 1 on off-policy rows, so a meaningless old_logp there cannot overflow into a NaN gradient
    old_logp = torch.where(off_rows, logp.detach(), old_logp.to(logp.dtype))  # (B, T)
    unclipped, clipped = _surrogate_terms(logp, old_logp, advantages, eps_low, eps_high)  # (B, T) each
    on_term = torch.minimum(unclipped, clipped)  # (B, T)
    adv = _token_advantages(advantages, logp)  # (B, 1) or (B, T)
    # off-policy: f(p) A, p = exp(logp), no ratio, no clip
    off_term = policy_shaping(logp.exp(), gamma=gamma) * adv  # (B, T)
    per_token = torch.where(off_rows, off_term, on_term)  # (B, T)
    # L = -(sum_on min(r A, clip(r) A) m + sum_off f(p) A m) / sum m
    return -_token_mean(per_token, mask)


# --------------------------------------------------------------------------- imitation and entropy


def sft_loss(logp: Tensor, mask: Tensor) -> Tensor:
    """Token-mean negative log-likelihood: ``L = -sum logp m / sum m`` (0 for an empty mask).

    Args:
        logp: (B, T) log-probs of the target tokens.
        mask: (B, T) 1 on target tokens.

    Returns:
        scalar loss.
    """
    # L = -sum logp m / sum m
    return -_token_mean(logp, mask)


def nll_loss_per_sequence(logp: Tensor, mask: Tensor) -> Tensor:
    """Per-sequence mean NLL: ``L_b = -sum_t logp_{b,t} m_{b,t} / sum_t m_{b,t}`` (0 for an empty row).

    Used by the ablation that imitates the selected guided trajectory instead of
    distilling the strategy's shift; same shape and mean as :func:`distill_loss`.

    Returns:
        (B,) per-sequence loss.
    """
    # L_b = -sum_t logp m / sum_t m
    return -_sequence_mean(logp, mask)


def entropy(logits: Tensor, mask: Tensor) -> Tensor:
    """Mean policy entropy over active tokens: ``H = sum_t H_t m_t / sum_t m_t`` with ``H_t = -sum_v p_v log p_v``.

    Token-mean over the whole batch, in float32 (nats); 0 for an empty mask.

    Args:
        logits: (B, T, V).
        mask: (B, T) 1 on active tokens.

    Returns:
        scalar entropy.
    """
    log_p = torch.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    # H_t = -sum_v p_v log p_v
    per_token = -(log_p.exp() * log_p).sum(-1)  # (B, T)
    return _token_mean(per_token, mask)


# --------------------------------------------------------------------------- when and what to distill


def _weight_pass_gap(p_auto: Tensor, p_guided: Tensor, alpha0: float, gamma: float, alpha_max: float) -> Tensor:
    # w = min(alpha_max, alpha0 * max(0, p_guided - p_auto) / (p_auto + gamma))
    gap = (p_guided - p_auto).clamp_min(0.0)
    return (alpha0 * gap / (p_auto + gamma)).clamp(max=alpha_max)


def _weight_linear(p_auto: Tensor, p_guided: Tensor, alpha0: float, gamma: float, alpha_max: float) -> Tensor:
    # w = min(alpha_max, alpha0 * (1 - p_auto))
    return (alpha0 * (1.0 - p_auto)).clamp(max=alpha_max)


def _weight_constant(p_auto: Tensor, p_guided: Tensor, alpha0: float, gamma: float, alpha_max: float) -> Tensor:
    # w = alpha0
    return torch.full_like(p_auto, alpha0)


_WEIGHT_FNS: dict[str, Callable[[Tensor, Tensor, float, float, float], Tensor]] = {
    "pass_gap": _weight_pass_gap,
    "linear": _weight_linear,
    "constant": _weight_constant,
}


def adaptive_weight(
    p_auto: Tensor | float | Sequence[float],
    p_guided: Tensor | float | Sequence[float],
    any_correct: Tensor | bool | Sequence[bool],
    *,
    kind: str = "pass_gap",
    alpha0: float = ALPHA0,
    gamma: float = GAMMA,
    alpha_max: float = ALPHA_MAX,
) -> Tensor:
    """Per-problem distillation weight ``w_i`` ("when to distill").

    - ``"pass_gap"`` (default): ``w = min(alpha_max, alpha0 * max(0, p_guided - p_auto) / (p_auto + gamma))``,
      strong when the autonomous policy fails and the strategy helps, vanishing as it becomes competent.
    - ``"linear"``: ``w = min(alpha_max, alpha0 * (1 - p_auto))``.
    - ``"constant"``: ``w = alpha0`` (no cap).

    Always ``w = 0`` where ``any_correct`` is False (no correct guided trajectory, no target).

    Args:
        p_auto: (N,) autonomous pass rates in [0, 1]; floats and lists are accepted.
        p_guided: (N,) guided pass rates.
        any_correct: (N,) bool, at least one correct guided trajectory.
        kind: "pass_gap", "linear" or "constant".

    Returns:
        float32 tensor of the broadcast shape of the inputs, (N,) for (N,) inputs.
    """
    _check_option("kind", kind, WEIGHT_KINDS)
    p_auto_t = torch.as_tensor(p_auto, dtype=torch.float32)
    p_guided_t = torch.as_tensor(p_guided, dtype=torch.float32, device=p_auto_t.device)
    correct_t = torch.as_tensor(any_correct, dtype=torch.bool, device=p_auto_t.device)
    p_auto_t, p_guided_t, correct_t = torch.broadcast_tensors(p_auto_t, p_guided_t, correct_t)  # (N,) each
    weight = _WEIGHT_FNS[kind](p_auto_t, p_guided_t, alpha0, gamma, alpha_max)  # (N,)
    return torch.where(correct_t, weight, torch.zeros_like(weight))


def _select_best(scores: Tensor, correct_idx: Tensor, top_m: int, generator: torch.Generator | None) -> Tensor:
    # the correct trajectories closest to what the unguided student already produces
    order = torch.sort(scores[correct_idx], descending=True, stable=True).indices
    return correct_idx[order[:top_m]]


def _select_all(scores: Tensor, correct_idx: Tensor, top_m: int, generator: torch.Generator | None) -> Tensor:
    return correct_idx


def _select_random(scores: Tensor, correct_idx: Tensor, top_m: int, generator: torch.Generator | None) -> Tensor:
    order = torch.randperm(len(correct_idx), generator=generator)
    return correct_idx[order[:top_m]]


_TARGET_FNS: dict[str, Callable[[Tensor, Tensor, int, torch.Generator | None], Tensor]] = {
    "best": _select_best,
    "all": _select_all,
    "random": _select_random,
}


def select_targets(
    scores: Tensor,
    correct: Tensor,
    *,
    mode: str = "best",
    top_m: int = 1,
    generator: torch.Generator | None = None,
) -> list[int]:
    """Pick the distillation targets among one problem's H guided trajectories.

    Only correct trajectories qualify. ``scores`` should be :func:`sequence_mean_logprob`
    of each guided trajectory under the *unguided* policy ``pi_old(. | x)``.

    - ``"best"`` (SGPO): the ``top_m`` correct indices with the highest score, highest first
      (ties: lower index first).
    - ``"all"``: every correct index, in index order (``top_m`` is ignored).
    - ``"random"`` (ablation): ``top_m`` correct indices drawn without replacement with
      ``generator``, in draw order.

    No correct trajectory gives ``[]``.

    Args:
        scores: (H,) float scores.
        correct: (H,) bool verifier outcome.
        mode: "best", "all" or "random".
        top_m: how many targets (>= 1) for "best" and "random".
        generator: torch.Generator for "random" (reproducibility).

    Returns:
        list of indices into the H guided trajectories.
    """
    _check_option("mode", mode, TARGET_MODES)
    if top_m < 1:
        raise ValueError(f"top_m={top_m!r} must be >= 1")
    scores = torch.as_tensor(scores, dtype=torch.float32).cpu()  # (H,)
    correct_idx = torch.nonzero(torch.as_tensor(correct, dtype=torch.bool).cpu()).flatten()  # (n_correct,)
    if len(correct_idx) == 0:
        return []
    return _TARGET_FNS[mode](scores, correct_idx, top_m, generator).tolist()
