"""Rollouts and two-context scoring: padding never changes a score; an empty strategy changes nothing."""

import pytest
import torch

from sgpo_lab.losses import token_kl
from sgpo_lab.models import build_model, load_model
from sgpo_lab.rollout import completion_logits, encode_prompts, sample
from sgpo_lab.shifts import token_shifts
from sgpo_lab.world.problems import make_problems
from sgpo_lab.world.prompts import autonomous_prompt, guided_prompt
from sgpo_lab.world.strategies import strategy_card
from sgpo_lab.world.tokenizer import build_char_tokenizer


@pytest.fixture(scope="module")
def lm():
    tok = build_char_tokenizer()
    return build_model("tiny", tok, seed=1).eval(), tok


PROMPTS = [autonomous_prompt("sum 3 8 5"), guided_prompt("2x+3=9", strategy_card("equation", "undo")),
           autonomous_prompt("count over 4 in 9 3 5 2 7")]


def test_batched_scores_equal_one_at_a_time_scores(lm):
    model, tok = lm
    prompts = encode_prompts(tok, PROMPTS)
    completions = [tok(c, add_special_tokens=False)["input_ids"] for c in (" 3+8=11 11+5=16 #16", " #3", " 9:1 #3")]
    with torch.no_grad():
        batched, tokens, mask = completion_logits(model, prompts, completions)
        for i, (p, c) in enumerate(zip(prompts, completions)):
            single, single_tokens, _ = completion_logits(model, [p], [c])
            torch.testing.assert_close(batched[i, :len(c)], single[0], atol=1e-5, rtol=1e-5)
            assert tokens[i, :len(c)].tolist() == c == single_tokens[0].tolist()
            assert mask[i].sum() == len(c)


def test_empty_strategy_makes_teacher_equal_student(lm):
    model, tok = lm
    completion = [tok(" 3+8=11 #11", add_special_tokens=False)["input_ids"]]
    with torch.no_grad():
        teacher, _, _ = completion_logits(model, encode_prompts(tok, [guided_prompt("sum 3 8", "")]), completion)
        student, _, _ = completion_logits(model, encode_prompts(tok, [autonomous_prompt("sum 3 8")]), completion)
    torch.testing.assert_close(teacher, student)
    assert token_kl(teacher, student).abs().max() < 1e-6


def test_scores_match_a_plain_forward_pass(lm):
    model, tok = lm
    prompt = tok(PROMPTS[0])["input_ids"]
    completion = tok(" 3+8=11", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        full = model(torch.tensor([prompt + completion])).logits[0, len(prompt) - 1: -1]
        ours, _, _ = completion_logits(model, [prompt], [completion])
    torch.testing.assert_close(ours[0], full, atol=1e-5, rtol=1e-5)


def test_kv_cache_sampling_matches_greedy_recomputation(lm):
    model, tok = lm
    out = sample(model, tok, PROMPTS, max_new_tokens=12, greedy=True)
    for prompt, ids in zip(PROMPTS, out.completion_ids):
        seq = tok(prompt)["input_ids"]
        for t in ids:  # each greedy token is the argmax of a fresh full forward pass
            with torch.no_grad():
                assert model(torch.tensor([seq])).logits[0, -1].argmax().item() == t
            seq.append(t)


def test_rows_that_finish_early_leave_the_batch_without_changing_any_row():
    """Greedy completions of very different lengths and repeated prompts: batched (one prefill per distinct prompt,
    finished rows dropped) and one at a time."""
    model, tok = load_model("tiny")
    problems = [p for f in ("sum", "equation", "count", "mul") for p in make_problems(f, "id", 3)]
    prompts = [guided_prompt(p.question, p.strategy) for p in problems] + [autonomous_prompt(p.question)
                                                                         for p in problems]
    prompts += prompts[:3] * 2  # repeated prompts share one prefill
    batched = sample(model, tok, prompts, max_new_tokens=120, greedy=True)
    lengths = {len(ids) for ids in batched.completion_ids}
    assert len(lengths) > 3 and all(batched.finished), "the rows should end at many different lengths"
    for prompt, ids in zip(prompts, batched.completion_ids):
        alone = sample(model, tok, [prompt], max_new_tokens=120, greedy=True)
        assert alone.completion_ids[0] == ids, prompt


def test_sampling_is_reproducible_with_a_generator(lm):
    model, tok = lm
    a = sample(model, tok, PROMPTS * 2, max_new_tokens=10, generator=torch.Generator().manual_seed(5))
    b = sample(model, tok, PROMPTS * 2, max_new_tokens=10, generator=torch.Generator().manual_seed(5))
    assert a.completion_ids == b.completion_ids and a.texts == b.texts
    for ids, done in zip(a.completion_ids, a.finished):
        assert done == (ids[-1] == tok.eos_token_id)


def test_token_shifts_table(lm):
    model, tok = lm
    table = token_shifts(model, tok, "sum 3 8", strategy_card("sum", "left_to_right"), " 3+8=11 #11", top_k=3)
    assert list(table["token"]) == list(" 3+8=11 #11")
    assert (table["kl"] >= 0).all() and table["p_guided"].between(0, 1).all()
    assert all(len(t) == 3 for t in table["top_guided"])
    with pytest.raises(ValueError, match="problem is empty"):
        token_shifts(model, tok, "  ", "x")
    with pytest.raises(ValueError, match="outside the tokenizer's alphabet"):
        token_shifts(model, tok, "sum 3 ☃", "x")


def test_micro_batches_by_length_cover_every_row_once_with_less_padding():
    from sgpo_lab.rollout import micro_batches

    widths = [12, 80, 15, 14, 70, 13, 16, 11, 90, 12, 15, 14]  # a long tail, as sampled completions have
    passes = micro_batches(widths, vocab=64, budget_mb=256, fixed=8)
    assert sorted(r for p in passes for r in p) == list(range(len(widths)))
    assert all(p == sorted(p) for p in passes) and len(passes) > 1
    padded = sum(len(p) * max(widths[r] for r in p) for p in passes)
    assert padded < len(widths) * max(widths)  # one padded batch scores 1080 tokens
    # the budget still holds: at most 2 rows of 91 x 64 float32 logits fit in 0.05 MB
    tight = micro_batches(widths, vocab=64, budget_mb=0.05)
    assert all(len(p) * (max(widths[r] for r in p) + 1) * 64 * 4 <= 0.05 * 2**20 or len(p) == 1 for p in tight)
    # groups stay whole (the convex objective's problems)
    groups = [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    for p in micro_batches(widths, vocab=64, budget_mb=256, groups=groups, fixed=0):
        assert all(set(g) <= set(p) or not set(g) & set(p) for g in groups)


def test_micro_batches_without_buckets_keep_the_padded_layout():
    """``by_length=False`` is how runs made before length buckets were scored: one batch when it fits, else
    consecutive micro-batches sized at the longest row (whole groups), in row order."""
    from sgpo_lab.rollout import micro_batches

    widths = [10, 40, 20, 30, 10, 5]
    assert micro_batches(widths, vocab=64, budget_mb=256, by_length=False) == [[0, 1, 2, 3, 4, 5]]
    cap_two = 2 * 41 * 64 * 4 / 2**20  # exactly 2 rows of the longest fit
    assert micro_batches(widths, vocab=64, budget_mb=cap_two, by_length=False) == [[0, 1], [2, 3], [4, 5]]
    groups = [[0, 3], [1, 4], [2, 5]]
    assert micro_batches(widths, vocab=64, budget_mb=cap_two, by_length=False, groups=groups) == groups
    assert micro_batches([], vocab=64, budget_mb=1) == []
