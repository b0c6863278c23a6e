"""The lab opened to any task and model: reasoning-gym, JSONL and module tasks trained on a Qwen2-style chat model
(byte-level BPE, ChatML, two end ids), chat-template alignment, several end ids, exact micro-batching, the CLI.

Sizes are tiny (2 steps, 2 problems, 2 + 2 rollouts of 8 tokens): the point is that every path runs and writes
what it should, not what it learns. Trained runs are shared through module-scoped fixtures, and every CLI call of
the module runs in one concurrent batch (each process pays ~4 s of torch/transformers import).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
import yaml

from sgpo_lab import fastdecode, rollout, runs
from sgpo_lab.config import make_config
from sgpo_lab.models import load_model
from sgpo_lab.prompts import Prompter, PromptError
from sgpo_lab.rollout import completion_logits, encode_prompts, end_ids, sample
from sgpo_lab.tasks import FunctionTask, Task, TaskError, load_task
from sgpo_lab.toy import END_OF_TEXT, IM_END, IM_START
from sgpo_lab.trainer import RunDirError, Trainer, train
from sgpo_lab.world.prompts import autonomous_prompt, guided_prompt
from sgpo_lab.world.tokenizer import build_char_tokenizer

SAMPLE = Path(__file__).resolve().parents[1] / "sgpo_lab" / "data" / "gsm8k_sample.jsonl"
JSONL = f"jsonl:{SAMPLE}"
RG = "reasoning-gym:basic_arithmetic"
FAST = dict(steps=2, problems_per_step=2, group_size=2, guided_size=2, max_new_tokens=8, eval_every=0,
            eval_problems=2, eval_k=1, eval_max_new_tokens=8, probe_problems=1, train_problems=4, checkpoint_every=0)
FAST_SET = [f"{k}={v}" for k, v in FAST.items() if k != "steps"]
ERROR_LINE = "has none; expected a task with expert responses"

JSONL_METHODS = ["sft", "grpo", "sft_grpo", "luffy", "sgpo", "sgpo_nll", "sgpo_rkl", "distill_frozen"]
RG_METHODS = ["grpo", "sgpo", "sgpo_no_grpo"]  # the methods that need no expert responses (one ablation)
RL_STEPS = {"sft": 0, "sft_grpo": 1}  # RL steps of 2 (the rest are SFT steps)

# a module:function task, written to a temporary directory (the CLI imports it from its working directory)
MODULE_SOURCE = textwrap.dedent('''
    from sgpo_lab.tasks import FunctionTask, Problem

    CARD = "Problem type: Addition\\nStrategy: add the ones, then the tens\\nKey steps: 1. add 2. write #### n"


    def _problem(i, split):
        a, b = 3 + i, 11 + 2 * i
        return Problem(id=f"add-{split}-{i}", family="add", split=split, question=f"What is {a} + {b}?",
                       answer=str(a + b), strategy=CARD)


    def make_task():
        return FunctionTask(problems_by_split={"train": [_problem(i, "train") for i in range(4)],
                                               "id": [_problem(i, "id") for i in range(10, 12)]},
                            score_fn=lambda problem, completion: float(problem.answer in completion))


    def make_train_only():
        return FunctionTask(problems_by_split={"train": [_problem(i, "train") for i in range(4)]},
                            score_fn=lambda problem, completion: float(problem.answer in completion))


    def make_list():
        return ["not", "a", "task"]
''')


# ------------------------------------------------------------------------------------------ helpers


def _cli_env() -> dict[str, str]:
    # one thread each: the batch runs several processes side by side
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _run_cli(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sgpo_lab.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300, env=_cli_env())


def _every_answer_right(task: Task) -> FunctionTask:
    """A copy of ``task`` whose verifier passes every completion: a random model then has distillation targets."""
    return FunctionTask(name=f"{task.name} (every answer right)",
                        problems_by_split={s: task.problems(s, 100) for s in task.splits},
                        score_fn=lambda problem, completion: 1.0)


def _half_right(task: Task) -> FunctionTask:
    """A copy of ``task`` that passes about half the completions (by length): mixed rewards and some targets."""
    return FunctionTask(name=f"{task.name} (half right)",
                        problems_by_split={s: task.problems(s, 100) for s in task.splits},
                        score_fn=lambda problem, completion: float(len(completion) % 2 == 0))


def _card_column_ok(frame, task: Task, guided: bool) -> None:
    assert "card" in frame.columns
    for pid, card in zip(frame["problem_id"], frame["card"]):
        assert card == (task.card(task.find(pid)) if guided else ""), pid


@pytest.fixture(scope="module")
def chat_dir(tiny_chat_model_dir) -> Path:
    return tiny_chat_model_dir


@pytest.fixture(scope="module")
def chat(chat_dir):
    return load_model(chat_dir)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, chat_dir):
    """``trained(task, method)``: a 2-step run of the chat model, trained once per module; (run dir, status)."""
    root = tmp_path_factory.mktemp("open_lab_runs")
    done: dict[tuple[str, str], tuple[Path, dict]] = {}

    def get(task: str, method: str) -> tuple[Path, dict]:
        if (task, method) not in done:
            extra = {"sft_steps": 1} if method == "sft_grpo" else {}
            cfg = make_config(method, task=task, model=str(chat_dir), **FAST, **extra)
            out = root / f"{len(done):02d}-{method}"
            done[task, method] = out, train(cfg, out, progress=False)
        return done[task, method]

    return get


# ------------------------------------------------------------------------------------------ 1. real tasks


@pytest.mark.parametrize("task_spec, method", [(JSONL, m) for m in JSONL_METHODS] + [(RG, m) for m in RG_METHODS],
                         ids=[f"jsonl-{m}" for m in JSONL_METHODS] + [f"rg-{m}" for m in RG_METHODS])
def test_every_method_family_trains_on_a_real_task_with_the_chat_model(task_spec, method, trained):
    run, status = trained(task_spec, method)
    task = load_task(task_spec)
    assert status["state"] == "finished" and status["step"] == 2
    assert runs.read_status(run)["state"] == "finished"
    metrics = runs.load_metrics(run)
    rl_steps = RL_STEPS.get(method, 2)
    assert list(metrics["step"]) == [1, 2]
    assert list(metrics["phase"]) == ["sft"] * (2 - rl_steps) + ["rl"] * rl_steps
    assert metrics["loss"].notna().all()
    # a random model never solves a problem, so an RL step's gradient is 0, except where expert rows carry advantage
    moves = metrics["phase"].eq("sft") | (method == "luffy")
    assert metrics.loc[moves, "grad_norm"].gt(0).all() and moves.any() == (method in ("sft", "sft_grpo", "luffy"))
    evals = runs.load_eval(run)
    assert set(evals["step"]) == {0, 2} and set(evals["split"]) == {"id"}
    assert set(evals["family"]) - {"all"} == set(task.families)
    guided = make_config(method, **FAST).guided_size > 0
    instances = runs.load_instances(run)
    assert len(instances) == 2 * rl_steps
    if rl_steps:
        _card_column_ok(instances, task, guided)
        assert set(instances["family"]) <= set(task.families)
    shifts = runs.load_token_shifts(run)
    assert len(shifts) and set(shifts["step"]) == {0, 2}
    _card_column_ok(shifts.drop_duplicates("problem_id"), task, True)
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["task"] == task_spec and config["method"] == method
    pool = task.problems("train", FAST["train_problems"])
    assert config["card_set"] == {f: [task.card(next(p for p in pool if p.family == f))]
                                  for f in dict.fromkeys(p.family for p in pool)}
    # the checkpoint is a chat model still: its template and both end ids come back
    model, tok = load_model(run)
    assert tok.chat_template and set(end_ids(model, tok)) == set(tok.convert_tokens_to_ids([IM_END, END_OF_TEXT]))


@pytest.mark.parametrize("method", ["sft", "luffy", "sft_grpo"])
def test_expert_methods_refuse_a_task_without_expert_responses(method, chat_dir, tmp_path):
    cfg = make_config(method, task=RG, model=str(chat_dir), **FAST)
    with pytest.raises(TaskError, match=ERROR_LINE) as err:
        train(cfg, tmp_path / "run", progress=False)
    assert "\n" not in str(err.value) and "reasoning-gym:basic_arithmetic" in str(err.value)
    assert not (tmp_path / "run").exists(), "refused before the run directory is made"


@pytest.mark.parametrize("method", ["sgpo", "sgpo_nll", "sgpo_rkl", "distill_frozen"])
def test_distillation_and_expert_rows_run_on_the_chat_model(method, chat_dir, tmp_path):
    """With a verifier that passes everything, a random chat model has guided targets: every distillation path
    (live teacher's logits kept from sampling, frozen teacher's own forward, NLL, reverse KL) runs on a Qwen2 model
    with a chat template and two end ids."""
    task = _every_answer_right(load_task(JSONL))
    cfg = make_config(method, task=JSONL, model=str(chat_dir), weight="constant", **FAST)
    status = train(cfg, tmp_path / "run", progress=False, task=task)
    assert status["state"] == "finished"
    metrics, instances = runs.load_metrics(tmp_path / "run"), runs.load_instances(tmp_path / "run")
    assert (metrics["n_targets"] == 2).all(), "every problem has a correct guided rollout: one target each"
    assert metrics["kl_mean"].gt(0).all() and metrics["loss_distill"].gt(0).all()
    assert (instances["target"] >= 0).all() and instances["kl_mean"].notna().all()
    assert (instances["weight"] == 0.5).all()
    _card_column_ok(instances, task, True)


# ------------------------------------------------------------------------------------------ 2. several end ids


class _Forcing:
    """A forward hook on the LM head: the first ``n`` calls make ``first`` the argmax, the later ones ``then``."""

    def __init__(self, n: int, first: int, then: int):
        self.n, self.first, self.then, self.calls = n, first, then, 0

    def __call__(self, module, inputs, output):
        token = self.first if self.calls < self.n else self.then
        self.calls += 1
        output = output.clone()
        output[..., token] += 1e4
        return output


def test_end_ids_lists_both_and_the_second_one_stops_generation(chat):
    model, tok = chat
    im_end, eot = tok.convert_tokens_to_ids([IM_END, END_OF_TEXT])
    assert tok.eos_token_id == eot != im_end
    assert end_ids(model, tok) == [eot, im_end]
    seven = tok.convert_tokens_to_ids("7")
    prompts = [Prompter.for_task(load_task(JSONL), tok).autonomous("What is 3 + 4?")] * 2 + [
        Prompter.for_task(load_task(JSONL), tok).autonomous("What is 12 + 30? Think.")]
    hook = model.lm_head.register_forward_hook(_Forcing(2, seven, im_end))
    try:
        out = sample(model, tok, prompts, max_new_tokens=8, greedy=True)
    finally:
        hook.remove()
    assert out.completion_ids == [[seven, seven, im_end]] * 3
    assert out.finished == [True] * 3
    assert out.texts == ["77"] * 3 and all(IM_END not in t for t in out.texts)
    # stopping on the tokenizer's EOS alone runs past the turn's end: the second id is what stopped it
    hook = model.lm_head.register_forward_hook(_Forcing(2, seven, im_end))
    try:
        past = sample(model, tok, prompts[:1], max_new_tokens=5, greedy=True, stop_ids=[eot])
    finally:
        hook.remove()
    assert past.completion_ids == [[seven, seven, im_end, im_end, im_end]] and past.finished == [False]


def test_draws_end_a_row_at_any_of_its_end_ids():
    draws = fastdecode.Draws(3, 4, 10, eos=[5, 7], pad=0, greedy=True, temperature=1.0, generator=None,
                             keep_logits=True, device=torch.device("cpu"))
    plan = [[7, 2, 2], [9, 5, 2], [9, 9, 3], [9, 9, 9]]  # row 0 ends at step 0 (7), row 1 at step 1 (5)
    rows, done = torch.arange(3), torch.zeros(3, dtype=torch.bool)
    for n, tokens in enumerate(plan):
        draws.draw(torch.nn.functional.one_hot(torch.tensor(tokens), 10).float(), rows, done, n)
    tokens, logits = draws.first(4)
    assert tokens.tolist() == [[7, 0, 0, 0], [2, 5, 0, 0], [2, 2, 3, 9]]
    assert done.tolist() == [True, True, False] and logits.shape == (3, 4, 10)
    single = fastdecode.Draws(1, 1, 10, eos=5, pad=0, greedy=True, temperature=1.0, generator=None,
                              keep_logits=False, device=torch.device("cpu"))
    done = torch.zeros(1, dtype=torch.bool)
    single.draw(torch.nn.functional.one_hot(torch.tensor([5]), 10).float(), torch.arange(1), done, 0)
    assert done.tolist() == [True]


@pytest.mark.parametrize("decoder", ["fastdecode", "hf"])
def test_an_extra_stop_id_cuts_the_lab_models_completion(decoder, monkeypatch):
    model, tok = load_model("tiny")
    if decoder == "hf":
        monkeypatch.setattr(fastdecode, "supports", lambda m: False)
    prompts = [autonomous_prompt("sum 3 8 5"), autonomous_prompt("count over 4 in 9 3 5 2 7")]
    free = sample(model, tok, prompts, max_new_tokens=30, greedy=True)
    row = free.completion_ids[0]
    stop = next(t for t in row[2:] if t != tok.eos_token_id)  # a token the model writes a few steps in
    cut = row.index(stop) + 1
    out = sample(model, tok, prompts, max_new_tokens=30, greedy=True, stop_ids=[tok.eos_token_id, stop])
    assert out.completion_ids[0] == row[:cut] and out.finished[0]
    other = free.completion_ids[1]
    expected = other[: other.index(stop) + 1] if stop in other else other
    assert out.completion_ids[1] == expected


def test_chat_model_rows_that_end_early_leave_the_batch_without_changing_any_row(chat_dir):
    """Qwen2 (grouped-query attention) decodes with its own forward: rows that end at different steps, at any of
    several end ids, and prompts repeated for a group give the same tokens batched as one at a time."""
    model, tok = load_model(chat_dir)
    with torch.no_grad():  # random weights scaled up: greedy completions that vary, not one token repeated
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(8)
    task = load_task(JSONL)
    prompter = Prompter.for_task(task, tok)
    problems = task.problems("train", 1)
    prompts = [prompter.guided(p.question, task.card(p)) for p in problems] + [prompter.autonomous(p.question)
                                                                             for p in problems]
    prompts += prompts[:2] * 2
    free = sample(model, tok, prompts, max_new_tokens=24, greedy=True)
    stops = end_ids(model, tok) + [row[min(3 * i + 1, 23)] for i, row in enumerate(free.completion_ids[:6])]
    batched = sample(model, tok, prompts, max_new_tokens=24, greedy=True, stop_ids=stops)
    assert len({len(ids) for ids in batched.completion_ids}) >= 3, batched.completion_ids
    for prompt, ids, done in zip(prompts, batched.completion_ids, batched.finished):
        assert done == (ids[-1] in stops)
        assert sample(model, tok, [prompt], max_new_tokens=24, greedy=True, stop_ids=stops).completion_ids == [ids]


# ------------------------------------------------------------------------------------------ 3. chat alignment


def _template_ids(tok, content: str) -> list[int]:
    ids = tok.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True, tokenize=True)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def test_prompter_picks_chat_for_a_template_and_plain_otherwise(chat):
    _, tok = chat
    assert Prompter.for_task(load_task(JSONL), tok).style == "chat"
    assert Prompter.for_task(load_task(JSONL), tok, "plain").style == "plain"
    _, lab_tok = load_model("tiny")
    assert Prompter.for_task(load_task("world"), lab_tok).style == "plain"


def test_chat_prompts_are_the_templates_ids_and_align_completions(chat):
    model, tok = chat
    task = load_task(JSONL)
    prompter = Prompter.for_task(task, tok)
    problems = task.problems("train", 1)[:2]
    guided = [prompter.guided(p.question, task.card(p)) for p in problems]
    auto = [prompter.autonomous(p.question) for p in problems]
    g_ids, a_ids = encode_prompts(tok, guided), encode_prompts(tok, auto)
    for p, g, a in zip(problems, g_ids, a_ids):
        assert g == _template_ids(tok, f"{task.card(p)}\n\n{p.question}")
        assert a == _template_ids(tok, p.question)
    opening = tok(f"{IM_START}assistant\n", add_special_tokens=False)["input_ids"]
    assert all(ids[-len(opening):] == opening for ids in g_ids + a_ids)
    assert all(len(g) > len(a) for g, a in zip(g_ids, a_ids))
    completions = [tok(" 6\n#### 6", add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids(IM_END)],
                   tok("The change is $6.", add_special_tokens=False)["input_ids"]]
    with torch.no_grad():
        teacher, t_tokens, t_mask = completion_logits(model, g_ids, completions, pad_id=tok.pad_token_id)
        student, s_tokens, s_mask = completion_logits(model, a_ids, completions, pad_id=tok.pad_token_id)
        assert teacher.shape == student.shape == (2, max(map(len, completions)), model.config.vocab_size)
        assert torch.equal(t_tokens, s_tokens) and torch.equal(t_mask, s_mask)
        for i, c in enumerate(completions):
            assert t_tokens[i, : len(c)].tolist() == c and t_mask[i].sum() == len(c)
            for prompt, scored in ((g_ids[i], teacher), (a_ids[i], student)):  # column t predicts token t
                full = model(torch.tensor([prompt + c])).logits[0, len(prompt) - 1: -1]
                torch.testing.assert_close(scored[i, : len(c)], full, atol=1e-4, rtol=1e-4)


def test_the_last_columns_path_scores_like_the_full_forward(chat, monkeypatch):
    """A large vocabulary sends only the completion's columns through the head (``logits_to_keep``): same logits."""
    model, tok = chat
    task = load_task(JSONL)
    prompter = Prompter.for_task(task, tok)
    problems = task.problems("train", 1)
    prompts = encode_prompts(tok, [prompter.guided(problems[0].question, task.card(problems[0])),
                                   prompter.autonomous(problems[1].question)])
    completions = [tok(text, add_special_tokens=False)["input_ids"] for text in ("#### 6", "x")]
    calls = []
    forward = model.forward

    @functools.wraps(forward)
    def counting(*args, **kwargs):
        calls.append(kwargs.get("logits_to_keep"))
        return forward(*args, **kwargs)

    with torch.no_grad():
        full = completion_logits(model, prompts, completions, pad_id=tok.pad_token_id)
        monkeypatch.setattr(rollout, "FULL_LOGITS_BYTES", 0)
        monkeypatch.setattr(model, "forward", counting)
        last = completion_logits(model, prompts, completions, pad_id=tok.pad_token_id)
    assert calls == [max(map(len, completions)) + 1]
    torch.testing.assert_close(last[0], full[0], atol=1e-5, rtol=1e-5)
    assert torch.equal(last[1], full[1]) and torch.equal(last[2], full[2])


