"""Every workbench page under streamlit.testing.v1.AppTest: no exception, widgets change what is shown, bad input
gives one clear line.

Runs are synthetic (``test_viz.write_synthetic_runs``: five methods x two seeds, a live run, a corrupt run);
the Explore page uses a tiny untrained model saved in a temporary directory. The Train test launches a real
one-step run of that model in a background process and watches it finish. A real two-step run of a
reasoning-gym task with the tiny chat model (``tiny_chat_model_dir``) opens on every page, alone and beside
world runs: the workbench follows the data (tasks, families, cards) and never pools runs of different tasks.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_viz import PROBE, write_synthetic_runs

from sgpo_lab.runs import RunWriter
from sgpo_lab.tasks import TaskError

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app" / "main.py")
sys.path.insert(0, str(REPO / "app"))
GUARD = "Something went wrong"  # common.guard's last-resort message: a page bug hidden from the user


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_synthetic_runs(tmp_path_factory.mktemp("runs"), seeds=(0, 1))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from sgpo_lab.models import build_model
    from sgpo_lab.world.tokenizer import build_char_tokenizer

    path = tmp_path_factory.mktemp("tiny")
    tok = build_char_tokenizer()
    build_model("tiny", tok).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def app(root: Path | str, page: str | None = "runs") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state["runs_root"] = str(root)
    at.run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    return at


def ok(at: AppTest) -> AppTest:
    """No exception reached the page, and the last-resort guard did not fire."""
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error if GUARD in e.value]
    return at


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def htmls(at: AppTest) -> str:
    return " ".join(h.proto.body for h in at.get("html"))


def texts(elements) -> str:
    return " | ".join(str(e.value) for e in elements)


# --------------------------------------------------------------------------------------------- Runs


def test_runs_page_curves_react_to_widgets(root):
    at = ok(app(root))
    assert "broken/sgpo-corrupt" in texts(at.warning)  # its status.json is truncated: said, not raised
    assert "made by" not in at.table[0].value.columns  # no MANIFEST.json here (see the next test)
    acc = charts(at)[0]
    assert {t["name"] for t in acc["data"] if t.get("showlegend")} == {"sgpo", "grpo", "sft", "sft_grpo", "luffy"}
    assert len(acc["layout"]["annotations"]) == 2  # ID and OOD panels of the family average
    ok(at.radio(key="runs_metric").set_value("pass_at_k").run())
    assert charts(at)[0]["layout"]["yaxis"]["title"]["text"] == "pass@4"
    ok(at.multiselect(key="runs_families").set_value(["all", "sum", "mul"]).run())
    assert len(charts(at)[0]["layout"]["annotations"]) == 6
    before = next(t["y"] for t in charts(at)[0]["data"] if t["name"] == "sgpo")
    metric_before = next(t["y"] for t in charts(at)[1]["data"] if t["name"] == "sgpo")
    ok(at.slider(key="runs_smooth").set_value(0.8).run())
    assert next(t["y"] for t in charts(at)[0]["data"] if t["name"] == "sgpo") == before  # accuracy: never smoothed
    assert next(t["y"] for t in charts(at)[1]["data"] if t["name"] == "sgpo") != metric_before
    ok(at.multiselect(key="runs_metrics").set_value(["entropy"]).run())
    assert [a["text"] for a in charts(at)[1]["layout"]["annotations"]] == ["policy entropy (nats)"]
    ok(at.multiselect(key="runs_sel").set_value(["sgpo-s0"]).run())
    assert {t["name"] for t in charts(at)[0]["data"] if t.get("showlegend")} == {"sgpo"}
    ok(at.multiselect(key="runs_sel").set_value([]).run())
    assert "Choose at least one run" in texts(at.info) and not at.get("plotly_chart")


def test_plotly_js_is_requested_with_the_first_message(root):
    """On a page with figures, main.py has the browser load plotly.js before the page reads its runs (the Runs page's
    first chart in scripts/bench_app.py): one script, in the event container (no space taken). Not on the Start
    page, which draws none (loading it there would only hold up its text)."""
    def preloads(elements):
        return [h.proto.body for h in elements if "PlotlyChart." in h.proto.body]

    at = ok(app(root))
    assert len(preloads(at.get("html"))) == 1, "this Streamlit names plotly.js's module differently"
    assert "import(" in preloads(at.get("html"))[0] and not preloads(at.main.get("html") + at.sidebar.get("html"))
    assert not preloads(ok(app(root, page=None)).get("html"))


def test_runs_page_lists_the_command_that_made_each_run(root, tmp_path):
    shutil.copytree(root / "sgpo-s0", tmp_path / "sgpo-s0")
    command = "sgpo-lab train --method sgpo --seed 0 --steps 20 --out demo_runs/sgpo-s0"
    (tmp_path / "MANIFEST.json").write_text(json.dumps({"sgpo-s0": {"command": command}}))
    table = ok(app(tmp_path)).table[0].value
    assert table.loc["sgpo-s0", "made by"] == command
    (tmp_path / "MANIFEST.json").write_text("{broken")
    assert "made by" not in ok(app(tmp_path)).table[0].value.columns


def test_runs_page_shows_a_live_run_and_a_corrupt_one(root):
    at = app(root)
    ok(at.multiselect(key="runs_sel").set_value(["live/sgpo-live", "broken/sgpo-corrupt"]).run())
    assert "Live" in texts(at.subheader)
    assert [p.proto.value for p in at.get("progress")] == [60]  # step 12 of 20
    assert "step 12/20" in at.get("progress")[0].proto.text
    assert charts(at)  # the corrupt run's garbage eval.jsonl is skipped; the live run's rows are drawn
    writer = RunWriter(root / "live" / "sgpo-live")  # the trainer writes on: the next (fragment) rerun shows it
    writer.append("metrics.jsonl", {"step": 13, "loss": 0.123, "p_auto": 0.5})
    writer.status("running", step=15, total=20)
    ok(at.run())
    assert [p.proto.value for p in at.get("progress")] == [75]
    assert at.metric[0].value == "0.123"


@pytest.mark.parametrize("page", [None, "runs", "explore", "weights", "absorption", "compare", "rollouts", "train"])
def test_every_page_survives_a_missing_or_empty_runs_root(page, tmp_path):
    at = ok(app(tmp_path / "nope", page))  # a root that does not exist
    if page in ("runs", "weights", "absorption", "compare", "rollouts"):
        assert "does not exist" in texts(at.warning)
    at.session_state["runs_root"] = str(tmp_path)  # exists, but empty (AppTest drops the sidebar after a page
    ok(at.run())                                   # switch, so the sidebar input is set through its state)
    if page in ("runs", "weights", "absorption", "compare", "rollouts"):
        assert "No runs under" in texts(at.info)


def test_default_root_is_demo_runs_or_the_env_var(root, monkeypatch):
    import common

    monkeypatch.delenv(common.RUNS_ENV, raising=False)
    at = ok(AppTest.from_file(APP, default_timeout=60).run())
    assert at.text_input(key="runs_root").value == str(REPO / "demo_runs")
    at.switch_page("views/runs.py").run()
    if not (REPO / "demo_runs").is_dir():
        assert "shipped demo runs are not here yet" in texts(at.info)
    else:
        assert charts(at)
    monkeypatch.setenv(common.RUNS_ENV, str(root))
    at = ok(AppTest.from_file(APP, default_timeout=60).run())
    assert at.text_input(key="runs_root").value == str(root)
    assert charts(ok(at.switch_page("views/runs.py").run()))


def test_run_names_cannot_leave_the_root(root, tmp_path):
    import common

    from sgpo_lab.runs import RunError, list_runs

    outside = tmp_path / "outside"
    write_synthetic_runs(outside, methods=("grpo",), seeds=(0,), live=False, corrupt=False)
    link_root = tmp_path / "linked"
    link_root.mkdir()
    (link_root / "escape").symlink_to(outside / "grpo-s0")
    assert list_runs(link_root).empty  # a link pointing out of the root is not listed
    for name in ("../outside/grpo-s0", "escape", "/etc", "sgpo-s0/../../"):
        with pytest.raises(RunError):
            common.run_path(name, root=str(link_root) if name == "escape" else str(root))
    assert common.run_path("sgpo-s0", root=str(root)) == (root / "sgpo-s0").resolve()


# ------------------------------------------------------------------------------------------ Weights


def test_weights_page(root):
    at = ok(app(root, "weights"))
    heat, dist, scatter = charts(at)
    rows = len(heat["data"][0]["y"])
    assert heat["data"][0]["type"] == "heatmap" and dist["data"][0]["type"] == "box"
    assert any(t.get("mode") == "lines" for t in scatter["data"])  # the formula's curves from the run's config
    ok(at.multiselect(key="weights_families").set_value(["sum"]).run())
    assert 0 < len(charts(at)[0]["data"][0]["y"]) < rows
    ok(at.slider(key="weights_steps").set_value((5, 10)).run())
    assert set(charts(at)[0]["data"][0]["x"]) <= set(range(5, 11))
    ok(at.selectbox(key="weights_run").set_value("grpo-s0").run())
    assert "recorded no per-problem weights" in texts(at.info) and not at.get("plotly_chart")
    ok(at.selectbox(key="weights_run").set_value("broken/sgpo-corrupt").run())  # corrupt status and config
    assert len(charts(at)) == 3  # its instances are intact: shown


# --------------------------------------------------------------------------------------- Absorption


def _fills(spec: dict) -> list[str]:
    return [s["fillcolor"] for s in spec["layout"].get("shapes", []) if s.get("type") == "rect"]


def test_absorption_page_step_slider_and_views(root):
    at = ok(app(root, "absorption"))
    curve, heat = charts(at)
    tokens = htmls(at)
    assert curve["data"][-1]["name"] == "mean over probes" and tokens.count('class="tok') > 5
    assert heat["data"][0]["type"] == "heatmap"
    assert "averaged over the" in texts(at.caption)  # the caption says what this run's data shows
    ok(at.select_slider(key="abs_step").set_value(0).run())
    curve0, _ = charts(at)
    assert htmls(at) != tokens  # step 0: the strategy's shift is not absorbed yet
    assert [s["x0"] for s in curve0["layout"]["shapes"] if s["type"] == "line"] == [0]
    ok(at.radio(key="abs_value").set_value("logp_change").run())
    assert "Δ log p" in htmls(at)
    ok(at.selectbox(key="abs_probe").set_value("mul-id-0000").run())
    assert len(heat["layout"]["xaxis"]["ticktext"]) == len(PROBE["sum"][1]) + 1  # the default probe, + <eos>
    assert len(charts(at)[1]["layout"]["xaxis"]["ticktext"]) == len(PROBE["mul"][1]) + 1
    ok(at.multiselect(key="abs_compare").set_value(["grpo-s0"]).run())
    assert [t["name"] for t in charts(at)[0]["data"]] == ["sgpo-s0", "grpo-s0"]
    ok(at.selectbox(key="abs_run").set_value("broken/sgpo-corrupt").run())  # its last part is corrupt: skipped
    assert at.select_slider(key="abs_step").options == ["0", "10"]


def test_a_foreign_table_and_an_unexpected_error_are_one_line(root, tmp_path, monkeypatch):
    import pandas as pd

    from sgpo_lab import viz

    shutil.copytree(root / "sgpo-s0", tmp_path / "sgpo-s0")
    for part in (tmp_path / "sgpo-s0" / "token_shifts").glob("part-*.parquet"):
        pd.DataFrame({"something": ["else"]}).to_parquet(part)  # readable, but not a token_shifts table
    at = ok(app(tmp_path, "absorption"))
    assert "token_shifts table lacks the columns kl, logp_change" in texts(at.error)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in a figure builder\nwith a second line")

    monkeypatch.setattr(viz, "weight_heatmap_figure", broken)  # the page imports it from sgpo_lab.viz each run
    at.switch_page("views/weights.py").run()
    assert not at.exception
    assert texts(at.error).count(GUARD) == 1 and "RuntimeError: a bug in a figure builder" in texts(at.error)
    assert "second line" not in texts(at.error)  # one line, no traceback
    monkeypatch.undo()
    assert len(charts(ok(at.run()))) == 3  # and the page works again


# ------------------------------------------------------------------------------------------ Compare


def test_compare_page(root):
    at = ok(app(root, "compare"))
    table = at.dataframe[0].value
    sgpo = table[table["paper"] == "SGPO"].iloc[0]
    assert sgpo["seeds"] == 2 and "±" in sgpo["lab"] and sgpo["paper_1.5B"] == "29.9"
    ok(at.radio(key="cmp_split").set_value("ood").run())
    assert at.dataframe[0].value.loc[table["paper"] == "SGPO", "lab"].iloc[0] != sgpo["lab"]
    ok(at.multiselect(key="cmp_runs").set_value(["sgpo-s0", "broken/sgpo-corrupt"]).run())  # garbage eval.jsonl
    assert at.dataframe[0].value.set_index("method").loc["sgpo", "seeds"] == 1
    ok(at.multiselect(key="cmp_runs").set_value([]).run())
    assert "paper's numbers alone" in texts(at.info) and at.dataframe[0].value["seeds"].sum() == 0


# ------------------------------------------------------------------------------------------ Explore


def explore(root, model: Path | str) -> AppTest:
    at = app(root, "explore")
    assert "Choose a model" in texts(at.info) and not at.get("plotly_chart")  # nothing loads before a pick
    at.slider(key="ex_n").set_value(2)
    at.slider(key="ex_max_new").set_value(8)
    ok(at.radio(key="ex_source").set_value("directory").run())
    return ok(at.text_input(key="ex_dir").set_value(str(model)).run())


def _tokens(at: AppTest) -> int:
    import re

    return len(re.findall(r'class="tok( tok-pin)?"', htmls(at)))


def test_explore_token_view_and_completions(root, tiny):
    at = explore(root, tiny)
    assert _tokens(at) == 8  # 8 coloured tokens (max new tokens), as boxes that hold their glyphs
    assert [m.label for m in at.metric] == ["pass rate over 2 samples"] * 2
    assert "gold `" in texts(at.caption) and ("✓ right" in texts(at.caption) or "✗ wrong" in texts(at.caption))
    bars, topk = charts(at)  # per-token KL (click a bar to pin) and the pinned token's two top-k distributions
    assert len(bars["data"][0]["x"]) == 8 and [t["type"] for t in topk["data"]] == ["bar", "bar"]
    ok(at.selectbox(key="ex_pin").set_value(3).run())
    assert "at position 3" in texts(at.markdown) and 'tok tok-pin" data-pos="3"' in htmls(at)
    ok(at.radio(key="ex_value").set_value("logp_change").run())
    assert "Δ log p" in htmls(at)
    ok(at.toggle(key="ex_auto").set_value(False).run())
    ok(at.number_input(key="ex_vmax").set_value(2.5).run())
    assert "±2.5" in htmls(at)
    ok(at.selectbox(key="ex_card2").set_value("sum/left_to_right/full").run())  # two cards side by side
    assert htmls(at).count('class="tok-view"') == 2 and _tokens(at) == 16
    ok(at.selectbox(key="ex_card2").set_value("").run())
    ok(at.selectbox(key="ex_which").set_value("typed").run())
    assert "Type a completion" in texts(at.warning)
    ok(at.text_input(key="ex_completion").set_value(" 6+3=9 #9").run())
    assert _tokens(at) == len(" 6+3=9 #9")
    ok(at.text_input(key="ex_completion").set_value(" 6+3=9 #9 ✓").run())
    assert "outside the tokenizer's alphabet" in texts(at.error)
    ok(at.selectbox(key="ex_card").set_value("none").run())
    assert "every shift is zero" in texts(at.info)


def test_explore_bad_problems_and_strategies(root, tiny):
    at = explore(root, tiny)
    ok(at.radio(key="ex_kind").set_value("typed").run())
    assert "The problem is empty" in texts(at.warning)
    ok(at.text_input(key="ex_question").set_value("sum 3 8 " * 1250).run())  # 10,000 characters
    assert "10,000 characters long; the limit is 1,000" in texts(at.error)
    ok(at.text_input(key="ex_question").set_value("sum 3 8 🙂 5").run())
    assert "problem has characters outside the tokenizer's alphabet: '🙂'" in texts(at.error)
    ok(at.text_input(key="ex_question").set_value("sum-id-0099").run())
    assert "out of range" in texts(at.error)
    ok(at.text_input(key="ex_question").set_value("sum-id-0003").run())
    assert "`sum-id-0003` is" in texts(at.caption) and at.get("plotly_chart")
    ok(at.text_area[0].set_value("Strategy: add them all 🧮").run())
    assert "strategy has characters outside" in texts(at.error)
    ok(at.text_area[0].set_value("x" * 5000).run())
    assert "5,000 characters long; the limit is 4,000" in texts(at.error)
    ok(at.text_area[0].set_value("sum/left_to_right").run())  # a world card named family/strategy
    assert "names the world card" in texts(at.caption) and at.get("plotly_chart")


def test_explore_missing_and_broken_models(root, tiny, tmp_path):
    at = explore(root, tmp_path / "missing")
    assert "Cannot load the model" in texts(at.error) and "neither a size" in texts(at.error)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    ok(at.text_input(key="ex_dir").set_value(str(broken)).run())
    assert "is not valid JSON" in texts(at.error)
    (broken / "config.json").write_text((tiny / "config.json").read_text())
    ok(at.text_input(key="ex_dir").set_value(str(broken) + "/").run())
    assert "no .safetensors weights" in texts(at.error)
    (broken / "model.safetensors").write_bytes(b"\x00" * 64)  # truncated weights
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (broken / name).write_text((tiny / name).read_text())
    ok(at.text_input(key="ex_dir").set_value(str(broken) + "//").run())
    assert "cannot load a causal LM" in texts(at.error)
    ok(at.radio(key="ex_source").set_value("checkpoint").run())
    ok(at.selectbox(key="ex_run").set_value("grpo-s0").run())
    assert "has no complete checkpoint" in texts(at.warning)
    ok(at.radio(key="ex_source").set_value("shipped").run())  # a friendly note, or a size picker
    assert at.get("selectbox") and (at.info or at.selectbox(key="ex_size").value is None)


# -------------------------------------------------------------------------------------------- Train


def test_train_page_validates_then_launches_and_watches(tmp_path, tiny):
    runs = tmp_path / "runs"
    runs.mkdir()
    at = ok(app(runs, "train"))

    def fill(name: str, sets: str) -> AppTest:  # form values count only when submitted with them
        at.selectbox(key="train_size").set_value("(a directory)")
        at.text_input(key="train_dir").set_value(str(tiny))
        at.number_input(key="train_steps").set_value(1)
        at.text_input(key="train_name").set_value(name)
        at.text_area(key="train_sets").set_value(sets)
        at.button[0].click()
        return ok(at.run())

    assert "must be letters, digits" in texts(fill("../escape", "").error)
    assert "kl_delta=-1: Input should be greater than 0" in texts(fill("t1", "kl_delta=-1").error)
    assert "algebra" in texts(fill("t1", "families=[sum, algebra]").error)
    assert "remove task=" in texts(fill("t1", "task=world").error)  # the task has its own field
    assert "not field=value" in texts(fill("t1", "kl_delta 0.5").error)
    assert not (runs / "t1").exists()
    tiny_run = ["problems_per_step=1", "group_size=2", "guided_size=1", "eval_problems=1", "probe_problems=1",
                "max_new_tokens=8", "train_problems=2", "families=[sum]"]
    fill("t1", "\n".join(tiny_run))
    assert "Launched `t1` on `world`" in texts(at.success)
    status = runs / "t1" / "status.json"
    deadline = time.time() + 150
    while time.time() < deadline and '"finished"' not in (status.read_text() if status.exists() else ""):
        assert '"failed"' not in (status.read_text() if status.exists() else ""), status.read_text()
        time.sleep(1)
    assert '"finished"' in status.read_text(), (runs / ".train-logs" / "t1.log").read_text()[-800:]
    ok(at.run())
    assert [p.proto.value for p in at.get("progress")] == [100] and "finished" in at.get("progress")[0].proto.text
    assert charts(at)  # the run's metrics, read from its directory
    assert '--set task="world"' in texts(at.caption)  # the task field, passed to the CLI as one quoted value
    assert sorted(os.listdir(runs)) == [".train-logs", "t1"]  # the run and its log, under the chosen root
    at.button(key="train_open").click()
    ok(at.run())
    assert at.title[0].value == "Runs" and at.session_state["runs_root"] == str(runs)
    assert "t1" in at.multiselect(key="runs_sel").value and charts(at)


# ------------------------------------------------------------------------------ a reasoning-gym run

GYM = "reasoning-gym:basic_arithmetic"
GYM_FAMILY = "basic_arithmetic"


@pytest.fixture(scope="module")
def gym_root(tmp_path_factory, tiny_chat_model_dir) -> Path:
    """A runs root holding one real two-step sgpo run of a reasoning-gym task with the tiny chat model."""
    from sgpo_lab.config import make_config
    from sgpo_lab.trainer import train

    root = tmp_path_factory.mktemp("gym_runs")
    cfg = make_config("sgpo", task=GYM, model=str(tiny_chat_model_dir), steps=2, problems_per_step=2, group_size=2,
                      guided_size=2, max_new_tokens=8, eval_problems=2, eval_k=1, eval_max_new_tokens=8,
                      probe_problems=1, train_problems=4, checkpoint_every=0)
    train(cfg, root / "sgpo-gym", progress=False)
    return root


@pytest.fixture(scope="module")
def mixed_root(tmp_path_factory, root, gym_root) -> Path:
    """World runs (no ``task`` in their config: older runs) beside the reasoning-gym run."""
    mixed = tmp_path_factory.mktemp("mixed_runs")
    for name in ("sgpo-s0", "sgpo-s1", "grpo-s0"):
        shutil.copytree(root / name, mixed / name)
    shutil.copytree(gym_root / "sgpo-gym", mixed / "sgpo-gym")
    return mixed


def codes(at: AppTest) -> str:
    return " | ".join(c.value for c in at.code)


@pytest.mark.parametrize("page", ["runs", "explore", "weights", "absorption", "compare", "rollouts", "train"])
def test_every_page_opens_a_reasoning_gym_run(gym_root, page):
    at = ok(app(gym_root, page))
    assert not at.warning, texts(at.warning)
    if page == "runs":
        assert at.table[0].value.loc["sgpo-gym", "task"] == GYM
        assert at.multiselect(key="runs_families").options == ["average of families", GYM_FAMILY]
        assert at.multiselect(key="runs_splits").value == ["id"]  # the task has no OOD split
        assert len(charts(at)[0]["layout"]["annotations"]) == 1 and GYM_FAMILY in texts(at.caption)
    elif page == "weights":
        from sgpo_lab.runs import load_instances

        if (load_instances(gym_root / "sgpo-gym")["weight"] > 0).any():
            assert at.multiselect(key="weights_families").value == [GYM_FAMILY] and len(charts(at)) == 3
        else:  # two steps of a tiny model: no problem got a weight
            assert "no weights recorded" in texts(at.info) and not charts(at)
    elif page == "rollouts":  # a real run: the trainer stored every step's completions
        summary = at.dataframe[0].value
        assert len(summary) == 2 and {"p_auto", "p_guided", "weight w_i", "target"} <= set(summary.columns)
        assert at.select_slider(key="ro_step").options == ["1", "2"]
        assert any(h.value.startswith("Autonomous (no card): ") for h in at.subheader)
        assert "gold `" in texts(at.caption)
        ok(at.toggle(key="ro_kl").set_value(True).run())  # re-scored by the run's last checkpoint (step 2)
        assert htmls(at).count('class="tok-view"') == len(at.get("html")) >= 4  # every completion coloured
    elif page == "absorption":
        assert len(charts(at)) == 2 and "tok-view" in htmls(at)
        assert "Problem type: Basic arithmetic" in codes(at) and "<answer>" in codes(at)  # the probe's card, question
    elif page == "compare":
        assert at.radio(key="cmp_split").options == ["ID"]
        assert at.selectbox(key="cmp_family").options == ["average of families", GYM_FAMILY]
        assert at.dataframe[0].value.set_index("method").loc["sgpo", "seeds"] == 1 and GYM in texts(at.caption)
    elif page == "explore":
        assert GYM in at.selectbox(key="ex_task").options
    elif page == "train":
        assert at.text_input(key="train_task").value == "world"


def test_explore_a_reasoning_gym_problem_with_a_run_checkpoint(gym_root, tmp_path):
    at = app(gym_root, "explore")
    at.slider(key="ex_n").set_value(2)
    at.slider(key="ex_max_new").set_value(8)
    ok(at.radio(key="ex_source").set_value("checkpoint").run())
    ok(at.selectbox(key="ex_run").set_value("sgpo-gym").run())
    assert "was trained on `reasoning-gym:basic_arithmetic`" in texts(at.caption)
    ok(at.selectbox(key="ex_task").set_value(GYM).run())
    assert at.selectbox(key="ex_split").options == ["TRAIN", "ID"] and at.selectbox(key="ex_split").value == "id"
    assert "Calculate" in codes(at) and "Gold answer: `" in texts(at.markdown)  # the question and its gold answer
    assert "<|im_start|>user" in codes(at) and "<|im_start|>assistant" in codes(at)  # the chat template, rendered
    assert [m.label for m in at.metric] == ["pass rate over 2 samples"] * 2 and charts(at)
    assert set(at.selectbox(key="ex_card").options) == {"the problem's own card", "a card from a card file",
                                                        "no strategy"}  # the run's card is the task's own: once
    ok(at.text_input(key="ex_pid").set_value(f"{GYM_FAMILY}-id-0003").run())
    assert f"`{GYM_FAMILY}-id-0003`" in texts(at.caption) and charts(at)
    ok(at.text_input(key="ex_pid").set_value("sum-id-0003").run())
    assert "is not a problem id of `reasoning-gym:basic_arithmetic`" in texts(at.error)
    ok(at.text_input(key="ex_pid").set_value("").run())
    ok(at.number_input(key="ex_index").set_value(250).run())  # the id split holds 200
    assert "out of range" in texts(at.error)
    ok(at.number_input(key="ex_index").set_value(1).run())

    cards = tmp_path / "cards.jsonl"
    cards.write_text(json.dumps({"family": GYM_FAMILY, "card": "Problem type: arithmetic\nStrategy: left to right",
                                 "card_id": "mine", "guided_pass_rate": 0.5}) + "\n")
    ok(at.selectbox(key="ex_card").set_value("file").run())
    assert "Type the path of a card file" in texts(at.info)
    ok(at.text_input(key="ex_card_file").set_value(str(tmp_path / "missing.jsonl")).run())
    assert "does not exist" in texts(at.error)
    ok(at.text_input(key="ex_card_file").set_value(str(cards)).run())
    assert at.text_area[0].value == "Problem type: arithmetic\nStrategy: left to right" and charts(at)
    assert "Strategy: left to right" in codes(at)  # in the guided prompt

    ok(at.radio(key="ex_kind").set_value("typed").run())  # free text: no gold answer, nothing to verify
    ok(at.text_input(key="ex_question").set_value("What is 2 + 2?").run())
    assert "Type the gold answer" in texts(at.caption) and not at.metric and charts(at)
    ok(at.text_input(key="ex_answer").set_value("4").run())
    assert [m.label for m in at.metric] == ["pass rate over 2 samples"] * 2
    ok(at.selectbox(key="ex_which").set_value("typed").run())
    ok(at.text_input(key="ex_completion").set_value("<answer>4</answer> ✓ any text").run())  # byte-level: any
    assert charts(at)


def test_explore_typed_task_specs(gym_root, tiny_chat_model_dir):
    at = explore(gym_root, tiny_chat_model_dir)
    ok(at.selectbox(key="ex_task").set_value("(type a task spec)").run())
    assert "Type a task spec" in texts(at.info)
    for spec, error in (("reasoning-gym:no_such_dataset", "unknown reasoning-gym dataset"),
                        ("os:abort", "standard-library module"), ("nonsense", "unknown task"),
                        ("jsonl:" + "x" * 400, "JSONL task file 'xxx")):  # the field keeps 300 characters
        ok(at.text_input(key="ex_task_spec").set_value(spec).run())
        assert error in texts(at.error) and len(at.error) == 1, (spec, texts(at.error))
    import common

    with pytest.raises(TaskError, match="the limit is 300"):
        common.load_task("jsonl:" + "x" * 400)
    ok(at.text_input(key="ex_task_spec").set_value("world:sum,count").run())
    assert at.selectbox(key="ex_family").options == ["sum", "count"] and charts(at)
    assert "<|im_start|>user\nsum " in codes(at)  # a world question in the chat model's user turn


def test_runs_of_different_tasks_are_never_pooled(mixed_root):
    at = ok(app(mixed_root))
    assert at.selectbox(key="runs_task").options[0].startswith("world")
    assert "sgpo-gym" not in at.multiselect(key="runs_sel").options
    assert {t["name"] for t in charts(at)[0]["data"] if t.get("showlegend")} == {"sgpo", "grpo"}
    ok(at.selectbox(key="runs_task").set_value(GYM).run())
    assert at.multiselect(key="runs_sel").value == ["sgpo-gym"]
    assert at.multiselect(key="runs_families").options == ["average of families", GYM_FAMILY]

    at.switch_page("views/compare.py").run()
    ok(at)
    assert at.multiselect(key="cmp_runs").value == ["sgpo-s0", "sgpo-s1", "grpo-s0"] or \
        set(at.multiselect(key="cmp_runs").value) == {"sgpo-s0", "sgpo-s1", "grpo-s0"}
    assert at.dataframe[0].value.set_index("method").loc["sgpo", "seeds"] == 2
    ok(at.selectbox(key="cmp_task").set_value(GYM).run())
    assert at.multiselect(key="cmp_runs").value == ["sgpo-gym"]
    assert at.dataframe[0].value.set_index("method").loc["sgpo", "seeds"] == 1 and GYM in texts(at.caption)

    at.switch_page("views/absorption.py").run()
    ok(at.selectbox(key="abs_run").set_value("sgpo-gym").run())
    assert at.multiselect(key="abs_compare").options == []  # no other run of its task
    ok(at.selectbox(key="abs_run").set_value("sgpo-s0").run())
    assert set(at.multiselect(key="abs_compare").options) == {"sgpo-s1", "grpo-s0"}
    assert "did not record their card" in texts(at.caption)  # an older run: no card column

    at.switch_page("views/weights.py").run()
    ok(at.selectbox(key="weights_run").set_value("sgpo-gym").run())
    assert "no weights recorded" in texts(at.info) or at.multiselect(key="weights_families").value == [GYM_FAMILY]
    ok(at.selectbox(key="weights_run").set_value("sgpo-s0").run())
    assert at.multiselect(key="weights_families").value == ["sum", "count", "equation", "mul"]


def test_train_page_task_field(tmp_path, tiny):
    runs = tmp_path / "runs"
    runs.mkdir()
    at = ok(app(runs, "train"))
    for task, error in (("reasoning-gym:no_such_dataset", "unknown reasoning-gym dataset"),
                        ("os:abort", "standard-library module"), ("world:algebra", "no families")):
        at.selectbox(key="train_size").set_value("(a directory)")
        at.text_input(key="train_dir").set_value(str(tiny))
        at.text_input(key="train_task").set_value(task)
        at.text_input(key="train_name").set_value("t2")
        at.button[0].click()
        assert error in texts(ok(at.run()).error), (task, texts(at.error))
    assert not (runs / "t2").exists()
