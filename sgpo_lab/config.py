"""One typed, validated config per run, and the named method presets.

A method is data: ``METHODS`` maps each name (``sgpo``, its baselines and the paper's ablations)
to the fields it changes. ``make_config("sgpo_rkl", steps=40)`` resolves a preset; the CLI, the
app and the notebooks all build a ``TrainConfig`` through it, and the run saves the resolved object.
Defaults are the paper's constants (G = 8, H = 4, eps 0.2/0.28, delta 1.0, alpha0 0.5, gamma 0.1,
alpha_max 0.8) with batch sizes scaled for a laptop CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sgpo_lab.tasks import DEFAULT_TASK, load_task


class TrainConfig(BaseModel):
    """Everything that defines a training run. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    method: str = Field("sgpo", description="preset name the fields were resolved from (see METHODS)")
    task: str = Field(DEFAULT_TASK, description="task: world, world:sum,count, reasoning-gym:DATASET, jsonl:PATH or "
                      "module:function (sgpo-lab tasks lists them)")
    model: str = Field("small", description="size name (tiny|small|medium), run/checkpoint dir or local HF model dir")
    cards: str | None = Field(None, description="card file (JSONL from 'sgpo-lab strategies rank'): the top-ranked "
                              "card per problem type; None: the task's own cards")
    prompt_style: Literal["auto", "plain", "chat"] = Field("auto", description="plain 'Q: ... A:' text, the model's "
                                                           "chat template, or auto (the template when it has one)")
    device: str = Field("cpu", description="torch device: cpu (default), cuda, cuda:1, ...")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="weights' dtype (bfloat16 on "
                                                             "GPUs that have it; float32 on a CPU)")
    steps: int = Field(60, ge=1, le=1_000_000, description="optimizer steps")
    seed: int = Field(0, ge=0, description="seed for problem order, sampling and evaluation")
    lr: float = Field(3e-4, gt=0, description="AdamW learning rate")
    problems_per_step: int = Field(8, ge=1, le=4096, description="problems in each step's batch")
    group_size: int = Field(8, ge=1, le=1024, description="G: autonomous rollouts per problem")
    guided_size: int = Field(4, ge=0, le=1024, description="H: guided rollouts per problem (strategy in the prompt)")
    temperature: float = Field(1.0, ge=0.01, le=100, description="sampling temperature of rollouts")
    max_new_tokens: int = Field(96, ge=1, le=32_768, description="longest completion sampled")
    families: list[str] | None = Field(None, description="problem types trained and evaluated on (None: all of "
                                       "the task's)")
    train_problems: int = Field(64, ge=1, le=100_000, description="training problems per family")

    # autonomous GRPO term
    grpo: bool = Field(True, description="include the autonomous GRPO term")
    eps_low: float = Field(0.2, ge=0, description="lower clip of the importance ratio")
    eps_high: float = Field(0.28, ge=0, description="upper clip of the importance ratio")
    scale_advantages: bool = Field(True, description="divide group advantages by the (Bessel) std")
    updates_per_batch: int = Field(1, ge=1, le=64, description="optimizer updates per step: the step's problems in "
                                   "this many mini-batches, one update each (veRL's mini-batches; TRL's "
                                   "num_iterations re-uses a batch instead). At 1 the ratio is exactly 1 and the "
                                   "GRPO clip cannot act; from the second mini-batch on it can")

    # strategy distillation
    distill: Literal["kl", "nll", "none"] = Field("kl", description="kl: token-level KL to the guided policy; "
                                                  "nll: imitate the selected guided trajectory; none: off")
    kl_direction: Literal["forward", "reverse"] = Field("forward", description="forward = KL(teacher || student)")
    kl_clip: Literal["hard", "scale", "none", "pointwise"] = Field(
        "hard", description="KL clipping at delta (the lab's readings): hard min(KL_t, delta), scale, none, or "
        "pointwise (each vocabulary term of the KL clipped to [-delta, delta])")
    kl_delta: float = Field(1.0, gt=0, description="delta: the KL clipping threshold")
    top_k: int | None = Field(None, ge=1, description="KL on the teacher's top-k + tail bucket (None: full vocab)")
    logits_budget_mb: float = Field(256, gt=0, description="largest logits tensor of one scoring pass (MB): rows are "
                                    "scored in micro-batches under it, with gradient accumulation, and a live "
                                    "teacher's logits are kept from sampling only when they fit")
    length_buckets: bool = Field(True, description="score rows in micro-batches of similar length, each padded to "
                                 "its own longest (about half the update time of padding every row to the "
                                 "step's longest; loss and gradients differ by float rounding, about 1e-8). A "
                                 "config.yaml without this field was made before it existed, without it")
    teacher: Literal["live", "frozen"] = Field("live", description="live: the current weights with the strategy in "
                                               "context (the paper); frozen: the starting model, never updated")
    target: Literal["best", "random", "all"] = Field("best", description="target selection among correct guided")
    top_m: int = Field(1, ge=1, description="targets per problem for best/random")
    weight: Literal["pass_gap", "linear", "constant"] = Field("pass_gap", description="adaptive instance weight")
    alpha0: float = Field(0.5, ge=0, description="weight scale alpha_0")
    gamma: float = Field(0.1, gt=0, description="weight smoothing gamma")
    alpha_max: float = Field(0.8, ge=0, description="weight cap alpha_max")
    objective: Literal["additive", "convex"] = Field("additive",
                                                     description="L_GRPO + w L_KD, or (1-w) L_GRPO + w L_KD")

    # baselines
    sft_steps: int = Field(0, ge=0, description="steps of SFT on expert responses before RL (sft_grpo; sft: all)")
    off_policy: int = Field(0, ge=0, description="LUFFY: expert responses added to each autonomous group")
    shaping_gamma: float = Field(0.1, gt=0, description="LUFFY policy shaping f(p) = p / (p + gamma)")

    # logging
    eval_every: int = Field(20, ge=0, description="evaluate every N steps (0: only at start and end)")
    eval_problems: int = Field(64, ge=1, le=100_000, description="evaluation problems per family and split (64: the "
                               "world's full ID split, and as many OOD problems)")
    eval_k: int = Field(4, ge=1, le=1024, description="k of pass@k")
    eval_max_new_tokens: int = Field(144, ge=1, le=32_768, description="longest completion sampled in evaluation")
    probe_every: int = Field(20, ge=0, description="record token shifts of the probe set every N steps")
    rollouts_every: int = Field(1, ge=0, description="store each RL step's sampled completions (rollouts/, for the "
                                "workbench's rollout browser) every N steps (0: never)")
    probe_problems: int = Field(2, ge=0, le=64, description="probe problems per family")
    checkpoint_every: int = Field(20, ge=0, description="save a checkpoint every N steps (and at the end)")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.families is not None and not self.families:
            raise ValueError("families is empty; expected a non-empty list of problem types, or null for all")
        load_task(self.task).check_families(self.families)
        needs_guided = self.distill != "none" and self.sft_steps < self.steps
        if needs_guided and self.guided_size < 1:
            raise ValueError("guided_size must be >= 1 when distill is on; expected a positive H (paper: 4)")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; expected one of: {', '.join(METHODS)}")
        return self

    @property
    def is_sft_only(self) -> bool:
        return self.sft_steps >= self.steps


