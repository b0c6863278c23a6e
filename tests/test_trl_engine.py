"""The TRL engine (``sgpo_lab.trl``): SGPO on TRL's GRPOTrainer equals the lab's trainer on a fixed batch, keeps each
group whole however TRL shards it over processes, writes the lab's run directory, and refuses what it cannot run in
one line. Everything runs on the shipped ``tiny`` model, one torch thread per process."""

from __future__ import annotations

import collections
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from transformers import TrainerCallback

from sgpo_lab import runs
from sgpo_lab.config import TrainConfig, make_config
from sgpo_lab.models import resolve_model_dir
from sgpo_lab.rollout import encode_prompts
from sgpo_lab.trainer import Trainer, step_generator
from sgpo_lab.trl import EngineError, SGPOConfig, SGPOTrainer, build_trainer, check_trl_version, train

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(model="tiny", problems_per_step=4, group_size=4, max_new_tokens=40, eval_every=0, eval_problems=1,
            eval_k=2, probe_problems=0, checkpoint_every=0, train_problems=8)
pytestmark = pytest.mark.filterwarnings("ignore:.*gradient_checkpointing.* is deprecated:FutureWarning")
SET = ["--model", "tiny", "--set", "problems_per_step=3", "--set", "group_size=4", "--set", "max_new_tokens=40",
       "--set", "eval_problems=1", "--set", "eval_k=2", "--set", "probe_problems=1", "--set", "probe_every=1",
       "--set", "eval_every=0", "--set", "train_problems=8"]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _steady(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[c for c in frame.columns if c.startswith("time_")])


