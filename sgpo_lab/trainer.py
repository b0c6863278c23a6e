"""The training loop: one readable step for SGPO, its baselines and ablations (config decides which terms run).

One RL step (``Trainer.rl_step``) calls its phases in order; each is a method a notebook can call:

    1. sample       G autonomous rollouts  y ~ pi_old(. | x)  and H guided  ~y ~ pi_old(. | x, s), in one batch
    2. score        the task's verifier: rewards R in {0,1}, pass rates p_auto, p_guided per problem
    3. advantages   group-normalised over the autonomous group (+ the expert response for LUFFY)
    4. targets      the adaptive weight w_i; among correct guided rollouts, the likeliest under pi(. | x)
    5. loss terms   student pi_theta on the autonomous rows (GRPO) and on the targets (distillation); teacher
                    pi_old(. | x, s, ~y_<t): the logits the guided rollouts were drawn from when they fit in memory,
                    else a no-grad forward on the targets only (a frozen teacher: its own forward)
                    L = L_GRPO + mean_i w_i * mean_t clip(KL_t)      (or the convex mix, ``objective=convex``)
    6. update       one AdamW step (so pi_old = pi_theta at sampling time: old log-probs are the detached
                    current ones, and the importance ratio starts at 1)
    then log        metrics.jsonl, instances, eval.jsonl, token_shifts, checkpoints (runs.RunWriter)

``StepRows`` owns the row layout of a step (problems x autonomous + guided rows), so the ``i * G + j``
arithmetic lives in one place. Rows are scored in micro-batches of similar length (``length_buckets``; each pads
to its own longest) whose logits stay under ``logits_budget_mb``, with gradient accumulation, so neither padding
nor memory grows with the step's longest row or the vocabulary.

SFT steps (``sft``, and the warm-up of ``sft_grpo``) replace 1-5 with the token-mean NLL of the task's
expert responses. Reproducible: problems and sampling of step s depend only on (seed, s), so the same seed
gives the same metrics and a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from sgpo_lab import losses as L
from sgpo_lab.cards import load_cards
from sgpo_lab.config import TrainConfig
from sgpo_lab.evaluate import card_of, evaluate_problems
from sgpo_lab.models import load_model
from sgpo_lab.prompts import Prompter
from sgpo_lab.rollout import Rollouts, completion_logits, encode_prompts, end_ids, micro_batches, sample
from sgpo_lab.runs import (
    RunDirError,
    RunWriter,
    atomic_write_text,
    list_checkpoints,
    load_optimizer_state,
    prepare_out_dir,
    read_jsonl,
    read_status,
    resolved_config,
    save_checkpoint,
)
from sgpo_lab.shifts import ShiftItem, shift_tables
from sgpo_lab.tasks import Problem, Task, TaskError, load_task

__all__ = ["RunDirError", "StepRows", "Trainer", "step_generator", "train"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _pooled(parts: list[tuple[float, float]]) -> float:
    """A token-mean from micro-batches' (value, share of tokens); one micro-batch's value as it is."""
    if len(parts) == 1:
        return parts[0][0]
    return sum(v * share for v, share in parts)


def step_generator(seed: int, step: int, salt: int = 0) -> torch.Generator:
    """The random stream of one step: sampling and target draws of step ``step`` (salt 7: its evaluation).

    It depends on (seed, step) only, so a resumed run draws what an uninterrupted one would.
    """
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 101 + salt)


# ------------------------------------------------------------------------------------ a step's data


@dataclass
class StepRows:
    """The row layout of one RL step: P problems, G autonomous and H guided rows each, sampled in one batch.

    Sampling order: the autonomous block (problem i's rollout j at row ``i * G + j``), then the guided block
    (problem i's guided rollout j at row ``i * H + j`` of that block). The RL rows add ``n_off`` expert rows
    per problem after the autonomous block (LUFFY): problem i's expert row k at ``P * G + i * n_off + k``.
    """

    problems: list[Problem]
    G: int
    H: int
    cards: list[str]  # the card each problem is guided with
    n_off: int = 0

    @property
    def P(self) -> int:
        return len(self.problems)

    def auto(self, i: int, j: int) -> int:
        return i * self.G + j

    def guided(self, i: int, j: int) -> int:
        return i * self.H + j

    def rl_rows_of(self, i: int) -> list[int]:
        """Problem i's rows among the RL rows: its autonomous rollouts, then its expert rows."""
        P, G, n = self.P, self.G, self.n_off
        return [*range(i * G, (i + 1) * G), *range(P * G + i * n, P * G + (i + 1) * n)]

    def grid(self, values: list[float], width: int) -> torch.Tensor:
        """A flat block of per-row values (problem-major) as a (P, width) tensor."""
        return torch.tensor(values, dtype=torch.float32).reshape(self.P, width) if width else torch.zeros(self.P, 0)


@dataclass
class Sampled:
    auto: Rollouts  # P * G rows
    guided: Rollouts  # P * H rows; ``guided.logits``: the live teacher's logits when they were kept
    seconds: float


@dataclass
class Scores:
    r_auto: torch.Tensor  # (P, G) rewards in {0, 1}
    r_guided: torch.Tensor  # (P, H)
    p_auto: torch.Tensor  # (P,)
    p_guided: torch.Tensor  # (P,) NaN when H = 0
    any_correct: torch.Tensor  # (P,) bool: a guided rollout verified


@dataclass
class RLRows:
    """The rows of the autonomous RL term: prompts, completions, advantages, which rows are off-policy."""

    prompts: list[str]
    completions: list[list[int]]
    advantages: torch.Tensor  # (B,)
    off_policy: torch.Tensor  # (B,) bool
    n_auto: int  # the first n_auto rows are autonomous rollouts
    old_logp: list[torch.Tensor] | None = None  # per row, pi_old's token log-probs (None: the current policy's)


@dataclass
class Targets:
    weights: torch.Tensor  # (P,) adaptive weight w_i
    chosen: list[list[int]]  # per problem, indices 0..H-1 of its targets
    rows: list[tuple[int, int]] = field(default_factory=list)  # (problem, row of the guided block)


@dataclass
class Terms:
    loss: float
    loss_grpo: float
    loss_distill: float
    entropy: float
    grpo_clip_frac: float
    kl_mean: torch.Tensor  # (P,) mean token KL of each problem's targets (NaN: none)
    clipped_frac: float
    pending: torch.Tensor | None  # the loss still to backpropagate (None: already accumulated, or no gradient)
    grpo_clip_low: float = 0.0
    grpo_clip_high: float = 0.0


# --------------------------------------------------------------------------------------- trainer


class Trainer:
    """Runs one config into one run directory, on any task and causal LM."""

    def __init__(self, cfg: TrainConfig, out: str | Path, *, resume: bool = False, overwrite: bool = False,
                 progress: bool = True, task: Task | None = None):
        self.cfg, self.out, self.progress = cfg, Path(out), progress
        self.task = load_task(task or cfg.task)
        families = self.task.check_families(cfg.families)
        needs_experts = cfg.sft_steps > 0 or cfg.off_policy > 0
        if needs_experts and not self.task.has_experts():
            raise TaskError(f"method {cfg.method!r} imitates expert responses, and task {self.task.name!r} has "
                            "none; expected a task with expert responses (world, or a JSONL file with 'expert' or "
                            "GSM8K-style answers), or a method without SFT/LUFFY (grpo, sgpo)")
        self.cards = load_cards(cfg.cards) if cfg.cards else {}
        if cfg.device != "cpu" and cfg.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device={cfg.device!r} but torch sees no CUDA device; expected device=cpu here")
        # the problems, the model, its tokenizer and prompts are ready before the output folder is touched: a bad
        # task, model or config never costs a run directory (nor, with --overwrite, the run it would replace)
        self.train_pool = self.task.problems("train", cfg.train_problems, families=families)
        if not self.train_pool:
            raise TaskError(f"task {self.task.name!r} has no train problems for {families}")
        self.eval_set = [p for split in ("id", "ood") if split in self.task.splits
                         for p in self.task.problems(split, cfg.eval_problems, families=families)]
        probe_split = next((s for s in ("id", "ood", "train") if s in self.task.splits), "train")
        self.probes = (self.task.problems(probe_split, cfg.probe_problems, families=families)
                       if cfg.probe_problems else [])
        checkpoints = list_checkpoints(self.out) if resume and self.out.is_dir() else []
        checkpoint = checkpoints[-1] if checkpoints else None
        self.model, self.tokenizer = load_model(checkpoint or cfg.model, device=cfg.device, dtype=DTYPES[cfg.dtype])
        self.prompter = Prompter.for_task(self.task, self.tokenizer, cfg.prompt_style)
        self.stops = end_ids(self.model, self.tokenizer)
        # the id that ends an expert response (SFT, LUFFY): a chat turn ends with the template's end of turn, the
        # first end id the generation config names (Qwen: <|im_end|>); plain text with the tokenizer's EOS
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        gen_eos = gen_eos if isinstance(gen_eos, list) else [gen_eos] if isinstance(gen_eos, int) else []
        self.eos = gen_eos[0] if self.prompter.style == "chat" and gen_eos else self.stops[0]
        # the distillation teacher: the policy itself with the strategy in context, or a frozen copy of the start
        self.teacher = self.model if cfg.teacher == "live" else load_model(
            cfg.model, device=cfg.device, dtype=DTYPES[cfg.dtype])[0].eval().requires_grad_(False)
        self.device = next(self.model.parameters()).device
        torch.manual_seed(cfg.seed)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=0.0, betas=(0.9, 0.99))
        self.start_step = load_optimizer_state(checkpoint, self.opt) if checkpoint is not None else 0
        self.lock = prepare_out_dir(self.out, resume=resume, overwrite=overwrite)
        try:
            self.writer = RunWriter(self.out)
            if resume:  # from the last checkpoint, or from step 0 when the run stopped before its first one
                self.writer.truncate_after(self.start_step, drop_eval_at=self.start_step if self._evaluates_at(
                    self.start_step) else None)
            else:  # the task that runs is the one recorded (a Task object given here may differ from cfg.task)
                fields = {**cfg.model_dump(), "task": self.task.name if task is not None else cfg.task}
                self.writer.write_config(resolved_config(fields, card_set=self.card_set()))
        except BaseException:
            self.lock.release()
            raise

    def card(self, problem: Problem) -> str:
        """The card a problem is guided with: the run's card for its type (``cards=``), else the task's own."""
        return card_of(self.task, problem, self.cards)

    def card_set(self) -> dict[str, list[str]]:
        """Per problem type, the distinct cards this run guides with (recorded in config.yaml)."""
        out: dict[str, list[str]] = {}
        for p in self.train_pool:
            cards = out.setdefault(p.family, [])
            if (c := self.card(p)) not in cards:
                cards.append(c)
        return out

    # ------------------------------------------------------------------------------------ the loop

    def _evaluates_at(self, step: int) -> bool:
        cfg = self.cfg
        return step == 0 or step == cfg.steps or bool(cfg.eval_every and step % cfg.eval_every == 0)

    def _probes_at(self, step: int) -> bool:
        cfg = self.cfg
        return step == 0 or step == cfg.steps or bool(cfg.probe_every and step % cfg.probe_every == 0)

    def run(self) -> dict[str, Any]:
        try:
            return self._run()
        finally:
            self.lock.release()

    def _run(self) -> dict[str, Any]:
        cfg = self.cfg
        # the start step's evaluation and probe: always at step 0, and redone on resume when due (an interrupt
        # during them leaves the step checkpointed without them)
        if self._evaluates_at(self.start_step) and not any(
                r.get("step") == self.start_step for r in read_jsonl(self.out / "eval.jsonl")):
            self._evaluate(self.start_step)
        if self._probes_at(self.start_step) and not (
                self.out / "token_shifts" / f"part-{self.start_step:06d}.parquet").exists():
            self._probe(self.start_step)
        step = completed = self.start_step
        self.writer.status("running", step=step, total=cfg.steps)
        bar = tqdm(range(self.start_step + 1, cfg.steps + 1), desc=cfg.method, disable=not self.progress,
                   initial=self.start_step, total=cfg.steps)
        try:
            for step in bar:
                t0 = time.perf_counter()
                row = self.sft_step(step) if step <= cfg.sft_steps else self.rl_step(step)
                row["time_step"] = time.perf_counter() - t0
                self.writer.append("metrics.jsonl", row)
                completed = step
                bar.set_postfix({k: f"{row[k]:.3f}" for k in ("loss", "p_auto", "p_guided") if row.get(k) is not None})
                if self._evaluates_at(step):
                    self._evaluate(step)
                if self._probes_at(step):
                    self._probe(step)
                if step == cfg.steps or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
                    self.save_checkpoint(step)
                self.writer.status("running", step=step, total=cfg.steps)
        except KeyboardInterrupt:
            # The weights hold every update up to `completed` (an interrupt inside opt.step() is the one case
            # that could tear them; it is far rarer than one inside sampling, evaluation or a save).
            if completed > 0 and not (self.out / "checkpoints" / f"step-{completed:06d}").exists():
                self.save_checkpoint(completed)
            self.writer.truncate_after(completed)
            self.writer.status("interrupted", step=completed, total=cfg.steps)
            raise
        except Exception as err:
            self.writer.status("failed", step=step, total=cfg.steps, error=f"{type(err).__name__}: {err}")
            raise
        self.writer.status("finished", step=cfg.steps, total=cfg.steps)
        return read_status(self.out)

    def batch_problems(self, step: int) -> list[Problem]:
        rng = random.Random(f"{self.cfg.seed}/batch/{step}")
        return rng.sample(self.train_pool, min(self.cfg.problems_per_step, len(self.train_pool)))

    def step_rows(self, step: int) -> StepRows:
        """The problems of step ``step`` and the layout of their rows."""
        problems = self.batch_problems(step)
        return StepRows(problems, self.cfg.group_size, self.cfg.guided_size, [self.card(p) for p in problems],
                        self.cfg.off_policy)

    # ----------------------------------------------------------------------------------- one step

    def rl_step(self, step: int) -> dict[str, Any]:
        """One RL step, phase after phase; returns its metrics row (and writes its ``instances`` part)."""
        rows = self.step_rows(step)
        gen = step_generator(self.cfg.seed, step)
        t0 = time.perf_counter()
        sampled = self.sample_rollouts(rows, gen)  # 1
        scores = self.score(rows, sampled)  # 2
        rl = self.advantages(rows, sampled, scores)  # 3
        targets = self.targets(rows, sampled, scores, gen)  # 4
        t_score = time.perf_counter() - t0 - sampled.seconds
        if self.cfg.updates_per_batch == 1:
            terms = self.loss_terms(rows, sampled, rl, targets)  # 5
            grad_norm = self.update(terms)  # 6
        else:  # 5 and 6 on each mini-batch of problems, against the sampling policy's log-probs
            terms, grad_norm = self.minibatch_updates(rows, sampled, rl, targets)
        t_update = time.perf_counter() - t0 - sampled.seconds - t_score
        return self.log_step(step, rows, sampled, scores, targets, terms, grad_norm,
                             {"time_sample": sampled.seconds, "time_score": t_score, "time_update": t_update})

    def sample_rollouts(self, rows: StepRows, gen: torch.Generator) -> Sampled:
        """1. G autonomous and H guided rollouts per problem from pi_old (the current weights), in one batch."""
        cfg, P, G, H = self.cfg, rows.P, rows.G, rows.H
        t0 = time.perf_counter()
        prompts = ([self.prompter.autonomous(p.question) for p in rows.problems for _ in range(G)]
                   + [self.prompter.guided(p.question, c) for p, c in zip(rows.problems, rows.cards)
                      for _ in range(H)])
        # the live teacher's logits come from sampling, when P*H rows of them fit in the budget (else recomputed
        # for the targets only, in loss_terms)
        vocab = self.model.get_output_embeddings().weight.shape[0]
        fits = P * H * cfg.max_new_tokens * vocab * 4 <= cfg.logits_budget_mb * 2**20
        keep = self.teacher is self.model and cfg.distill != "none" and fits
        both = sample(self.model, self.tokenizer, prompts, max_new_tokens=cfg.max_new_tokens,
                      temperature=cfg.temperature, generator=gen, keep_logits=keep, stop_ids=self.stops)
        auto, guided = both.split(P * G)
        return Sampled(auto, guided, time.perf_counter() - t0)

    def score(self, rows: StepRows, sampled: Sampled) -> Scores:
        """2. R(y, a*) from the task's verifier, and pass rates."""
        P, G, H, task = rows.P, rows.G, rows.H, self.task
        r_auto = rows.grid([float(task.correct(p, sampled.auto.texts[rows.auto(i, j)]))
                            for i, p in enumerate(rows.problems) for j in range(G)], G)  # (P, G)
        r_guided = rows.grid([float(task.correct(p, sampled.guided.texts[rows.guided(i, j)]))
                              for i, p in enumerate(rows.problems) for j in range(H)], H)  # (P, H)
        p_guided = r_guided.mean(1) if H else torch.full((P,), float("nan"))
        any_correct = r_guided.sum(1) > 0 if H else torch.zeros(P, dtype=torch.bool)
        return Scores(r_auto, r_guided, r_auto.mean(1), p_guided, any_correct)

    def advantages(self, rows: StepRows, sampled: Sampled, scores: Scores) -> RLRows:
        """3. Advantages over each autonomous group (+ off-policy expert responses, reward 1, for LUFFY)."""
        P, G, n_off = rows.P, rows.G, rows.n_off
        prompts = [self.prompter.autonomous(p.question) for p in rows.problems for _ in range(G)]
        completions = list(sampled.auto.completion_ids)
        off_policy = torch.zeros(P * G, dtype=torch.bool)
        rewards = scores.r_auto
        if n_off:
            expert = [self._expert_ids(p) for p in rows.problems]
            prompts += [self.prompter.autonomous(p.question) for p in rows.problems for _ in range(n_off)]
            completions += [e for e in expert for _ in range(n_off)]
            rewards = torch.cat([scores.r_auto, torch.ones(P, n_off)], 1)  # (P, G + n_off)
            off_policy = torch.cat([off_policy, torch.ones(P * n_off, dtype=torch.bool)])
        adv = L.group_advantages(rewards, scale=self.cfg.scale_advantages)  # (P, G [+ n_off])
        adv_rows = torch.cat([adv[:, :G].reshape(-1), adv[:, G:].reshape(-1)])  # row order of `prompts`
        return RLRows(prompts, completions, adv_rows, off_policy, P * G)

    def targets(self, rows: StepRows, sampled: Sampled, scores: Scores, gen: torch.Generator) -> Targets:
        """4. The adaptive weights, and per problem the correct guided rollouts to distil (likeliest under pi(.|x))."""
        cfg, P, H = self.cfg, rows.P, rows.H
        weights = L.adaptive_weight(scores.p_auto, torch.nan_to_num(scores.p_guided), scores.any_correct,
                                    kind=cfg.weight, alpha0=cfg.alpha0, gamma=cfg.gamma,
                                    alpha_max=cfg.alpha_max)  # (P,)
        if cfg.distill == "none":
            return Targets(weights, [[] for _ in range(P)])
        r_guided = scores.r_guided
        # only correct rollouts can be targets, and a problem's only correct one needs no ranking: score the rest
        correct = [(i, j) for i in range(P) if r_guided[i].sum() > 1 for j in range(H) if r_guided[i, j] > 0]
        ranks = torch.full((P, H), float("-inf"))
        if correct and cfg.target == "best":
            prompts = [self.prompter.autonomous(rows.problems[i].question) for i, _ in correct]
            completions = [sampled.guided.completion_ids[rows.guided(i, j)] for i, j in correct]
            with torch.no_grad():
                for chunk, lg, tk, mk in self._scored(self.model, prompts, completions):
                    for k, s in zip(chunk, L.sequence_mean_logprob(L.token_logprobs(lg, tk), mk).tolist()):
                        i, j = correct[k]
                        ranks[i, j] = s
        chosen = [L.select_targets(ranks[i], r_guided[i] > 0, mode=cfg.target, top_m=cfg.top_m, generator=gen)
                  for i in range(P)]
        return Targets(weights, chosen, [(i, rows.guided(i, j)) for i in range(P) for j in chosen[i]])

    def minibatch_updates(self, rows: StepRows, sampled: Sampled, rl: RLRows, targets: Targets
                          ) -> tuple[Terms, float]:
        """5 and 6, ``updates_per_batch`` times: one update per mini-batch of the step's problems.

        pi_old stays the sampling policy: the RL rows' log-probs and the live teacher's logits on the targets are
        taken before the first update, so from the second mini-batch on the ratio moves off 1 and the clip acts.
        Each mini-batch is its own token-mean (GRPO) and mean over its problems (distillation); the step's
        metrics average the mini-batches'.
        """
        with torch.no_grad():
            old: list[torch.Tensor] = [torch.empty(0)] * len(rl.completions)  # per RL row, (T_row,) pi_old log-probs
            for chunk, lg, tk, _mk in self._scored(self.model, rl.prompts, rl.completions):
                logp = L.token_logprobs(lg, tk)  # (b, T)
                for k, r in enumerate(chunk):
                    old[r] = logp[k, : len(rl.completions[r])].cpu()
            teacher = self._teacher_logits(rows, sampled, targets) if sampled.guided.logits is None else None
        parts = torch.arange(rows.P).chunk(self.cfg.updates_per_batch)
        results = []
        for part in (p.tolist() for p in parts if len(p)):
            sub = self._subset(rows, sampled, rl, targets, part, old, teacher)
            terms = self.loss_terms(*sub)
            results.append((terms, self.update(terms)))
        n = len(results)

        def mean(field) -> float:
            return sum(field(t) for t, _ in results) / n

        kl_mean = torch.cat([t.kl_mean for t, _ in results])
        return Terms(mean(lambda t: t.loss), mean(lambda t: t.loss_grpo), mean(lambda t: t.loss_distill),
                     mean(lambda t: t.entropy), mean(lambda t: t.grpo_clip_frac), kl_mean,
                     mean(lambda t: t.clipped_frac), None, mean(lambda t: t.grpo_clip_low),
                     mean(lambda t: t.grpo_clip_high)), sum(g for _, g in results) / n

    def _teacher_logits(self, rows: StepRows, sampled: Sampled, targets: Targets) -> dict[int, torch.Tensor]:
        """The live teacher's logits on each target (guided row -> (T, V)), before any update of the step."""
        out: dict[int, torch.Tensor] = {}
        prompts = [self.prompter.guided(rows.problems[i].question, rows.cards[i]) for i, _ in targets.rows]
        completions = [sampled.guided.completion_ids[r] for _, r in targets.rows]
        for chunk, lg, _tk, _mk in self._scored(self.teacher, prompts, completions):
            for k, t in enumerate(chunk):
                out[targets.rows[t][1]] = lg[k, : len(completions[t])]
        return out

    def _subset(self, rows: StepRows, sampled: Sampled, rl: RLRows, targets: Targets, part: list[int],
                old: list[torch.Tensor], teacher: dict[int, torch.Tensor] | None):
        """The step's data restricted to problems ``part`` (re-indexed from 0): rows, sampled, rl, targets, old."""
        G, H, n_off = rows.G, rows.H, rows.n_off
        sub_rows = StepRows([rows.problems[i] for i in part], G, H, [rows.cards[i] for i in part], n_off)
        auto = [rows.auto(i, j) for i in part for j in range(G)]
        guided = [rows.guided(i, j) for i in part for j in range(H)]

        def pick(r: Rollouts, idx: list[int], logits=None) -> Rollouts:
            kept = [r.logits[k] for k in idx] if r.logits is not None else logits
            return Rollouts([r.prompts[k] for k in idx], [r.completion_ids[k] for k in idx],
                            [r.texts[k] for k in idx], [r.finished[k] for k in idx], kept)

        teacher_rows = [teacher[g] if teacher and g in teacher else None for g in guided] if teacher else None
        sub_sampled = Sampled(pick(sampled.auto, auto), pick(sampled.guided, guided, teacher_rows), 0.0)
        rl_idx = [*auto, *(rows.P * G + i * n_off + k for i in part for k in range(n_off))]
        sub_rl = RLRows([rl.prompts[k] for k in rl_idx], [rl.completions[k] for k in rl_idx],
                        rl.advantages[rl_idx], rl.off_policy[rl_idx], len(auto), [old[k] for k in rl_idx])
        local = {i: n for n, i in enumerate(part)}
        sub_targets = Targets(targets.weights[part], [targets.chosen[i] for i in part],
                              [(local[i], local[i] * H + j) for i in part for j in targets.chosen[i]])
        return sub_rows, sub_sampled, sub_rl, sub_targets

    def loss_terms(self, rows: StepRows, sampled: Sampled, rl: RLRows, targets: Targets) -> Terms:
        """5. The student's logits on the RL rows and the targets, the teacher's on the targets, and the loss.

        L = L_GRPO + mean_i w_i L_KD,i   (convex: mean_i (1 - w_i) L_GRPO,i + w_i L_KD,i).
        Rows go through in micro-batches under the logits budget; with more than one, each micro-batch's share
        of the loss is backpropagated at once (gradient accumulation) and only its value is kept.
        """
        cfg, P, dev = self.cfg, rows.P, self.device
        self.opt.zero_grad(set_to_none=True)
        weights = targets.weights.to(dev)
        rl_chunks = self._chunks(rl.completions, rows, by_problem=cfg.objective == "convex")
        kd_chunks = self._chunks([sampled.guided.completion_ids[r] for _, r in targets.rows])
        accumulate = len(rl_chunks) > 1 or len(kd_chunks) > 1
        pending: list[torch.Tensor] = []
        n_auto_tokens = sum(len(c) for c in rl.completions[: rl.n_auto]) or 1
        n_rl_tokens = sum(len(c) for c in rl.completions) or 1
        grpo_value = loss_value = 0.0
        entropies: list[tuple[float, float]] = []  # (value, share of the tokens) per micro-batch
        clip_fracs: list[tuple[float, float]] = []
        clip_sides: list[tuple[float, float, float]] = []  # (low, high, share of the tokens)

        def add(piece: torch.Tensor) -> None:
            nonlocal loss_value
            loss_value += float(piece.detach())
            if piece.requires_grad and accumulate:
                piece.backward()
            elif piece.requires_grad:
                pending.append(piece)

        # the autonomous RL term: GRPO's clipped surrogate (LUFFY's with expert rows), token-mean over the batch
        # (without the GRPO term the autonomous rows still give the policy's entropy, with no graph)
        for chunk in rl_chunks:
            with torch.set_grad_enabled(cfg.grpo and torch.is_grad_enabled()):
                logits, tokens, mask = completion_logits(
                    self.model, encode_prompts(self.tokenizer, [rl.prompts[r] for r in chunk], check=False),
                    [rl.completions[r] for r in chunk], pad_id=self._pad)  # (b, T, V)
            logp = L.token_logprobs(logits, tokens)  # (b, T)
            adv, off = rl.advantages[chunk].to(dev), rl.off_policy[chunk].to(dev)
            old = logp.detach() if rl.old_logp is None else torch.nn.utils.rnn.pad_sequence(
                [rl.old_logp[r] for r in chunk], batch_first=True).to(dev)  # (b, T) pi_old's log-probs
            share = float(mask.sum()) / n_rl_tokens  # this chunk's tokens of the batch's token-mean
            if not cfg.grpo:
                pass
            elif cfg.objective == "convex":
                local = {r: k for k, r in enumerate(chunk)}
                owners = sorted({i for i in range(P) for r in rows.rl_rows_of(i) if r in local})
                per = torch.stack([self._policy_loss(logp[idx], adv[idx], mask[idx], off[idx], old[idx]) for idx in
                                   ([local[r] for r in rows.rl_rows_of(i)] for i in owners)])  # (p,)
                add(((1 - weights[owners]) * per).sum() / P)
            else:
                add(self._policy_loss(logp, adv, mask, off, old) * share)
            if cfg.grpo:
                grpo_value += float(self._policy_loss(logp.detach(), adv, mask, off, old)) * share
            auto = [k for k, r in enumerate(chunk) if r < rl.n_auto]
            if auto:
                a_mask = mask[auto]
                a_share = float(a_mask.sum()) / n_auto_tokens
                entropies.append((float(L.entropy(logits[auto].detach(), a_mask)), a_share))
                clip_fracs.append((float(L.grpo_clip_fraction(logp[auto].detach(), old[auto], adv[auto], a_mask,
                                                              eps_low=cfg.eps_low, eps_high=cfg.eps_high)), a_share))
                low, high = L.grpo_clip_fractions(logp[auto].detach(), old[auto], adv[auto], a_mask,
                                                  eps_low=cfg.eps_low, eps_high=cfg.eps_high)
                clip_sides.append((float(low), float(high), a_share))
            del logits, logp

        # the distillation term: mean_i w_i * (mean over problem i's targets of the per-target loss)
        owner = torch.tensor([i for i, _ in targets.rows], dtype=torch.long)
        count = torch.zeros(P).index_add_(0, owner, torch.ones(len(targets.rows))).to(dev) if targets.rows else None
        kl_sum, clipped, kd_value = torch.zeros(P), [], 0.0
        for chunk in kd_chunks:
            kd, kl_seq, clipped_part, tokens_in = self._distill_chunk(rows, sampled, targets, chunk)
            own = owner[chunk].to(dev)
            kd_per_problem = torch.zeros(P, device=dev).index_add(0, own, kd) / count.clamp(min=1)  # (P,)
            piece = (weights * kd_per_problem).mean()
            kd_value += float(piece.detach())
            add(piece)
            kl_sum.index_add_(0, owner[chunk], kl_seq.detach().cpu().float())
            clipped.append((clipped_part, tokens_in))
        if count is not None:
            count_cpu = count.cpu()
            kl_mean = torch.where(count_cpu > 0, kl_sum / count_cpu.clamp(min=1), torch.full((P,), float("nan")))
        else:
            kl_mean = torch.full((P,), float("nan"))
        if cfg.objective == "convex" or not pending:
            total = sum(pending) if pending else None
        else:
            total = pending[0] if len(pending) == 1 else pending[0] + pending[1]
        n_target_tokens = sum(n for _, n in clipped)
        return Terms(loss_value if accumulate or total is None else float(total.detach()), grpo_value, kd_value,
                     _pooled(entropies), _pooled(clip_fracs),
                     kl_mean, _pooled([(f, n / n_target_tokens) for f, n in clipped]) if n_target_tokens else 0.0,
                     total, _pooled([(lo, w) for lo, _, w in clip_sides]) if clip_sides else 0.0,
                     _pooled([(hi, w) for _, hi, w in clip_sides]) if clip_sides else 0.0)

    def _distill_chunk(self, rows: StepRows, sampled: Sampled, targets: Targets, chunk: list[int]):
        """Per-target distillation loss of some targets, their mean token KL, the clipped share of their tokens, and
        how many tokens they have.

        Student: pi_theta(. | x, ~y_<t), with grad. Teacher: pi_old(. | x, s, ~y_<t): the logits the target was
        drawn from when kept, else the teacher's own no-grad forward with the card in context.
        """
        cfg = self.cfg
        picked = [targets.rows[k] for k in chunk]
        completions = [sampled.guided.completion_ids[r] for _, r in picked]
        prompts = [self.prompter.autonomous(rows.problems[i].question) for i, _ in picked]
        student_logits, tokens, mask = completion_logits(self.model, encode_prompts(self.tokenizer, prompts,
                                                                                    check=False),
                                                         completions, pad_id=self._pad)  # (n, T, V)
        if sampled.guided.logits is not None:  # live teacher, kept while sampling
            teacher_logits = torch.nn.utils.rnn.pad_sequence([sampled.guided.logits[r] for _, r in picked],
                                                             batch_first=True).to(student_logits.device)  # (n, T, V)
        else:
            guided = [self.prompter.guided(rows.problems[i].question, rows.cards[i]) for i, _ in picked]
            with torch.no_grad():
                teacher_logits, _, _ = completion_logits(self.teacher, encode_prompts(self.tokenizer, guided,
                                                                                      check=False),
                                                         completions, pad_id=self._pad)
        kl = L.token_kl(teacher_logits, student_logits, direction=cfg.kl_direction, top_k=cfg.top_k)  # (n, T)
        if cfg.distill == "kl":
            per_target = L.distill_loss(teacher_logits, student_logits, mask, direction=cfg.kl_direction,
                                        clip=cfg.kl_clip, delta=cfg.kl_delta, top_k=cfg.top_k)  # (n,)
        else:  # "nll": imitate the selected guided trajectory itself
            per_target = L.nll_loss_per_sequence(L.token_logprobs(student_logits, tokens), mask)  # (n,)
        kl_seq = L.sequence_mean_logprob(kl.detach(), mask)  # (n,) mean token KL (the same masked mean)
        return per_target, kl_seq, float(L.clipped_fraction(kl.detach(), mask, cfg.kl_delta)), float(mask.sum())

    def update(self, terms: Terms) -> float:
        """6. Backpropagate what is still pending, clip the gradient norm to 1, one AdamW step; the norm."""
        has_grad = any(p.grad is not None for p in self.model.parameters())
        if terms.pending is not None:
            terms.pending.backward()
            has_grad = True
        if not has_grad:
            self.opt.zero_grad(set_to_none=True)
            return 0.0
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0))
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return grad_norm

    def log_step(self, step: int, rows: StepRows, sampled: Sampled, scores: Scores, targets: Targets,
                 terms: Terms, grad_norm: float, times: dict[str, float]) -> dict[str, Any]:
        """The step's metrics row (``sgpo_lab.METRICS`` says what each means) and its ``instances`` part."""
        H = rows.H
        lengths = [len(ids) for ids in sampled.auto.completion_ids]
        w = targets.weights
        metrics = {
            "step": step, "phase": "rl", "loss": terms.loss, "loss_grpo": terms.loss_grpo,
            "loss_distill": terms.loss_distill, "loss_sft": 0.0,
            "p_auto": float(scores.p_auto.mean()), "p_guided": float(scores.p_guided.mean()) if H else None,
            "reward_mean": float(scores.r_auto.mean()), "entropy": terms.entropy,
            "kl_mean": float(torch.nanmean(terms.kl_mean)) if targets.rows else None,
            "clipped_frac": terms.clipped_frac, "n_targets": len(targets.rows),
            "weight_mean": float(w.mean()), "weight_max": float(w.max()),
            "weight_nonzero": float((w > 0).float().mean()),
            "grpo_clip_frac": terms.grpo_clip_frac if self.cfg.grpo else 0.0,
            "grpo_clip_low": terms.grpo_clip_low, "grpo_clip_high": terms.grpo_clip_high,
            "grad_norm": grad_norm, "completion_len": sum(lengths) / len(lengths), "lr": self.cfg.lr, **times,
        }
        self.writer.table_part("instances", step, [
            {"step": step, "problem_id": p.id, "family": p.family, "p_auto": float(scores.p_auto[i]),
             "p_guided": float(scores.p_guided[i]) if H else None, "weight": float(w[i]),
             "kl_mean": float(terms.kl_mean[i]) if not torch.isnan(terms.kl_mean[i]) else None,
             "target": int(targets.chosen[i][0]) if targets.chosen[i] else -1,
             "target_text": sampled.guided.texts[rows.guided(i, targets.chosen[i][0])] if targets.chosen[i] else "",
             "card": rows.cards[i] if H else ""}
            for i, p in enumerate(rows.problems)])
        if self.cfg.rollouts_every and step % self.cfg.rollouts_every == 0:  # what the rollout browser shows
            self.writer.table_part("rollouts", step, self._rollout_rows(step, rows, sampled, scores, targets))
        return metrics

    def _rollout_rows(self, step: int, rows: StepRows, sampled: Sampled, scores: Scores,
                      targets: Targets) -> list[dict[str, Any]]:
        """One row per sampled completion of the step (autonomous, then guided), with its reward and token ids;
        the problem's pass rates, weight, card and chosen targets repeat on its rows (Parquet stores them once)."""
        out = []
        for i, p in enumerate(rows.problems):
            shared = {"step": step, "problem_id": p.id, "family": p.family, "question": p.question, "answer": p.answer,
                      "card": rows.cards[i] if rows.H else "", "p_auto": float(scores.p_auto[i]),
                      "p_guided": float(scores.p_guided[i]) if rows.H else None,
                      "weight": float(targets.weights[i])}
            for kind, n, block, rewards in (("auto", rows.G, sampled.auto, scores.r_auto),
                                            ("guided", rows.H, sampled.guided, scores.r_guided)):
                for j in range(n):
                    r = rows.auto(i, j) if kind == "auto" else rows.guided(i, j)
                    out.append({**shared, "kind": kind, "index": j, "text": block.texts[r],
                                "completion_ids": [int(t) for t in block.completion_ids[r]],
                                "reward": float(rewards[i, j]), "finished": bool(block.finished[r]),
                                "target": kind == "guided" and j in targets.chosen[i]})
        return out

    # ------------------------------------------------------------------------------ pieces of the step

    @property
    def _pad(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos

    def _chunks(self, completions: list[list[int]], rows: StepRows | None = None, *,
                by_problem: bool = False) -> list[list[int]]:
        """Micro-batches of row indices whose (rows, T + 1, V) float32 logits stay under the budget.

        ``length_buckets``: rows of similar length together (``rollout.micro_batches``); otherwise one micro-batch
        of every row when they fit (the Strategy World). ``by_problem`` keeps each problem's rows together (the
        convex objective weighs each problem's GRPO term by its own weight).
        """
        groups = [rows.rl_rows_of(i) for i in range(rows.P)] if by_problem and rows is not None else None
        return micro_batches([len(c) for c in completions], vocab=self.model.get_output_embeddings().weight.shape[0],
                             budget_mb=self.cfg.logits_budget_mb, by_length=self.cfg.length_buckets, groups=groups)

    def _scored(self, model, prompts: list[str], completions: list[list[int]]):
        """completion_logits of many rows, a micro-batch at a time: yields (row indices, logits, tokens, mask)."""
        for chunk in self._chunks(completions):
            yield chunk, *completion_logits(model, encode_prompts(self.tokenizer, [prompts[r] for r in chunk],
                                                                  check=False),
                                            [completions[r] for r in chunk], pad_id=self._pad)

    def _policy_loss(self, logp, advantages, mask, off_policy, old_logp=None):
        """The autonomous RL term: GRPO's clipped surrogate, or LUFFY's when expert rows are in the group.

        ``old_logp``: pi_old's log-probs (mini-batches after the first update); None at one update per batch,
        where pi_old is the current policy and the old log-probs are the detached current ones.
        """
        cfg = self.cfg
        old = logp.detach() if old_logp is None else old_logp
        if cfg.off_policy:
            return L.luffy_loss(logp, old, advantages, mask, off_policy, eps_low=cfg.eps_low,
                                eps_high=cfg.eps_high, gamma=cfg.shaping_gamma)
        return L.grpo_loss(logp, old, advantages, mask, eps_low=cfg.eps_low, eps_high=cfg.eps_high)

    def sft_step(self, step: int) -> dict[str, Any]:
        """Token-mean NLL on the task's expert responses (trajectory imitation)."""
        t0 = time.perf_counter()
        problems = self.batch_problems(step)
        prompts = [self.prompter.autonomous(p.question) for p in problems]
        completions = [self._expert_ids(p) for p in problems]
        n_tokens = sum(map(len, completions))
        chunks = self._chunks(completions)
        self.opt.zero_grad(set_to_none=True)
        loss_value, entropies = 0.0, []
        for chunk in chunks:
            logits, tokens, mask = completion_logits(
                self.model, encode_prompts(self.tokenizer, [prompts[r] for r in chunk], check=False),
                [completions[r] for r in chunk], pad_id=self._pad)
            share = float(mask.sum()) / n_tokens
            loss = L.sft_loss(L.token_logprobs(logits, tokens), mask) * share
            loss.backward()
            loss_value += float(loss.detach())
            entropies.append((float(L.entropy(logits.detach(), mask)), share))
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0))
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return {"step": step, "phase": "sft", "loss": loss_value, "loss_grpo": 0.0, "loss_distill": 0.0,
                "loss_sft": loss_value, "p_auto": None, "p_guided": None, "reward_mean": None,
                "entropy": _pooled(entropies), "kl_mean": None, "clipped_frac": None,
                "n_targets": 0, "weight_mean": 0.0, "weight_max": 0.0, "weight_nonzero": 0.0,
                "grpo_clip_frac": None, "grad_norm": grad_norm,
                "completion_len": float(torch.tensor([len(c) for c in completions], dtype=torch.float32).mean()),
                "lr": self.cfg.lr,
                "time_sample": 0.0, "time_score": 0.0, "time_update": time.perf_counter() - t0}

    def _expert_ids(self, problem: Problem) -> list[int]:
        return self.tokenizer(self.task.expert(problem), add_special_tokens=False)["input_ids"] + [self.eos]

    # ---------------------------------------------------------------------------- eval and probes

    def _evaluate(self, step: int) -> None:
        rows, records = evaluate_problems(self.model, self.tokenizer, self.eval_set, k=self.cfg.eval_k,
                                          generator=step_generator(self.cfg.seed, step, salt=7), task=self.task,
                                          prompter=self.prompter, cards=self.cards,
                                          max_new_tokens=self.cfg.eval_max_new_tokens)
        self.writer.table_part("eval_problems", step, [{"step": step, **r} for r in records])
        self.writer.append("eval.jsonl", [{"step": step, **vars(r)} for r in rows])

    def _probe(self, step: int) -> None:
        """Token shifts of the fixed probe set, on completions fixed at step 0 (the absorption view's data)."""
        import json

        if not self.probes:
            return
        path = self.out / "probes.json"
        cards = [self.card(p) for p in self.probes]
        if not path.exists():
            out = sample(self.model, self.tokenizer, [self.prompter.guided(p.question, c)
                                                      for p, c in zip(self.probes, cards)],
                         max_new_tokens=self.cfg.max_new_tokens, greedy=True, stop_ids=self.stops)
            atomic_write_text(path, json.dumps([{"problem_id": p.id, "completion_ids": ids}
                                                for p, ids in zip(self.probes, out.completion_ids)]))
        completions = {r["problem_id"]: r["completion_ids"] for r in json.loads(path.read_text())}
        items = [ShiftItem(p.question, c, completions[p.id]) for p, c in zip(self.probes, cards)]
        tables = shift_tables(self.model, self.tokenizer, items, prompter=self.prompter)
        rows = [{"step": step, "problem_id": p.id, "family": p.family, "question": p.question, "card": c, **rec}
                for p, c, table in zip(self.probes, cards, tables) for rec in table.to_dict("records")]
        self.writer.table_part("token_shifts", step, rows)

    # ------------------------------------------------------------------------------- checkpoints

    def save_checkpoint(self, step: int) -> Path:
        return save_checkpoint(self.out, step, self.model, self.tokenizer, self.opt)


def train(cfg: TrainConfig, out: str | Path, *, resume: bool = False, overwrite: bool = False,
          progress: bool = True, task: Task | None = None) -> dict[str, Any]:
    """Train ``cfg`` into the run directory ``out``; returns the final status."""
    return Trainer(cfg, out, resume=resume, overwrite=overwrite, progress=progress, task=task).run()