_NO_DISTILL = {"distill": "none", "guided_size": 0}
METHODS: dict[str, dict[str, Any]] = {
    "sgpo": {},
    "sft": {**_NO_DISTILL, "sft_steps": 10**9, "grpo": False},
    "grpo": {**_NO_DISTILL},
    "sft_grpo": {**_NO_DISTILL, "sft_steps": 20},
    "luffy": {**_NO_DISTILL, "off_policy": 1},
    "sgpo_rkl": {"kl_direction": "reverse"},
    "sgpo_nll": {"distill": "nll"},
    "sgpo_const_w": {"weight": "constant"},
    "sgpo_no_clip": {"kl_clip": "none"},
    "sgpo_random_target": {"target": "random"},
    "sgpo_no_constraints": {"kl_clip": "none", "target": "random"},
    "sgpo_no_grpo": {"grpo": False},
    "sgpo_no_distill": {"distill": "none", "guided_size": 4},
    # a lab extension, not in the paper: distillation alone, unclipped, from a frozen copy of the starting model
    "distill_frozen": {"grpo": False, "kl_clip": "none", "teacher": "frozen"},
}
METHOD_HELP: dict[str, str] = {
    "sgpo": "autonomous GRPO + adaptive, clipped forward-KL distillation of the strategy's shift",
    "sft": "token-mean NLL on the expert's terse responses (trajectory imitation)",
    "grpo": "autonomous GRPO only (on-policy RL)",
    "sft_grpo": "SFT warm-up on expert responses, then GRPO",
    "luffy": "hybrid groups: on-policy rollouts + one expert response, policy shaping on its tokens",
    "sgpo_rkl": "ablation: reverse KL(student || teacher)",
    "sgpo_nll": "ablation: NLL imitation of the same selected guided trajectory",
    "sgpo_const_w": "ablation: constant weight alpha_0 (no adaptive weight)",
    "sgpo_no_clip": "ablation: no KL clipping",
    "sgpo_random_target": "ablation: a random correct guided trajectory as target",
    "sgpo_no_constraints": "ablation: no KL clipping and random target (no proximal constraints)",
    "sgpo_no_grpo": "ablation: distillation only, no autonomous GRPO term",
    "sgpo_no_distill": "ablation: GRPO only, guided rollouts still sampled for p_guided",
    "distill_frozen": "lab extension: unclipped forward-KL distillation alone, from a frozen copy of the start",
}


