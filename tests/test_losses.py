"""Tier-1 tests of sgpo_lab.losses: hand-computed small cases and invariants of the loss math."""

import math

import pytest
import torch
from torch.testing import assert_close

from sgpo_lab import losses as L

# Three positions over a 3-token vocabulary, given as probabilities (logits = log probs).
Q = torch.tensor([[[0.5, 0.25, 0.25], [0.7, 0.2, 0.1], [0.6, 0.3, 0.1]]])  # teacher, (1, 3, 3)
P = torch.tensor([[[1 / 3, 1 / 3, 1 / 3], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]])  # student, (1, 3, 3)


def _kl(a: list[float], b: list[float]) -> float:
    return sum(x * math.log(x / y) for x, y in zip(a, b))


def _random_logits(*shape: int, seed: int = 0, scale: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * scale


# --------------------------------------------------------------------------- token_logprobs


def test_token_logprobs_hand_case_and_float32():
    logits = Q.log().to(torch.bfloat16)
    tokens = torch.tensor([[0, 1, 2]])
    out = L.token_logprobs(logits, tokens)
    assert out.dtype == torch.float32
    expected = torch.tensor([[math.log(0.5), math.log(0.2), math.log(0.1)]])
    assert_close(out, expected, atol=2e-2, rtol=0)
    # shift-invariance of softmax: adding a constant per position changes nothing
    z = _random_logits(2, 4, 7)
    tok = torch.randint(0, 7, (2, 4), generator=torch.Generator().manual_seed(1))
    assert_close(L.token_logprobs(z + 5.0, tok), L.token_logprobs(z, tok))


# --------------------------------------------------------------------------- token_kl


def test_token_kl_forward_and_reverse_hand_case():
    forward = L.token_kl(Q.log(), P.log(), direction="forward")
    reverse = L.token_kl(Q.log(), P.log(), direction="reverse")
    q1, p1 = [0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]
    q2, p2 = [0.7, 0.2, 0.1], [0.2, 0.3, 0.5]
    # forward: sum_v q (log q - log p)
    f1 = 0.5 * math.log(0.5 * 3) + 2 * 0.25 * math.log(0.25 * 3)
    f2 = 0.7 * math.log(0.7 / 0.2) + 0.2 * math.log(0.2 / 0.3) + 0.1 * math.log(0.1 / 0.5)
    assert f1 == pytest.approx(_kl(q1, p1)) and f2 == pytest.approx(_kl(q2, p2))
    assert_close(forward, torch.tensor([[f1, f2, 0.0]]), atol=1e-6, rtol=1e-5)
    # reverse: sum_v p (log p - log q)
    r1 = (1 / 3) * (math.log((1 / 3) / 0.5) + 2 * math.log((1 / 3) / 0.25))
    r2 = 0.2 * math.log(0.2 / 0.7) + 0.3 * math.log(0.3 / 0.2) + 0.5 * math.log(0.5 / 0.1)
    assert_close(reverse, torch.tensor([[r1, r2, 0.0]]), atol=1e-6, rtol=1e-5)
    assert abs(f2 - r2) > 0.01  # the two directions really differ here


def test_token_kl_non_negative_on_random_inputs():
    t, s = _random_logits(4, 6, 11, seed=0), _random_logits(4, 6, 11, seed=1)
    for direction in ("forward", "reverse"):
        kl = L.token_kl(t, s, direction=direction)
        assert kl.shape == (4, 6)
        assert (kl >= 0).all()
        assert (kl > 1e-3).all()  # different random distributions really differ


def test_token_kl_zero_with_zero_gradient_when_teacher_equals_student():
    z = _random_logits(2, 5, 9)
    student = z.clone().requires_grad_(True)
    kl = L.token_kl(z, student)
    assert_close(kl, torch.zeros(2, 5), atol=1e-6, rtol=0)
    kl.sum().backward()
    assert_close(student.grad, torch.zeros_like(z), atol=1e-6, rtol=0)


def test_forward_kl_gradient_is_p_minus_q():
    teacher = _random_logits(2, 4, 6, seed=2)
    student = _random_logits(2, 4, 6, seed=3).requires_grad_(True)
    L.token_kl(teacher, student, direction="forward").sum().backward()
    expected = torch.softmax(student.detach(), -1) - torch.softmax(teacher, -1)
    assert_close(student.grad, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("top_k", [None, 2])
def test_no_gradient_reaches_the_teacher(direction, top_k):
    teacher = _random_logits(2, 3, 5, seed=4).requires_grad_(True)
    student = _random_logits(2, 3, 5, seed=5).requires_grad_(True)
    L.token_kl(teacher, student, direction=direction, top_k=top_k).sum().backward()
    assert teacher.grad is None or torch.all(teacher.grad == 0)
    assert student.grad is not None and student.grad.abs().sum() > 0


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_top_k_at_least_vocab_equals_full_kl(direction):
    t, s = _random_logits(3, 4, 8, seed=6), _random_logits(3, 4, 8, seed=7)
    full = L.token_kl(t, s, direction=direction)
    assert_close(L.token_kl(t, s, direction=direction, top_k=8), full)
    assert_close(L.token_kl(t, s, direction=direction, top_k=100), full)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_top_k_small_is_between_zero_and_full_kl(direction):
    t, s = _random_logits(3, 5, 20, seed=8), _random_logits(3, 5, 20, seed=9)
    full = L.token_kl(t, s, direction=direction)
    for k in (1, 3, 10):
        partial = L.token_kl(t, s, direction=direction, top_k=k)
        assert (partial >= 0).all()
        assert (partial <= full + 1e-5).all()


def test_top_k_hand_case_uses_teacher_support_and_tail_bucket():
    # position 1: teacher top-1 is token 0 -> buckets {0}, {1, 2}
    # q = (0.5, 0.5), p = (1/3, 2/3)
    expected_fwd = _kl([0.5, 0.5], [1 / 3, 2 / 3])
    expected_rev = _kl([1 / 3, 2 / 3], [0.5, 0.5])
    # position 2: teacher top-1 is token 0 -> q = (0.7, 0.3), p = (0.2, 0.8)
    # (the student's own top token, 2, goes to the tail: the support is the teacher's)
    expected_fwd2 = _kl([0.7, 0.3], [0.2, 0.8])
    fwd = L.token_kl(Q.log(), P.log(), top_k=1)
    rev = L.token_kl(Q.log(), P.log(), direction="reverse", top_k=1)
    assert_close(fwd, torch.tensor([[expected_fwd, expected_fwd2, 0.0]]), atol=1e-6, rtol=1e-5)
    assert_close(rev[0, 0], torch.tensor(expected_rev), atol=1e-6, rtol=1e-5)


def test_token_kl_rejects_bad_options():
    with pytest.raises(ValueError, match="sideways"):
        L.token_kl(Q, P, direction="sideways")
    with pytest.raises(ValueError, match="top_k"):
        L.token_kl(Q, P, top_k=0)


def test_token_kl_is_stable_for_extreme_logits():
    teacher = torch.tensor([[[80.0, -80.0, 0.0]]])
    student = torch.tensor([[[-80.0, 80.0, 0.0]]])
    kl = L.token_kl(teacher, student)
    assert torch.isfinite(kl).all() and kl.item() == pytest.approx(160.0, rel=1e-4)
    assert torch.isfinite(L.token_kl(teacher, student, top_k=1)).all()


# --------------------------------------------------------------------------- distill_loss


def _kl_case(seed: int = 10):
    """A (1, 6, 5) case whose per-token KLs spread on both sides of delta = 1."""
    teacher = _random_logits(1, 6, 5, seed=seed, scale=3.0)
    student = _random_logits(1, 6, 5, seed=seed + 1, scale=3.0)
    kl = L.token_kl(teacher, student)
    assert (kl > 1.0).any() and (kl < 1.0).any(), kl
    return teacher, student, kl


def test_hard_clip_gradient_zero_past_delta_full_below():
    teacher, student, kl = _kl_case()
    student = student.requires_grad_(True)
    mask = torch.ones(1, 6)
    loss = L.distill_loss(teacher, student, mask, clip="hard", delta=1.0)
    assert_close(loss, kl.clamp(max=1.0).mean(-1))
    loss.sum().backward()
    p_minus_q = torch.softmax(student.detach(), -1) - torch.softmax(teacher, -1)  # (1, 6, 5)
    over = kl[0] > 1.0
    assert_close(student.grad[0, over], torch.zeros_like(student.grad[0, over]))
    assert_close(student.grad[0, ~over], p_minus_q[0, ~over] / 6, atol=1e-6, rtol=1e-4)


def test_scale_clip_bounds_value_and_keeps_gradient_direction():
    teacher, student, kl = _kl_case()
    # one token per row, so each row's loss is that token's clipped value
    teacher, student = teacher.reshape(6, 1, 5), student.reshape(6, 1, 5).requires_grad_(True)
    kl = kl.reshape(6)
    loss = L.distill_loss(teacher, student, torch.ones(6, 1), clip="scale", delta=1.0)
    assert (loss <= 1.0 + 1e-6).all()
    assert_close(loss, torch.minimum(kl, torch.ones(6)))
    loss.sum().backward()
    p_minus_q = torch.softmax(student.detach(), -1) - torch.softmax(teacher, -1)  # (6, 1, 5)
    factor = (1.0 / kl).clamp(max=1.0).reshape(6, 1, 1)
    assert_close(student.grad, factor * p_minus_q, atol=1e-6, rtol=1e-4)
    over = kl > 1.0
    assert (student.grad[over].abs().sum(-1) > 0).all()  # unlike hard, still a gradient past delta


def test_no_clip_is_masked_mean_of_kl():
    teacher, student = _random_logits(2, 4, 6, seed=12), _random_logits(2, 4, 6, seed=13)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    kl = L.token_kl(teacher, student)
    expected = torch.stack([kl[0, :2].mean(), kl[1].mean()])
    assert_close(L.distill_loss(teacher, student, mask, clip="none"), expected)
    assert_close(L.distill_loss(teacher, student, mask.float(), clip="none"), expected)


def test_reverse_direction_reaches_distill_loss():
    mask = torch.ones(1, 3)
    rev = L.distill_loss(Q.log(), P.log(), mask, direction="reverse", clip="none")
    assert_close(rev, L.token_kl(Q.log(), P.log(), direction="reverse").mean(-1))


@pytest.mark.parametrize("clip", ["hard", "scale", "none"])
def test_masked_out_tokens_contribute_nothing(clip):
    teacher, student = _random_logits(2, 5, 6, seed=14), _random_logits(2, 5, 6, seed=15)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 1, 0, 1]], dtype=torch.float32)
    base = L.distill_loss(teacher, student, mask, clip=clip)
    changed = student.clone()
    changed[mask == 0] = 1e4 * torch.randn_like(changed[mask == 0])
    teacher_changed = teacher.clone()
    teacher_changed[mask == 0] = -1e4
    assert_close(L.distill_loss(teacher_changed, changed, mask, clip=clip), base)
    student = student.requires_grad_(True)
    L.distill_loss(teacher, student, mask, clip=clip).sum().backward()
    assert torch.all(student.grad[mask == 0] == 0)