def test_a_template_that_writes_bos_is_not_doubled():
    tok = build_char_tokenizer()
    tok.chat_template = ("{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
                         "{% if add_generation_prompt %}\nA:{% endif %}")
    world = load_task("world")
    problem = world.problems("train", 1)[0]
    prompter = Prompter.for_task(world, tok)
    assert prompter.style == "chat"
    ids = encode_prompts(tok, [prompter.guided(problem.question, world.card(problem))])[0]
    assert ids == _template_ids(tok, f"{world.card(problem)}\n\n{problem.question}")
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1


def test_world_plain_prompts_are_unchanged_byte_for_byte():
    _, tok = load_model("tiny")
    world = load_task("world")
    prompter = Prompter.for_task(world, tok)
    for p in world.problems("id", 2):
        card = world.card(p)
        assert prompter.autonomous(p.question) == autonomous_prompt(p.question)
        assert prompter.guided(p.question, card) == guided_prompt(p.question, card)
        assert prompter.guided(p.question, "") == autonomous_prompt(p.question)


def test_chat_style_without_a_template_is_one_line():
    _, tok = load_model("tiny")
    with pytest.raises(PromptError, match="no chat template") as err:
        Prompter.for_task(load_task("world"), tok, "chat")
    assert "\n" not in str(err.value)
    with pytest.raises(PromptError, match="unknown prompt style"):
        Prompter.for_task(load_task("world"), tok, "markdown")


