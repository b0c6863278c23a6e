"""Nothing lost, nothing hangs: bad input, faults and interrupts in the library and the CLI.

Each test names the class of failure it guards (deleted data, lost evaluation, two writers, short runs,
silently ignored values, nonsense accepted, hangs, memory blow-ups, one bad run hiding the others).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sgpo_lab import runs as R
from sgpo_lab.config import make_config, parse_field_values
from sgpo_lab.tasks import TaskError, load_task
from sgpo_lab.trainer import RunDirError, Trainer, train

SMALL = dict(model="tiny", problems_per_step=2, group_size=2, guided_size=2, max_new_tokens=12, eval_problems=2,
             eval_k=1, probe_problems=1, train_problems=4, families=["sum"])


def cli(*args: str, cwd: Path | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sgpo_lab.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def _untimed(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("time")}


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-500:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-500:]
    assert "unexpected" not in lines[0] and "Traceback" not in result.stderr
    assert len(lines[0]) < 700
    return lines[0]


# ------------------------------------------------------------------------------------ data deleted


def test_overwrite_refuses_a_folder_with_a_stray_config_and_deletes_nothing(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.yaml").write_text("mine: 1\n")
    (project / "notes.txt").write_text("precious")
    with pytest.raises(RunDirError, match="not a run directory the lab wrote"):
        Trainer(make_config("grpo", steps=1, **SMALL), project, overwrite=True, progress=False)
    assert (project / "notes.txt").read_text() == "precious" and (project / "config.yaml").exists()


def test_a_bad_model_with_overwrite_never_touches_the_run(tmp_path):
    run = tmp_path / "run"
    train(make_config("grpo", steps=1, eval_every=0, **SMALL), run, progress=False)
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(ValueError, match="neither a size"):
        Trainer(make_config("grpo", steps=1, **{**SMALL, "model": str(tmp_path / "bogus")}), run, overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == before


def test_overwrite_removes_only_the_labs_own_entries(tmp_path):
    run = tmp_path / "run"
    train(make_config("grpo", steps=1, eval_every=0, **SMALL), run, progress=False)
    (run / "my-notes.md").write_text("keep me")
    train(make_config("grpo", steps=1, eval_every=0, seed=1, **SMALL), run, overwrite=True, progress=False)
    assert (run / "my-notes.md").read_text() == "keep me"
    assert R.read_config(run)["seed"] == 1


def test_overwrite_never_replaces_the_working_folder(tmp_path):
    (tmp_path / R.MARKER).write_text("{}")
    (tmp_path / "status.json").write_text("{}")
    (tmp_path / "thesis.tex").write_text("x")
    error = one_line_error(cli("train", "--model", "tiny", "--steps", "1", "--out", ".", "--overwrite",
                               cwd=tmp_path))
    assert "working folder" in error
    assert (tmp_path / "thesis.tex").exists()


# ------------------------------------------------------------------ interrupts, locks, short runs


def test_an_interrupted_evaluation_is_redone_on_resume(tmp_path, monkeypatch):
    cfg = make_config("sgpo", steps=4, eval_every=2, probe_every=2, checkpoint_every=0, **SMALL)
    reference = tmp_path / "reference"
    train(cfg, reference, progress=False)

    original = Trainer._evaluate

    def interrupt_at_2(self, step):
        if step == 2:
            raise KeyboardInterrupt
        return original(self, step)

    monkeypatch.setattr(Trainer, "_evaluate", interrupt_at_2)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run, progress=False)
    assert R.read_status(run)["state"] == "interrupted"
    monkeypatch.setattr(Trainer, "_evaluate", original)
    train(cfg, run, resume=True, progress=False)
    for name in ("eval.jsonl", "metrics.jsonl"):
        assert [_untimed(r) for r in R.read_jsonl(run / name)] == \
            [_untimed(r) for r in R.read_jsonl(reference / name)]
    assert sorted(p.name for p in (run / "token_shifts").iterdir()) == \
        sorted(p.name for p in (reference / "token_shifts").iterdir())


def test_a_second_writer_is_refused_while_the_first_holds_the_run(tmp_path):
    run = tmp_path / "run"
    train(make_config("grpo", steps=1, eval_every=0, **SMALL), run, progress=False)
    held = R.RunLock(run)
    try:
        with pytest.raises(RunDirError, match="being written by pid"):
            Trainer(make_config("grpo", steps=2, eval_every=0, **SMALL), run, resume=True, progress=False)
        with pytest.raises(RunDirError, match="being written"):
            Trainer(make_config("grpo", steps=1, eval_every=0, **SMALL), run, overwrite=True, progress=False)
    finally:
        held.release()


def test_a_run_killed_before_its_first_checkpoint_resumes_from_step_0(tmp_path):
    cfg = make_config("grpo", steps=3, eval_every=0, checkpoint_every=0, **SMALL)
    reference = tmp_path / "reference"
    train(cfg, reference, progress=False)
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    # what kill -9 at step 2 leaves: no checkpoint, two metrics rows, a status that says running
    for ckpt in R.list_checkpoints(run):
        import shutil

        shutil.rmtree(ckpt)
    rows = R.read_jsonl(run / "metrics.jsonl")[:2]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 3, "lo')
    R.RunWriter(run).status("running", step=2, total=3)
    train(cfg, run, resume=True, progress=False)
    assert [_untimed(r) for r in R.read_jsonl(run / "metrics.jsonl")] == \
        [_untimed(r) for r in R.read_jsonl(reference / "metrics.jsonl")]


def test_a_run_whose_writer_died_reads_as_crashed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    (tmp_path / "status.json").write_text(json.dumps({"state": "running", "step": 3, "total": 9,
                                                      "pid": int(dead.stdout), "host": socket.gethostname()}))
    status = R.read_status(tmp_path)
    assert status["state"] == "crashed" and "resume" in status["error"]


def test_resume_extends_with_more_steps_and_refuses_fewer(tmp_path):
    out = tmp_path / "run"
    sets = ["--set", "problems_per_step=2", "--set", "group_size=2", "--set", "guided_size=2", "--set",
            "max_new_tokens=8", "--set", "eval_problems=1", "--set", "probe_problems=0", "--set", "families=[sum]",
            "--set", "eval_k=1"]
    assert cli("train", "--method", "grpo", "--model", "tiny", "--steps", "1", "--out", str(out), *sets).returncode == 0
    assert "below the run's" in one_line_error(cli("train", "--out", str(out), "--resume", "--steps", "0"))
    assert "cannot change seed" in one_line_error(cli("train", "--out", str(out), "--resume", "--seed", "3"))
    done = cli("train", "--out", str(out), "--resume", "--steps", "2")
    assert done.returncode == 0, done.stderr
    assert [r["step"] for r in R.read_jsonl(out / "metrics.jsonl")] == [1, 2]


# ------------------------------------------------------------------------ values and nonsense


@pytest.mark.parametrize("args, expected", [
    (["--set", "steps=abc"], "steps='abc'"),
    (["--steps", "3", "--set", "steps=4"], "disagree"),
    (["--method", "grpo", "--set", "method=sgpo"], "disagree"),
    (["--set", "lr=.inf"], "finite"),
    (["--set", "temperature=1e-300"], "greater than or equal to 0.01"),
    (["--set", "kl_delta=[&a [1,2], *a]"], "aliases"),
    (["--set", "steps=!!python/object/apply:os.system [echo hi]"], "not valid YAML"),
    (["--set", "train_problems=10000000"], "less than or equal to 100000"),
    (["--config", "/dev/zero"], "not a regular file"),
])
def test_train_refuses_bad_values_in_one_line(tmp_path, args, expected):
    error = one_line_error(cli("train", "--model", "tiny", "--out", str(tmp_path / "run"), *args))
    assert expected in error
    assert not (tmp_path / "run").exists()


def test_set_values_are_used_whatever_flags_are_given():
    assert parse_field_values(["steps=3", "model=tiny", "seed=2"]) == {"steps": 3, "model": "tiny", "seed": 2}


@pytest.mark.parametrize("args, expected", [
    (["eval", "--model", "tiny", "--problems", "0"], "--problems must be from 1"),
    (["eval", "--model", "tiny", "--k", "0"], "--k must be from 1"),
    (["eval", "--model", "tiny", "--k", "-1"], "--k must be from 1"),
    (["world-report", "--model", "tiny", "--samples", "-2"], "--samples must be from 1"),
    (["world-report", "--model", "tiny", "--problems", "0"], "--problems must be from 1"),
    (["shifts", "--model", "tiny", "--problem", "sum-id-0001", "--top-k", "-1"], "--top-k must be from 1"),
    (["bench", "run", "--threads", "0"], "--threads must be from 1"),
    (["world-report", "--model", "tiny", "--split", "ood", "--problems", "1000000"], "--problems must be from 1"),
])
def test_nonsense_sizes_are_refused(args, expected):
    assert expected in one_line_error(cli(*args))


# ------------------------------------------------------------------------------------------ hangs


def test_a_huge_problem_id_is_refused_at_once():
    t0 = time.perf_counter()
    with pytest.raises(TaskError, match="out of range"):
        load_task("world").find("sum-train-999999999")
    error = one_line_error(cli("shifts", "--model", "tiny", "--problem", "sum-train-999999999"))
    assert "out of range" in error and time.perf_counter() - t0 < 60


def test_a_huge_question_is_refused_before_any_forward_pass():
    assert "characters; expected at most" in one_line_error(cli("shifts", "--model", "tiny", "--problem",
                                                                "sum " + "1 " * 50_000, "--strategy", "x"))


# ----------------------------------------------------------------- one bad run, the others still read


def test_one_unreadable_run_is_listed_with_its_reason_and_the_others_still_show(tmp_path):
    good = tmp_path / "good"
    train(make_config("grpo", steps=1, eval_every=0, **SMALL), good, progress=False)
    (tmp_path / "config-is-a-folder" / "config.yaml").mkdir(parents=True)
    (tmp_path / "status-is-a-folder" / "status.json").mkdir(parents=True)
    fifo = tmp_path / "status-is-a-fifo"
    fifo.mkdir()
    os.mkfifo(fifo / "status.json")
    weird = tmp_path / "weird-step"
    weird.mkdir()
    (weird / "status.json").write_text(json.dumps({"state": "finished", "step": "abc", "total": -5}))
    (tmp_path / "not-utf8").mkdir()
    (tmp_path / "not-utf8" / "config.yaml").write_bytes(b"method: \xff\xfe\n")
    table = R.list_runs(tmp_path)
    assert set(table["name"]) >= {"good", "config-is-a-folder", "status-is-a-folder", "status-is-a-fifo",
                                  "weird-step", "not-utf8"}
    assert table.set_index("name").loc["good", "state"] == "finished"
    assert table.set_index("name").loc["config-is-a-folder", "state"] == "unreadable"
    assert table.set_index("name").loc["status-is-a-fifo", "state"] == "unreadable"
    assert table.set_index("name").loc["weird-step", "step"] == 0


def test_run_names_with_nul_bytes_are_refused(tmp_path):
    with pytest.raises(R.RunError, match="NUL"):
        R.resolve_run(tmp_path, "a\x00b")
    with pytest.raises(R.RunError, match="NUL"):
        R.list_runs(str(tmp_path) + "\x00")


# -------------------------------------------------------------------------------------- pretrain


def test_pretrain_refuses_a_folder_that_is_not_one_of_its_models_before_training(tmp_path):
    (tmp_path / "paper.md").write_text("x")
    t0 = time.perf_counter()
    error = one_line_error(cli("pretrain", "--size", "tiny", "--steps", "5", "--out", str(tmp_path)))
    assert "not empty and holds no model" in error and time.perf_counter() - t0 < 60
    assert (tmp_path / "paper.md").read_text() == "x" and not (tmp_path / "config.json").exists()