def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``sgpo-lab ARGS`` in this process (``main``: user errors become one line and exit code 2)."""
    from sgpo_lab.cli import main

    monkeypatch.setattr(sys, "argv", ["sgpo-lab", *args])
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


# ------------------------------------------------------------------------------ the config


def test_sgpo_config_has_the_lab_fields_and_sets_trl_s_twins():
    names = {f for f in SGPOConfig.__dataclass_fields__}
    for name, info in TrainConfig.model_fields.items():
        if name != "device":  # TrainingArguments' property; use_cpu carries it
            assert name in names and SGPOConfig.__dataclass_fields__[name].default == info.default, name
    args = SGPOConfig.from_method("sgpo_rkl", **TINY, lr=1e-3, eps_high=0.3, output_dir="unused",
                                  gradient_accumulation_steps=2)
    assert args.kl_direction == "reverse" and args.method == "sgpo_rkl"  # the preset maps onto the same fields
    assert (args.learning_rate, args.epsilon, args.epsilon_high, args.num_generations, args.max_completion_length,
            args.max_steps) == (1e-3, 0.2, 0.3, 4, 40, 60)
    assert args.per_device_train_batch_size == 8 and args.generation_batch_size == 16  # 4 problems x G 4, GA 2
    assert args.top_k is None and args.sampling_top_k == 0 and args.use_cpu and args.bf16 is False
    assert args.loss_type == "dapo" and args.beta == 0.0 and args.train_config().kl_direction == "reverse"


@pytest.mark.parametrize("fields, message", [
    ({"learning_rate": 1e-2}, "learning_rate=0.01 and lr=0.0003 disagree"),
    ({"loss_type": "grpo"}, "loss_type='grpo': expected 'dapo'"),
    ({"gradient_accumulation_steps": 3}, "16 rows do not split evenly over 1 process(es) x 3"),
    ({"kl_delta": -1.0}, "kl_delta=-1.0"),
])
def test_sgpo_config_refuses_what_breaks_the_lab_s_objective(fields, message):
    with pytest.raises(ValueError, match=None) as err:
        SGPOConfig.from_method("sgpo", **{**TINY, **fields}, output_dir="unused")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_gpu_recipe_holds_the_paper_s_setup_and_parses():
    from sgpo_lab.trl import load_config_file, trl_section

    recipe = ROOT / "configs" / "sgpo_qwen2.5_7b.yaml"
    cfg = load_config_file(recipe, task="jsonl:sgpo_lab/data/gsm8k_sample.jsonl", problems_per_step=2, device="cpu")
    paper = {"method": "sgpo", "group_size": 8, "guided_size": 4, "eps_low": 0.2, "eps_high": 0.28, "kl_delta": 1.0,
             "alpha0": 0.5, "gamma": 0.1, "alpha_max": 0.8, "kl_direction": "forward", "teacher": "live"}
    assert {k: getattr(cfg, k) for k in paper} == paper and "Qwen2.5-7B-Instruct" in cfg.model
    section = trl_section(recipe)
    assert section["use_vllm"] is True and section["vllm_mode"] in ("colocate", "server")
    args = SGPOConfig.from_train_config(cfg, output_dir="unused", **{**section, "bf16": False})
    assert args.use_vllm and args.generation_batch_size == 16
    for name, kind in (("deepspeed_zero2", "DEEPSPEED"), ("multi_gpu", "MULTI_GPU"), ("cpu_2proc", "MULTI_GPU")):
        accelerate = yaml.safe_load((ROOT / "configs" / "accelerate" / f"{name}.yaml").read_text())
        assert accelerate["distributed_type"] == kind
        assert accelerate.get("deepspeed_config", {}).get("zero_stage", 2) == 2  # ZeRO-3 is refused


# ------------------------------------------------------------------------------ parity with the lab


def _replay(sampled, tokenizer):
    """TRL's generation replaced by the lab's rollouts of the same batch, looked up by prompt ids."""
    table = collections.defaultdict(collections.deque)
    for part in (sampled.auto, sampled.guided):
        for ids, completion in zip(encode_prompts(tokenizer, part.prompts, check=False) if part.prompts else [],
                                   part.completion_ids):
            table[tuple(ids)].append(list(completion))

    def generate(prompt_ids, images, multimodal_fields, num_generations):
        return [table[tuple(ids)].popleft() for ids in prompt_ids], None

    return generate


class _Grads(TrainerCallback):
    def __init__(self, trainer):
        self.trainer, self.grads = trainer, {}

    def on_pre_optimizer_step(self, args, state, control, **kwargs):  # accumulated, before any clipping
        model = self.trainer.accelerator.unwrap_model(self.trainer.model)
        self.grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("method, overrides", [
    ("sgpo", {}), ("grpo", {}), ("sgpo_rkl", {}), ("sgpo_nll", {}), ("sgpo_no_clip", {}), ("sgpo_no_grpo", {}),
    ("distill_frozen", {}), ("sgpo", {"objective": "convex", "kl_clip": "scale", "top_k": 8}),
])
def test_loss_and_gradients_equal_the_lab_trainer_on_one_fixed_batch(method, overrides, tmp_path):
    cfg = make_config(method, **{**TINY, "steps": 1, "seed": 2, **overrides,
                                 **({"guided_size": 4} if method != "grpo" else {})})
    lab = Trainer(cfg, tmp_path / "lab", progress=False)
    rows, gen = lab.step_rows(1), step_generator(cfg.seed, 1)
    sampled = lab.sample_rollouts(rows, gen)
    sampled.guided.logits = None  # the teacher's own forward on the targets, as TRL's engine computes it
    scores = lab.score(rows, sampled)
    targets = lab.targets(rows, sampled, scores, gen)
    lab.opt.zero_grad(set_to_none=True)
    terms = lab.loss_terms(rows, sampled, lab.advantages(rows, sampled, scores), targets)
    if terms.pending is not None:
        terms.pending.backward()
    lab_grads = {n: p.grad for n, p in lab.model.named_parameters()}
    lab.lock.release()

    trainer = build_trainer(cfg, output_dir=tmp_path / "trl",
                            trl_fields={"gradient_accumulation_steps": 2, "max_grad_norm": 0.0})
    trainer._generate_single_turn = _replay(sampled, lab.tokenizer)
    grads = _Grads(trainer)
    trainer.add_callback(grads)
    trainer.train()
    row = trainer.sgpo_history[0]

    assert trainer._batch.problems == rows.problems and trainer._batch.chosen == targets.chosen
    assert row["n_targets"] == len(targets.rows) and (row["n_targets"] > 0) == (cfg.distill != "none")
    if cfg.distill != "none":  # seed 2: a target of weight 0 (its KL logged from a no-grad pass) beside weighted ones
        assert any(w == 0 and c for w, c in zip(targets.weights.tolist(), targets.chosen))
        assert any(w > 0 and c for w, c in zip(targets.weights.tolist(), targets.chosen))
    for key, lab_value in (("loss", terms.loss), ("loss_grpo", terms.loss_grpo), ("loss_distill", terms.loss_distill),
                           ("entropy", terms.entropy), ("clipped_frac", terms.clipped_frac)):
        assert row[key] == pytest.approx(lab_value, abs=1e-5), key
    assert max(float(g.abs().max()) for g in lab_grads.values()) > 1e-3  # a gradient worth comparing
    diff = max(float((lab_grads[n] - g).abs().max()) for n, g in grads.grads.items())
    assert diff < 1e-5, f"gradients differ by {diff:.2e}"
    assert torch.allclose(trainer._batch.weights, targets.weights)


# ------------------------------------------------------------------------------ many processes


def row_seeded_generation(self, prompt_ids, images, multimodal_fields, num_generations):
    """TRL's generation replaced by sampling keyed by (step, call, global row): the same rollouts whatever the number
    of processes (TRL's sampler draws from each process's own stream). Used by both runs of the multi-process test."""
    acc = self.accelerator
    model = acc.unwrap_model(self.model)
    step = self.sgpo_start_step + self.state.global_step + 1
    offset = acc.process_index * len(prompt_ids)  # autonomous rows and guided shares are contiguous per process
    out = []
    with torch.no_grad():
        for k, ids in enumerate(prompt_ids):
            gen = torch.Generator().manual_seed(1_000_003 * step + 1009 * num_generations + offset + k)
            seq = list(ids)
            for _ in range(self.max_completion_length):
                logits = model(input_ids=torch.tensor([seq])).logits[0, -1].float() / self.temperature
                seq.append(int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)))
                if seq[-1] in self.eos_token_ids:
                    break
            out.append(seq[len(ids):])
    return out, None


LAUNCHER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("engine_test", {test!r})
test = importlib.util.module_from_spec(spec)
spec.loader.exec_module(test)
from sgpo_lab.trl_engine import SGPOTrainer
SGPOTrainer._generate_single_turn = test.row_seeded_generation
from sgpo_lab.cli import main
sys.argv = ["sgpo-lab", *sys.argv[1:]]
main()
"""


