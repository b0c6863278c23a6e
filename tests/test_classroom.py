"""What a class meets first: the Start page, the rollout browser, runs grouped by config, the empty-weights message,
the theme and presentation mode, correctness shown, distinct colours; all under AppTest on synthetic runs (fast).
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from streamlit.testing.v1 import AppTest
from test_viz import write_synthetic_runs

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app" / "main.py")
sys.path.insert(0, str(REPO / "app"))
GUARD = "Something went wrong"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = write_synthetic_runs(tmp_path_factory.mktemp("runs"), methods=("sgpo", "grpo"), seeds=(0, 1),
                                live=False, corrupt=False)
    # a what-if run: sgpo with another learning rate, and one with a launch label
    for name, lr in (("sgpo-lr-s0", 0.001), ("sgpo-lr-s1", 0.001)):
        shutil.copytree(root / "sgpo-s0", root / name)
        config = yaml.safe_load((root / name / "config.yaml").read_text())
        (root / name / "config.yaml").write_text(yaml.safe_dump({**config, "lr": lr, "seed": int(name[-1])}))
    write_rollouts(root / "sgpo-s0", steps=(5, 10))
    for name in ("grpo-s0", "grpo-s1"):  # GRPO writes w_i = 0 for every problem
        inst = root / name / "instances"
        inst.mkdir(exist_ok=True)
        pd.DataFrame({"step": [1, 1], "problem_id": ["sum-train-0000", "count-train-0001"], "family": ["sum", "count"],
                      "p_auto": [0.25, 0.5], "p_guided": [None, None], "weight": [0.0, 0.0]}).to_parquet(
            inst / "part-000001.parquet")
    return root


def write_rollouts(run: Path, steps=(5,)) -> None:
    """A rollouts part per step, as the trainer writes it: two problems, G = 2 autonomous and H = 2 guided each."""
    (run / "rollouts").mkdir(exist_ok=True)
    for step in steps:
        rows = []
        for pid, question, answer, good, bad in (
                ("sum-train-0000", "sum 3 8 5 2", "18", " left 3+8=11 11+5=16 16+2=18 #18", " max 8 #8"),
                ("count-train-0001", "count over 4 in 9 3 5", "2", " 9:1 3:1 5:2 #2", " 3 numbers #3")):
            for kind, texts, rewards in (("auto", [bad, good.replace("11+5=16", "11+5=17")], [0.0, 1.0]),
                                         ("guided", [good, good], [1.0, 1.0])):
                for j, (text, reward) in enumerate(zip(texts, rewards)):
                    rows.append({"step": step, "problem_id": pid, "family": pid.split("-")[0], "question": question,
                                 "answer": answer, "card": "Problem type: list sum\nStrategy: left to right",
                                 "p_auto": 0.5, "p_guided": 1.0, "weight": 0.4, "kind": kind, "index": j,
                                 "text": text, "completion_ids": [1, 2, 3], "reward": reward, "finished": True,
                                 "target": kind == "guided" and j == 0})
        pd.DataFrame(rows).to_parquet(run / "rollouts" / f"part-{step:06d}.parquet")


def app(root: Path, page: str | None = None, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state["runs_root"] = str(root)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    return ok(at)


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error if GUARD in e.value]
    return at


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def texts(elements) -> str:
    return " | ".join(str(e.value) for e in elements)


def htmls(at: AppTest) -> str:
    return " ".join(h.proto.body for h in at.get("html"))


# ------------------------------------------------------------------------------------------- Start


def test_the_app_opens_on_the_start_page_and_each_step_opens_its_page(root):
    at = app(root)
    assert at.title[0].value.startswith("Strategy-Guided Policy Optimization")
    buttons = [b.label for b in at.button]
    assert buttons[:5] == ["Explore a card's shift", "Open Absorption", "Open Weights", "Open Runs", "Open Compare"]
    assert "01_quickstart.ipynb" in texts(at.markdown) and "50-minute lesson plan" in texts(at.markdown)
    ok(at.button(key="start_views/absorption.py").click().run())
    assert at.title[0].value == "Absorption" and at.selectbox(key="abs_run").value == "sgpo-s0"
    assert at.selectbox(key="abs_probe").value == "sum-id-0000"
    at = app(root)
    ok(at.button(key="start_views/weights.py").click().run())
    assert at.title[0].value == "Adaptive weights" and at.selectbox(key="weights_view").value == "family"
    at = app(root)
    ok(at.button(key="start_views/explore.py").click().run())
    assert at.title[0].value == "Explore" and at.selectbox(key="ex_family").value == "sum"


def test_start_steps_that_need_a_missing_run_are_disabled(tmp_path):
    write_synthetic_runs(tmp_path, methods=("grpo",), seeds=(0,), live=False, corrupt=False)
    at = app(tmp_path)
    assert at.button(key="start_views/absorption.py").disabled and not at.button(key="start_views/runs.py").disabled


# ---------------------------------------------------------------------------------------- Rollouts


def test_rollout_browser_shows_each_completion_with_its_reward_and_correctness(root):
    at = app(root, "rollouts")
    assert at.selectbox(key="ro_run").options == ["sgpo-s0  ·  sgpo"]  # only runs that stored rollouts
    assert at.select_slider(key="ro_step").value == 10
    summary = at.dataframe[0].value
    assert summary["autonomous ✓"].tolist() == ["1/2", "1/2"] and summary["guided ✓"].tolist() == ["2/2", "2/2"]
    assert summary["target"].iloc[0] == "left 3+8=11 11+5=16 16+2=18 #18"
    captions = texts(at.caption)
    assert "✓ right · answer `18` · gold `18` · ⚠ right answer, but the step `11+5=17` is wrong" in captions
    assert "✗ wrong · answer `8` · gold `18`" in captions
    assert "★ distillation target" in texts(at.markdown)
    assert "no checkpoint" in captions  # synthetic runs have none: tokens are not coloured
    ok(at.selectbox(key="ro_problem").set_value("count-train-0001").run())
    assert "`9:1` is a tally step" in texts(at.caption)
    ok(at.select_slider(key="ro_step").set_value(5).run())
    assert at.query_params["ro_step"] == "5" and at.query_params["ro_run"] == "sgpo-s0"


def test_rollout_browser_without_rollouts_says_why(tmp_path):
    write_synthetic_runs(tmp_path, methods=("sgpo",), seeds=(0,), live=False, corrupt=False)
    assert "stored its rollouts" in texts(app(tmp_path, "rollouts").info)


# ------------------------------------------------------------------------------------ Runs: groups


def test_runs_whose_configs_differ_are_never_pooled(root):
    at = app(root, "runs", runs_sel=["sgpo-s0", "sgpo-s1", "sgpo-lr-s0", "sgpo-lr-s1", "grpo-s0"])
    legend = {t["name"] for t in charts(at)[0]["data"] if t.get("showlegend")}
    assert legend == {"sgpo · lr=0.0003", "sgpo · lr=0.001", "grpo"}
    assert "drawn apart" in texts(at.caption)
    means = {t["name"]: t for t in charts(at)[0]["data"] if t.get("mode") == "lines+markers" and t["xaxis"] == "x"}
    assert means["sgpo · lr=0.001"]["line"]["color"] != means["sgpo · lr=0.0003"]["line"]["color"]


def test_config_groups_and_launch_labels():
    import common

    configs = {"a": {"lr": 1e-3, "seed": 0}, "b": {"lr": 1e-3, "seed": 1}, "c": {"lr": 3e-4, "seed": 0},
               "d": {"lr": 1e-3, "seed": 0}, "e": {"lr": 1e-3, "seed": 0, "steps": 5}}
    methods = dict.fromkeys(configs, "sgpo")
    groups = common.config_groups(configs, methods, {"d": "mine", "e": None})
    assert groups["a"] == groups["b"] == "sgpo · lr=0.001, steps=60" and groups["c"] == "sgpo · lr=0.0003, steps=60"
    assert groups["e"] == "sgpo · lr=0.001, steps=5"  # a field missing from a config counts as its default
    assert groups["d"] == "mine"  # a label names its own group


def test_runs_page_picks_up_a_new_run_and_keeps_its_root_in_the_url(root, tmp_path):
    shutil.copytree(root / "grpo-s0", tmp_path / "grpo-s0")
    at = app(tmp_path, "runs")
    assert at.query_params["root"] == str(tmp_path)
    shutil.copytree(root / "sgpo-s0", tmp_path / "sgpo-s0")  # a run appears
    ok(at.button(key="runs_refresh").click().run())
    assert "sgpo-s0" in at.multiselect(key="runs_sel").options
    again = AppTest.from_file(APP, default_timeout=90)  # a reload: the root comes back from the URL
    again.query_params["root"] = str(tmp_path)
    ok(again.run())
    assert again.text_input(key="runs_root").value == str(tmp_path)


# -------------------------------------------------------------------------------------- Weights


def test_weights_page_says_no_weights_recorded_for_grpo(root):
    at = app(root, "weights", weights_run="grpo-s0")
    assert "no weights recorded" in texts(at.info) and not at.get("plotly_chart")
    from sgpo_lab import viz

    inst = pd.read_parquet(root / "grpo-s0" / "instances" / "part-000001.parquet")
    assert viz.weight_heatmap_figure(inst).layout.meta["empty"]


def test_weights_heatmap_by_family_fills_every_step(root):
    at = app(root, "weights", weights_run="sgpo-s0")
    import base64

    heat = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    assert sorted(heat["y"]) == ["count", "equation", "mul", "sum"]
    z = heat["z"]
    if isinstance(z, dict):  # plotly's typed-array encoding
        z = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"])
    assert np.isfinite(np.array(z, dtype=float)).all()


# ---------------------------------------------------------------------------- theme, presentation


def test_dark_theme_and_presentation_mode_reach_the_figures(root):
    at = app(root, "runs", theme="dark", presentation=True)
    fig = charts(at)[0]["layout"]
    assert fig["paper_bgcolor"] == "#0e1117" and fig["font"]["color"] == "#fafafa"
    assert fig["font"]["size"] == 20 and fig["xaxis"]["tickfont"]["size"] == 19
    css = at.session_state["_page_css"]
    assert "html {font-size: 21px;}" in css and "#0e1117" in css  # large page fonts, narrow sidebar, dark page
    at = app(root, "runs", theme="light")
    assert charts(at)[0]["layout"]["paper_bgcolor"] == "white"


def test_every_method_has_a_distinct_colour_blind_safe_colour():
    from sgpo_lab.config import METHODS
    from sgpo_lab.viz.style import METHOD_COLORS, group_colors

    def lab(hexcolor):
        rgb = np.array([int(hexcolor[i:i + 2], 16) / 255 for i in (1, 3, 5)])
        rgb = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
        xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ rgb
        f = np.cbrt(np.maximum(xyz / np.array([0.9505, 1.0, 1.089]), 0.008856))
        return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])

    assert set(METHODS) <= set(METHOD_COLORS)
    for (a, ca), (b, cb) in itertools.combinations(METHOD_COLORS.items(), 2):
        assert np.linalg.norm(lab(ca) - lab(cb)) > 20, (a, b)  # CIELAB distance: clearly different colours
    colours = group_colors(["sgpo", "sgpo · lr=0.001", "sgpo · lr=0.01", "mine"])
    assert len(set(colours.values())) == 4 and colours["sgpo"] == METHOD_COLORS["sgpo"]


# -------------------------------------------------------------------------------------- correctness


def test_world_answers_and_steps_are_checked():
    import random

    import worldcheck

    from sgpo_lab.world.tasks import FAMILIES

    assert worldcheck.gold_answer("sum 3 8 5 2") == "18" and worldcheck.gold_answer("count over 4 in 9 3 5") == "2"
    assert worldcheck.gold_answer("3x+5=17") == "4" and worldcheck.gold_answer("23*4") == "92"
    assert worldcheck.gold_answer("what is love") is None
    assert worldcheck.wrong_steps("count over 4 in 9 3 5", " 9:1 3:2 5:2 #2") == ["3:2"]
    assert worldcheck.wrong_steps("3x+5=17", " x1:8<17 x2:12<17 #4") == ["x2:12<17"]
    rng = random.Random(0)
    for family in FAMILIES.values():  # every method the world writes (misconceptions too) has true steps
        for split in ("id", "ood"):
            params = family.sample(rng, split)
            question = family.question(params)
            assert worldcheck.gold_answer(question) == family.answer(params)
            for method in family.methods:
                assert worldcheck.wrong_steps(question, family.solve(params, method)) == [], (question, method)


def test_a_typed_world_question_is_graded_against_the_answer_the_world_computes(root, tmp_path):
    from sgpo_lab.models import build_model
    from sgpo_lab.world.tokenizer import build_char_tokenizer

    tok = build_char_tokenizer()
    build_model("tiny", tok).save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    at = app(root, "explore", ex_source="directory", ex_dir=str(tmp_path / "tiny"), ex_kind="typed",
             ex_question="sum 3 8 5 2", ex_n=2, ex_max_new=8)
    assert "its gold answer is **`18`**" in texts(at.caption)
    assert "gold `18`" in texts(at.caption) and [m.label for m in at.metric] == ["pass rate over 2 samples"] * 2