# ------------------------------------------------------------------------------------------ 4. micro-batching


def _one_step(cfg, out: Path, task: Task | None = None):
    """Metrics of ``rl_step(1)``, the gradients the optimizer stepped with, and the micro-batch counts."""
    trainer = Trainer(cfg, out, progress=False, task=task)
    grads: dict[str, torch.Tensor] = {}
    step, chunks_of = trainer.opt.step, trainer._chunks
    counts: list[int] = []

    def capture(*args, **kwargs):
        grads.update({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None})
        return step(*args, **kwargs)

    def chunks(*args, **kwargs):
        out = chunks_of(*args, **kwargs)
        counts.append(len(out))
        return out

    trainer.opt.step, trainer._chunks = capture, chunks
    metrics = trainer.rl_step(1)
    return metrics, grads, counts


MICRO_CASES = {
    "sgpo": ("sgpo", {}),
    "luffy": ("luffy", {}),
    "convex": ("sgpo", {"objective": "convex"}),
    "chat-sgpo": ("sgpo", {"weight": "constant"}),
}


@pytest.mark.parametrize("case", list(MICRO_CASES))
def test_micro_batches_give_the_same_step_as_one_batch(case, chat_dir, tmp_path):
    method, extra = MICRO_CASES[case]
    if case.startswith("chat"):  # the chat model samples with its own forward: the kept logits vs recomputed ones
        task = _half_right(load_task(JSONL))
        sizes = dict(model=str(chat_dir), task=JSONL, problems_per_step=2, group_size=3, guided_size=3,
                     max_new_tokens=8, train_problems=4)
        small = 0.004
    else:
        task = None
        sizes = dict(model="tiny", problems_per_step=4, group_size=4, guided_size=4, max_new_tokens=40,
                     train_problems=8)
        small = 0.04
    common = dict(steps=1, eval_problems=1, probe_problems=0, checkpoint_every=0, **sizes, **extra)
    whole = _one_step(make_config(method, length_buckets=False, **common), tmp_path / "whole", task)  # one batch
    parts = _one_step(make_config(method, logits_budget_mb=small, **common), tmp_path / "parts", task)
    assert set(whole[2]) == {1} or (method == "luffy" and set(whole[2]) <= {0, 1}), whole[2]
    assert max(parts[2]) > 1, f"the small budget must force micro-batches: {parts[2]}"
    if method != "luffy":
        assert whole[0]["n_targets"] > 0, "the step must distil something for the comparison to mean anything"
    for key, value in whole[0].items():
        if key.startswith("time_"):
            continue
        if isinstance(value, float):
            assert parts[0][key] == pytest.approx(value, rel=1e-5, abs=1e-5), key
        else:
            assert parts[0][key] == value, key
    assert whole[1].keys() == parts[1].keys() and whole[1]
    for name, grad in whole[1].items():
        torch.testing.assert_close(parts[1][name], grad, atol=1e-5, rtol=1e-4, msg=name)