def test_two_processes_write_one_run_that_matches_one_process(tmp_path, monkeypatch):
    spec = {"method": "sgpo", **{k: v for k, v in TINY.items()}, "problems_per_step": 3, "steps": 2,
            "guided_size": 4, "probe_problems": 1, "probe_every": 2}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump({**spec, "trl": {"gradient_accumulation_steps": 2}}))
    (tmp_path / "launch.py").write_text(LAUNCHER.format(test=str(Path(__file__).resolve())))
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_PORT")}
    accelerate = Path(sys.executable).with_name("accelerate")
    with socket.socket() as free:  # a free rendezvous port: other runs on the machine may hold accelerate's default
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    done = subprocess.run([str(accelerate), "launch", "--config_file", str(ROOT / "configs/accelerate/cpu_2proc.yaml"),
                           "--main_process_port", str(port),
                           str(tmp_path / "launch.py"), "train", "--engine", "trl", "--config",
                           str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "two")],
                          env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=150,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("sgpo: finished at step 2/2") == 2  # both processes ran it

    # one process, the same global batch (3 problems x G 4), no accumulation: 12 rows in one micro-batch
    monkeypatch.setattr(SGPOTrainer, "_generate_single_turn", row_seeded_generation)
    cfg = make_config("sgpo", **{k: v for k, v in spec.items() if k != "method"})
    train(cfg, tmp_path / "one", progress=False)

    two, one = tmp_path / "two", tmp_path / "one"
    assert runs.read_status(two)["state"] == "finished" and runs.read_status(two)["step"] == 2
    assert {p.name for p in two.iterdir()} <= {*runs.LAB_ENTRIES, runs.LOCK}  # one directory, the lab's entries
    m2, m1 = _steady(runs.load_metrics(two)), _steady(runs.load_metrics(one))
    assert list(m2["step"]) == [1, 2] and m2["n_targets"].sum() > 0 and (m2["loss_grpo"] != 0).any()
    pd.testing.assert_frame_equal(m2, m1, check_exact=False, rtol=1e-4, atol=1e-5)
    pd.testing.assert_frame_equal(runs.load_instances(two), runs.load_instances(one), check_exact=False,
                                  rtol=1e-4, atol=1e-5)
    pd.testing.assert_frame_equal(runs.load_eval(two), runs.load_eval(one))
    r2, r1 = runs.load_rollouts(two), runs.load_rollouts(one)  # the rollout browser's data: every completion
    assert len(r2) == 2 * 3 * (4 + 4) and list(r2["text"]) == list(r1["text"]) and r2["target"].sum() > 0
    from safetensors.torch import load_file  # the weights after two updates: every gradient was synchronised

    w2, w1 = (load_file(run / "checkpoints" / "step-000002" / "model.safetensors") for run in (two, one))
    assert w2.keys() == w1.keys() and all(torch.allclose(w2[k], w1[k], atol=1e-5) for k in w1)
    start = load_file(resolve_model_dir("tiny") / "model.safetensors")
    assert any(not torch.equal(w1[k], start[k]) for k in w1)
    assert set(runs.load_token_shifts(two)["step"]) == {0, 2}


