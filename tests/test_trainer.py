"""Every method and preset runs a few steps on `tiny` and writes a valid run directory; determinism; resume."""

import json

import pandas as pd
import pytest
import yaml

from sgpo_lab import runs
from sgpo_lab.config import METHODS, make_config
from sgpo_lab.trainer import RunDirError, Trainer, train

FAST = dict(model="tiny", steps=2, problems_per_step=3, group_size=3, guided_size=3, max_new_tokens=40,
            eval_every=0, eval_problems=1, eval_k=2, probe_every=1, probe_problems=1, checkpoint_every=0,
            train_problems=8)


def _fast(method, **overrides):
    return make_config(method, **{**FAST, **overrides})


def _steady(frame: pd.DataFrame) -> pd.DataFrame:
    """Metrics without wall-clock timings (the only fields that may differ between identical runs)."""
    return frame.drop(columns=[c for c in frame.columns if c.startswith("time_")])


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_writes_a_valid_run_directory(method, tmp_path):
    cfg = _fast(method, sft_steps=1) if method == "sft_grpo" else _fast(method)
    status = train(cfg, tmp_path / method, progress=False)
    run = tmp_path / method
    assert status["state"] == "finished" and status["step"] == 2
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["method"] == method and "versions" in config
    metrics = runs.load_metrics(run)
    assert list(metrics["step"]) == [1, 2]
    assert metrics["loss"].notna().all()
    evals = runs.load_eval(run)
    assert set(evals["step"]) == {0, 2} and set(evals["split"]) == {"id", "ood"}
    assert {"all", "sum", "count", "equation", "mul"} <= set(evals["family"])
    assert set(runs.load_token_shifts(run)["step"]) == {0, 1, 2}
    assert [p.name for p in runs.list_checkpoints(run)] == ["step-000002"]
    instances = runs.load_instances(run)
    rl_steps = {"sft": 0, "sft_grpo": 1}.get(method, 2)
    assert list(metrics["phase"]) == ["sft"] * (2 - rl_steps) + ["rl"] * rl_steps
    assert len(instances) == rl_steps * 3
    if rl_steps:
        assert instances["weight"].between(0, 0.8 + 1e-6).all()


def test_sgpo_distils_on_correct_guided_targets(tmp_path):
    run = tmp_path / "sgpo"
    train(_fast("sgpo", steps=3, problems_per_step=4, guided_size=4), run, progress=False)
    instances, metrics = runs.load_instances(run), runs.load_metrics(run)
    with_target = instances[instances["target"] >= 0]
    assert len(with_target) > 0, "the tiny model solves some guided rollouts: SGPO must have targets"
    assert (with_target["p_guided"] > 0).all() and with_target["kl_mean"].notna().all()
    assert (instances.loc[instances["target"] < 0, "weight"] == 0).all(), "no correct guided rollout, no weight"
    assert metrics["n_targets"].sum() == len(with_target)
    assert metrics["clipped_frac"].between(0, 1).all()


def test_same_seed_gives_identical_metrics(tmp_path):
    train(_fast("sgpo"), tmp_path / "a", progress=False)
    train(_fast("sgpo"), tmp_path / "b", progress=False)
    pd.testing.assert_frame_equal(_steady(runs.load_metrics(tmp_path / "a")),
                                  _steady(runs.load_metrics(tmp_path / "b")))
    pd.testing.assert_frame_equal(runs.load_eval(tmp_path / "a"), runs.load_eval(tmp_path / "b"))


def test_resumed_run_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    cfg = _fast("sgpo", steps=4, checkpoint_every=2, probe_every=0)
    train(cfg, tmp_path / "whole", progress=False)

    original = Trainer.rl_step

    def interrupt_at_3(self, step):
        if step == 3:
            raise KeyboardInterrupt
        return original(self, step)

    monkeypatch.setattr(Trainer, "rl_step", interrupt_at_3)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", progress=False)
    assert runs.read_status(tmp_path / "cut")["state"] == "interrupted"
    assert runs.read_status(tmp_path / "cut")["step"] == 2
    monkeypatch.setattr(Trainer, "rl_step", original)
    train(cfg, tmp_path / "cut", resume=True, progress=False)
    pd.testing.assert_frame_equal(_steady(runs.load_metrics(tmp_path / "whole")),
                                  _steady(runs.load_metrics(tmp_path / "cut")))
    pd.testing.assert_frame_equal(runs.load_instances(tmp_path / "whole"), runs.load_instances(tmp_path / "cut"))


def test_output_directory_rules(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="already exists"):
        Trainer(_fast("grpo"), tmp_path / "busy")
    with pytest.raises(RunDirError, match="not a run directory"):
        Trainer(_fast("grpo"), tmp_path / "busy", overwrite=True)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine", "nothing of the user's is lost"
    with pytest.raises(RunDirError, match="nothing to resume"):
        Trainer(_fast("grpo"), tmp_path / "empty", resume=True)
    (tmp_path / "afile").write_text("")
    with pytest.raises(RunDirError, match="is a file"):
        Trainer(_fast("grpo"), tmp_path / "afile")


def test_reader_tolerates_a_run_being_written(tmp_path):
    run = tmp_path / "live"
    writer = runs.RunWriter(run)
    writer.status("running", step=1, total=10)
    writer.append("metrics.jsonl", {"step": 1, "loss": 0.5})
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 2, "lo')  # a writer mid-append
    assert list(runs.load_metrics(run)["step"]) == [1]
    (run / "instances" / "part-000001.parquet").write_bytes(b"PAR1 truncated")
    assert runs.load_instances(run).empty
    (run / "status.json").write_text("{broken")
    assert runs.read_status(run)["state"] == "unknown"
    listed = runs.list_runs(tmp_path)
    assert list(listed["name"]) == ["live"]