def test_empty_mask_gives_zero_not_nan():
    teacher, student = _random_logits(2, 3, 4, seed=16), _random_logits(2, 3, 4, seed=17).requires_grad_(True)
    mask = torch.tensor([[0, 0, 0], [1, 1, 0]])
    loss = L.distill_loss(teacher, student, mask)
    assert loss[0].item() == 0.0 and loss[1].item() > 0
    loss.sum().backward()
    assert torch.isfinite(student.grad).all()
    assert L.distill_loss(teacher, student, torch.zeros(2, 3)).abs().sum().item() == 0.0


def test_distill_loss_rejects_bad_options():
    with pytest.raises(ValueError, match="'soft'"):
        L.distill_loss(Q, P, torch.ones(1, 3), clip="soft")
    with pytest.raises(ValueError, match="delta"):
        L.distill_loss(Q, P, torch.ones(1, 3), delta=0.0)


def test_clipped_fraction_hand_case():
    kl = torch.tensor([[0.5, 1.5, 2.0], [3.0, 0.1, 1.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 1]])
    # active: 0.5, 1.5, 3.0, 1.0 -> two strictly above delta = 1
    frac = L.clipped_fraction(kl, mask, 1.0)
    assert frac.dim() == 0 and frac.dtype == torch.float32
    assert frac.item() == pytest.approx(0.5)
    assert L.clipped_fraction(kl, torch.zeros(2, 3), 1.0).item() == 0.0