# ------------------------------------------------------------------------------ the run directory


def test_engine_trl_writes_the_lab_s_run_directory_and_resumes(tmp_path, monkeypatch, capsys):
    trl_run, lab_run = tmp_path / "trl", tmp_path / "lab"
    code, out, err = _cli(monkeypatch, capsys, "train", "--engine", "trl", "--steps", "1", "--out", str(trl_run), *SET)
    assert code == 0 and "sgpo: finished at step 1/1" in out, err
    code, out, err = _cli(monkeypatch, capsys, "train", "--engine", "trl", "--steps", "2", "--out", str(trl_run),
                          "--resume")
    assert code == 0 and "sgpo: finished at step 2/2" in out, err
    code, _, err = _cli(monkeypatch, capsys, "train", "--steps", "2", "--out", str(lab_run), *SET)
    assert code == 0, err

    config = yaml.safe_load((trl_run / "config.yaml").read_text())
    lab_config = yaml.safe_load((lab_run / "config.yaml").read_text())
    assert config.keys() == lab_config.keys() and config["versions"]["trl"].startswith("1.16")
    assert runs.read_status(trl_run)["state"] == "finished"
    assert [p.name for p in runs.list_checkpoints(trl_run)] == ["step-000001", "step-000002"]
    for load in (runs.load_metrics, runs.load_instances, runs.load_eval, runs.load_token_shifts,
                 runs.load_eval_problems, runs.load_rollouts):
        trl_frame, lab_frame = load(trl_run), load(lab_run)
        assert len(trl_frame) and list(trl_frame.columns) == list(lab_frame.columns), load.__name__
    metrics = runs.load_metrics(trl_run)
    assert list(metrics["step"]) == [1, 2] and metrics["grad_norm"].ge(0).all() and metrics["loss"].notna().all()
    # the first launch's last step (1) was evaluated and probed, as on the lab engine
    assert set(runs.load_eval(trl_run)["step"]) == set(runs.load_token_shifts(trl_run)["step"]) == {0, 1, 2}
    listed = runs.list_runs(tmp_path)
    assert set(listed["name"]) == {"trl", "lab"} and set(listed["state"]) == {"finished"}
    # the same problems per step as the lab engine (TRL's sampler follows the lab's batches)
    assert list(runs.load_instances(trl_run)["problem_id"]) == list(runs.load_instances(lab_run)["problem_id"])