def test_run_resolution_stays_inside_the_root(tmp_path):
    (tmp_path / "root" / "a").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    assert runs.resolve_run(tmp_path / "root", "a") == (tmp_path / "root" / "a").resolve()
    for name in ("../outside", "/etc", "a/../../outside"):
        with pytest.raises(runs.RunError, match="outside the runs root"):
            runs.resolve_run(tmp_path / "root", name)
    with pytest.raises(runs.RunError, match="does not exist"):
        runs.list_runs(tmp_path / "nope")
    assert json.loads(json.dumps(runs.list_runs(tmp_path / "root").to_dict("records"))) == []


@pytest.mark.parametrize("method", ["sgpo", "luffy"])
def test_convex_objective_and_options_run(method, tmp_path):
    cfg = _fast(method, objective="convex", kl_clip="scale", weight="linear", top_k=4, target="all")
    assert train(cfg, tmp_path / method, progress=False)["state"] == "finished"
    assert runs.load_metrics(tmp_path / method)["loss"].notna().all()


def test_frozen_teacher_stays_the_starting_model_while_the_policy_moves(tmp_path):
    import torch

    from sgpo_lab.models import load_model

    live = Trainer(_fast("sgpo"), tmp_path / "live", progress=False)
    assert live.teacher is live.model  # the paper's teacher: the policy itself, with the strategy in context
    trainer = Trainer(_fast("sgpo", teacher="frozen", steps=3, problems_per_step=4, guided_size=4), tmp_path / "r",
                      progress=False)
    assert trainer.teacher is not trainer.model
    assert not any(p.requires_grad for p in trainer.teacher.parameters())
    start = {k: v.clone() for k, v in load_model("tiny")[0].state_dict().items()}
    targets = sum(trainer.rl_step(step)["n_targets"] for step in (1, 2, 3))
    assert targets > 0, "the tiny model solves some guided rollouts: there must be something to distil"
    teacher, policy = trainer.teacher.state_dict(), trainer.model.state_dict()
    assert all(torch.equal(teacher[k], start[k]) for k in start)
    assert any(not torch.equal(policy[k], start[k]) for k in start)


def test_updates_per_batch_lets_the_ratio_clip_act(tmp_path):
    """At one update per batch the ratio is exactly 1 (clip fractions 0 by construction); with mini-batches the
    later updates see a moved policy, and the clip acts on some tokens."""
    common = dict(model="tiny", steps=2, eval_every=0, probe_problems=0, lr=3e-3)
    one = Trainer(make_config("grpo", **common), tmp_path / "one", progress=False).rl_step(1)
    assert one["grpo_clip_frac"] == one["grpo_clip_low"] == one["grpo_clip_high"] == 0.0
    many = Trainer(make_config("grpo", updates_per_batch=4, **common), tmp_path / "many", progress=False).rl_step(1)
    assert many["grpo_clip_frac"] > 0
    assert abs(many["grpo_clip_low"] + many["grpo_clip_high"] - many["grpo_clip_frac"]) < 1e-6


@pytest.mark.parametrize("method,overrides", [("sgpo", {}), ("luffy", {}), ("sgpo", {"objective": "convex"}),
                                              ("sgpo", {"updates_per_batch": 2, "teacher": "frozen"})])
def test_length_buckets_give_the_padded_batch_loss_and_gradient(method, overrides, tmp_path):
    """Scoring rows in micro-batches of similar length moves the loss and every gradient by float rounding only,
    and picks the same targets (their ranking is read back in row order)."""
    import torch

    from sgpo_lab.trainer import step_generator

    common = dict(model="small", steps=2, eval_every=0, probe_problems=0, problems_per_step=6, **overrides)
    seen = {}
    for buckets in (False, True):
        tr = Trainer(make_config(method, length_buckets=buckets, **common), tmp_path / str(buckets), progress=False)
        rows, gen = tr.step_rows(1), step_generator(0, 1)
        sampled = tr.sample_rollouts(rows, gen)
        scores = tr.score(rows, sampled)
        rl = tr.advantages(rows, sampled, scores)
        targets = tr.targets(rows, sampled, scores, gen)
        passes = len(tr._chunks(rl.completions, rows, by_problem=tr.cfg.objective == "convex"))
        if tr.cfg.updates_per_batch == 1:
            terms = tr.loss_terms(rows, sampled, rl, targets)
            if terms.pending is not None:
                terms.pending.backward()
            grad = torch.cat([p.grad.flatten() for p in tr.model.parameters() if p.grad is not None])
            seen[buckets] = (terms.loss, grad, targets.chosen, passes)
        else:  # two updates: the second mini-batch's ratio uses pi_old's log-probs, read back in row order
            terms, _ = tr.minibatch_updates(rows, sampled, rl, targets)
            weights = torch.cat([p.detach().flatten() for p in tr.model.parameters()])
            seen[buckets] = (terms.loss, weights, targets.chosen, passes)
    (l0, g0, c0, p0), (l1, g1, c1, p1) = seen[False], seen[True]
    assert p0 == 1 and p1 > 1, "the step's rows must be split by length for this test to mean anything"
    assert c0 == c1
    # after two AdamW steps a weight whose gradient is near 0 can move by a tenth of a step (lr 3e-4) more
    assert abs(l0 - l1) < 1e-5 and torch.allclose(g0, g1, atol=1e-5 if overrides.get("updates_per_batch") is None
                                                  else 1e-4, rtol=0)
