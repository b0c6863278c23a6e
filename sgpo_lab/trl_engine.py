"""SGPO on TRL's ``GRPOTrainer``: the lab's objective at scale (accelerate, DeepSpeed, vLLM), writing the lab's run
directory, so the workbench and the notebooks open what it trains. Import it as ``sgpo_lab.trl``.

    sgpo-lab train --engine trl --method sgpo --model small --out runs/x
    accelerate launch --config_file configs/accelerate/cpu_2proc.yaml -m sgpo_lab.cli train --engine trl ...

One optimizer step is one TRL generation batch: P = ``problems_per_step`` problems x G = ``group_size`` rows.

  1. sample   TRL's sampler gives each process a contiguous slice of the P*G autonomous rows (problem-major) and TRL
              generates them (transformers, or vLLM server/colocate). The P*H guided prompts (card in context) are
              split into equal shares over the processes and generated through the same TRL path.
  2. score    the task's verifier (``Task.correct``) scores each process's rows; rewards and guided rollouts are then
              gathered, so every process holds every group whole, however TRL shards the batch.
  3/4. advantages (``losses.group_advantages``), adaptive weights (``losses.adaptive_weight``) and each problem's
              targets (``losses.select_targets`` on ``losses.sequence_mean_logprob`` under pi(.|x)) are computed from
              whole groups, identically on every process.
  5. loss     each row then carries what its share of the loss needs: its advantage (for the convex objective times
              (1 - w_i) N / (P n_i)) and target slots (a target's index and its coefficient w_i / (P n_i)). TRL's
              "dapo" loss is the lab's GRPO term; each slot adds coef * ``losses.distill_loss`` (teacher: the live
              policy with the card in context, or a frozen copy). Both are sums of per-row terms over global
              normalisers, so TRL's shuffle, its split into micro-batches and the sharding over processes move no
              value and no gradient (tested against the lab's trainer, and across process counts).
  6. update   TRL / accelerate: gradient-norm clip 1, AdamW(0.9, 0.99), constant learning rate (the lab's).

Not on this engine (a one-line error): SFT phases (sft, sft_grpo), LUFFY's expert rows (luffy), updates_per_batch > 1,
DeepSpeed ZeRO-3. At a sampling temperature other than 1, TRL scores the GRPO term's log-probs and the entropy at that
temperature (the lab at 1); the distillation term is at temperature 1 on both engines.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any

import torch

from sgpo_lab import losses as L
from sgpo_lab.cards import load_cards
from sgpo_lab.config import TrainConfig, describe_validation_error, make_config
from sgpo_lab.evaluate import card_of
from sgpo_lab.models import load_model
from sgpo_lab.prompts import Prompter
from sgpo_lab.rollout import Rollouts, completion_logits, encode_prompts, end_ids, micro_batches
from sgpo_lab.runs import (
    RunDirError,
    RunWriter,
    list_checkpoints,
    load_optimizer_state,
    prepare_out_dir,
    read_status,
    resolved_config,
    save_checkpoint,
)
from sgpo_lab.tasks import Problem, Task, TaskError, load_task
from sgpo_lab.trainer import DTYPES, Sampled, Scores, StepRows, Targets, Trainer, step_generator

TRL_VERSION = "1.16.0"
INSTALL = 'pip install -e ".[trl]"'
ENGINES = ("lab", "trl")


class EngineError(ValueError):
    """Bad input for the TRL engine: TRL missing or of another release, or a method or setting it cannot run."""


class TRLMissingError(EngineError, ImportError):
    """TRL is not installed."""


def check_trl_version(version: str) -> None:
    """Refuse a TRL release other than the one this engine is tested with (patch releases of it pass)."""
    from packaging.version import InvalidVersion, Version

    try:
        ok = Version(version).release[:2] == Version(TRL_VERSION).release[:2]
    except InvalidVersion:
        ok = False
    if not ok:
        raise EngineError(f"TRL {version} is installed; the TRL engine is tested with TRL {TRL_VERSION} (private "
                          f"methods change between releases); install that release: {INSTALL}")


try:
    import trl
except ImportError:
    raise TRLMissingError(f"the TRL engine needs TRL {TRL_VERSION}, which is not installed; install the extra: "
                          f"{INSTALL}") from None
check_trl_version(trl.__version__)

from accelerate import PartialState  # noqa: E402 - after the check: TRL's extra brings them
from accelerate.utils import broadcast_object_list, gather, gather_object  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import TrainerCallback  # noqa: E402
from transformers.trainer_callback import PrinterCallback, ProgressCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

# transformers 5 renamed its gradient-checkpointing API; TRL 1.16 still calls the old names on every step
warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.* is deprecated", category=FutureWarning)

# ------------------------------------------------------------------------------------------ the config

# every TrainConfig field but ``device``: that name is TrainingArguments' property (this process's device), which
# accelerate decides; ``use_cpu`` (set from the lab's device) keeps a run on the CPU
_LAB_FIELDS = {name: info for name, info in TrainConfig.model_fields.items() if name != "device"}
_GRPO_DEFAULTS = {f.name: f.default for f in fields(GRPOConfig)}
# the lab's field -> TRL's field of the same meaning, which the lab's sets
_TWINS = {"lr": "learning_rate", "group_size": "num_generations", "eps_low": "epsilon", "eps_high": "epsilon_high",
          "max_new_tokens": "max_completion_length"}
# TRL settings the lab's objective fixes: (field, value, why)
_FIXED = (("loss_type", "dapo", "TRL's dapo loss is the lab's GRPO term (token-mean over the batch)"),
          ("beta", 0.0, "the lab's objective has no reference-model KL"),
          ("num_iterations", 1, "SGPO is on-policy: one update per batch (the lab's updates_per_batch = 1)"),
          ("logging_steps", 1, "the run directory gets one metrics row per step"))
# fields the TRL engine runs at one value only: field -> (that value, why)
UNSUPPORTED = {
    "sft_steps": (0, "SFT phases (sft, sft_grpo) run on the lab engine only; expected --engine lab"),
    "off_policy": (0, "LUFFY's expert rows (luffy) run on the lab engine only; expected --engine lab"),
    "updates_per_batch": (1, "several updates per batch run on the lab engine only; expected updates_per_batch=1"),
}


def check_supported(cfg: TrainConfig) -> None:
    """One-line ``EngineError`` for a method or field this engine cannot run."""
    for name, (value, why) in UNSUPPORTED.items():
        if getattr(cfg, name, value) != value:
            raise EngineError(f"method {cfg.method!r} with {name}={getattr(cfg, name)}: {why}")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise EngineError(f"device={cfg.device!r} but torch sees no CUDA device; expected device=cpu here")


@dataclass
class _SGPOConfigBase(GRPOConfig):
    """TRL's ``GRPOConfig`` with the lab's defaults; ``SGPOConfig`` adds every ``TrainConfig`` field to it."""

    sampling_top_k: int = field(default=0, metadata={"help": "TRL's top_k for sampling (0: off); top_k is the "
                                                     "lab's KL top-k here"})
    per_device_train_batch_size: int | None = field(default=None, metadata={
        "help": "rows per process and micro-batch (None: problems_per_step x group_size / (processes x "
                "gradient_accumulation_steps))"})
    gradient_checkpointing: bool = False
    lr_scheduler_type: str = "constant"
    adam_beta2: float = 0.99
    logging_steps: float = 1
    save_strategy: str = "no"
    shuffle_dataset: bool = False
    disable_dropout: bool = True
    ddp_find_unused_parameters: bool | None = False  # every parameter takes part in each step's forward passes
    bf16: bool | None = field(default=None, metadata={"help": "bf16 mixed precision (None: on when dtype is bfloat16, "
                                                       "else off: the lab's float32 arithmetic)"})

    def __post_init__(self):
        lab = self.train_config()
        check_supported(lab)
        for lab_name, trl_name in _TWINS.items():
            value, mine = getattr(self, trl_name), getattr(lab, lab_name)
            if value != _GRPO_DEFAULTS[trl_name] and value != mine:
                raise EngineError(f"{trl_name}={value!r} and {lab_name}={mine!r} disagree; set {lab_name} (the "
                                  f"lab's name), which sets {trl_name}")
            setattr(self, trl_name, mine)
        for name, value, why in _FIXED:
            if getattr(self, name) != value:
                raise EngineError(f"{name}={getattr(self, name)!r}: expected {value!r} ({why})")
        if self.max_steps is None or self.max_steps < 0:
            self.max_steps = lab.steps
        if self.bf16 is None:
            self.bf16 = lab.dtype == "bfloat16"
        self.fp16 = True if lab.dtype == "float16" else self.fp16
        self.scale_rewards = "group" if lab.scale_advantages else "none"
        rows = lab.problems_per_step * lab.group_size
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if self.per_device_train_batch_size is None:
            per, rest = divmod(rows, world * self.gradient_accumulation_steps)
            if rest or not per:
                raise EngineError(f"problems_per_step x group_size = {rows} rows do not split evenly over {world} "
                                  f"process(es) x {self.gradient_accumulation_steps} accumulation step(s); expected "
                                  f"a multiple of {world * self.gradient_accumulation_steps}")
            self.per_device_train_batch_size = per
        super().__post_init__()
        if self.generation_batch_size != rows or self.steps_per_generation != self.gradient_accumulation_steps:
            raise EngineError(f"one optimizer step must be one generation batch of problems_per_step x group_size = "
                              f"{rows} rows; got generation_batch_size={self.generation_batch_size}, "
                              f"steps_per_generation={self.steps_per_generation} for gradient_accumulation_steps="
                              f"{self.gradient_accumulation_steps}; expected per_device_train_batch_size x "
                              f"processes x gradient_accumulation_steps = {rows}")
        plugin = getattr(self, "deepspeed_plugin", None)
        if plugin is not None and getattr(plugin, "zero_stage", 0) == 3:
            raise EngineError("DeepSpeed ZeRO-3 partitions the weights, which the distillation and ranking forward "
                              "passes cannot use yet; expected ZeRO-2 (configs/accelerate/deepspeed_zero2.yaml)")

    def train_config(self) -> TrainConfig:
        """The lab's ``TrainConfig`` of these fields (validated as the lab validates it)."""
        from pydantic import ValidationError

        try:
            return TrainConfig(**{name: getattr(self, name) for name in _LAB_FIELDS},
                               device="cpu" if self.use_cpu else "cuda")
        except ValidationError as err:
            raise ValueError(describe_validation_error(err)) from None

    @classmethod
    def from_train_config(cls, cfg: TrainConfig, **trl_fields: Any) -> SGPOConfig:
        """The lab's config plus TRL's fields (``output_dir``, ``use_vllm``, ``gradient_accumulation_steps``, ...)."""
        lab = [k for k in trl_fields if k in _LAB_FIELDS]
        if lab:
            raise EngineError(f"{', '.join(lab)} {'is a lab field' if len(lab) == 1 else 'are lab fields'}; "
                              "expected it in the TrainConfig (--set) rather than among TRL's fields")
        unknown = sorted(set(trl_fields) - {f.name for f in fields(cls)})
        if unknown:
            raise EngineError(f"unknown TRL field{'s' if len(unknown) > 1 else ''} {', '.join(unknown[:5])}; expected "
                              "fields of trl.GRPOConfig")
        lab_fields = {k: v for k, v in cfg.model_dump().items() if k in _LAB_FIELDS}
        return cls(**lab_fields, **{"use_cpu": cfg.device == "cpu", **trl_fields})

    @classmethod
    def from_method(cls, method: str = "sgpo", **fields_: Any) -> SGPOConfig:
        """A lab preset (``METHODS``) resolved as ``make_config`` resolves it, plus TRL's fields."""
        lab = {k: v for k, v in fields_.items() if k in _LAB_FIELDS}
        return cls.from_train_config(make_config(method, **lab), **{k: v for k, v in fields_.items() if k not in lab})


