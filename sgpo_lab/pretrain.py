"""Pretrain a base model on the Strategy World corpus (``sgpo-lab pretrain``).

Plain next-token prediction on the completion part of corpus documents (``world/corpus.py``),
AdamW with warm-up and cosine decay. The result is a ``save_pretrained`` directory (safetensors and
tokenizer) with ``pretrain.json`` beside it: the exact command, seed and config that made it.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from sgpo_lab.models import build_model, check_size, n_params
from sgpo_lab.world.corpus import CorpusMix, sample_document
from sgpo_lab.world.tokenizer import build_char_tokenizer


@dataclass
class PretrainConfig:
    size: str = "small"  # model size: tiny | small | medium
    steps: int = 1200  # optimizer steps
    batch_size: int = 64  # documents per step
    lr: float = 3e-3  # peak learning rate
    warmup: int = 100  # linear warm-up steps
    weight_decay: float = 0.01
    seed: int = 0  # model init and corpus sampling
    guided_share: float = 0.6  # see world/corpus.py
    correct_share: float = 0.3
    brief_card_share: float = 0.2
    large_share: float = 0.15
    bf16: bool = False  # bfloat16 autocast for the forward pass (fast on CPUs with AMX/AVX512-BF16)
    save_dtype: str = "float32"  # dtype of the saved weights: float32 | bfloat16 (half the file; loads upcast)


SAVE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def make_batch(tokenizer, docs) -> dict[str, torch.Tensor]:
    """Right-padded ids with labels on the completion and EOS only (-100 elsewhere)."""
    rows, labels = [], []
    for d in docs:
        prompt = tokenizer(d.prompt)["input_ids"]  # BOS + prompt
        completion = tokenizer(d.completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(prompt + completion)
        labels.append([-100] * len(prompt) + completion)
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    lab = torch.tensor([r + [-100] * (width - len(r)) for r in labels])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return {"input_ids": ids, "attention_mask": mask, "labels": lab}


def _length_buckets(rng: random.Random, mix: CorpusMix, batch_size: int, n_batches: int = 8) -> list[list]:
    """``n_batches`` batches of documents of similar length, in random order: far less padding than random batches.

    Documents are drawn one pool at a time, sorted by length and cut into batches; the batch order is shuffled.
    """
    pool = sorted((sample_document(rng, mix) for _ in range(batch_size * n_batches)),
                  key=lambda d: len(d.prompt) + len(d.completion))
    batches = [pool[i:i + batch_size] for i in range(0, len(pool), batch_size)]
    rng.shuffle(batches)
    return batches


def pretrain(cfg: PretrainConfig, out: str | Path, *, command: str | None = None, progress: bool = True) -> dict:
    """Train a base model from scratch and save it to ``out``; returns the record written to pretrain.json."""
    check_size(cfg.size)
    if cfg.save_dtype not in SAVE_DTYPES:
        raise ValueError(f"save_dtype must be one of {', '.join(SAVE_DTYPES)}, got {cfg.save_dtype!r}")
    out = Path(out)
    check_model_out(out, overwrite=True)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    tokenizer = build_char_tokenizer()
    model = build_model(cfg.size, tokenizer, seed=cfg.seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    mix = CorpusMix(cfg.guided_share, cfg.correct_share, cfg.brief_card_share, cfg.large_share)

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        progress_ = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_)))

    start, losses, queue = time.perf_counter(), [], []
    bar = tqdm(range(cfg.steps), desc=f"pretrain {cfg.size}", disable=not progress, mininterval=1.0)
    for step in bar:
        if not queue:
            queue = _length_buckets(rng, mix, cfg.batch_size)
        batch = make_batch(tokenizer, queue.pop())
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
    seconds = time.perf_counter() - start
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.to(SAVE_DTYPES[cfg.save_dtype]).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    record = {
        "command": command or " ".join(["sgpo-lab", *sys.argv[1:]]),
        "config": asdict(cfg),
        "parameters": n_params(model),
        "seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
        "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4),
        "torch": torch.__version__,
    }
    (out / "pretrain.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def check_model_out(out: Path, *, overwrite: bool) -> None:
    """Refuse, before any training, an output folder the trained model cannot go to.

    An empty or new folder is fine; a folder holding one of pretrain's own models (config.json and
    pretrain.json) needs ``overwrite``; any other non-empty folder, or a file, is refused.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {str(out)!r} is a file; expected a folder for the model")
    if out.is_dir() and any(out.iterdir()):
        if not ((out / "config.json").is_file() and (out / "pretrain.json").is_file()):
            raise ValueError(f"output folder {str(out)!r} is not empty and holds no model of 'sgpo-lab pretrain'; "
                             "expected a new or empty folder")
        if not overwrite:
            raise ValueError(f"{str(out)!r} already holds a model; pass --overwrite to replace it")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"cannot write to output folder {str(out)!r}: {err.strerror or err}") from None


# The recipe each shipped checkpoint was made with (``sgpo-lab pretrain --size NAME``).
RECIPES: dict[str, dict] = {
    "tiny": {"steps": 1500, "lr": 3e-3},
    "small": {"steps": 1200, "lr": 3e-3},
    # medium: long enough to beat small before RL (world report); stored in bfloat16 to keep the repository small
    "medium": {"steps": 1600, "lr": 2e-3, "batch_size": 64, "bf16": True, "save_dtype": "bfloat16"},
}


def recipe(size: str, *, seed: int = 0, steps: int | None = None) -> PretrainConfig:
    """The shipped recipe for ``size`` (``steps`` overrides its length, e.g. for a smoke run)."""
    check_size(size)
    fields = {**RECIPES[size], "size": size, "seed": seed}
    if steps is not None:
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        fields["steps"] = steps
        fields["warmup"] = min(PretrainConfig.warmup, max(1, steps // 10))
    return PretrainConfig(**fields)
