"""The training loop: one readable step for SGPO, its baselines and ablations (config decides which terms run).

One RL step, top to bottom (``Trainer.rl_step``):

    1. sample     G autonomous rollouts  y ~ pi_old(. | x)     and H guided  ~y ~ pi_old(. | x, s)
    2. score      rewards R in {0,1}, pass rates p_auto, p_guided per problem
    3. advantage  group-normalised over the autonomous group (+ the expert response for LUFFY)
    4. targets    among correct guided rollouts, the likeliest under the *unguided* policy
    5. logits     teacher  pi_old(. | x, s, ~y_<t): the logits the guided rollouts were drawn from, kept
                  while sampling (a frozen teacher: its own forward, no grad);  student pi_theta(. | x, ~y_<t)
                  on the targets, and pi_theta on the autonomous rollouts, each in its own forward pass
    6. loss       L = L_GRPO + mean_i w_i * mean_t clip(KL_t)      (or the convex mix per problem)
    7. update     one AdamW step (so pi_old = pi_theta at sampling time: old log-probs are the
                  detached current ones, and the importance ratio starts at 1)
    8. log        metrics.jsonl, instances, eval.jsonl, token_shifts, checkpoints (runs.RunWriter)

SFT steps (``sft``, and the warm-up of ``sft_grpo``) replace 1-6 with the token-mean NLL of the
expert's responses. Reproducible: problems and sampling of step s depend only on (seed, s), so the
same seed gives the same metrics and a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import json
import platform
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

import sgpo_lab
from sgpo_lab import losses as L
from sgpo_lab.config import TrainConfig
from sgpo_lab.evaluate import evaluate
from sgpo_lab.models import load_model
from sgpo_lab.rollout import completion_logits, encode_prompts, sample
from sgpo_lab.runs import RunWriter, list_checkpoints, read_status
from sgpo_lab.shifts import ShiftItem, shift_tables
from sgpo_lab.world.problems import Problem, world_problems
from sgpo_lab.world.prompts import autonomous_prompt, guided_prompt
from sgpo_lab.world.tasks import verify


class RunDirError(ValueError):
    """An output directory that cannot be used as asked."""


@dataclass
class Batch:
    """Rows of one forward pass under the unguided prompt: which rows are what."""

    prompts: list[str]
    completions: list[list[int]]


def step_generator(seed: int, step: int, salt: int = 0) -> torch.Generator:
    """The random stream of one step: sampling and target draws of step ``step`` (salt 7: its evaluation).

    It depends on (seed, step) only, so a resumed run draws what an uninterrupted one would.
    """
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 101 + salt)


def prepare_out_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber: an existing non-empty dir needs --resume or --overwrite (and only a run is overwritten)."""
    if resume and overwrite:
        raise RunDirError("choose one of --resume and --overwrite")
    if out.exists() and not out.is_dir():
        raise RunDirError(f"output {str(out)!r} is a file; expected a directory for the run")
    busy = out.exists() and any(out.iterdir())
    if busy and not (resume or overwrite):
        raise RunDirError(f"output directory {str(out)!r} already exists; pass --resume to continue it "
                          "or --overwrite to replace it")
    if resume and not busy:
        raise RunDirError(f"nothing to resume in {str(out)!r}; expected a run directory with checkpoints")
    if overwrite and busy:
        if not ((out / "status.json").exists() or (out / "config.yaml").exists()):
            raise RunDirError(f"refusing to overwrite {str(out)!r}: it is not a run directory")
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise RunDirError(f"cannot write to output directory {str(out)!r}: {err.strerror or err}") from None


