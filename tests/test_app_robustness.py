"""The workbench under bad runs and bad input (AppTest): one bad run never blanks a page, the Train page writes
only under an existing runs root and launches a bounded number of runs, and every refusal is one quick line.

Each damaged run sits beside two good ones (``test_viz.write_run``); the pages must list it with its reason and
keep drawing the others. No page may show a traceback or the last-resort "Something went wrong".
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from test_viz import write_run

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app" / "main.py")
sys.path.insert(0, str(REPO / "app"))
GUARD = "Something went wrong"
QUICK_S = 5.0  # a refusal comes at once: well under the time a page takes to build anything


def app(root: Path | str, page: str | None = "runs") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state["runs_root"] = str(root)
    at.run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    return ok(at)


def messages(at: AppTest) -> list[str]:
    return [str(e.value) for kind in (at.error, at.warning, at.info) for e in kind]


def ok(at: AppTest) -> AppTest:
    """No exception reached the page, the last-resort guard did not fire, and every message is one line."""
    assert not at.exception, [e.value for e in at.exception]
    assert not [m for m in messages(at) if GUARD in m], messages(at)
    assert not [m for m in messages(at) if "\n" in m.strip()], messages(at)
    return at


def texts(elements) -> str:
    return " | ".join(str(e.value) for e in elements)


def n_charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


# ------------------------------------------------------------------------------------ 1. one bad run


def _part(run: Path, table: str, change) -> None:
    for part in sorted((run / table).glob("part-*.parquet"))[:1]:
        frame = pd.read_parquet(part)
        change(frame)
        frame.to_parquet(part)


def _status(run: Path, **body) -> None:
    (run / "status.json").write_text(json.dumps(body))


def _replace(path: Path, how: str) -> None:
    path.unlink()
    path.mkdir() if how == "folder" else os.mkfifo(path)


DAMAGE = {  # name -> (damage, what the workbench says about the run)
    "config_folder": (lambda r: _replace(r / "config.yaml", "folder"), "config.yaml cannot be read"),
    "config_not_utf8": (lambda r: (r / "config.yaml").write_bytes(b"method: [\xff\xfe\x00 sgpo\n"), "config.yaml"),
    "status_folder": (lambda r: _replace(r / "status.json", "folder"), "status.json cannot be read"),
    "status_fifo": (lambda r: _replace(r / "status.json", "fifo"), "status.json cannot be read"),
    "step_text": (lambda r: _status(r, state="running", step="abc", total="x", pid=os.getpid(),
                                    host=socket.gethostname()), None),
    "step_negative": (lambda r: _status(r, state="finished", step=-5, total=-1, error={"a": [1]}), None),
    "weight_text": (lambda r: _part(r, "instances", lambda f: f.__setitem__("weight", "w")),
                    "rows of its instances table are skipped (expected weight: a number)"),
    "instance_step_text": (lambda r: _part(r, "instances", lambda f: f.__setitem__("step", "s")),
                           "rows of its instances table are skipped (expected step: a whole number ≥ 0)"),
    "shift_step_text": (lambda r: _part(r, "token_shifts", lambda f: f.__setitem__("step", "s")),
                        "rows of its token_shifts table are skipped (expected step: a whole number ≥ 0)"),
    "metrics_types": (lambda r: (r / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "loss": "abc", "entropy": [1], "p_auto": {"a": 1}}) + "\n" for s in ("x", -1, 2.5))),
        "rows of its metrics.jsonl are skipped"),
    "eval_types": (lambda r: (r / "eval.jsonl").write_text("".join(
        json.dumps({"step": 1, "family": 3, "split": ["id"], "accuracy": "abc"}) + "\n" for _ in range(3))),
        "rows of its eval.jsonl are skipped"),
}


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("good")
    write_run(root / "sgpo-s0", "sgpo", 0)
    write_run(root / "grpo-s0", "grpo", 0)
    return root


@pytest.fixture(params=list(DAMAGE))
def damaged(request, good, tmp_path) -> tuple[Path, str | None]:
    import shutil

    for name in ("sgpo-s0", "grpo-s0"):
        shutil.copytree(good / name, tmp_path / name)
    damage, said = DAMAGE[request.param]
    damage(write_run(tmp_path / "bad", "sgpo", 1))
    return tmp_path, said


def test_one_bad_run_never_blanks_the_workbench(damaged):
    root, said = damaged
    at = app(root)  # Runs (the default here; the app itself opens on Start)
    table = at.table[0].value
    assert {"bad", "sgpo-s0", "grpo-s0"} <= set(table.index)  # the bad run is listed, the others too
    if said and "rows of its" not in said:  # the run's own files: listed as unreadable, with the reason
        assert table.loc["bad", "state"] == "⚠️ unreadable" and said in table.loc["bad", "error"]
        assert f"Run `bad` is unreadable: {table.loc['bad', 'error']}" in texts(at.warning)
    elif said is None:  # a step of "abc" or -5: listed at step 0
        assert table.loc["bad", "progress"].startswith("0/") or table.loc["bad", "progress"] == "—"
    ok(at.multiselect(key="runs_sel").set_value(["bad", "sgpo-s0", "grpo-s0"]).run())
    assert n_charts(at) == 2  # accuracy and training metrics of the others still drawn

    at.switch_page("views/weights.py").run()
    ok(at.selectbox(key="weights_run").set_value("bad").run())
    ok(at.selectbox(key="weights_run").set_value("sgpo-s0").run())
    assert n_charts(at) == 3

    at.switch_page("views/absorption.py").run()
    ok(at.selectbox(key="abs_run").set_value("bad").run())
    ok(at.selectbox(key="abs_run").set_value("sgpo-s0").run())
    ok(at.multiselect(key="abs_compare").set_value(["bad", "grpo-s0"]).run())
    assert n_charts(at) == 2 and "tok-view" in " ".join(h.proto.body for h in at.get("html"))  # curve, heatmap

    at.switch_page("views/compare.py").run()
    ok(at.multiselect(key="cmp_runs").set_value(["bad", "sgpo-s0", "grpo-s0"]).run())
    seeds = at.dataframe[0].value.set_index("method")["seeds"]
    assert seeds["grpo"] == 1 and seeds["sgpo"] >= 1
    # these runs' comparison, and the Sweeps tab's chart of a shipped sweep (found under the repository's sweeps/)
    assert n_charts(at) == 2


def test_bad_tables_are_named_per_run(damaged):
    root, said = damaged
    if said is None or "rows of its" not in said:
        pytest.skip("not a table's damage")
    table = said.split("rows of its ")[1].split()[0]
    page, key = {"instances": ("weights", "weights_run"), "token_shifts": ("absorption", "abs_run"),
                 "metrics.jsonl": ("runs", None), "eval.jsonl": ("compare", None)}[table]
    at = app(root, page)
    if key:
        ok(at.selectbox(key=key).set_value("bad").run())
        assert n_charts(at) == (2 if page == "absorption" else 3)  # the damaged rows are skipped, the rest drawn
    else:
        target = "runs_sel" if page == "runs" else "cmp_runs"
        ok(at.multiselect(key=target).set_value(["bad", "sgpo-s0"]).run())
        assert n_charts(at) >= 1
    assert "Run `bad`" in texts(at.warning) and said in texts(at.warning), texts(at.warning)


def test_a_table_with_every_row_foreign_is_one_line(good, tmp_path):
    import shutil

    shutil.copytree(good / "sgpo-s0", tmp_path / "sgpo-s0")
    bad = write_run(tmp_path / "bad", "sgpo", 1)
    for part in (bad / "instances").glob("part-*.parquet"):
        frame = pd.read_parquet(part)
        frame["weight"] = frame["weight"].astype(str) + "%"
        frame.to_parquet(part)
    at = app(tmp_path, "weights")
    ok(at.selectbox(key="weights_run").set_value("bad").run())
    assert "Run `bad`: 80 of the 80 rows of its instances table are skipped" in texts(at.error)
    assert not n_charts(at) and not at.info
    ok(at.selectbox(key="weights_run").set_value("sgpo-s0").run())
    assert n_charts(at) == 3


def test_a_live_run_with_a_bad_step_shows_its_progress(good, tmp_path):
    import shutil

    shutil.copytree(good / "sgpo-s0", tmp_path / "sgpo-s0")
    live = write_run(tmp_path / "live", "sgpo", 1, upto=5, state="running")
    _status(live, state="running", step="abc", total=-3, pid=os.getpid(), host=socket.gethostname())
    at = app(tmp_path)
    ok(at.multiselect(key="runs_sel").set_value(["live", "sgpo-s0"]).run())
    assert [p.proto.value for p in at.get("progress")] == [0] and "step 0/1" in at.get("progress")[0].proto.text
    assert n_charts(at) == 2


def test_proc_as_runs_root(tmp_path):
    start = time.time()
    for page in ("runs", "weights", "compare", "explore", "train"):
        at = app("/proc", page)
        if page in ("runs", "weights", "compare"):
            assert "No runs under `/proc`" in texts(at.info)
    assert time.time() - start < 60


# --------------------------------------------------------------------------- 2. where the Train page writes


@pytest.fixture
def fill(tiny_chat_model_dir):
    def fill(at: AppTest, name: str = "t1", sets: str = "", model: Path | str | None = None) -> AppTest:
        at.selectbox(key="train_size").set_value("(a directory)")
        at.text_input(key="train_dir").set_value(str(model or tiny_chat_model_dir))
        at.number_input(key="train_steps").set_value(1)
        at.text_input(key="train_name").set_value(name)
        at.text_area(key="train_sets").set_value(sets)
        at.button[0].click()
        return ok(at.run())

    return fill


def _unreadable(tmp_path: Path) -> Path:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0)
    return folder


ROOTS = {"missing": (lambda t: t / "nope" / "deeper", "does not exist"),
         "a file": (lambda t: (t / "file.txt").write_text("x") and t / "file.txt", "is not a folder"),
         "NUL": (lambda t: f"{t}/a\x00b", "NUL byte"),
         "too long": (lambda t: "/" + "x" * 5000, "characters long"),
         "unreadable": (_unreadable, "cannot be read")}


@pytest.mark.parametrize("kind", list(ROOTS))
def test_train_refuses_a_runs_root_that_is_not_an_existing_folder(kind, tmp_path, fill):
    if kind == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads any folder")
    make, why = ROOTS[kind]
    root = make(tmp_path)
    before = sorted(p for p in tmp_path.rglob("*"))
    at = app(root, "train")
    assert "Cannot launch runs here. The runs root" in texts(at.error) and why in texts(at.error)
    with pytest.raises(Exception, match="disabled"):  # the Launch button cannot be pressed
        fill(at)
    ok(at.run())
    assert why in texts(at.error) and len(at.error) == 1 and not at.success
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing created, from the sidebar's text or else
    assert not (REPO / "user_runs" / "t1").exists()
    if kind in ("missing", "a file"):  # the other pages say it too, in one line
        assert why in texts(app(root).warning)


def test_an_unreadable_runs_root_is_named(tmp_path, monkeypatch):  # also where the test runs as root
    import common

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(common.os, "scandir", denied)
    assert common.root_problem(tmp_path) == (f"The runs root {str(tmp_path)!r} cannot be read (Permission denied); "
                                             "expected a folder you can read")


def test_train_under_the_demo_root_writes_to_user_runs():
    at = app(REPO / "demo_runs", "train")
    assert f"runs are written under `{REPO / 'user_runs'}`" in texts(at.caption)


@pytest.mark.parametrize("name", ["a/b", "..", "a..b", ".hidden", "x" * 65, "a\x00b", "../../etc", "é-run", "a b"])
def test_train_refuses_a_run_name_that_is_not_a_plain_folder_name(name, tmp_path, fill):
    at = fill(app(tmp_path, "train"), name=name)
    assert "expected a plain folder name" in texts(at.error) and len(at.error) == 1, texts(at.error)
    assert list(tmp_path.iterdir()) == []


def test_train_refuses_a_third_concurrent_run(tmp_path, fill):
    import common

    sleepers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2)]
    common.LAUNCHED.extend(sleepers)
    try:
        at = fill(app(tmp_path, "train"))
        assert "launched runs are still training (at most 2 at once)" in texts(at.error) and not at.success
        assert list(tmp_path.iterdir()) == []
    finally:
        for proc in sleepers:
            proc.kill()
            proc.wait()
    assert common.launched_running() == []


def test_train_log_folder_that_leads_elsewhere_is_refused(tmp_path, fill):
    runs, elsewhere = tmp_path / "runs", tmp_path / "elsewhere"
    runs.mkdir()
    elsewhere.mkdir()
    (runs / ".train-logs").symlink_to(elsewhere)
    at = fill(app(runs, "train"), sets="families=[sum]")
    assert "is not a plain folder" in texts(at.error) and not at.success
    assert list(elsewhere.iterdir()) == [] and sorted(os.listdir(runs)) == [".train-logs"]


# ------------------------------------------------------------------------------ 3. the settings box


@pytest.mark.parametrize("field,label", [("model", "Model"), ("steps", "Steps"), ("seed", "Seed"),
                                         ("method", "Method"), ("task", "Task")])
def test_train_settings_cannot_set_the_page_fields(field, label, tmp_path, fill):
    value = {"model": "tiny", "steps": "3", "seed": "1", "method": "grpo", "task": "world"}[field]
    at = fill(app(tmp_path, "train"), sets=f"{field}={value}")
    assert f"{field} is set in the page's {label} field; remove {field}=... from the settings" in texts(at.error)
    assert len(at.error) == 1 and list(tmp_path.iterdir()) == []


BOMBS = ["kl_delta=[&a [1,2], *a]",
         "families=" + "[" + ", ".join(["&a [x, x, x, x, x, x, x, x, x]"] + [
             f"&{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]) + "]",
         "kl_delta=!!python/object/apply:os.system [echo pwned]"]


@pytest.mark.parametrize("sets", BOMBS)
def test_train_settings_yaml_bombs_are_one_quick_line(sets, tmp_path, fill):
    import tracemalloc

    at = app(tmp_path, "train")
    tracemalloc.start()
    start = time.time()
    fill(at, sets=sets)
    took, (_, peak) = time.time() - start, tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "is not valid YAML" in texts(at.error) and len(at.error) == 1, texts(at.error)
    assert took < QUICK_S and peak < 200_000_000
    assert list(tmp_path.iterdir()) == []


def test_train_settings_too_long_are_refused(tmp_path, fill):
    at = fill(app(tmp_path, "train"), sets="kl_delta=0.5\n" * 3000)
    assert "characters long; expected at most 20,000" in texts(at.error)


# ---------------------------------------------------------------------------------------- 4. Explore


def explore(root: Path, task: str | None = None) -> AppTest:
    at = app(root, "explore")
    if task:
        at.selectbox(key="ex_task").set_value("(type a task spec)").run()
        ok(at.text_input(key="ex_task_spec").set_value(task).run())
    return at


def timed(at: AppTest) -> float:
    start = time.time()
    ok(at.run())
    return time.time() - start


@pytest.mark.parametrize("task,family", [(None, "sum"), ("world:count", "count"),
                                         ("reasoning-gym:basic_arithmetic", "basic_arithmetic")])
def test_explore_refuses_huge_problem_ids_at_once(task, family, good):
    at = explore(good, task)
    for pid in (f"{family}-train-999999999", f"{family}-id-999999999", f"{family}-train-4000",
                f"{family}-train-{'9' * 150}"):
        at.text_input(key="ex_pid").set_value(pid)
        assert timed(at) < QUICK_S
        assert "is out of reach: this page explores problems 0 to 255" in texts(at.error), (pid, texts(at.error))
    ok(at.radio(key="ex_kind").set_value("typed").run())  # a typed question that is an id means that problem
    at.text_input(key="ex_question").set_value(f"{family}-train-999999999")
    assert timed(at) < QUICK_S and "is out of reach" in texts(at.error)
    at.text_input(key="ex_question").set_value("sum 3 8 " * 12_500)  # 100,000 characters
    assert timed(at) < QUICK_S
    assert "100,000 characters long; the limit is 1,000" in texts(at.error) and len(at.error) == 1


def test_explore_ids_within_reach_still_open(good):
    at = explore(good)
    ok(at.text_input(key="ex_pid").set_value("sum-train-0200").run())
    assert "`sum-train-0200`" in texts(at.caption) and not at.error