# --------------------------------------------------------------------------- group_advantages


def test_group_advantages_hand_case_uses_bessel_std():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    # row 0: mean 0.25, unbiased var = (0.75^2 + 3 * 0.25^2) / 3 = 0.25 -> std 0.5
    # row 1: mean 0.5, unbiased var = 4 * 0.25 / 3 -> std sqrt(1/3)
    eps = 1e-4
    s1 = math.sqrt(1 / 3)
    expected = torch.tensor(
        [
            [0.75 / (0.5 + eps), -0.25 / (0.5 + eps), -0.25 / (0.5 + eps), -0.25 / (0.5 + eps)],
            [0.5 / (s1 + eps), 0.5 / (s1 + eps), -0.5 / (s1 + eps), -0.5 / (s1 + eps)],
        ]
    )
    assert_close(L.group_advantages(rewards), expected)


def test_group_advantages_invariants():
    rewards = torch.randint(0, 2, (5, 8), generator=torch.Generator().manual_seed(0)).float()
    adv = L.group_advantages(rewards)
    assert adv.shape == rewards.shape
    assert_close(adv.sum(-1), torch.zeros(5), atol=1e-5, rtol=0)
    assert_close(L.group_advantages(torch.full((2, 4), 1.0)), torch.zeros(2, 4))
    assert_close(L.group_advantages(rewards, scale=False), rewards - rewards.mean(-1, keepdim=True))