class Trainer:
    """Runs one config into one run directory."""

    def __init__(self, cfg: TrainConfig, out: str | Path, *, resume: bool = False, overwrite: bool = False,
                 progress: bool = True):
        self.cfg, self.out, self.progress = cfg, Path(out), progress
        prepare_out_dir(self.out, resume=resume, overwrite=overwrite)
        self.writer = RunWriter(self.out)
        self.start_step = 0
        checkpoint = list_checkpoints(self.out)[-1] if resume and list_checkpoints(self.out) else None
        if resume and checkpoint is None:
            raise RunDirError(f"no checkpoint to resume from in {str(self.out)!r}")
        if not resume:
            self.writer.write_config(self._resolved_config())
        try:
            self.model, self.tokenizer = load_model(checkpoint or cfg.model)
        except Exception as err:
            self.writer.status("failed", step=0, total=cfg.steps, error=str(err))
            raise
        # the distillation teacher: the policy itself with the strategy in context, or a frozen copy of the start
        self.teacher = self.model if cfg.teacher == "live" else load_model(cfg.model)[0].eval().requires_grad_(False)
        torch.manual_seed(cfg.seed)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=0.0, betas=(0.9, 0.99))
        if checkpoint is not None:
            self.start_step = self._load_trainer_state(checkpoint)
            self.writer.truncate_after(self.start_step)
        self.train_pool = world_problems("train", cfg.train_problems, families=cfg.families)
        self.eval_set = (world_problems("id", cfg.eval_problems, families=cfg.families)
                         + world_problems("ood", cfg.eval_problems, families=cfg.families))
        self.probes = world_problems("id", cfg.probe_problems, families=cfg.families) if cfg.probe_problems else []
        self.eos = self.tokenizer.eos_token_id

    # ------------------------------------------------------------------------------------ the loop

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        if self.start_step == 0:
            self._evaluate(0)
            self._probe(0)
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
                if step == cfg.steps or (cfg.eval_every and step % cfg.eval_every == 0):
                    self._evaluate(step)
                if step == cfg.steps or (cfg.probe_every and step % cfg.probe_every == 0):
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

    # ----------------------------------------------------------------------------------- one step

    def rl_step(self, step: int) -> dict[str, Any]:
        cfg, tok = self.cfg, self.tokenizer
        problems = self.batch_problems(step)
        P, G, H = len(problems), cfg.group_size, cfg.guided_size
        gen = step_generator(cfg.seed, step)
        t0 = time.perf_counter()

        # 1. sample: G autonomous and H guided rollouts per problem, from pi_old (the current weights), in one batch
        both = sample(self.model, tok, [autonomous_prompt(p.question) for p in problems for _ in range(G)]
                      + [guided_prompt(p.question, p.strategy) for p in problems for _ in range(H)],
                      max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, generator=gen,
                      keep_logits=self.teacher is self.model and cfg.distill != "none")
        auto, guided = both.split(P * G)
        t_sample = time.perf_counter() - t0

        # 2. score: R(y, a*) and pass rates
        r_auto = torch.tensor([[float(verify(auto.texts[i * G + j], p.answer)) for j in range(G)]
                               for i, p in enumerate(problems)])  # (P, G)
        r_guided = (torch.tensor([[float(verify(guided.texts[i * H + j], p.answer)) for j in range(H)]
                                  for i, p in enumerate(problems)]) if H else torch.zeros(P, 0))  # (P, H)
        p_auto = r_auto.mean(1)  # (P,)
        p_guided = r_guided.mean(1) if H else torch.full((P,), float("nan"))
        any_correct = r_guided.sum(1) > 0 if H else torch.zeros(P, dtype=torch.bool)

        # 3. advantages over each autonomous group (+ off-policy expert responses, reward 1, for LUFFY)
        rows = Batch([autonomous_prompt(p.question) for p in problems for _ in range(G)], list(auto.completion_ids))
        off_policy = torch.zeros(P * G, dtype=torch.bool)
        rewards = r_auto
        if cfg.off_policy:
            expert = [self._expert_ids(p) for p in problems]
            rows.prompts += [autonomous_prompt(p.question) for p in problems for _ in range(cfg.off_policy)]
            rows.completions += [e for e in expert for _ in range(cfg.off_policy)]
            rewards = torch.cat([r_auto, torch.ones(P, cfg.off_policy)], 1)  # (P, G + n_off)
            off_policy = torch.cat([off_policy, torch.ones(P * cfg.off_policy, dtype=torch.bool)])
        adv = L.group_advantages(rewards, scale=cfg.scale_advantages)  # (P, G [+ n_off])
        adv_rows = torch.cat([adv[:, :G].reshape(-1), adv[:, G:].reshape(-1)])  # row order of `rows`

        # 4. targets: correct guided rollouts, ranked by likelihood under the unguided policy
        weights = L.adaptive_weight(p_auto, torch.nan_to_num(p_guided), any_correct, kind=cfg.weight,
                                    alpha0=cfg.alpha0, gamma=cfg.gamma, alpha_max=cfg.alpha_max)  # (P,)
        targets = self._select_targets(problems, guided, r_guided, gen) if cfg.distill != "none" else [[]] * P
        target_rows = [(i, i * H + j) for i in range(P) for j in targets[i]]  # (problem, row of `guided`)
        t_score = time.perf_counter() - t0 - t_sample

        # 5. logits: the student's on the RL rows, with grad (the targets': in _distill_terms, beside the teacher's)
        rl_logits, rl_tokens, rl_mask = completion_logits(
            self.model, encode_prompts(tok, rows.prompts, check=False), rows.completions,
            pad_id=tok.pad_token_id)  # (B, T, V), (B, T), (B, T)
        rl_logp = L.token_logprobs(rl_logits, rl_tokens)  # (B, T)

        # 6. loss terms: L = L_GRPO + mean_i w_i L_KD,i   (convex: mean_i (1 - w_i) L_GRPO,i + w_i L_KD,i)
        kd_per_problem, kl_mean, clipped = self._distill_terms(problems, guided, target_rows)  # (P,)
        kd_term = (weights * kd_per_problem).mean()
        grpo_term = self._policy_loss(rl_logp, adv_rows, rl_mask, off_policy) if cfg.grpo else torch.zeros(())
        if cfg.objective == "convex":
            n_off = cfg.off_policy
            rows_of = [torch.cat([torch.arange(i * G, (i + 1) * G), P * G + torch.arange(i * n_off, (i + 1) * n_off)])
                       for i in range(P)]  # each problem's autonomous (and expert) rows
            grpo_i = torch.stack([self._policy_loss(rl_logp[r], adv_rows[r], rl_mask[r], off_policy[r])
                                  for r in rows_of]) if cfg.grpo else torch.zeros(P)  # (P,)
            loss = ((1 - weights) * grpo_i + weights * kd_per_problem).mean()
        else:
            loss = grpo_term + kd_term

        # 7. update
        self.opt.zero_grad(set_to_none=True)
        if loss.requires_grad:
            loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0))
            self.opt.step()
        else:
            grad_norm = 0.0
        t_update = time.perf_counter() - t0 - t_sample - t_score

        # 8. log
        lengths = [len(ids) for ids in auto.completion_ids]
        metrics = {
            "step": step, "phase": "rl", "loss": loss.item(), "loss_grpo": grpo_term.item(),
            "loss_distill": kd_term.item(), "loss_sft": 0.0,
            "p_auto": float(p_auto.mean()), "p_guided": float(p_guided.mean()) if H else None,
            "reward_mean": float(r_auto.mean()),
            "entropy": float(L.entropy(rl_logits[: P * G].detach(), rl_mask[: P * G])),
            "kl_mean": float(torch.nanmean(kl_mean)) if target_rows else None,
            "clipped_frac": clipped, "n_targets": len(target_rows),
            "weight_mean": float(weights.mean()), "weight_max": float(weights.max()),
            "weight_nonzero": float((weights > 0).float().mean()),
            "grpo_clip_frac": float(L.grpo_clip_fraction(rl_logp[: P * G].detach(), rl_logp[: P * G].detach(),
                                                         adv_rows[: P * G], rl_mask[: P * G])),
            "grad_norm": grad_norm, "completion_len": sum(lengths) / len(lengths), "lr": cfg.lr,
            "time_sample": t_sample, "time_score": t_score, "time_update": t_update,
        }
        self.writer.table_part("instances", step, [
            {"step": step, "problem_id": p.id, "family": p.family, "p_auto": float(p_auto[i]),
             "p_guided": float(p_guided[i]) if H else None, "weight": float(weights[i]),
             "kl_mean": float(kl_mean[i]) if not torch.isnan(kl_mean[i]) else None,
             "target": int(targets[i][0]) if targets[i] else -1,
             "target_text": guided.texts[i * H + targets[i][0]] if targets[i] else ""}
            for i, p in enumerate(problems)])
        return metrics

    def _policy_loss(self, logp, advantages, mask, off_policy):
        """The autonomous RL term: GRPO's clipped surrogate, or LUFFY's when expert rows are in the group.

        One update per batch, so pi_old is the current policy: old log-probs are the detached current ones.
        """
        cfg = self.cfg
        if cfg.off_policy:
            return L.luffy_loss(logp, logp.detach(), advantages, mask, off_policy, eps_low=cfg.eps_low,
                                eps_high=cfg.eps_high, gamma=cfg.shaping_gamma)
        return L.grpo_loss(logp, logp.detach(), advantages, mask, eps_low=cfg.eps_low, eps_high=cfg.eps_high)

    def _select_targets(self, problems, guided, r_guided, gen) -> list[list[int]]:
        """Per problem, indices (0..H-1) of the guided rollouts to distil (empty: none correct)."""
        cfg, H = self.cfg, self.cfg.guided_size
        # only correct rollouts can be targets, and a problem's only correct one needs no ranking: score the rest
        correct = [(i, j) for i in range(len(problems)) if r_guided[i].sum() > 1
                   for j in range(H) if r_guided[i, j] > 0]
        scores = torch.full((len(problems), H), float("-inf"))
        if correct and cfg.target == "best":
            with torch.no_grad():
                logits, tokens, mask = completion_logits(
                    self.model, encode_prompts(self.tokenizer, [autonomous_prompt(problems[i].question)
                                                                for i, _ in correct], check=False),
                    [guided.completion_ids[i * H + j] for i, j in correct], pad_id=self.tokenizer.pad_token_id)
                seq = L.sequence_mean_logprob(L.token_logprobs(logits, tokens), mask)  # (n_correct,)
            for (i, j), s in zip(correct, seq.tolist()):
                scores[i, j] = s
        return [L.select_targets(scores[i], r_guided[i] > 0, mode=cfg.target, top_m=cfg.top_m, generator=gen)
                for i in range(len(problems))]

    def _distill_terms(self, problems, guided, target_rows):
        """Per-problem distillation loss (mean over its targets), mean token KL, and the clipped fraction.

        Student: pi_theta(. | x, ~y_<t), with grad, in its own forward pass (padded to the targets' length, not to
        the autonomous rollouts'). Teacher: pi_old(. | x, s, ~y_<t), the logits the target was drawn from.
        """
        cfg, P = self.cfg, len(problems)
        kd = torch.zeros(P)
        kl_mean = torch.full((P,), float("nan"))
        if not target_rows:
            return kd, kl_mean, 0.0
        completions = [guided.completion_ids[r] for _, r in target_rows]
        prompts = encode_prompts(self.tokenizer, [autonomous_prompt(problems[i].question) for i, _ in target_rows],
                                 check=False)
        student_logits, tokens, mask = completion_logits(self.model, prompts, completions,
                                                         pad_id=self.tokenizer.pad_token_id)  # (n_t, T, V)
        logp = L.token_logprobs(student_logits, tokens)  # (n_t, T)
        if guided.logits is not None:  # live teacher: the logits the guided rollouts were drawn from (pi_old, x, s)
            teacher_logits = torch.nn.utils.rnn.pad_sequence([guided.logits[r] for _, r in target_rows],
                                                             batch_first=True)  # (n_t, T, V)
        else:
            with torch.no_grad():  # frozen teacher: the starting model, the strategy in context
                teacher_logits, _, _ = completion_logits(
                    self.teacher, encode_prompts(self.tokenizer, [guided_prompt(problems[i].question,
                                                                                problems[i].strategy)
                                                                  for i, _ in target_rows], check=False),
                    completions, pad_id=self.tokenizer.pad_token_id)
        kl = L.token_kl(teacher_logits, student_logits, direction=cfg.kl_direction, top_k=cfg.top_k)  # (n_t, T)
        if cfg.distill == "kl":
            per_target = L.distill_loss(teacher_logits, student_logits, mask, direction=cfg.kl_direction,
                                        clip=cfg.kl_clip, delta=cfg.kl_delta, top_k=cfg.top_k)  # (n_t,)
        else:  # "nll": imitate the selected guided trajectory itself
            per_target = L.nll_loss_per_sequence(logp, mask)  # (n_t,)
        owner = torch.tensor([i for i, _ in target_rows])
        count = torch.zeros(P).index_add_(0, owner, torch.ones(len(target_rows)))
        kd = torch.zeros(P).index_add(0, owner, per_target) / count.clamp(min=1)  # (P,) keeps the graph
        kl_seq = L.sequence_mean_logprob(kl.detach(), mask)  # (n_t,) mean token KL (same masked mean)
        kl_sum = torch.zeros(P).index_add_(0, owner, kl_seq)
        kl_mean = torch.where(count > 0, kl_sum / count.clamp(min=1), torch.full((P,), float("nan")))
        clipped = float(L.clipped_fraction(kl.detach(), mask, cfg.kl_delta))
        return kd, kl_mean, clipped

    def sft_step(self, step: int) -> dict[str, Any]:
        """Token-mean NLL on the expert's terse responses (trajectory imitation)."""
        t0 = time.perf_counter()
        problems = self.batch_problems(step)
        prompts = encode_prompts(self.tokenizer, [autonomous_prompt(p.question) for p in problems], check=False)
        logits, tokens, mask = completion_logits(self.model, prompts, [self._expert_ids(p) for p in problems],
                                                 pad_id=self.tokenizer.pad_token_id)
        loss = L.sft_loss(L.token_logprobs(logits, tokens), mask)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0))
        self.opt.step()
        return {"step": step, "phase": "sft", "loss": loss.item(), "loss_grpo": 0.0, "loss_distill": 0.0,
                "loss_sft": loss.item(), "p_auto": None, "p_guided": None, "reward_mean": None,
                "entropy": float(L.entropy(logits.detach(), mask)), "kl_mean": None, "clipped_frac": None,
                "n_targets": 0, "weight_mean": 0.0, "weight_max": 0.0, "weight_nonzero": 0.0,
                "grpo_clip_frac": None, "grad_norm": grad_norm,
                "completion_len": float(mask.sum(1).mean()), "lr": self.cfg.lr,
                "time_sample": 0.0, "time_score": 0.0, "time_update": time.perf_counter() - t0}

    def _expert_ids(self, problem: Problem) -> list[int]:
        return self.tokenizer(problem.expert_response, add_special_tokens=False)["input_ids"] + [self.eos]

    # ---------------------------------------------------------------------------- eval and probes

    def _evaluate(self, step: int) -> None:
        rows = evaluate(self.model, self.tokenizer, self.eval_set, k=self.cfg.eval_k,
                        generator=step_generator(self.cfg.seed, step, salt=7))
        self.writer.append("eval.jsonl", [{"step": step, **vars(r)} for r in rows])

    def _probe(self, step: int) -> None:
        """Token shifts of the fixed probe set, on completions fixed at step 0 (the absorption view's data)."""
        if not self.probes:
            return
        path = self.out / "probes.json"
        if not path.exists():
            out = sample(self.model, self.tokenizer, [guided_prompt(p.question, p.strategy) for p in self.probes],
                         max_new_tokens=self.cfg.max_new_tokens, greedy=True)
            path.write_text(json.dumps([{"problem_id": p.id, "completion_ids": ids}
                                        for p, ids in zip(self.probes, out.completion_ids)]))
        completions = {r["problem_id"]: r["completion_ids"] for r in json.loads(path.read_text())}
        items = [ShiftItem(p.question, p.strategy, completions[p.id]) for p in self.probes]
        tables = shift_tables(self.model, self.tokenizer, items)
        rows = [{"step": step, "problem_id": p.id, "family": p.family, "question": p.question, **rec}
                for p, table in zip(self.probes, tables) for rec in table.to_dict("records")]
        self.writer.table_part("token_shifts", step, rows)

    # ------------------------------------------------------------------------------- checkpoints

    def save_checkpoint(self, step: int) -> Path:
        final = self.out / "checkpoints" / f"step-{step:06d}"
        tmp = final.with_name(f".{final.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp, safe_serialization=True)
        self.tokenizer.save_pretrained(tmp)
        state = self.opt.state_dict()
        tensors = {f"{idx}.{name}": t.contiguous() for idx, s in state["state"].items() for name, t in s.items()}
        save_file(tensors, tmp / "optimizer.safetensors")
        (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "param_groups": state["param_groups"]}))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        return final

    def _load_trainer_state(self, checkpoint: Path) -> int:
        meta = json.loads((checkpoint / "trainer_state.json").read_text())
        tensors = load_file(checkpoint / "optimizer.safetensors")
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, t in tensors.items():
            idx, name = key.split(".", 1)
            state.setdefault(int(idx), {})[name] = t
        self.opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        return int(meta["step"])

    def _resolved_config(self) -> dict[str, Any]:
        import transformers

        return {**self.cfg.model_dump(), "versions": {
            "sgpo_lab": sgpo_lab.__version__, "torch": str(torch.__version__), "transformers": transformers.__version__,
            "python": platform.python_version()}}


def train(cfg: TrainConfig, out: str | Path, *, resume: bool = False, overwrite: bool = False,
          progress: bool = True) -> dict[str, Any]:
    """Train ``cfg`` into the run directory ``out``; returns the final status."""
    return Trainer(cfg, out, resume=resume, overwrite=overwrite, progress=progress).run()