def _lab_field(name: str, info) -> tuple[str, Any, Any]:
    return name, info.annotation, field(default=info.default, metadata={"help": info.description or ""})


SGPOConfig = make_dataclass("SGPOConfig", [_lab_field(n, i) for n, i in _LAB_FIELDS.items()],
                            bases=(_SGPOConfigBase,))
SGPOConfig.__module__ = __name__
SGPOConfig.__doc__ = (
    "TRL's GRPOConfig plus every field of the lab's TrainConfig, with the same names and defaults, but device "
    "(TRL's property; use_cpu=True keeps a run on the CPU, and from_train_config sets it from the lab's device). "
    "The lab's fields set TRL's twins: lr -> learning_rate, group_size -> num_generations, eps_low/eps_high -> "
    "epsilon/epsilon_high, max_new_tokens -> max_completion_length, steps -> max_steps. top_k is the lab's KL "
    "top-k; TRL's sampling top-k is sampling_top_k. Build it from a preset with "
    "SGPOConfig.from_method('sgpo_rkl', ...) or from a TrainConfig with "
    "SGPOConfig.from_train_config(cfg, output_dir=..., use_vllm=True, ...).")


def _config_body(path: str | Path) -> dict[str, Any]:
    from sgpo_lab.config import MAX_FILE_CHARS, parse_yaml

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist or is not a regular file; expected a YAML file")
    with open(path, errors="replace") as fh:
        body = parse_yaml(fh.read(MAX_FILE_CHARS + 1), what=f"config file {str(path)!r}") or {}
    if not isinstance(body, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping of field: value")
    return body


def load_config_file(path: str | Path, **overrides: Any) -> TrainConfig:
    """The lab's config file (``config.load_config_file``), whose ``trl:`` mapping of TRL's fields is left aside
    (``trl_section`` reads it); flags override the file's lab fields."""
    body = _config_body(path)
    body.pop("trl", None)
    method = overrides.pop("method", None) or body.pop("method", "sgpo")
    body.pop("method", None)
    return make_config(method, **{**body, **{k: v for k, v in overrides.items() if v is not None}})


def trl_section(path: str | Path) -> dict[str, Any]:
    """The ``trl:`` mapping of a config file: TRL's own fields (``use_vllm``, ``gradient_accumulation_steps``, ...)."""
    section = _config_body(path).get("trl") or {}
    if not isinstance(section, dict):
        raise ValueError(f"'trl' in config file {str(path)!r} must be a mapping of TRL field: value")
    return section


# ---------------------------------------------------------------------------------------- one step


@dataclass
class _Target:
    problem: int  # index in the step's problems
    guided: int  # index 0..H-1 among the problem's guided rollouts
    prompt: str  # autonomous prompt x (the student's context)
    guided_prompt: str  # (x, s): the teacher's context
    completion: list[int]
    coef: float  # w_i / (P n_i): its share of mean_i w_i L_KD,i


@dataclass
class _Plan:
    """A step's problems and this process's share of its guided prompts, known before TRL generates."""

    problems: list[Problem]
    cards: list[str]
    n_guided: int  # P * H
    mine: list[int]  # indices into the P*H guided prompts (problem-major)
    prompt_ids: list[list[int]]


@dataclass
class _Batch:
    """One step's whole-group view (identical on every process) and its local loss sums (reduced at the step's end)."""

    step: int
    problems: list[Problem]
    cards: list[str]
    r_auto: torch.Tensor  # (P, G)
    r_guided: torch.Tensor  # (P, H)
    lengths: torch.Tensor  # (P, G) completion tokens
    weights: torch.Tensor  # (P,)
    chosen: list[list[int]]
    targets: list[_Target]
    guided_texts: list[str]  # P*H
    guided_ids: list[list[int]]  # P*H
    auto: list[tuple[list[int], str]] | None = None  # P*G (ids, text), gathered on steps whose rollouts are stored
    time_sample: float = 0.0
    time_score: float = 0.0
    sums: dict[str, float] = field(default_factory=dict)
    kl_sum: torch.Tensor | None = None  # (P,)
    kl_count: torch.Tensor | None = None  # (P,)

    SUMS = ("loss", "loss_grpo", "loss_distill", "entropy_num", "tokens", "clip_num", "clip_low_num", "clip_high_num",
            "clipped_tokens", "target_tokens")

    def __post_init__(self):
        self.sums = dict.fromkeys(self.SUMS, 0.0)
        self.kl_sum, self.kl_count = torch.zeros(self.P, dtype=torch.float64), torch.zeros(self.P, dtype=torch.float64)

    @property
    def P(self) -> int:
        return len(self.problems)

    @property
    def H(self) -> int:
        return self.r_guided.shape[1]


class _StepLog(TrainerCallback):
    """Closes each step: reduces its sums over processes (on_step_end) and completes its row with TRL's gradient norm
    (on_log); then calls the trainer's hooks (the run directory, the benchmark)."""

    def __init__(self, trainer: SGPOTrainer):
        self.trainer = trainer

    def on_step_begin(self, args, state, control, **kwargs):
        self.trainer._t_step = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        t = self.trainer
        t._pending = t._close_step(time.perf_counter() - t._t_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        t = self.trainer
        if t._pending is None:
            return
        row, instances = t._pending
        t._pending = None
        row["grad_norm"] = float((logs or {}).get("grad_norm") or 0.0)
        t.sgpo_history.append(row)
        for hook in t.sgpo_hooks:
            hook(row, instances)


class SGPOTrainer(GRPOTrainer):
    """TRL's ``GRPOTrainer`` carrying SGPO: guided rollouts through TRL's generation path, the task's verifier, whole-
    group weights and targets, and the lab's distillation term (``sgpo_lab.losses``) beside TRL's dapo GRPO term.

    ``problems`` are those the dataset's ``problem_id`` column names (the default dataset: one row each, in order);
    ``task`` verifies them. ``sgpo_history`` holds each step's metrics row (the lab's columns); each of
    ``sgpo_hooks`` is called with ``(row, instances)`` once a step is complete.
    """

    def __init__(self, model, args: SGPOConfig, *, task: Task | str, problems: list[Problem],
                 train_dataset: Dataset | None = None, processing_class=None, prompter: Prompter | None = None,
                 teacher=None, callbacks=None, optimizers=(None, None)):
        if not isinstance(args, _SGPOConfigBase):
            raise EngineError(f"args is a {type(args).__name__}; expected an SGPOConfig")
        cfg = args.train_config()
        check_supported(cfg)
        if processing_class is None:
            raise EngineError("processing_class is missing; expected the model's tokenizer")
        self.sgpo_config = cfg
        self.task = load_task(task)
        self.prompter = prompter or Prompter.for_task(self.task, processing_class, cfg.prompt_style)
        self.cards = load_cards(cfg.cards) if cfg.cards else {}
        self._problems = {p.id: p for p in problems}
        if train_dataset is None:
            train_dataset = problem_dataset(problems, self.prompter)
        self.sgpo_start_step = 0
        self.sgpo_history: list[dict[str, Any]] = []
        self.sgpo_hooks: list = []
        self._batch: _Batch | None = None
        self._pending = None
        self._capture: list | None = None
        self._local_rewards: list[float] = []
        self._t_generate = self._t_step = 0.0
        self._plan: _Plan | None = None

        def verifier(prompts, completions, completion_ids, problem_id, **_):
            rewards = [float(self.task.correct(self._problems[i], self._text(ids)))
                       for i, ids in zip(problem_id, completion_ids)]
            self._local_rewards = rewards
            return rewards

        kl_top_k, args.top_k = args.top_k, args.sampling_top_k  # TRL reads top_k (its sampling top-k) in __init__
        try:
            super().__init__(model=model, reward_funcs=verifier, args=args, train_dataset=train_dataset,
                             processing_class=processing_class, callbacks=callbacks, optimizers=optimizers)
        finally:
            args.top_k = kl_top_k
        self._stop_set = set(self.eos_token_ids)  # the lab's end_ids: the tokenizer's EOS and the model's end ids
        self.teacher = None
        if cfg.teacher == "frozen":
            self.teacher = teacher if teacher is not None else load_model(cfg.model, dtype=DTYPES[cfg.dtype])[0]
            self.teacher = self.teacher.to(self.accelerator.device).eval().requires_grad_(False)
        self.add_callback(_StepLog(self))

    # ---------------------------------------------------------------------------------- helpers

    def _text(self, ids) -> str:
        return self.processing_class.decode([int(t) for t in ids if int(t) not in self._stop_set],
                                            skip_special_tokens=True)

    @property
    def _pad(self) -> int:
        return self._tokenizer.pad_token_id

    def _chunks(self, completions: list[list[int]]) -> list[list[int]]:
        """Micro-batches of row indices under ``logits_budget_mb`` (by length with ``length_buckets``)."""
        cfg = self.sgpo_config
        return micro_batches([len(c) for c in completions],
                             vocab=self.accelerator.unwrap_model(self.model).get_output_embeddings().weight.shape[0],
                             budget_mb=cfg.logits_budget_mb, by_length=cfg.length_buckets)

    # ------------------------------------------------------------------------------- 1-4: a batch

    def _generate_single_turn(self, *args, **kwargs):
        """TRL's generation (transformers, or vLLM server/colocate), timed. The guided rows get a call of their own:
        in one transformers ``generate`` call with the autonomous rows, every row would be padded to the guided
        prompts' length (5x the autonomous ones' on the Strategy World), which costs more than a second call."""
        t0 = time.perf_counter()
        try:
            return super()._generate_single_turn(*args, **kwargs)
        finally:
            self._t_generate += time.perf_counter() - t0

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        out = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        if self._capture is not None:
            self._capture.append(out)
        return out

    def _generate_and_score_completions(self, inputs):
        if not self.model.training:
            return super()._generate_and_score_completions(inputs)
        t0 = time.perf_counter()
        self._t_generate = 0.0
        self._plan = self._plan_step(inputs)
        try:
            output = super()._generate_and_score_completions(inputs)
            batch = self._whole_groups(inputs, output)
        finally:
            self._plan = None
        batch.time_sample = self._t_generate
        batch.time_score = time.perf_counter() - t0 - self._t_generate
        self._batch = batch
        return output

    def _plan_step(self, inputs: list[dict]) -> _Plan:
        """The step's problems (every process's rows gathered) and this process's equal share of the P*H guided
        prompts (past the end: repeats of the last prompt, dropped after gathering)."""
        acc, G, H = self.accelerator, self.num_generations, self.sgpo_config.guided_size
        ids = gather_object([x["problem_id"] for x in inputs])
        P = len(ids) // G
        if any(ids[i * G + j] != ids[i * G] for i in range(P) for j in range(G)):
            raise RuntimeError("TRL's batch does not hold whole groups in order; expected G rows per problem")
        problems = [self._problems[ids[i * G]] for i in range(P)]
        cards = [card_of(self.task, p, self.cards) for p in problems]
        prompts = [self.prompter.guided(p.question, c) for p, c in zip(problems, cards) for _ in range(H)]
        share = -(-len(prompts) // acc.num_processes) if prompts else 0
        mine = [min(k, len(prompts) - 1) for k in range(acc.process_index * share, (acc.process_index + 1) * share)]
        prompt_ids = encode_prompts(self.processing_class, [prompts[k] for k in mine], check=False) if mine else []
        return _Plan(problems, cards, len(prompts), mine, prompt_ids)

    def _whole_groups(self, inputs: list[dict], output: dict) -> _Batch:
        """2-4 on whole groups: gather rewards and guided rollouts, then advantages, weights, targets and slots."""
        cfg, acc, plan = self.sgpo_config, self.accelerator, self._plan
        G, H, B = self.num_generations, cfg.guided_size, len(inputs)
        problems, cards, P = plan.problems, plan.cards, len(plan.problems)
        step = self.sgpo_start_step + self.state.global_step + 1
        dev = acc.device
        r_auto = gather(torch.tensor(self._local_rewards, dtype=torch.float32, device=dev)).cpu().view(P, G)
        lengths = gather(output["completion_mask"].sum(1).to(dev)).cpu().view(P, G)
        guided_ids, guided_texts, guided_rewards = self._guided(plan)
        r_guided = torch.tensor(guided_rewards, dtype=torch.float32).view(P, H) if H else torch.zeros(P, 0)
        p_auto = r_auto.mean(1)
        p_guided = r_guided.mean(1) if H else torch.full((P,), float("nan"))
        any_correct = r_guided.sum(1) > 0 if H else torch.zeros(P, dtype=torch.bool)
        weights = L.adaptive_weight(p_auto, torch.nan_to_num(p_guided), any_correct, kind=cfg.weight,
                                    alpha0=cfg.alpha0, gamma=cfg.gamma, alpha_max=cfg.alpha_max)  # (P,)
        chosen = self._choose(problems, r_guided, guided_ids, step)
        targets = [_Target(i, j, self.prompter.autonomous(problems[i].question),
                           self.prompter.guided(problems[i].question, cards[i]), guided_ids[i * H + j],
                           float(weights[i]) / (P * len(chosen[i]))) for i in range(P) for j in chosen[i]]

        # 3. the lab's advantages over each autonomous group (TRL's own are replaced)
        adv = L.group_advantages(r_auto, scale=cfg.scale_advantages) if cfg.grpo else torch.zeros(P, G)  # (P, G)
        train_adv = adv
        if cfg.objective == "convex":  # (1 - w_i) * problem i's own token-mean, through TRL's batch token-mean
            train_adv = adv * ((1 - weights) * lengths.sum() / (P * lengths.sum(1).clamp(min=1))).unsqueeze(1)
        rows = slice(acc.process_index * B, (acc.process_index + 1) * B)
        output["advantages"] = train_adv.reshape(-1)[rows].to(dev)
        output["sgpo_advantages"] = adv.reshape(-1)[rows].to(dev)
        output["sgpo_slot"], output["sgpo_coef"] = (t.to(dev) for t in self._slots(targets, B))
        every = getattr(cfg, "rollouts_every", 0)  # the rollout browser's data, on the steps the lab stores it
        auto = None
        if every and step % every == 0:
            ids_ = [row[m.bool()].tolist() for row, m in zip(output["completion_ids"].cpu(),
                                                            output["completion_mask"].cpu())]
            auto = gather_object([(i, self._text(i)) for i in ids_])
        return _Batch(step, problems, cards, r_auto, r_guided, lengths, weights, chosen, targets, guided_texts,
                      guided_ids, auto)

    def rollout_rows(self) -> list[dict[str, Any]]:
        """The step's ``rollouts`` part (the lab's ``Trainer._rollout_rows``): one row per sampled completion."""
        b = self._batch
        if b is None or b.auto is None:
            return []
        stops = self._stop_set
        auto_prompts = [self.prompter.autonomous(p.question) for p in b.problems for _ in range(b.r_auto.shape[1])]
        guided_prompts = [self.prompter.guided(p.question, c) for p, c in zip(b.problems, b.cards) for _ in range(b.H)]
        sampled = Sampled(
            Rollouts(auto_prompts, [i for i, _ in b.auto], [t for _, t in b.auto],
                     [bool(i) and i[-1] in stops for i, _ in b.auto]),
            Rollouts(guided_prompts, b.guided_ids, b.guided_texts, [bool(i) and i[-1] in stops for i in b.guided_ids]),
            b.time_sample)
        p_auto = b.r_auto.mean(1)
        p_guided = b.r_guided.mean(1) if b.H else torch.full((b.P,), float("nan"))
        scores = Scores(b.r_auto, b.r_guided, p_auto, p_guided, b.r_guided.sum(1) > 0)
        rows = StepRows(b.problems, b.r_auto.shape[1], b.H, b.cards)
        return Trainer._rollout_rows(self, b.step, rows, sampled, scores, Targets(b.weights, b.chosen))

    def _guided(self, plan: _Plan):
        """H guided rollouts per problem through TRL's generation path (this process's share: one generation each),
        scored by the verifier where they were sampled, then gathered: every process holds them all."""
        H = self.sgpo_config.guided_size
        if not H:
            return [], [], []
        completions, _ = self._generate_single_turn(plan.prompt_ids, None, {}, 1)
        rows = []
        for k, ids in zip(plan.mine, completions):
            ids = [int(t) for t in ids]
            text = self._text(ids)
            rows.append((ids, text, float(self.task.correct(plan.problems[k // H], text))))
        rows = gather_object(rows)[: plan.n_guided]
        return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]

    def _choose(self, problems: list[Problem], r_guided: torch.Tensor, guided_ids: list[list[int]],
                step: int) -> list[list[int]]:
        """4. Per problem, the correct guided rollouts to distil: the likeliest under pi(. | x) (``target=best``)."""
        cfg, P, H = self.sgpo_config, r_guided.shape[0], r_guided.shape[1]
        if cfg.distill == "none" or not H:
            return [[] for _ in range(P)]
        ranks = torch.full((P, H), float("-inf"))
        if cfg.target == "best":  # a problem's only correct rollout needs no ranking: score the others
            pairs = [(i, j) for i in range(P) if r_guided[i].sum() > 1 for j in range(H) if r_guided[i, j] > 0]
            scores = self._unguided_scores([self.prompter.autonomous(problems[i].question) for i, _ in pairs],
                                           [guided_ids[i * H + j] for i, j in pairs])
            for (i, j), s in zip(pairs, scores):
                ranks[i, j] = s
        gen = step_generator(cfg.seed, step, salt=11)  # target=random: the same draws on every process
        return [L.select_targets(ranks[i], r_guided[i] > 0, mode=cfg.target, top_m=cfg.top_m, generator=gen)
                for i in range(P)]

    @torch.no_grad()
    def _unguided_scores(self, prompts: list[str], completions: list[list[int]]) -> list[float]:
        """``sequence_mean_logprob`` of each completion under pi(. | x), an equal share per process, gathered."""
        if not prompts:
            return []
        acc = self.accelerator
        share = -(-len(prompts) // acc.num_processes)
        mine = list(range(acc.process_index * share, min((acc.process_index + 1) * share, len(prompts))))
        model = acc.unwrap_model(self.model)
        out = [0.0] * len(mine)  # this process's scores, in ``mine`` order
        for chunk in self._chunks([completions[k] for k in mine]):
            rows = [mine[c] for c in chunk]
            with acc.autocast():
                logits, tokens, mask = completion_logits(
                    model, encode_prompts(self.processing_class, [prompts[r] for r in rows], check=False),
                    [completions[r] for r in rows], pad_id=self._pad)
            for c, score in zip(chunk, L.sequence_mean_logprob(L.token_logprobs(logits, tokens), mask).tolist()):
                out[c] = score
        return gather_object(out)

    def _slots(self, targets: list[_Target], B: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's (B, S) target slots and coefficients: target t goes to process t mod n, round-robin."""
        n, rank = self.accelerator.num_processes, self.accelerator.process_index
        S = max(1, -(-len(targets) // (n * B)))
        slot, coef = torch.full((B, S), -1, dtype=torch.long), torch.zeros(B, S)
        for t in range(rank, len(targets), n):
            q = t // n
            slot[q % B, q // B], coef[q % B, q // B] = t, targets[t].coef
        return slot, coef

    # ------------------------------------------------------------------------------------- 5: loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self.model.training or self._batch is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        cfg, acc, batch = self.sgpo_config, self.accelerator, self._batch
        self._capture = []
        try:
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            logps = self._capture[-1][0].detach()
            entropies = self._capture[-1][1]
        finally:
            self._capture = None
        # TRL's dapo loss of this micro-batch, in units of the step's loss: n_proc * spg / GA (DDP averages)
        unit = acc.num_processes * self.args.steps_per_generation / self.current_gradient_accumulation_steps
        mask = inputs["completion_mask"] * inputs["tool_mask"] if "tool_mask" in inputs else inputs["completion_mask"]
        old = inputs.get("old_per_token_logps")
        old = logps if old is None else old
        adv, n_items = inputs["sgpo_advantages"], float(inputs["num_items_in_batch"])
        tokens = float(mask.sum())
        s = batch.sums
        s["loss"] += float(loss.detach()) / unit
        s["tokens"] += tokens
        if entropies is not None:
            s["entropy_num"] += float((entropies.detach().float() * mask).sum())
        if cfg.grpo:  # the lab's GRPO value (unweighted, as its metrics log it) and clip shares
            s["loss_grpo"] += float(L.grpo_loss(logps, old, adv, mask, eps_low=cfg.eps_low,
                                                eps_high=cfg.eps_high)) * tokens / max(n_items, 1.0)
        s["clip_num"] += float(L.grpo_clip_fraction(logps, old, adv, mask, eps_low=cfg.eps_low,
                                                    eps_high=cfg.eps_high)) * tokens
        if hasattr(L, "grpo_clip_fractions"):
            low, high = L.grpo_clip_fractions(logps, old, adv, mask, eps_low=cfg.eps_low, eps_high=cfg.eps_high)
            s["clip_low_num"] += float(low) * tokens
            s["clip_high_num"] += float(high) * tokens
        kd = self._distill(model, inputs)
        return loss if kd is None else loss + kd * unit

    def _distill(self, model, inputs) -> torch.Tensor | None:
        """sum over this micro-batch's target slots of coef * the per-target loss (``losses.distill_loss``, or NLL)."""
        cfg, acc, batch = self.sgpo_config, self.accelerator, self._batch
        picked = [(t, c) for t, c in zip(inputs["sgpo_slot"].reshape(-1).tolist(),
                                         inputs["sgpo_coef"].reshape(-1).tolist()) if t >= 0]
        if not picked:
            return None
        # the inner model, not TRL's wrapper: DDP's forward broadcasts buffers (a collective per call), and the
        # processes hold different numbers of targets; the gradient still reaches the wrapper's hooks, which sit on
        # the parameters and fire once per backward with the sum of every use
        student = acc.unwrap_model(model)
        teacher = self.teacher if self.teacher is not None else student
        total = None
        # targets of weight 0 add nothing to the gradient: their KL is logged (instances) from a no-grad pass
        for grad, part in ((True, [p for p in picked if p[1] > 0]), (False, [p for p in picked if p[1] <= 0])):
            for chunk in self._chunks([batch.targets[t].completion for t, _ in part]):
                tg = [batch.targets[part[k][0]] for k in chunk]
                coef = torch.tensor([part[k][1] for k in chunk])
                completions = [t.completion for t in tg]
                with torch.set_grad_enabled(grad and torch.is_grad_enabled()), acc.autocast():
                    s_logits, tokens, mask = completion_logits(
                        student, encode_prompts(self.processing_class, [t.prompt for t in tg], check=False),
                        completions, pad_id=self._pad)  # (n, T, V)
                with torch.no_grad(), acc.autocast():
                    t_logits, _, _ = completion_logits(
                        teacher, encode_prompts(self.processing_class, [t.guided_prompt for t in tg], check=False),
                        completions, pad_id=self._pad)
                if cfg.distill == "kl":
                    per = L.distill_loss(t_logits, s_logits, mask, direction=cfg.kl_direction, clip=cfg.kl_clip,
                                         delta=cfg.kl_delta, top_k=cfg.top_k)  # (n,)
                else:  # "nll": imitate the selected guided trajectory itself
                    per = L.nll_loss_per_sequence(L.token_logprobs(s_logits, tokens), mask)  # (n,)
                with torch.no_grad():
                    kl = L.token_kl(t_logits, s_logits, direction=cfg.kl_direction, top_k=cfg.top_k)  # (n, T)
                    kl_seq = L.sequence_mean_logprob(kl, mask).double().cpu()  # (n,)
                    owners = torch.tensor([t.problem for t in tg])
                    batch.kl_sum.index_add_(0, owners, kl_seq)
                    batch.kl_count.index_add_(0, owners, torch.ones(len(tg), dtype=torch.float64))
                    n_tokens = float(mask.sum())
                    batch.sums["clipped_tokens"] += float(L.clipped_fraction(kl, mask, cfg.kl_delta)) * n_tokens
                    batch.sums["target_tokens"] += n_tokens
                piece = (coef.to(per.device, per.dtype) * per).sum()
                batch.sums["loss_distill"] += float(piece.detach())
                batch.sums["loss"] += float(piece.detach())
                if grad and piece.requires_grad:
                    total = piece if total is None else total + piece
        return total

    # ------------------------------------------------------------------------------------ the step's row

    def _close_step(self, seconds: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Reduce the step's sums over processes; its metrics row (the lab's columns) and its ``instances`` rows."""
        b, cfg, acc = self._batch, self.sgpo_config, self.accelerator
        vec = torch.tensor([b.sums[k] for k in _Batch.SUMS] + b.kl_sum.tolist() + b.kl_count.tolist(),
                           dtype=torch.float64, device=acc.device)
        vec = acc.reduce(vec, reduction="sum").cpu()
        s = dict(zip(_Batch.SUMS, vec[: len(_Batch.SUMS)].tolist()))
        kl_sum, kl_count = vec[len(_Batch.SUMS):].view(2, b.P)
        kl_mean = torch.where(kl_count > 0, kl_sum / kl_count.clamp(min=1), torch.full((b.P,), float("nan")))
        w, H, tokens = b.weights, b.H, s["tokens"]
        p_auto = b.r_auto.mean(1)
        p_guided = b.r_guided.mean(1) if H else None
        row = {
            "step": b.step, "phase": "rl", "loss": s["loss"], "loss_grpo": s["loss_grpo"],
            "loss_distill": s["loss_distill"], "loss_sft": 0.0,
            "p_auto": float(p_auto.mean()), "p_guided": float(p_guided.mean()) if H else None,
            "reward_mean": float(b.r_auto.mean()), "entropy": s["entropy_num"] / tokens if tokens else 0.0,
            "kl_mean": float(torch.nanmean(kl_mean)) if b.targets else None,
            "clipped_frac": s["clipped_tokens"] / s["target_tokens"] if s["target_tokens"] else 0.0,
            "n_targets": len(b.targets), "weight_mean": float(w.mean()), "weight_max": float(w.max()),
            "weight_nonzero": float((w > 0).float().mean()),
            "grpo_clip_frac": s["clip_num"] / tokens if cfg.grpo and tokens else 0.0,
            "grpo_clip_low": s["clip_low_num"] / tokens if tokens else 0.0,
            "grpo_clip_high": s["clip_high_num"] / tokens if tokens else 0.0,
            "grad_norm": 0.0, "completion_len": float(b.lengths.float().mean()), "lr": cfg.lr,
            "time_sample": b.time_sample, "time_score": b.time_score,
            "time_update": max(seconds - b.time_sample - b.time_score, 0.0), "time_step": seconds,
        }
        if not hasattr(L, "grpo_clip_fractions"):
            del row["grpo_clip_low"], row["grpo_clip_high"]
        instances = [
            {"step": b.step, "problem_id": p.id, "family": p.family, "p_auto": float(p_auto[i]),
             "p_guided": float(p_guided[i]) if H else None, "weight": float(w[i]),
             "kl_mean": float(kl_mean[i]) if not math.isnan(kl_mean[i]) else None,
             "target": int(b.chosen[i][0]) if b.chosen[i] else -1,
             "target_text": b.guided_texts[i * H + b.chosen[i][0]] if b.chosen[i] else "",
             "card": b.cards[i] if H else ""}
            for i, p in enumerate(b.problems)]
        return row, instances


def problem_dataset(problems: list[Problem], prompter: Prompter) -> Dataset:
    """TRL's dataset of problems, in order: the autonomous prompt and the problem's id (for the verifier)."""
    return Dataset.from_dict({"prompt": [prompter.autonomous(p.question) for p in problems],
                              "problem_id": [p.id for p in problems]})


# --------------------------------------------------------------------------------------- the lab's view


class _LabView:
    """The attributes the lab's ``Trainer`` methods read, so batches, cards, evaluation and probes are the lab's own
    code (the same problems per step, the same eval.jsonl, eval_problems and token_shifts as the lab engine)."""

    batch_problems = Trainer.batch_problems
    card = Trainer.card
    card_set = Trainer.card_set
    _evaluates_at = Trainer._evaluates_at
    _probes_at = Trainer._probes_at
    _evaluate = Trainer._evaluate
    _probe = Trainer._probe

    def __init__(self, cfg: TrainConfig, task: Task, model, tokenizer, out: Path | None = None):
        self.cfg, self.task, self.model, self.tokenizer, self.out = cfg, task, model, tokenizer, out
        families = task.check_families(cfg.families)
        self.cards = load_cards(cfg.cards) if cfg.cards else {}
        self.prompter = Prompter.for_task(task, tokenizer, cfg.prompt_style)
        self.stops = end_ids(model, tokenizer)
        self.train_pool = task.problems("train", cfg.train_problems, families=families)
        if len(self.train_pool) < cfg.problems_per_step:
            raise TaskError(f"task {task.name!r} has {len(self.train_pool)} train problems for {families}; the TRL "
                            f"engine's batches hold problems_per_step={cfg.problems_per_step}; expected at least that")
        self.eval_set = [p for split in ("id", "ood") if split in task.splits
                         for p in task.problems(split, cfg.eval_problems, families=families)]
        self.probes = task.problems("id", cfg.probe_problems, families=families) if cfg.probe_problems else []
        self.writer: RunWriter | None = None

    def schedule(self, first: int, last: int) -> list[Problem]:
        """The problems of steps ``first..last`` in order: TRL's sampler (no shuffle) gives step s the lab's batch."""
        return [p for step in range(first, last + 1) for p in self.batch_problems(step)]


def build_trainer(cfg: TrainConfig, *, task: Task | str | None = None, model=None, tokenizer=None, start: int = 0,
                  output_dir: str | Path | None = None, trl_fields: dict[str, Any] | None = None,
                  view: _LabView | None = None) -> SGPOTrainer:
    """An ``SGPOTrainer`` for steps ``start + 1 .. cfg.steps`` of ``cfg``: the lab's problems per step, its model
    (``model``/``tokenizer``, or ``cfg.model`` loaded), its optimizer (AdamW(0.9, 0.99), no weight decay, constant
    LR; DeepSpeed makes its own). No run directory: ``train`` adds it."""
    check_supported(cfg)
    task = load_task(task or cfg.task)
    if model is None:
        model, tokenizer = load_model(cfg.model, dtype=DTYPES[cfg.dtype])
    view = view or _LabView(cfg, task, model, tokenizer)
    fields_ = {"output_dir": str(output_dir or tempfile.mkdtemp(prefix="sgpo-trl-")), "disable_tqdm": True,
               "max_steps": cfg.steps - start, **(trl_fields or {})}
    args = SGPOConfig.from_train_config(cfg, **fields_)
    model.to(args.device)
    optimizers = (None, None)
    if getattr(args, "deepspeed_plugin", None) is None:
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0, betas=(0.9, 0.99))
        optimizers = (opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0))
    problems = view.schedule(start + 1, cfg.steps)
    trainer = SGPOTrainer(model, args, task=task, problems=view.train_pool,
                          train_dataset=problem_dataset(problems, view.prompter), processing_class=tokenizer,
                          prompter=view.prompter, optimizers=optimizers)
    trainer.sgpo_start_step = start
    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)
    return trainer


# ------------------------------------------------------------------------------------------- a run


class _RunLog:
    """Writes a step into the run directory as the lab's trainer does (main process only): metrics.jsonl and
    instances, then evaluation, probes, a checkpoint when due, and status.json."""

    def __init__(self, view: _LabView, trainer: SGPOTrainer, writer: RunWriter | None, progress: bool):
        from tqdm.auto import tqdm

        self.view, self.trainer, self.writer = view, trainer, writer
        cfg = view.cfg
        self.bar = tqdm(total=cfg.steps, initial=trainer.sgpo_start_step, desc=cfg.method,
                        disable=not (progress and writer is not None))

    def __call__(self, row: dict[str, Any], instances: list[dict[str, Any]]) -> None:
        if self.writer is None:
            return
        view, cfg, step = self.view, self.view.cfg, row["step"]
        view.model = self.trainer.accelerator.unwrap_model(self.trainer.model)
        self.writer.table_part("instances", step, instances)
        self.writer.table_part("rollouts", step, self.trainer.rollout_rows())
        self.writer.append("metrics.jsonl", row)
        self.bar.update(1)
        self.bar.set_postfix({k: f"{row[k]:.3f}" for k in ("loss", "p_auto", "p_guided") if row.get(k) is not None})
        if view._evaluates_at(step):
            view._evaluate(step)
        if view._probes_at(step):
            view._probe(step)
        if step == cfg.steps or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
            self.checkpoint(step)
        self.writer.status("running", step=step, total=cfg.steps)

    def checkpoint(self, step: int) -> None:
        """The lab's checkpoint (weights, tokenizer, the optimizer's state when it is the lab's AdamW)."""
        if _labs_adamw(self.trainer):
            save_checkpoint(self.view.out, step, self.view.model, self.view.tokenizer, self.trainer.optimizer)
        else:  # DeepSpeed's optimizer: weights and tokenizer only (a resume restarts the optimizer's moments)
            final = self.view.out / "checkpoints" / f"step-{step:06d}"
            self.view.model.save_pretrained(final, safe_serialization=True)
            self.view.tokenizer.save_pretrained(final)


def _labs_adamw(trainer: SGPOTrainer) -> bool:
    """Whether the trainer's optimizer is the lab's AdamW (one parameter group), whose state checkpoints carry."""
    inner = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    return isinstance(inner, torch.optim.AdamW) and len(inner.param_groups) == 1


def _checkpoint_step(path: Path) -> int:
    try:
        return int(json.loads((path / "trainer_state.json").read_text())["step"])
    except (OSError, ValueError, KeyError):
        return int(path.name.rsplit("-", 1)[-1])


def train(cfg: TrainConfig, out: str | Path, *, resume: bool = False, overwrite: bool = False,
          progress: bool = True, task: Task | None = None,
          trl_fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``cfg`` on TRL into the run directory ``out`` (the lab's layout); returns the final status.

    Under ``accelerate launch`` every process calls it; the main process alone writes the run directory.
    ``trl_fields``: TRL's own settings (``use_vllm``, ``gradient_accumulation_steps``, ...; see ``SGPOConfig``).
    """
    check_supported(cfg)
    out = Path(out)
    task = load_task(task or cfg.task)
    checkpoints = list_checkpoints(out) if resume and out.is_dir() else []
    checkpoint = checkpoints[-1] if checkpoints else None
    start = _checkpoint_step(checkpoint) if checkpoint is not None else 0
    # the model, the task and both configs load before the output folder is touched (as on the lab engine)
    model, tokenizer = load_model(checkpoint or cfg.model, dtype=DTYPES[cfg.dtype])
    view = _LabView(cfg, task, model, tokenizer, out)
    fields_ = {"output_dir": str(out), "max_steps": max(cfg.steps - start, 1), "disable_tqdm": True,
               **(trl_fields or {})}
    SGPOConfig.from_train_config(cfg, **fields_)  # validated (and the processes set up) before anything is written
    main = PartialState().is_main_process
    lock, refusal = None, None
    if main:
        try:
            lock = prepare_out_dir(out, resume=resume, overwrite=overwrite)
        except RunDirError as err:
            refusal = str(err)
    refusal = broadcast_object_list([refusal])[0]
    if refusal:
        raise RunDirError(refusal)
    try:
        writer = view.writer = RunWriter(out) if main else None
        if writer is not None and resume:
            writer.truncate_after(start, drop_eval_at=start if view._evaluates_at(start) else None)
        if writer is not None and not resume:
            config = resolved_config(cfg.model_dump(), card_set=view.card_set())
            config["versions"]["trl"] = trl.__version__
            writer.write_config(config)
        if start >= cfg.steps:
            if writer is not None:
                writer.status("finished", step=cfg.steps, total=cfg.steps)
            return read_status(out) if main else {"state": "finished", "step": cfg.steps, "total": cfg.steps}
        trainer = build_trainer(cfg, task=task, model=model, tokenizer=tokenizer, start=start, view=view,
                                output_dir=out, trl_fields=trl_fields)
        if checkpoint is not None and (checkpoint / "optimizer.safetensors").is_file() and _labs_adamw(trainer):
            load_optimizer_state(checkpoint, trainer.optimizer)  # else (DeepSpeed's optimizer) its moments restart
        return _run(view, trainer, writer, start, progress, main)
    finally:
        if lock is not None:
            lock.release()


def _run(view: _LabView, trainer: SGPOTrainer, writer: RunWriter | None, start: int, progress: bool,
         main: bool) -> dict[str, Any]:
    from sgpo_lab.runs import read_jsonl

    cfg, out = view.cfg, view.out
    log = _RunLog(view, trainer, writer, progress)
    trainer.sgpo_hooks.append(log)
    step = start
    try:
        if writer is not None:
            view.model = trainer.accelerator.unwrap_model(trainer.model)
            if view._evaluates_at(start) and not any(r.get("step") == start for r in read_jsonl(out / "eval.jsonl")):
                view._evaluate(start)
            if view._probes_at(start) and not (out / "token_shifts" / f"part-{start:06d}.parquet").exists():
                view._probe(start)
            writer.status("running", step=start, total=cfg.steps)
        trainer.train()
        step = start + trainer.state.global_step
    except KeyboardInterrupt:
        completed = start + trainer.state.global_step
        if writer is not None:
            if completed > 0 and not (out / "checkpoints" / f"step-{completed:06d}").exists():
                log.checkpoint(completed)
            writer.truncate_after(completed)
            writer.status("interrupted", step=completed, total=cfg.steps)
        raise
    except Exception as err:
        if writer is not None:
            writer.status("failed", step=start + trainer.state.global_step, total=cfg.steps,
                          error=f"{type(err).__name__}: {err}")
        raise
    finally:
        log.bar.close()
    if writer is None:
        return {"state": "finished", "step": step, "total": cfg.steps}
    writer.status("finished", step=cfg.steps, total=cfg.steps)
    return read_status(out)


# ----------------------------------------------------------------------------------- the benchmark


class _Stepper:
    """Runs ``trainer.train()`` in a thread, one optimizer step per ``step()`` call (TRL's loop, unchanged), so TRL's
    steps can be interleaved with the lab's in one process; only one thread computes at a time."""

    def __init__(self, trainer: SGPOTrainer):
        self.trainer, self.error = trainer, None
        self.go, self.done = threading.Semaphore(0), threading.Semaphore(0)
        stepper = self

        class Gate(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                stepper.go.acquire()

        trainer.callback_handler.callbacks.insert(0, Gate())  # before _StepLog starts the step's clock
        trainer.sgpo_hooks.append(lambda row, instances: self.done.release())
        self.thread = threading.Thread(target=self._train, daemon=True)
        self.thread.start()

    def _train(self):
        try:
            self.trainer.train()
        except BaseException as err:  # surfaced in the main thread by step()
            self.error = err
            self.done.release()

    def step(self) -> dict[str, Any]:
        self.go.release()
        if not self.done.acquire(timeout=3600):
            raise RuntimeError("a TRL step did not finish within an hour")
        if self.error is not None:
            raise self.error
        return self.trainer.sgpo_history[-1]

    def close(self):
        self.thread.join(timeout=60)


def bench_engines(*, model: str = "small", problems: int = 8, group: int = 8, guided: int = 4, steps: int = 8,
                  blocks: int = 2, threads: int = 1, seed: int = 0, max_new_tokens: int | None = None,
                  echo=print) -> dict[str, Any]:
    """The same GRPO and SGPO steps on the lab's engine and on TRL (same model, problems, group sizes, lengths),
    interleaved step by step in one process; prints median step times, the ratios and each engine's phases."""
    torch.set_num_threads(threads)
    methods = ("grpo", "sgpo")
    times: dict[tuple[str, str], list[float]] = {(e, m): [] for e in ENGINES for m in methods}
    phases: dict[tuple[str, str], list[dict]] = {k: [] for k in times}
    block_ratios: list[dict[str, float]] = []
    extra = {"max_new_tokens": max_new_tokens} if max_new_tokens else {}
    echo(f"model {model}, {problems} problems x (G {group} [+ H {guided} for sgpo]) rows, "
         f"{max_new_tokens or TrainConfig.model_fields['max_new_tokens'].default} new tokens at most, {threads} torch "
         f"thread(s), {blocks} block(s) of {steps} steps after a warm-up step, engines interleaved step by step")
    for block in range(blocks):
        s = seed + block
        cfgs = {m: make_config(m, model=model, seed=s, steps=steps + 1, problems_per_step=problems, group_size=group,
                               **({"guided_size": guided} if m == "sgpo" else {}), eval_every=0, probe_problems=0,
                               checkpoint_every=0, **extra) for m in methods}
        with tempfile.TemporaryDirectory() as tmp:
            lab = {m: Trainer(cfgs[m], Path(tmp) / m, progress=False) for m in methods}
            trl_ = {m: _Stepper(build_trainer(cfgs[m], output_dir=Path(tmp) / f"trl-{m}")) for m in methods}
            per: dict[tuple[str, str], list[float]] = {k: [] for k in times}
            for step in range(1, steps + 2):
                for m in methods:
                    row = trl_[m].step()
                    t0 = time.perf_counter()
                    lab_row = lab[m].rl_step(step)
                    lab_row["time_step"] = time.perf_counter() - t0
                    if step > 1:
                        for key, r in ((("trl", m), row), (("lab", m), lab_row)):
                            per[key].append(r["time_step"])
                            phases[key].append(r)
            for m in methods:
                trl_[m].close()
                lab[m].lock.release()
        med = {k: statistics.median(v) for k, v in per.items()}
        block_ratios.append({m: med[("lab", m)] / med[("trl", m)] for m in methods})
        echo(f"  block {block + 1} (seed {s}): lab/trl grpo {block_ratios[-1]['grpo']:.2f}x, "
             f"sgpo {block_ratios[-1]['sgpo']:.2f}x; trl sgpo/grpo {med[('trl', 'sgpo')] / med[('trl', 'grpo')]:.2f}x")
        for k, v in per.items():
            times[k] += v
    med = {k: statistics.median(v) for k, v in times.items()}
    echo(f"  median seconds per step over {len(times[('lab', 'grpo')])} steps each:")
    for (engine, m), t in med.items():
        rows = phases[(engine, m)]
        split = ", ".join(f"{p} {statistics.median(r[f'time_{p}'] for r in rows):.3f}"
                          for p in ("sample", "score", "update"))
        echo(f"  {engine:3s} {m:4s} {t:.3f} s  (min {min(times[(engine, m)]):.3f}, max "
             f"{max(times[(engine, m)]):.3f}; {split}; completion length "
             f"{statistics.median(r['completion_len'] for r in rows):.0f})")
    ratios = {"lab/trl grpo": med[("lab", "grpo")] / med[("trl", "grpo")],
              "lab/trl sgpo": med[("lab", "sgpo")] / med[("trl", "sgpo")],
              "trl sgpo/grpo": med[("trl", "sgpo")] / med[("trl", "grpo")],
              "lab sgpo/grpo": med[("lab", "sgpo")] / med[("lab", "grpo")]}
    swing = [r["grpo"] for r in block_ratios]
    echo(f"  lab/trl grpo step time: {ratios['lab/trl grpo']:.2f}x (blocks {min(swing):.2f}x to {max(swing):.2f}x; "
         "target <= 0.5x)")
    echo(f"  lab/trl sgpo step time: {ratios['lab/trl sgpo']:.2f}x")
    echo(f"  trl sgpo/grpo step time: {ratios['trl sgpo/grpo']:.2f}x (target <= 1.5x); lab sgpo/grpo: "
         f"{ratios['lab sgpo/grpo']:.2f}x")
    return {"median": {f"{e} {m}": v for (e, m), v in med.items()}, "ratios": ratios, "blocks": block_ratios}