def test_group_advantages_single_member_group_is_zero_not_nan():
    adv = L.group_advantages(torch.tensor([[1.0], [0.0]]))
    assert_close(adv, torch.zeros(2, 1))


# --------------------------------------------------------------------------- grpo_loss


def _grpo_case():
    # row 0, A = +1: r = 1.1 (inside), 1.5 (clipped to 1.28), 0.5 (kept: pessimistic), 1.25 (inside only
    #   because eps_high = 0.28 > 0.2)
    # row 1, A = -1: r = 1.5 (kept), 0.5 (clipped to 0.8), 0.9 (inside), 0.75 (clipped to 0.8; masked out)
    ratios = torch.tensor([[1.1, 1.5, 0.5, 1.25], [1.5, 0.5, 0.9, 0.75]])
    old_logp = torch.full((2, 4), -1.0)
    logp = old_logp + ratios.log()
    advantages = torch.tensor([1.0, -1.0])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])
    return logp, old_logp, advantages, mask


def test_grpo_loss_hand_case_asymmetric_clip():
    logp, old_logp, advantages, mask = _grpo_case()
    row0 = 1.1 + 1.28 + 0.5 + 1.25
    row1 = -1.5 - 0.8 - 0.9
    expected = -(row0 + row1) / 7
    assert_close(L.grpo_loss(logp, old_logp, advantages, mask), torch.tensor(expected), atol=1e-6, rtol=1e-5)
    # (B, T) advantages give the same answer
    adv_bt = advantages[:, None].expand(2, 4)
    assert_close(L.grpo_loss(logp, old_logp, adv_bt, mask), torch.tensor(expected), atol=1e-6, rtol=1e-5)
    # a symmetric clip of 0.2 would have clipped r = 1.25 to 1.2
    sym = -(1.1 + 1.2 + 0.5 + 1.2 + row1) / 7
    assert_close(L.grpo_loss(logp, old_logp, advantages, mask, eps_high=0.2), torch.tensor(sym), atol=1e-6, rtol=1e-5)


