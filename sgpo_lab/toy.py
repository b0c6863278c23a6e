"""Small Hugging Face models and tokenizers built locally, the lab's stand-in for a hub model in tests, benchmarks
and demos; nothing here downloads.

The stand-in copies what makes a Qwen2 instruct checkpoint different from the lab's own character models:

* a byte-level BPE tokenizer (any text encodes, no unknown token), loaded as transformers' ``Qwen2Tokenizer``
  with Qwen's own normalizer and pre-tokenizer, no BOS, and ``<|endoftext|>`` as both EOS and pad;
* a ChatML chat template (``<|im_start|>role\\n...<|im_end|>\\n``);
* several end ids: the generation config names ``<|im_end|>`` and ``<|endoftext|>``;
* optionally Qwen's 151,936-row vocabulary (``pad_to``), and embedding rows past the tokenizer (``vocab_size``).

The weights are random: the model's completions are noise, but their shapes, ids and special tokens are real.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer
from transformers.utils import logging as transformers_logging

# As in sgpo_lab.models: a shard progress bar for a 100 kB model is noise in test and benchmark output.
transformers_logging.disable_progress_bar()

END_OF_TEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (END_OF_TEXT, IM_START, IM_END)
QWEN2_VOCAB = 151_936  # rows of every Qwen2/2.5 model's embedding

# ChatML as Qwen instruct models render it. No default system turn: a conversation without one renders
# without one. ``add_generation_prompt`` opens the assistant turn the model is to complete.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

_NAMES = ("Ava", "Ben", "Chloé", "Diego", "Émile", "Farah", "Grace", "Hiro", "Inès", "Jamal", "Zoë", "Mei")
_ITEMS = ("apples", "pencils", "stickers", "books", "marbles", "cookies", "tickets", "stamps")
_THINGS = ("shirt", "lamp", "bike", "backpack", "game", "coat", "kettle", "board game")
_PROSE = (
    "You are a helpful assistant.",
    "Let's think step by step.",
    "Read the question carefully, then write the answer on its own line.",
    "Check the units before you answer: dollars, percent, hours or items.",
    "A strategy is a short hint: first find the total, then split it into equal parts.",
    "If the answer is a percentage, write the number followed by %.",
    "The café sells crème brûlée for €4.50, about 5 \u00d7 0.9 dollars.",
    "½ + ¼ = ¾, and 3 ÷ 4 = 0.75.",
    "Température : 21 °C. Naïve façade, Zürich, São Paulo.",
    "数学很有趣。 算数は楽しい。 Математика — это весело. 🙂",
    "Q: What is 12 + 7?\nA: 19",
    "Q: What is 9 times 8?\nA: 72",
)


def _word_problems(n: int = 240, seed: int = 0) -> list[str]:
    """Templated arithmetic word problems with worked answers: the built-in training text."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        name, item, thing = rng.choice(_NAMES), rng.choice(_ITEMS), rng.choice(_THINGS)
        a, b = rng.randint(2, 60), rng.randint(2, 12)
        kind = i % 4
        if kind == 0:
            out.append(f"{name} has {a} {item} and buys {b} more. How many {item} does {name} have now?\n"
                       f"{a} + {b} = {a + b}.\nThe answer is {a + b}.")
        elif kind == 1:
            price, pct = rng.randint(2, 40) * 5, rng.choice((10, 20, 25, 50))
            off = price * pct // 100
            out.append(f"A {thing} costs ${price}. It is {pct}% off. What is the sale price?\n"
                       f"{pct}% of ${price} is ${off}. ${price} - ${off} = ${price - off}.\n"
                       f"The answer is ${price - off}.")
        elif kind == 2:
            out.append(f"{name} reads {b} pages a day for {a} days. How many pages is that in total?\n"
                       f"{b} \u00d7 {a} = {a * b}.\nThe answer is {a * b}.")
        else:
            out.append(f"{name} shares {a * b} {item} equally among {b} friends. How many does each friend get?\n"
                       f"{a * b} ÷ {b} = {a}.\nThe answer is {a}.")
    return out


def default_corpus() -> list[str]:
    """The built-in training text: word problems with $, %, digits and newlines, plus English and unicode prose."""
    return _word_problems() + list(_PROSE)