@pytest.mark.parametrize("page", ["start", "runs", "explore", "weights", "absorption", "compare", "rollouts", "train"])
def test_every_workbench_page_opens_a_trl_run(page, tmp_path_factory):
    from streamlit.testing.v1 import AppTest

    root = tmp_path_factory.getbasetemp() / "trl-runs"
    if not (root / "sgpo-trl" / "status.json").exists():  # one run for every page
        cfg = make_config("sgpo", **{**TINY, "problems_per_step": 3, "steps": 2, "guided_size": 4,
                                     "probe_problems": 1, "probe_every": 1})
        train(cfg, root / "sgpo-trl", progress=False)
    sys.path.insert(0, str(ROOT / "app"))
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=90)
    at.session_state["runs_root"] = str(root)
    at.run()
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error and not at.warning, [e.value for e in [*at.error, *at.warning]]
    if page == "runs":
        assert "sgpo-trl" in at.table[0].value.index
    elif page == "rollouts":  # every step's completions, as the lab's trainer stores them
        assert len(at.dataframe[0].value) == 3 and at.select_slider(key="ro_step").options == ["1", "2"]
        assert any(h.value.startswith("Autonomous (no card): ") for h in at.subheader)


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("args, message", [
    (["--engine", "deepspeed"], "error: unknown engine 'deepspeed'; expected lab or trl"),
    (["--engine", "trl", "--method", "luffy"], "luffy"),
    (["--engine", "trl", "--method", "sft"], "SFT phases (sft, sft_grpo) run on the lab engine only"),
    (["--engine", "trl", "--set", "updates_per_batch=2"], "updates_per_batch=2"),
])
def test_bad_engine_input_is_one_line(args, message, tmp_path, monkeypatch, capsys):
    code, _, err = _cli(monkeypatch, capsys, "train", "--out", str(tmp_path / "run"), "--model", "tiny",
                        "--set", "problems_per_step=3", *args)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def _forget_engine(monkeypatch):
    for name in ("sgpo_lab.trl", "sgpo_lab.trl_engine"):
        monkeypatch.delitem(sys.modules, name)


def test_missing_trl_says_how_to_install_the_extra(tmp_path, monkeypatch, capsys):
    _forget_engine(monkeypatch)
    monkeypatch.setitem(sys.modules, "trl", None)  # import trl -> ImportError
    code, _, err = _cli(monkeypatch, capsys, "train", "--engine", "trl", "--out", str(tmp_path / "run"))
    assert code == 2 and err.count("\n") == 1
    assert "not installed" in err and 'pip install -e ".[trl]"' in err, err


def test_another_trl_release_is_refused(tmp_path, monkeypatch, capsys):
    import trl

    check_trl_version("1.16.3")  # a patch release of the tested one passes
    _forget_engine(monkeypatch)
    monkeypatch.setattr(trl, "__version__", "1.17.0")
    code, _, err = _cli(monkeypatch, capsys, "train", "--engine", "trl", "--out", str(tmp_path / "run"))
    assert code == 2 and err.count("\n") == 1
    assert "TRL 1.17.0 is installed; the TRL engine is tested with TRL 1.16.0" in err, err
    with pytest.raises(EngineError, match="TRL 2.0.0 is installed"):
        check_trl_version("2.0.0")


def test_sgpo_lab_dir_on_sys_path_does_not_shadow_trl():
    """``python sgpo_lab/x.py`` puts sgpo_lab/ first on sys.path, where trl.py lives: TRL stays TRL."""
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'sgpo_lab')!r}); import trl; "
            "print(trl.__file__, trl.__version__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "site-packages" in done.stdout and "sgpo_lab" not in done.stdout


# ------------------------------------------------------------------------------ the benchmark


def test_bench_engines_prints_medians_ratios_and_phases(monkeypatch, capsys):
    code, out, err = _cli(monkeypatch, capsys, "bench", "engines", "--model", "tiny", "--problems", "2", "--group",
                          "2", "--guided", "2", "--steps", "1", "--blocks", "1", "--max-new-tokens", "16")
    assert code == 0, err
    for engine in ("lab", "trl"):
        for method in ("grpo", "sgpo"):
            assert f"{engine} {method}" in out
    assert "sample" in out and "update" in out
    ratio = float(out.split("lab/trl grpo step time: ")[1].split("x")[0])
    assert ratio > 0 and "trl sgpo/grpo step time" in out and "target <= 1.5x" in out