# ------------------------------------------------------------------------------------------ 5-7. the CLI


@pytest.fixture(scope="module")
def cli(tmp_path_factory, chat_dir):
    """Every CLI call of this module, run side by side once: name -> (CompletedProcess, paths used)."""
    tmp = tmp_path_factory.mktemp("open_lab_cli")
    (tmp / "open_lab_adder.py").write_text(MODULE_SOURCE)
    (tmp / "no_question.jsonl").write_text('{"answer": "#### 3"}\n')
    (tmp / "bad_cards.jsonl").write_text('{"family": "money", "card": "Problem type: x"}\nnot json at all\n')
    user = tmp / "user_dir"
    (user / "data").mkdir(parents=True)
    (user / "notes.txt").write_text("keep me")
    (user / "data" / "x.csv").write_text("1,2\n")
    task = load_task(JSONL)
    problem_id = task.problems("id", 1)[0].id
    chat, fast_set = str(chat_dir), [a for s in FAST_SET for a in ("--set", s)]
    calls: dict[str, tuple[list[str], Path | None]] = {
        # things that work
        "train": (["train", "--method", "sgpo", "--task", JSONL, "--model", chat, "--steps", "2",
                   "--out", tmp / "cli_run", *fast_set], None),
        "eval": (["eval", "--task", JSONL, "--model", chat, "--problems", "2", "--k", "1",
                  "--max-new-tokens", "8"], None),
        "shifts": (["shifts", "--task", JSONL, "--model", chat, "--problem", problem_id,
                    "--completion", "She pays $14.\n#### 6"], None),
        "bench_memory": (["bench", "memory", "--vocab", "2048", "--hidden", "16", "--problems", "2",
                          "--max-new-tokens", "4"], None),
        "module_train": (["train", "--method", "grpo", "--task", "open_lab_adder:make_task", "--model", chat,
                          "--steps", "2", "--out", tmp / "module_run", *fast_set], tmp),
        # bad input: one line, exit 2
        "task_foo_bar": (["eval", "--task", "foo:bar", "--model", "tiny"], None),
        "task_nosuch": (["train", "--task", "nosuch", "--out", tmp / "r1"], None),
        "rg_unknown": (["eval", "--task", "reasoning-gym:no_such_dataset", "--model", "tiny"], None),
        "jsonl_no_question": (["train", "--task", f"jsonl:{tmp / 'no_question.jsonl'}", "--model", chat,
                               "--out", tmp / "r2"], None),
        "bad_cards": (["train", "--task", JSONL, "--model", chat, "--set", f"cards={tmp / 'bad_cards.jsonl'}",
                       "--out", tmp / "r3"], None),
        "sft_no_experts": (["train", "--method", "sft", "--task", RG, "--model", chat, "--out", tmp / "r4"], None),
        "module_wrong_type": (["eval", "--task", "open_lab_adder:make_list", "--model", "tiny"], tmp),
        "chat_on_tiny": (["train", "--model", "tiny", "--set", "prompt_style=chat", "--steps", "1",
                          "--out", user / "fresh"], None),
        "eval_problems_0": (["eval", "--model", "tiny", "--problems", "0"], None),
        "eval_k_0": (["eval", "--model", "tiny", "--k", "0"], None),
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(_run_cli, [str(a) for a in args], cwd) for name, (args, cwd) in calls.items()}
        results = {name: f.result() for name, f in futures.items()}
    return results, {"tmp": tmp, "user": user, "problem_id": problem_id}


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return result.stdout