# Fields added after runs were made and shipped, with the value a config.yaml that lacks them was made with.
ADDED_FIELDS: dict[str, Any] = {"length_buckets": False}


def as_made(fields: dict[str, Any]) -> dict[str, Any]:
    """A saved run's config fields as the run was made: a field added since then gets the value it ran with."""
    return {**ADDED_FIELDS, **fields}


def make_config(method: str = "sgpo", **overrides: Any) -> TrainConfig:
    """Resolve a preset and overrides into a validated config; one-line ``ValueError`` on bad input."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of: {', '.join(METHODS)}")
    fields = {**METHODS[method], **{k: v for k, v in overrides.items() if v is not None}, "method": method}
    if method == "sft":
        fields["sft_steps"] = max(fields.get("steps", TrainConfig.model_fields["steps"].default), 1)
    try:
        return TrainConfig(**fields)
    except ValidationError as err:
        raise ValueError(describe_validation_error(err)) from None


def describe_validation_error(err: ValidationError) -> str:
    """pydantic's report as one line: each bad field, what was given, what is expected (a few at most)."""
    errors = err.errors()
    unknown = [".".join(str(x) for x in e["loc"])[:40] for e in errors if e["type"] == "extra_forbidden"]
    parts = []
    if unknown:
        names = ", ".join(repr(u) for u in unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        parts.append(f"unknown field{'s' if len(unknown) > 1 else ''} {names}; expected one of: "
                     f"{', '.join(TrainConfig.model_fields)}")
    others = [e for e in errors if e["type"] != "extra_forbidden"]
    for e in others[:3]:
        if not e["loc"]:  # a check across fields: its own message says what and why
            parts.append(str(e["msg"]).removeprefix("Value error, ")[:300])
        else:
            field = ".".join(str(x) for x in e["loc"])
            parts.append(f"{field[:60]}={_short(e.get('input'))}: {e['msg']}")
    more = f"; and {len(others) - 3} more" if len(others) > 3 else ""
    return "invalid config: " + "; ".join(parts) + more


def _short(value: Any, most: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= most else text[: most - 3] + "..."


MAX_VALUE_CHARS = 10_000  # one --set value, or a config file, is refused past this (a YAML bomb is small but deep)
MAX_FILE_CHARS = 200_000


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without anchors and aliases: a few hundred bytes of nested aliases expand to gigabytes."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases (*name) are not allowed")
        return super().compose_node(parent, index)


def parse_yaml(text: str, *, what: str) -> Any:
    """Safe YAML without aliases or tags, size-bounded; a one-line ``ValueError`` naming ``what`` otherwise."""
    limit = MAX_FILE_CHARS if what.startswith("config file") else MAX_VALUE_CHARS
    if len(text) > limit:
        raise ValueError(f"{what} has {len(text):,} characters; expected at most {limit:,}")
    if not any(c in text for c in "&*!") and hasattr(yaml, "CSafeLoader"):
        # No anchor, alias or tag can be written without these: libyaml's safe loader reads the same values, about
        # 20 times faster (the Runs page reads every run's config.yaml). An error is reported in the words below.
        try:
            return yaml.load(text, Loader=yaml.CSafeLoader)
        except yaml.YAMLError:
            pass
    try:
        return yaml.load(text, Loader=_NoAliasLoader)
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{what} is not valid YAML ({first[:160]}); expected plain values such as 0.5, "
                         "true, [sum, count] or a string") from None


def parse_field_values(items: list[str] | str) -> dict[str, Any]:
    """``field=value`` settings (a list, or lines of text; ``#`` starts a comment line) -> {field: YAML value}.

    The one parser of the CLI's ``--set`` and the app's Train page. Keys are checked against ``TrainConfig``.
    """
    lines = items.splitlines() if isinstance(items, str) else list(items)
    fields: dict[str, Any] = {}
    for item in lines:
        item = item.strip()
        if not item or item.startswith("#"):
            continue
        if "=" not in item:
            raise ValueError(f"setting {item[:80]!r} is not field=value; expected e.g. kl_delta=0.5")
        key, value = (part.strip() for part in item.split("=", 1))
        if key not in TrainConfig.model_fields:
            raise ValueError(f"unknown field {key[:80]!r}; expected one of: {', '.join(TrainConfig.model_fields)}")
        fields[key] = parse_yaml(value, what=f"the value of {key}")
    return fields


def load_config_file(path: str | Path, **overrides: Any) -> TrainConfig:
    """A YAML config file (any TrainConfig fields, ``method`` picks the preset), then command-line overrides."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist or is not a regular file; expected a YAML file")
    with open(path, errors="replace") as fh:
        text = fh.read(MAX_FILE_CHARS + 1)
    body = parse_yaml(text, what=f"config file {str(path)!r}") or {}
    if not isinstance(body, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping of field: value")
    method = overrides.pop("method", None) or body.pop("method", "sgpo")
    return make_config(method, **{**body, **{k: v for k, v in overrides.items() if v is not None}})
