"""The metrics a run logs, written once: name -> (short label for figures, one-line meaning).

``metrics.jsonl`` has one row per step with these columns (plus ``step`` and ``phase``); the figures'
axis labels, the docs and ``sgpo-lab`` read them from here.
"""

from __future__ import annotations

METRICS: dict[str, tuple[str, str]] = {
    "loss": ("total loss", "total loss of the step"),
    "loss_grpo": ("GRPO term", "autonomous GRPO (or LUFFY) term"),
    "loss_distill": ("distillation term (mean_i w_i KL_i)", "mean_i w_i * L_KD,i over the batch's problems"),
    "loss_sft": ("SFT NLL", "token-mean NLL of expert responses (SFT steps)"),
    "p_auto": ("p_auto (autonomous pass rate)", "mean autonomous pass rate of the batch"),
    "p_guided": ("p_guided (guided pass rate)", "mean guided pass rate of the batch"),
    "reward_mean": ("mean reward", "mean autonomous reward"),
    "entropy": ("policy entropy (nats)", "policy entropy on the autonomous rollouts, token-mean"),
    "kl_mean": ("mean token KL on targets", "mean token KL(teacher || student) on the targets, before clipping"),
    "clipped_frac": ("share of target tokens clipped (KL > delta)", "share of target tokens with KL > delta"),
    "n_targets": ("distillation targets", "distillation targets in the batch"),
    "weight_mean": ("mean weight w_i", "mean adaptive weight of the batch"),
    "weight_max": ("max weight w_i", "largest adaptive weight of the batch"),
    "weight_nonzero": ("share of problems with w_i > 0", "share of the batch's problems with w_i > 0"),
    "grpo_clip_frac": ("share of tokens with ratio clipped", "share of tokens where the ratio clip is active "
                       "(0 by construction at one update per batch: the ratio is exactly 1)"),
    "grpo_clip_low": ("share of tokens clipped low", "share of tokens with A < 0 and ratio < 1 - eps_low "
                      "(0 by construction at updates_per_batch = 1)"),
    "grpo_clip_high": ("share of tokens clipped high", "share of tokens with A > 0 and ratio > 1 + eps_high "
                       "(0 by construction at updates_per_batch = 1)"),
    "grad_norm": ("gradient norm", "gradient norm before clipping to 1"),
    "completion_len": ("completion length (tokens)", "mean autonomous completion length"),
    "lr": ("learning rate", "AdamW learning rate"),
    "time_sample": ("seconds sampling", "seconds spent sampling rollouts"),
    "time_score": ("seconds scoring", "seconds spent grading, weighting and choosing targets"),
    "time_update": ("seconds updating", "seconds spent in the forward/backward passes and the optimizer step"),
    "time_step": ("seconds per step", "seconds for the whole step"),
}
EVAL_LABELS: dict[str, str] = {"accuracy": "greedy accuracy", "pass_at_k": "pass@k"}


def metric_label(name: str) -> str:
    """A metric's label for figures (the name itself when it is not a known metric)."""
    return EVAL_LABELS.get(name) or METRICS.get(name, (name, ""))[0]