def test_cli_trains_on_a_jsonl_task(cli):
    results, paths = cli
    assert "sgpo: finished at step 2/2" in _ok(results["train"])
    run = paths["tmp"] / "cli_run"
    assert runs.read_status(run)["state"] == "finished" and len(runs.load_metrics(run)) == 2
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["task"] == JSONL and set(config["card_set"]) == set(load_task(JSONL).families)
    assert config["problems_per_step"] == 2 and config["max_new_tokens"] == 8


def test_cli_eval_and_shifts_on_a_jsonl_task(cli, chat):
    results, _ = cli
    lines = _ok(results["eval"]).splitlines()
    assert lines[0].split() == ["family", "split", "accuracy", "pass_at_k"]
    assert [line.split()[:2] for line in lines[2:]] == [[f, "id"] for f in ("money", "percent", "rates", "all")]
    assert all(line.split()[2].endswith("%") for line in lines[2:])
    out = _ok(results["shifts"]).splitlines()
    assert out[0] == "completion: 'She pays $14.\\n#### 6'  (given)"
    assert out[1].split() == ["pos", "token", "kl", "p_guided", "p_unguided", "top_guided", "top_unguided"]
    tok = chat[1]
    n_tokens = len(tok("She pays $14.\n#### 6", add_special_tokens=False)["input_ids"])
    assert len(out) == 3 + n_tokens and [line.split()[0] for line in out[3:]] == [str(i) for i in range(n_tokens)]


