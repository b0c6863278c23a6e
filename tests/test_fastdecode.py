"""The lean decoder computes the model's own distribution: same greedy tokens and logits as HF's forward."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from sgpo_lab import fastdecode
from sgpo_lab.models import build_model, load_model
from sgpo_lab.rollout import _hf_decode, _left_pad, completion_logits, encode_prompts, sample
from sgpo_lab.world.problems import make_problems
from sgpo_lab.world.prompts import autonomous_prompt, guided_prompt
from sgpo_lab.world.tokenizer import build_char_tokenizer


@pytest.fixture(scope="module")
def small():
    return load_model("small")


def _mixed_prompts() -> list[str]:
    """Guided and autonomous prompts (two very different widths), in groups of different sizes."""
    problems = [p for f in ("sum", "equation", "count", "mul") for p in make_problems(f, "id", 2)]
    prompts = [autonomous_prompt(p.question) for p in problems for _ in range(3)]
    prompts += [guided_prompt(p.question, p.strategy) for p in problems for _ in range(2)]
    return prompts + prompts[:1] * 4  # one prompt repeated out of order


def _both(model, tok, prompts, **kw):
    distinct: dict[str, int] = {}
    row_prompt = torch.tensor([distinct.setdefault(p, len(distinct)) for p in prompts])
    ids, mask = _left_pad(encode_prompts(tok, list(distinct)), tok.pad_token_id)
    args = dict(max_new_tokens=kw.pop("max_new_tokens", 100), eos=tok.eos_token_id, pad=tok.pad_token_id,
                temperature=1.0, keep_logits=True, **kw)
    return (fastdecode.decode(model, ids, mask, row_prompt, **args),
            _hf_decode(model, ids, mask, row_prompt, **args))


def test_lab_models_are_supported_and_others_are_not(small):
    assert fastdecode.supports(small[0])
    assert not fastdecode.supports(GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50)))
    biased = build_model("tiny")
    biased.config.attention_bias = True
    assert not fastdecode.supports(biased)


def test_greedy_tokens_and_logits_equal_the_models_own_forward(small):
    """Rows of many lengths leave the batch, prompts leave the grid, two prefill widths: nothing changes."""
    model, tok = small
    (fast, fast_logits), (hf, hf_logits) = _both(model, tok, _mixed_prompts(), greedy=True, generator=None)
    assert torch.equal(fast, hf)
    ended = (fast == tok.eos_token_id).any(1)
    assert ended.all() and len({int(row.tolist().index(tok.eos_token_id)) for row in fast}) > 5
    live = fast != tok.pad_token_id  # (B, T) the tokens actually sampled
    torch.testing.assert_close(fast_logits[live], hf_logits[live], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("fast", [True, False])
def test_kept_logits_are_the_distribution_each_sampled_token_came_from(small, fast, monkeypatch):
    """Sampled (not greedy) completions: the logits kept while sampling equal a fresh forward pass over them."""
    model, tok = small
    if not fast:
        monkeypatch.setattr(fastdecode, "supports", lambda m: False)
    prompts = _mixed_prompts()
    out = sample(model, tok, prompts, generator=torch.Generator().manual_seed(3), keep_logits=True)
    with torch.no_grad():
        logits, _, _ = completion_logits(model, encode_prompts(tok, prompts), out.completion_ids)
    for i, ids in enumerate(out.completion_ids):
        assert out.logits[i].shape == (len(ids), logits.shape[-1])
        torch.testing.assert_close(out.logits[i], logits[i, :len(ids)], atol=1e-4, rtol=1e-4)


def test_sampling_is_reproducible_and_split_keeps_rows(small):
    model, tok = small
    prompts = _mixed_prompts()
    a = sample(model, tok, prompts, generator=torch.Generator().manual_seed(9), keep_logits=True)
    b = sample(model, tok, prompts, generator=torch.Generator().manual_seed(9))
    assert a.completion_ids == b.completion_ids and b.logits is None
    first, rest = a.split(5)
    assert first.completion_ids + rest.completion_ids == a.completion_ids
    assert len(first.logits) == 5 and len(rest.logits) == len(prompts) - 5


def test_an_unsupported_model_samples_with_its_own_forward():
    tok = build_char_tokenizer()
    model = build_model("tiny", tok, seed=2).eval()
    prompts = [autonomous_prompt("sum 3 8")] * 2 + [autonomous_prompt("count over 4 in 9 3 5")]
    model.config.attention_bias = True  # only the flag: the weights still compute a plain Llama
    assert not fastdecode.supports(model)
    own_forward = sample(model, tok, prompts, max_new_tokens=8, greedy=True)
    model.config.attention_bias = False
    assert fastdecode.supports(model)
    assert sample(model, tok, prompts, max_new_tokens=8, greedy=True).completion_ids == own_forward.completion_ids


def test_bf16_weights_decode_like_their_own_forward(monkeypatch):
    model, tok = load_model("tiny")
    model = model.to(torch.bfloat16)
    prompts = _mixed_prompts()[::3]
    fast = sample(model, tok, prompts, greedy=True, max_new_tokens=60)
    monkeypatch.setattr(fastdecode, "supports", lambda m: False)
    assert sample(model, tok, prompts, greedy=True, max_new_tokens=60).completion_ids == fast.completion_ids
