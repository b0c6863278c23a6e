"""A character-level tokenizer that is a real Hugging Face fast tokenizer.

One token per character of a fixed alphabet, plus ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``.
It is a ``PreTrainedTokenizerFast`` (a ``tokenizers`` BPE model with no merges), so
``save_pretrained`` / ``AutoTokenizer.from_pretrained`` round-trip it like any other.

Text outside the alphabet is an error, not a silent ``<unk>``: ``check_text`` names the characters.
It works for any HF tokenizer that has an unknown token.
"""

from __future__ import annotations

import string

from tokenizers import Tokenizer, decoders, models, processors
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
ALPHABET = string.ascii_lowercase + string.ascii_uppercase + string.digits + " \n+-*/=#:.,()?!'<>_"


def build_char_tokenizer(alphabet: str = ALPHABET) -> PreTrainedTokenizerFast:
    """The lab's tokenizer: ids 0..3 are pad, bos, eos, unk; then one id per character of ``alphabet``."""
    if len(set(alphabet)) != len(alphabet):
        raise ValueError("alphabet has repeated characters")
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    vocab.update({ch: len(SPECIAL_TOKENS) + i for i, ch in enumerate(alphabet)})
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK, fuse_unk=False))
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        padding_side="left", clean_up_tokenization_spaces=False,
    )


class UnknownCharactersError(ValueError):
    """Text holds characters the tokenizer cannot represent."""


def check_text(tokenizer: PreTrainedTokenizerBase, text: str, *, what: str = "text") -> None:
    """Raise a one-line error naming every character of ``text`` that ``tokenizer`` maps to its unknown token."""
    unk = tokenizer.unk_token_id
    if unk is None or not text:
        return
    bad: list[str] = []
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    for tok, (start, end) in zip(encoding["input_ids"], encoding["offset_mapping"]):
        if tok == unk:
            bad.extend(ch for ch in text[start:end] if ch not in bad)
    if bad:
        shown = " ".join(repr(ch) for ch in bad[:10]) + (" ..." if len(bad) > 10 else "")
        raise UnknownCharactersError(f"{what} has characters outside the tokenizer's alphabet: {shown}; "
                                     f"expected {_describe_alphabet(tokenizer)}")


def _describe_alphabet(tokenizer: PreTrainedTokenizerBase) -> str:
    """'letters, digits, spaces and +-*...' for a small character vocabulary; a generic phrase otherwise."""
    if len(tokenizer) > 256:
        return "text in the model's own alphabet"
    symbols = sorted(t for t in tokenizer.get_vocab() if len(t) == 1 and not t.isalnum() and not t.isspace())
    return "letters, digits, spaces, newlines and " + "".join(symbols)