def test_cli_bench_memory_at_micro_scale(cli):
    out = _ok(cli[0]["bench_memory"])
    assert "vocabulary 2,048, hidden 16" in out and "peak RSS" in out
    assert "step 1:" in out


def test_cli_trains_a_module_task_from_the_working_directory(cli):
    results, paths = cli
    assert "grpo: finished at step 2/2" in _ok(results["module_train"])
    run = paths["tmp"] / "module_run"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["task"] == "open_lab_adder:make_task" and list(config["card_set"]) == ["add"]
    assert set(runs.load_eval(run)["family"]) == {"add", "all"}
    assert len(runs.load_metrics(run)) == 2


@pytest.mark.parametrize("name, message", [
    ("task_foo_bar", "cannot import module 'foo' for task foo:bar"),
    ("task_nosuch", "unknown task 'nosuch'; expected one of: world, reasoning-gym:DATASET, jsonl:PATH"),
    ("rg_unknown", "unknown reasoning-gym dataset 'no_such_dataset'"),
    ("jsonl_no_question", "line 1 lacks a non-empty string 'question'"),
    ("bad_cards", "line 2 is not JSON"),
    ("sft_no_experts", ERROR_LINE),
    ("module_wrong_type", "open_lab_adder:make_list() returned list; expected a sgpo_lab.tasks.Task"),
    ("chat_on_tiny", "prompt_style=chat but the tokenizer has no chat template"),
    ("eval_problems_0", "--problems must be from 1"),
    ("eval_k_0", "--k must be from 1"),
])
def test_cli_bad_input_is_one_line_and_exit_2(cli, name, message):
    result = cli[0][name]
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    err = result.stderr.strip()
    assert err.count("\n") == 0 and err.startswith("error: "), err
    assert message in err, err
    assert "Traceback" not in result.stderr + result.stdout and "unexpected" not in err