def test_grpo_clip_fraction_hand_case():
    logp, old_logp, advantages, mask = _grpo_case()
    # clipped and active: row 0 r = 1.5, row 1 r = 0.5 (row 1 r = 0.75 is masked out)
    frac = L.grpo_clip_fraction(logp, old_logp, advantages, mask)
    assert frac.item() == pytest.approx(2 / 7)


def test_grpo_gradient_at_old_policy_is_minus_advantage_over_token_count():
    old_logp = -torch.rand(3, 5, generator=torch.Generator().manual_seed(3))
    logp = old_logp.clone().requires_grad_(True)
    advantages = torch.tensor([0.7, -1.2, 0.3])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 1, 1, 0]], dtype=torch.float32)
    loss = L.grpo_loss(logp, old_logp, advantages, mask)
    assert_close(loss, -(advantages[:, None] * mask).sum() / mask.sum())
    loss.backward()
    assert_close(logp.grad, -advantages[:, None] * mask / mask.sum())


def test_grpo_loss_empty_mask_is_zero():
    logp = torch.zeros(2, 3, requires_grad=True)
    loss = L.grpo_loss(logp, torch.zeros(2, 3), torch.ones(2), torch.zeros(2, 3))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logp.grad).all()


def test_old_logp_gets_no_gradient():
    logp, old_logp, advantages, mask = _grpo_case()
    old_logp = old_logp.requires_grad_(True)
    L.grpo_loss(logp.requires_grad_(True), old_logp, advantages, mask).backward()
    assert old_logp.grad is None or torch.all(old_logp.grad == 0)


# --------------------------------------------------------------------------- LUFFY


def test_policy_shaping_hand_values():
    assert_close(L.policy_shaping(torch.tensor([0.0, 0.1, 0.5, 1.0])), torch.tensor([0.0, 0.5, 0.5 / 0.6, 1 / 1.1]))


def test_luffy_off_policy_rows_use_shaped_probability():
    # row 0 on-policy at ratio 1, A = -1; row 1 off-policy expert, p = 0.5 and 0.9, A = 1
    logp = torch.tensor([[-1.0, -2.0], [math.log(0.5), math.log(0.9)]], requires_grad=True)
    old_logp = torch.tensor([[-1.0, -2.0], [-100.0, -100.0]])  # the expert row's old_logp is meaningless
    advantages = torch.tensor([-1.0, 1.0])
    mask = torch.ones(2, 2)
    off_policy = torch.tensor([False, True])
    loss = L.luffy_loss(logp, old_logp, advantages, mask, off_policy)
    # -(on: -1 - 1 + off: 0.5/0.6 + 0.9/1.0) / 4
    expected = -(-2.0 + 0.5 / 0.6 + 0.9 / 1.0) / 4
    assert_close(loss, torch.tensor(expected), atol=1e-6, rtol=1e-5)
    loss.backward()
    # d f(p)/d logp = p * gamma / (p + gamma)^2, no ratio and no clip
    off_grad = [-(p * 0.1 / (p + 0.1) ** 2) / 4 for p in (0.5, 0.9)]
    assert_close(logp.grad, torch.tensor([[0.25, 0.25], off_grad]), atol=1e-6, rtol=1e-5)


def test_luffy_without_off_policy_rows_equals_grpo():
    logp, old_logp, advantages, mask = _grpo_case()
    off_policy = torch.zeros(2, dtype=torch.bool)
    assert_close(
        L.luffy_loss(logp, old_logp, advantages, mask, off_policy), L.grpo_loss(logp, old_logp, advantages, mask)
    )


