"""The local stand-ins for a hub model (``sgpo_lab.toy``): a Qwen2-style tokenizer and model, saved and loaded."""

from __future__ import annotations

import time

import pytest
import torch

from sgpo_lab.models import load_model
from sgpo_lab.toy import (
    END_OF_TEXT,
    IM_END,
    IM_START,
    QWEN2_VOCAB,
    build_byte_bpe_tokenizer,
    build_qwen2,
    save_toy_model,
)

TEXTS = [
    "A shirt costs $120. It is 25% off. What is the sale price?\nThe answer is $90.",
    "Zoë paid €4.50 for crème brûlée — 5 \u00d7 0.9 ≈ 4.5 🙂\n\n  indented\ttab\r\nend",
    "数学很有趣。 Математика.",
    "",
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_byte_bpe_tokenizer()


@pytest.mark.parametrize("text", TEXTS)
def test_tokenizer_round_trips_any_text(tokenizer, text):
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert END_OF_TEXT not in tokenizer.convert_ids_to_tokens(ids)  # no BOS/EOS added, as Qwen2


def test_tokenizer_ids_and_special_tokens(tokenizer):
    assert len(tokenizer) == 400
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (END_OF_TEXT, IM_START, IM_END)}
    assert ids == {END_OF_TEXT: 397, IM_START: 398, IM_END: 399}
    assert tokenizer.eos_token_id == tokenizer.pad_token_id == 397
    assert tokenizer.bos_token_id is None and tokenizer.unk_token_id is None
    # special tokens in text are one id each, and skip_special_tokens drops them
    ids = tokenizer("<|im_start|>user\nhi<|im_end|>")["input_ids"]
    assert ids[0] == 398 and ids[-1] == 399
    assert tokenizer.decode(ids, skip_special_tokens=True) == "user\nhi"
    # digits are single tokens (Qwen2 splits numbers digit by digit); the corpus taught some merges
    assert tokenizer.convert_ids_to_tokens(tokenizer("2025")["input_ids"]) == ["2", "0", "2", "5"]
    assert len(tokenizer("The answer is")["input_ids"]) < len("The answer is")


def test_tokenizer_is_deterministic_and_takes_a_corpus(tokenizer):
    assert build_byte_bpe_tokenizer().get_vocab() == tokenizer.get_vocab()
    small = build_byte_bpe_tokenizer(["aaaa bbbb aaaa"] * 10, vocab_size=265, chat_template=False)
    assert small.chat_template is None and small.convert_tokens_to_ids(IM_END) == len(small) - 1
    assert small.decode(small("any text, still: 100%")["input_ids"]) == "any text, still: 100%"
    with pytest.raises(ValueError, match="too small"):
        build_byte_bpe_tokenizer(vocab_size=100)


def test_chat_template_with_and_without_system(tokenizer):
    user = [{"role": "user", "content": "What is 2 + 2?"}]
    system = [{"role": "system", "content": "Answer briefly."}]
    assert tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True) == (
        "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n")
    chat = [*system, *user, {"role": "assistant", "content": "4"}]
    assert tokenizer.apply_chat_template(chat, tokenize=False) == (
        "<|im_start|>system\nAnswer briefly.<|im_end|>\n<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n"
        "<|im_start|>assistant\n4<|im_end|>\n")
    text = tokenizer.apply_chat_template(system + user, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids.count(398) == 3 and ids.count(399) == 2 and ids[-2:] == tokenizer("assistant\n")["input_ids"][-2:]


def test_pad_to_qwen_vocabulary_is_fast():
    start = time.perf_counter()
    big = build_byte_bpe_tokenizer(pad_to=QWEN2_VOCAB)
    assert time.perf_counter() - start < 5
    assert len(big) == QWEN2_VOCAB
    assert big.convert_tokens_to_ids(IM_END) == 399  # special ids do not move; the padding follows them
    text = TEXTS[1]
    ids = big(text)["input_ids"]
    assert max(ids) < 397 and big.decode(ids) == text  # padding tokens are never produced
    with pytest.raises(ValueError, match="pad_to"):
        build_byte_bpe_tokenizer(pad_to=300)


def test_model_shape_and_end_ids(tokenizer):
    model = build_qwen2(tokenizer)
    assert model.generation_config.eos_token_id == [399, 397]  # <|im_end|>, then <|endoftext|>
    assert model.config.eos_token_id == 399 and model.config.pad_token_id == 397
    assert model.config.num_key_value_heads < model.config.num_attention_heads
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    state = torch.random.get_rng_state()
    again = build_qwen2(tokenizer)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is left alone
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    wide = build_qwen2(tokenizer, vocab_size=512, hidden=16, heads=2, kv_heads=1, ffn=32, layers=1)
    assert wide(torch.tensor([[1, 2, 3]])).logits.shape == (1, 3, 512)
    with pytest.raises(ValueError, match="smaller than the tokenizer"):
        build_qwen2(tokenizer, vocab_size=10)


def test_saved_model_loads_with_the_lab_loader(tiny_chat_model_dir):
    assert (tiny_chat_model_dir / "model.safetensors").exists()
    model, tok = load_model(str(tiny_chat_model_dir))
    assert type(model).__name__ == "Qwen2ForCausalLM" and type(tok).__name__ == "Qwen2Tokenizer"
    assert model.generation_config.eos_token_id == [399, 397]
    assert tok.chat_template and tok.pad_token_id == tok.eos_token_id == 397
    built = build_byte_bpe_tokenizer()
    for text in TEXTS:  # the loaded tokenizer is the built one
        assert tok(text)["input_ids"] == built(text)["input_ids"]
    prompt = tok.apply_chat_template([{"role": "user", "content": "2 + 2?"}], add_generation_prompt=True,
                                     tokenize=False)
    ids = torch.tensor([tok(prompt)["input_ids"]])
    assert model(ids).logits.shape == (1, ids.shape[1], len(tok))


def test_save_with_qwen_sized_vocabulary(tmp_path):
    out = save_toy_model(tmp_path / "big", pad_to=QWEN2_VOCAB, hidden=16, heads=2, kv_heads=1, ffn=32, layers=1)
    model, tok = load_model(out)
    assert len(tok) == model.config.vocab_size == QWEN2_VOCAB
