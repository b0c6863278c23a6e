"""Model sizes and the one loader: a shipped size name, a run checkpoint, or any local HF causal-LM directory.

The shipped base models are Llama-architecture causal LMs (transformers' ``LlamaForCausalLM``)
over the lab's character tokenizer, pretrained by ``sgpo-lab pretrain`` (``sgpo_lab.pretrain``).
Loading is offline and safe: ``local_files_only=True``, safetensors weights only, never
``trust_remote_code``. Any other causal LM with its own tokenizer loads the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as transformers_logging

from sgpo_lab.world.tokenizer import build_char_tokenizer

# Loading and saving a 1M-parameter model takes milliseconds: transformers' per-shard progress bars are noise
# in the CLI's one-line errors, the app and the notebooks.
transformers_logging.disable_progress_bar()

ASSETS = Path(__file__).parent / "assets"
BASE_MODELS = ASSETS / "base"
DEFAULT_SIZE = "small"


@dataclass(frozen=True)
class Size:
    hidden: int
    layers: int
    heads: int
    ffn: int


SIZES: dict[str, Size] = {
    "tiny": Size(hidden=64, layers=3, heads=4, ffn=256),  # ~0.2M parameters
    "small": Size(hidden=128, layers=4, heads=4, ffn=512),  # ~1M
    "medium": Size(hidden=256, layers=4, heads=8, ffn=1024),  # ~4M
}
MAX_POSITIONS = 320


class ModelLoadError(ValueError):
    """A model spec that names no loadable model."""


def check_size(size: str) -> Size:
    if size not in SIZES:
        raise ModelLoadError(f"unknown model size {size!r}; expected one of: {', '.join(SIZES)}")
    return SIZES[size]


def build_model(size: str, tokenizer: PreTrainedTokenizerBase | None = None, *, seed: int = 0) -> LlamaForCausalLM:
    """A freshly initialised model of a named size (or a ``Size``) for the lab tokenizer."""
    s = check_size(size)
    tokenizer = tokenizer or build_char_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=s.hidden, intermediate_size=s.ffn, num_hidden_layers=s.layers,
        num_attention_heads=s.heads, num_key_value_heads=s.heads, max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, rope_theta=10000.0,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def resolve_model_dir(spec: str | Path) -> Path:
    """Where the weights of ``spec`` live: a size name, a run directory (its latest checkpoint) or a model dir."""
    spec = str(spec)
    if spec in SIZES:
        path = BASE_MODELS / spec
        if not (path / "config.json").exists():
            raise ModelLoadError(f"the shipped {spec!r} model is missing at {path}; "
                                 f"make it with: sgpo-lab pretrain --size {spec} --out {path}")
        return path
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelLoadError(f"model {spec!r} is neither a size ({', '.join(SIZES)}) nor an existing directory")
    if not path.is_dir():
        raise ModelLoadError(f"model path {spec!r} is a file; expected a directory holding config.json")
    checkpoints = path / "checkpoints"
    if not (path / "config.json").exists() and checkpoints.is_dir():
        steps = sorted((p for p in checkpoints.iterdir() if (p / "config.json").exists()),
                       key=lambda p: int(p.name.rsplit("-", 1)[-1]) if p.name.rsplit("-", 1)[-1].isdigit() else -1)
        if steps:
            return steps[-1]
    return path


def load_model(spec: str | Path = DEFAULT_SIZE, *, device: str = "cpu",
               dtype: torch.dtype = torch.float32) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``(model, tokenizer)`` from a size name, a run (dir or checkpoint) or any local HF causal-LM directory.

    Offline, safetensors only, no remote code. Every failure is a one-line ``ModelLoadError``.
    """
    path = resolve_model_dir(spec)
    if not (path / "config.json").exists():
        raise ModelLoadError(f"{path} is not a model directory: config.json is missing")
    try:
        json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{path / 'config.json'} is not valid JSON ({err})") from None
    if not any(path.glob("*.safetensors")):
        found = ", ".join(sorted(p.name for p in path.glob("*.bin"))) or "no weights"
        raise ModelLoadError(f"{path} has no .safetensors weights (found: {found}); only safetensors are loaded")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except Exception as err:  # transformers raises many types here; the user needs one line
        raise ModelLoadError(f"cannot load a tokenizer from {path}: {_one_line(err)}") from None
    try:
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, trust_remote_code=False,
                                                     use_safetensors=True, dtype=dtype)
    except Exception as err:
        raise ModelLoadError(f"cannot load a causal LM from {path}: {_one_line(err)}") from None
    if tokenizer.pad_token_id is None:  # many LMs ship without one; rollouts need it for batching
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device).eval()
    return model, tokenizer


def _one_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"