def test_luffy_off_policy_is_not_clipped():
    # the policy already far above the expert token's old prob would be clipped by GRPO, not by LUFFY
    logp = torch.tensor([[math.log(0.8)]], requires_grad=True)
    old_logp = torch.tensor([[math.log(0.1)]])
    loss = L.luffy_loss(logp, old_logp, torch.tensor([1.0]), torch.ones(1, 1), torch.tensor([True]))
    loss.backward()
    assert logp.grad.abs().item() > 0


# --------------------------------------------------------------------------- SFT, NLL, entropy


def test_sft_and_nll_hand_cases():
    logp = torch.log(torch.tensor([[0.5, 0.25, 0.9], [0.1, 0.2, 0.3]]))
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    # token-mean over the 2 active tokens of the batch
    assert_close(L.sft_loss(logp, mask), torch.tensor(-(math.log(0.5) + math.log(0.25)) / 2))
    per_seq = L.nll_loss_per_sequence(logp, mask)
    assert_close(per_seq, torch.tensor([-(math.log(0.5) + math.log(0.25)) / 2, 0.0]))
    assert L.sft_loss(logp, torch.zeros(2, 3)).item() == 0.0
    # token-mean and sequence-mean differ when rows have different lengths
    mask2 = torch.tensor([[1, 0, 0], [1, 1, 1]])
    token_mean = -(logp * mask2).sum() / 4
    assert_close(L.sft_loss(logp, mask2), token_mean)
    assert not torch.isclose(L.nll_loss_per_sequence(logp, mask2).mean(), token_mean)


