"""Config validation and the CLI: bad input is one line naming the field and what was expected."""

import re
import subprocess
import sys

import pytest

from sgpo_lab.config import METHODS, TrainConfig, load_config_file, make_config


def test_presets_resolve_to_the_papers_defaults():
    cfg = make_config("sgpo")
    assert (cfg.group_size, cfg.guided_size, cfg.eps_low, cfg.eps_high) == (8, 4, 0.2, 0.28)
    assert (cfg.kl_delta, cfg.alpha0, cfg.gamma, cfg.alpha_max) == (1.0, 0.5, 0.1, 0.8)
    assert (cfg.distill, cfg.kl_direction, cfg.kl_clip, cfg.target, cfg.weight) == \
        ("kl", "forward", "hard", "best", "pass_gap")
    assert make_config("sgpo_rkl").kl_direction == "reverse"
    assert make_config("sgpo_no_constraints").kl_clip == "none"
    assert make_config("sgpo_no_constraints").target == "random"
    assert make_config("grpo").distill == "none" and make_config("luffy").off_policy == 1
    assert make_config("sft", steps=7).sft_steps == 7 and make_config("sft", steps=7).is_sft_only
    for name in METHODS:
        assert make_config(name).method == name


@pytest.mark.parametrize("fields,message", [
    ({"group_size": -1}, "group_size=-1"),
    ({"kl_delta": 0}, "kl_delta=0"),
    ({"kl_clip": "soft"}, "kl_clip='soft'.*'hard', 'scale', 'none' or 'pointwise'"),
    ({"bogus": 1}, "unknown field 'bogus'; expected one of: method, task, model"),
    ({"families": ["algebra"]}, "no problem type.s. .'algebra'.; expected some of: sum"),
])
def test_invalid_values_name_the_field_and_allowed_values(fields, message):
    with pytest.raises(ValueError, match=message):
        make_config("sgpo", **fields)


def test_unknown_method_lists_the_presets():
    with pytest.raises(ValueError, match="unknown method 'ppo'; expected one of: sgpo, sft, grpo"):
        make_config("ppo")


def test_config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("method: sgpo_rkl\nsteps: 5\nkl_delta: 0.5\n")
    cfg = load_config_file(path, seed=3)
    assert (cfg.method, cfg.steps, cfg.kl_delta, cfg.seed, cfg.kl_direction) == ("sgpo_rkl", 5, 0.5, 3, "reverse")
    path.write_text("- a list")
    with pytest.raises(ValueError, match="mapping"):
        load_config_file(path)
    with pytest.raises(ValueError, match="does not exist"):
        load_config_file(tmp_path / "nope.yaml")
    assert TrainConfig.model_fields["group_size"].description  # every field documents itself


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sgpo_lab.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


@pytest.mark.parametrize("args,message", [
    (["train", "--method", "ppo", "--out", "{tmp}/r"], "unknown method 'ppo'"),
    (["train", "--set", "kl_delta=-1", "--out", "{tmp}/r"], "kl_delta=-1"),
    (["train", "--set", "nonsense", "--out", "{tmp}/r"], "is not field=value"),
    (["train", "--model", "{tmp}/missing", "--steps", "1", "--out", "{tmp}/r"], "neither a size"),
    (["train", "--steps", "1", "--out", "/proc/sgpo-run"], "cannot write to output directory"),
    (["world-report", "--size", "huge"], "neither a size"),
    (["world-report", "--family", "algebra"], "has no problem type(s) ['algebra']; expected some of: sum, count"),
    (["world-report", "--split", "test"], "unknown split 'test'"),
    (["shifts", "--problem", "sum 3 é", "--strategy", "sum/left_to_right", "--model", "tiny"], "'é'"),
    (["shifts", "--problem", "sum-id-9999", "--model", "tiny"], "out of range"),
    (["pretrain", "--size", "huge", "--out", "{tmp}/m"], "unknown model size 'huge'"),
])
def test_cli_bad_input_is_one_line_without_traceback(args, message, tmp_path):
    result = _cli(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert message in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr


def test_cli_refuses_an_existing_run_without_resume_or_overwrite(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_text("method: sgpo\n")
    result = _cli("train", "--steps", "1", "--model", "tiny", "--out", str(run))
    assert result.returncode == 2 and "already exists; pass --resume" in result.stderr


def test_bench_step_prints_the_ratio_and_peak_memory():
    result = _cli("bench", "step", "--model", "tiny", "--steps", "1", "--seeds", "2")
    assert result.returncode == 0, result.stderr
    assert len(re.findall(r"seed \d: grpo .* ratio \d+\.\d+x", result.stdout)) == 2, result.stdout
    ratio = re.search(r"sgpo / grpo step time ratio: (\d+\.\d+)x", result.stdout)
    rss = re.search(r"peak RSS: (\d+) MB", result.stdout)
    assert ratio and float(ratio.group(1)) > 0, result.stdout
    assert rss and int(rss.group(1)) > 0, result.stdout


def test_bench_run_prints_time_and_what_the_run_moved():
    result = _cli("bench", "run", "--model", "tiny", "--steps", "2", "--threads", "1")
    assert result.returncode == 0, result.stderr
    assert re.search(r"sgpo on tiny, 2 steps, seed 0, 1 torch thread\(s\): finished in \d+ s", result.stdout)
    table = result.stdout.splitlines()[1:]
    assert table[0].split() == ["family", "split", "greedy", "@0", "greedy", "@2", "pass@k", "@0", "pass@k", "@2"]
    averages = [line.split() for line in table if line.startswith("average")]
    assert [row[1] for row in averages] == ["id", "ood"]
    assert all(cell.endswith("%") for row in averages for cell in row[2:])
