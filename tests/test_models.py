"""Tokenizer, model sizes, the one loader (sizes, runs, any local HF causal LM) and pretraining."""

import json

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from sgpo_lab.models import SIZES, ModelLoadError, build_model, load_model, n_params
from sgpo_lab.pretrain import PretrainConfig, pretrain, recipe
from sgpo_lab.rollout import sample
from sgpo_lab.shifts import token_shifts
from sgpo_lab.world.tokenizer import ALPHABET, UnknownCharactersError, build_char_tokenizer, check_text


def test_char_tokenizer_round_trips_through_save_pretrained(tmp_path):
    tok = build_char_tokenizer()
    text = "Problem type: list sum\nQ: sum 3 8 5\nA: 3+8=11 #16"
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id and len(ids) == len(text) + 1  # one token per character
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    assert again(text)["input_ids"] == ids
    assert again.decode(ids, skip_special_tokens=True) == text
    assert len(again) == len(ALPHABET) + 4


def test_text_outside_the_alphabet_is_a_named_error():
    tok = build_char_tokenizer()
    with pytest.raises(UnknownCharactersError, match=r"'é'.*'😀'"):
        check_text(tok, "sum 3 é 😀", what="problem")
    check_text(tok, "sum 3 8")  # fine


@pytest.mark.parametrize("size,low,high", [("tiny", 0.1e6, 0.3e6), ("small", 0.7e6, 1.5e6), ("medium", 3e6, 5e6)])
def test_named_sizes_have_the_promised_parameter_counts(size, low, high):
    assert low < n_params(build_model(size)) < high
    assert set(SIZES) == {"tiny", "small", "medium"}


def test_model_round_trips_through_safetensors(tmp_path):
    tok = build_char_tokenizer()
    model = build_model("tiny", tok, seed=3)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded, _ = load_model(tmp_path)
    ids = torch.tensor([tok("Q: sum 1 2\nA:")["input_ids"]])
    torch.testing.assert_close(loaded(ids).logits, model.eval()(ids).logits)


def _foreign_model_dir(path):
    """A GPT-2 causal LM with a byte-level BPE tokenizer: another architecture and tokenizer type."""
    core = Tokenizer(models.BPE(unk_token=None))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(["Q: sum 3 8 5\nA: 3+8=11 11+5=16 #16", "Problem type: list sum"] * 20, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    config = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=256,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(path)
    tok.save_pretrained(path)


def test_any_local_hf_causal_lm_loads_and_runs_the_lab(tmp_path):
    _foreign_model_dir(tmp_path)
    model, tok = load_model(tmp_path)
    assert type(model).__name__ == "GPT2LMHeadModel"
    assert tok.pad_token_id is not None  # set for batching when the model ships without one
    out = sample(model, tok, ["Q: sum 3 8 5\nA:"] * 2, max_new_tokens=5, generator=torch.Generator().manual_seed(0))
    assert len(out.texts) == 2
    table = token_shifts(model, tok, "sum 3 8 5", "Problem type: list sum", " 3+8=11 #16")
    assert len(table) > 0 and (table["kl"] >= 0).all()


def test_bad_model_specs_are_one_line_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="neither a size"):
        load_model("huge")
    with pytest.raises(ModelLoadError, match="config.json is missing"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelLoadError, match="only safetensors"):
        load_model(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_model(tmp_path)
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    with pytest.raises(ModelLoadError, match="is a file"):
        load_model(afile)


def test_pretraining_smoke_run_on_a_micro_config(tmp_path):
    cfg = PretrainConfig(size="tiny", steps=6, batch_size=4, warmup=2)
    record = pretrain(cfg, tmp_path / "m", command="test", progress=False)
    assert record["parameters"] == n_params(build_model("tiny"))
    saved = json.loads((tmp_path / "m" / "pretrain.json").read_text())
    assert saved["command"] == "test" and saved["config"]["seed"] == 0
    model, _ = load_model(tmp_path / "m")
    assert n_params(model) == record["parameters"]


def test_recipes_exist_for_every_size_and_reject_bad_steps():
    for size in SIZES:
        assert recipe(size).size == size
    with pytest.raises(ValueError, match="unknown model size"):
        recipe("huge")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        recipe("tiny", steps=0)


@pytest.mark.parametrize("size", list(SIZES))
def test_shipped_base_models_load_with_their_recipe_record(size):
    model, _ = load_model(size)
    from sgpo_lab.models import BASE_MODELS

    record = json.loads((BASE_MODELS / size / "pretrain.json").read_text())
    assert record["command"].startswith("sgpo-lab pretrain") and f"--size {size}" in record["command"]
    assert record["config"]["seed"] == 0 and record["parameters"] == n_params(model)