def test_a_failed_train_deletes_nothing_of_the_users(cli):
    """A train that fails on a fresh --out (a bad prompt style): the user's files beside it all survive."""
    results, paths = cli
    user = paths["user"]
    assert results["chat_on_tiny"].returncode == 2
    assert (user / "notes.txt").read_text() == "keep me" and (user / "data" / "x.csv").read_text() == "1,2\n"
    assert {p.name for p in user.iterdir()} <= {"notes.txt", "data", "fresh"}
    assert not (user / "fresh").exists(), "a bad prompt style is refused before the run directory is made"


def test_failing_trains_in_process_delete_nothing_of_the_users(tmp_path, chat_dir, monkeypatch):
    """A task that fails once the run directory exists (no id split to probe, or trained: either way), and an
    overwrite aimed at a folder the lab did not write, leave every file of the user's in place."""
    user = tmp_path / "user_dir"
    (user / "data").mkdir(parents=True)
    (user / "notes.txt").write_text("keep me")
    (user / "data" / "x.csv").write_text("1,2\n")
    (tmp_path / "open_lab_adder_fail.py").write_text(MODULE_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = make_config("grpo", task="open_lab_adder_fail:make_train_only", model=str(chat_dir), **FAST)
    try:
        train(cfg, user / "fresh", progress=False)
    except TaskError:
        pass
    cfg = make_config("grpo", model="tiny", **{**FAST, "steps": 1})
    with pytest.raises(RunDirError, match="not a run directory the lab wrote"):
        train(cfg, user, progress=False, overwrite=True)
    assert (user / "notes.txt").read_text() == "keep me" and (user / "data" / "x.csv").read_text() == "1,2\n"
    assert {p.name for p in user.iterdir()} <= {"notes.txt", "data", "fresh"}


def test_overwrite_keeps_what_the_user_added_to_a_run(chat_dir, tmp_path):
    cfg = make_config("grpo", task=JSONL, model=str(chat_dir), **{**FAST, "steps": 1, "probe_problems": 0})
    train(cfg, tmp_path / "run", progress=False)
    (tmp_path / "run" / "my_notes.txt").write_text("mine")
    train(cfg, tmp_path / "run", progress=False, overwrite=True)
    assert (tmp_path / "run" / "my_notes.txt").read_text() == "mine"
    assert runs.read_status(tmp_path / "run")["state"] == "finished" and len(runs.load_metrics(tmp_path / "run")) == 1


# ------------------------------------------------------------------------------------------ 7. module tasks


def test_a_module_task_trains_in_process(tmp_path, chat_dir, monkeypatch):
    (tmp_path / "open_lab_adder_inproc.py").write_text(MODULE_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = "open_lab_adder_inproc:make_task"
    task = load_task(spec)
    assert isinstance(task, FunctionTask) and task.name == spec and task.families == ("add",)
    assert task.splits == ("train", "id") and task.has_experts() is False
    problem = task.find("add-train-1")
    assert task.correct(problem, "so 17 it is") and not task.correct(problem, "18")
    status = train(make_config("grpo", task=spec, model=str(chat_dir), **FAST), tmp_path / "run", progress=False)
    assert status["state"] == "finished"
    assert set(runs.load_eval(tmp_path / "run")["family"]) == {"add", "all"}
    with pytest.raises(TaskError, match="returned list; expected a sgpo_lab.tasks.Task"):
        load_task("open_lab_adder_inproc:make_list")
    with pytest.raises(TaskError, match="has no function 'nothing'"):
        load_task("open_lab_adder_inproc:nothing")


def test_a_task_without_an_id_split_trains_or_is_refused_before_the_run_directory(tmp_path, chat_dir, monkeypatch):
    (tmp_path / "open_lab_train_only.py").write_text(MODULE_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = "open_lab_train_only:make_train_only"
    assert load_task(spec).splits == ("train",)
    cfg = make_config("grpo", task=spec, model=str(chat_dir), **FAST)  # probe_problems=1
    try:
        status = train(cfg, tmp_path / "run", progress=False)
    except TaskError as err:  # refusing is fine too, as one line and before anything is written
        assert "\n" not in str(err)
        assert not (tmp_path / "run").exists(), sorted(p.name for p in (tmp_path / "run").iterdir())
        return
    assert status["state"] == "finished" and runs.load_eval(tmp_path / "run").empty


def test_a_task_object_is_the_task_config_yaml_records(tmp_path, chat_dir):
    task = _every_answer_right(load_task(JSONL))
    cfg = make_config("grpo", model=str(chat_dir), **{**FAST, "steps": 1})  # task: the default, world
    try:
        train(cfg, tmp_path / "run", progress=False, task=task)
    except (TaskError, ValueError) as err:  # refusing a task the config does not name is fine too
        assert "task" in str(err) and not (tmp_path / "run").exists()
        return
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["task"] == task.name, (config["task"], list(config["card_set"]))


def test_a_trainer_that_fails_to_start_releases_the_run_lock(tmp_path, chat_dir):
    fields = {**FAST, "steps": 1, "probe_problems": 0}
    run = tmp_path / "run"
    train(make_config("grpo", task=JSONL, model=str(chat_dir), **fields), run, progress=False)
    state = next(run.glob("checkpoints/step-*/trainer_state.json"))
    good = state.read_text()
    state.write_text("{not json")
    longer = make_config("grpo", task=JSONL, model=str(chat_dir), **{**fields, "steps": 2})
    with pytest.raises(ValueError) as failed:  # kept alive, as a notebook or the app keeps its last exception
        train(longer, run, progress=False, resume=True)
    state.write_text(good)
    assert failed.value is not None
    assert train(longer, run, progress=False, resume=True)["state"] == "finished"