def build_byte_bpe_tokenizer(corpus: list[str] | None = None, *, vocab_size: int = 400, pad_to: int | None = None,
                             chat_template: bool = True) -> PreTrainedTokenizerFast:
    """A Qwen2-style byte-level BPE tokenizer trained on ``corpus`` (default: ``default_corpus()``).

    Ids: the 256 byte tokens and the learned merges, then ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``
    (``vocab_size`` counts all of them; a corpus too small for it gives fewer merges), then with ``pad_to``
    never-produced ``<|reserved_N|>`` tokens up to ``pad_to`` in all. Deterministic.
    """
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size={vocab_size} is too small: the byte alphabet and the special tokens take "
                         f"{256 + len(SPECIAL_TOKENS)}")
    # Train under the exact normalizer and pre-tokenizer Qwen2Tokenizer rebuilds on load (transformers 5 ignores
    # the ones in tokenizer.json for that class), so the merges learned here are the ones applied after loading.
    shell = Qwen2Tokenizer(unk_token=None).backend_tokenizer
    core = Tokenizer(models.BPE())
    core.normalizer, core.pre_tokenizer = shell.normalizer, shell.pre_tokenizer
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(default_corpus() if corpus is None else corpus, trainer)
    learned = json.loads(core.to_str())["model"]
    vocab: dict[str, int] = dict(learned["vocab"])
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learned["merges"]]
    for token in SPECIAL_TOKENS:
        vocab[token] = len(vocab)
    if pad_to is not None:
        if pad_to < len(vocab):
            raise ValueError(f"pad_to={pad_to} is smaller than the trained vocabulary ({len(vocab)} tokens)")
        # Straight into the BPE vocabulary: no merge yields them, so they are never produced, and 150k of them
        # cost a dict insert each (add_tokens would build an added-token matcher over all of them).
        vocab.update({f"<|reserved_{i}|>": i for i in range(len(vocab), pad_to)})
    # unk_token=None as in Qwen's tokenizer_config.json: a byte-level tokenizer has nothing unknown.
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, eos_token=END_OF_TEXT,
                               pad_token=END_OF_TEXT, extra_special_tokens=[IM_START, IM_END])
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def end_ids(tokenizer: PreTrainedTokenizerFast) -> list[int]:
    """The ids that end an assistant turn, as a Qwen instruct generation config lists them: ``<|im_end|>`` first."""
    ids = [tokenizer.convert_tokens_to_ids(t) for t in (IM_END, END_OF_TEXT)] + [tokenizer.eos_token_id]
    known = [i for i in ids if isinstance(i, int) and i != tokenizer.unk_token_id]
    return list(dict.fromkeys(known))


def build_qwen2(tokenizer: PreTrainedTokenizerFast, *, vocab_size: int | None = None, hidden: int = 32,
                layers: int = 2, heads: int = 4, kv_heads: int = 2, ffn: int = 64, seed: int = 0) -> Qwen2ForCausalLM:
    """A randomly initialised Qwen2 causal LM for ``tokenizer`` (grouped-query attention: ``kv_heads`` < ``heads``).

    ``vocab_size``: embedding rows, at least ``len(tokenizer)``; more leaves rows no token maps to, as Qwen's
    151,936 rows over a 151,665-token tokenizer do. The generation config names every end id (``end_ids``).
    """
    rows = len(tokenizer) if vocab_size is None else vocab_size
    if rows < len(tokenizer):
        raise ValueError(f"vocab_size={rows} is smaller than the tokenizer ({len(tokenizer)} tokens)")
    ends = end_ids(tokenizer)
    config = Qwen2Config(
        vocab_size=rows, hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0}, tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=ends[0], pad_token_id=tokenizer.pad_token_id,
    )
    # A private RNG stream: building a stand-in must not shift the caller's torch random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=None, eos_token_id=ends,
                                               pad_token_id=tokenizer.pad_token_id)
    return model.eval()


def save_toy_model(out: Path, *, vocab_size: int | None = None, seed: int = 0, pad_to: int | None = None,
                   **sizes: int) -> Path:
    """Build a tokenizer (``pad_to``) and a model (``vocab_size``, ``seed``, ``sizes`` as ``build_qwen2``) and save
    both to ``out`` as a local HF model directory (config, generation config, safetensors, tokenizer, template).
    """
    out = Path(out)
    tokenizer = build_byte_bpe_tokenizer(pad_to=pad_to)
    model = build_qwen2(tokenizer, vocab_size=vocab_size, seed=seed, **sizes)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