def test_sequence_mean_logprob_hand_case():
    logp = torch.tensor([[-1.0, -3.0, -100.0], [-0.5, -0.5, -0.5]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert_close(L.sequence_mean_logprob(logp, mask), torch.tensor([-2.0, -0.5]))


def test_entropy_hand_cases():
    uniform = torch.zeros(1, 2, 7)
    assert_close(L.entropy(uniform, torch.ones(1, 2)), torch.tensor(math.log(7)))
    peaked = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [1.0, 1e-30, 1e-30]]]))
    # H(0.5, 0.25, 0.25) = 1.5 ln 2; the masked-out second position would be ~0
    assert_close(L.entropy(peaked, torch.tensor([[1, 0]])), torch.tensor(1.5 * math.log(2)))
    assert_close(L.entropy(peaked, torch.tensor([[1, 1]])), torch.tensor(0.75 * math.log(2)), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- adaptive_weight


@pytest.mark.parametrize(
    ("kind", "p_auto", "p_guided", "any_correct", "expected"),
    [
        ("pass_gap", 0.5, 0.75, True, 0.5 * 0.25 / 0.6),
        ("pass_gap", 0.2, 0.5, True, 0.5 * 0.3 / 0.3),
        ("pass_gap", 0.0, 0.5, True, 0.8),  # 0.5 * 0.5 / 0.1 = 2.5, capped at alpha_max
        ("pass_gap", 0.6, 0.4, True, 0.0),  # the strategy hurts: no distillation
        ("pass_gap", 0.2, 0.5, False, 0.0),  # no correct guided trajectory
        ("linear", 0.0, 0.0, True, 0.5),
        ("linear", 0.5, 0.0, True, 0.25),
        ("linear", 1.0, 1.0, True, 0.0),
        ("linear", 0.5, 1.0, False, 0.0),
        ("constant", 0.9, 0.1, True, 0.5),
        ("constant", 0.0, 1.0, False, 0.0),
    ],
)
def test_adaptive_weight_table(kind, p_auto, p_guided, any_correct, expected):
    w = L.adaptive_weight([p_auto], [p_guided], [any_correct], kind=kind)
    assert w.dtype == torch.float32 and w.shape == (1,)
    assert w.item() == pytest.approx(expected, abs=1e-6)


def test_adaptive_weight_vectorised_and_caps():
    p_auto = torch.tensor([0.0, 0.25, 0.5])
    p_guided = torch.tensor([1.0, 0.5, 0.5])
    any_correct = torch.tensor([True, True, True])
    expected = torch.tensor([0.8, 0.5 * 0.25 / 0.35, 0.0])
    assert_close(L.adaptive_weight(p_auto, p_guided, any_correct), expected)
    # linear with a large alpha0 hits the cap
    w = L.adaptive_weight(p_auto, p_guided, any_correct, kind="linear", alpha0=2.0)
    assert_close(w, torch.tensor([0.8, 0.8, 0.8]))


def test_adaptive_weight_unknown_kind():
    with pytest.raises(ValueError, match="'sigmoid'"):
        L.adaptive_weight([0.1], [0.5], [True], kind="sigmoid")


# --------------------------------------------------------------------------- select_targets


SCORES = torch.tensor([-0.1, -0.5, -0.3, -2.0, -0.2])
CORRECT = torch.tensor([False, True, True, True, False])


def test_select_best_picks_highest_scoring_correct_not_highest_overall():
    assert L.select_targets(SCORES, CORRECT) == [2]
    assert L.select_targets(SCORES, CORRECT, top_m=2) == [2, 1]
    assert L.select_targets(SCORES, CORRECT, top_m=10) == [2, 1, 3]


def test_select_all_returns_every_correct_index():
    assert L.select_targets(SCORES, CORRECT, mode="all") == [1, 2, 3]


def test_select_random_is_reproducible_and_correct():
    draws = set()
    for seed in range(20):
        first = L.select_targets(SCORES, CORRECT, mode="random", top_m=2, generator=torch.Generator().manual_seed(seed))
        again = L.select_targets(SCORES, CORRECT, mode="random", top_m=2, generator=torch.Generator().manual_seed(seed))
        assert first == again
        assert len(first) == 2 and len(set(first)) == 2 and set(first) <= {1, 2, 3}
        draws.add(tuple(first))
    assert len(draws) > 1  # it is actually random


def test_select_none_correct_is_empty():
    for mode in ("best", "all", "random"):
        assert L.select_targets(SCORES, torch.zeros(5, dtype=torch.bool), mode=mode) == []


def test_select_targets_rejects_bad_options():
    with pytest.raises(ValueError, match="'worst'"):
        L.select_targets(SCORES, CORRECT, mode="worst")
    with pytest.raises(ValueError, match="top_m"):
        L.select_targets(SCORES, CORRECT, top_m=0)


def test_paper_defaults():
    assert (L.EPS_LOW, L.EPS_HIGH, L.KL_DELTA) == (0.2, 0.28, 1.0)
    assert (L.ALPHA0, L.GAMMA, L.ALPHA_MAX) == (0.5, 0.1, 0.8)


def test_pointwise_clip_matches_a_hand_computed_case():
    """kl_clip=pointwise clips each term q_v log(q_v / p_v) to [-delta, delta], then sums over the vocabulary."""
    q = torch.tensor([0.7, 0.2, 0.1])
    p = torch.tensor([0.05, 0.5, 0.45])
    teacher, student = q.log().view(1, 1, 3), p.log().view(1, 1, 3).requires_grad_(True)
    delta = 0.5
    terms = q * (q / p).log()  # 1.847, -0.183, -0.150
    expected = terms.clamp(-delta, delta).sum()  # 0.5 - 0.183 - 0.150
    loss = L.distill_loss(teacher, student, torch.ones(1, 1), clip="pointwise", delta=delta)
    torch.testing.assert_close(loss, expected.view(1), atol=1e-5, rtol=1e-5)
    loss.sum().backward()
    # the clipped first term gives no gradient; the others give d/dlogit of -q_v log p_v summed
    log_p = student.detach().clone().requires_grad_(True)
    kept = -(q[1:] * torch.log_softmax(log_p.view(3), -1)[1:]).sum()
    kept.backward()
    torch.testing.assert_close(student.grad.view(3), log_p.grad.view(3), atol=1e-5, rtol=1e-5)
    # past delta nowhere: the same as the plain KL
    torch.testing.assert_close(L.distill_loss(teacher, student.detach(), torch.ones(1, 1), clip="pointwise", delta=5.0),
                               L.distill_loss(teacher, student.detach(), torch.ones(1, 1), clip="none"))
