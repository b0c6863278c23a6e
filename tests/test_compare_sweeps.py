"""Reading finished sweeps (``sgpo_lab.sweeps``: find_sweeps, load_sweep, sweep_compare, format_compare, read_compare,
sgpo_lab.viz.sweep_figure) and the Compare page's Sweeps tab, on synthetic sweeps and on the shipped ``sweeps/main``."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from sgpo_lab import sweeps as S
from sgpo_lab.viz import sweep_figure

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app" / "main.py")
MAIN = REPO / "sweeps" / "main"
GUARD = "Something went wrong"  # common.guard's last-resort message
sys.path.insert(0, str(REPO / "app"))
needs_main = pytest.mark.skipif(not (MAIN / "summary.parquet").is_file(), reason="sweeps/main is not shipped here")

# quick preset: grpo is the reference; sgpo is 10 points above it on every seed, give or take one
VALUES = {"grpo": [0.30, 0.32, 0.34], "sgpo": [0.40, 0.43, 0.43]}


def _rows(values: dict[str, list[float]] = VALUES, base: float = 0.10) -> list[dict]:
    rows = []
    for variant, accs in values.items():
        for seed, acc in enumerate(accs):
            for name, step, value in ((variant, 8, acc), (f"{variant}@base", 0, base)):
                rows.append({"variant": name, "seed": seed, "step": step, "split": "id", "family": "all",
                             "accuracy": value, "pass_at_k": min(1.0, value + 0.1), "k": 4, "n_problems": 8})
    return rows


def _sweep(folder: Path, rows: list[dict] | None = None, preset: str = "quick") -> Path:
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps({"preset": preset, "command": f"sgpo-lab compare --preset {preset}"}))
    pd.DataFrame(_rows() if rows is None else rows).to_parquet(folder / "summary.parquet", index=False)
    return folder


# ------------------------------------------------------------------------------------------ library


def test_find_sweeps_looks_two_levels_deep(tmp_path):
    a = _sweep(tmp_path / "a")
    _sweep(a / "inner")  # a sweep's own folders are not searched
    b = _sweep(tmp_path / "group" / "b")
    _sweep(tmp_path / "x" / "y" / "deep")  # three levels down
    _sweep(tmp_path / ".hidden")
    (tmp_path / "partial").mkdir()  # a sweep still running: no summary yet
    (tmp_path / "partial" / "sweep.json").write_text("{}")
    assert S.find_sweeps(tmp_path) == [a, b]
    assert S.find_sweeps(a) == [a]  # the root itself
    assert S.find_sweeps(tmp_path / "nope") == []
    assert S.find_sweeps(tmp_path, depth=1) == [a]


def test_load_sweep_compare_and_format(tmp_path):
    record, summary = S.load_sweep(_sweep(tmp_path / "quick"))
    assert record["preset"] == "quick" and len(summary) == 12
    reference, table = S.sweep_compare(record, summary)
    assert reference == "grpo" and table["variant"].tolist() == ["grpo", "sgpo"]  # the preset's order
    shown = S.format_compare(table, reference)
    assert shown.columns.tolist() == ["variant", "seeds", "mean ± 95% CI, %", "diff vs grpo ± 95% CI, points", "p",
                                      "min. detectable diff, points"]
    grpo, sgpo = shown.to_dict("records")
    raw = table.set_index("variant").loc["sgpo"]
    assert grpo["mean ± 95% CI, %"].startswith("32.0 ± ") and grpo["diff vs grpo ± 95% CI, points"] == "reference"
    assert sgpo["diff vs grpo ± 95% CI, points"] == f"{100 * raw['diff_vs_ref']:+.1f} ± {100 * raw['diff_ci95']:.1f}"
    assert sgpo["p"] == f"{raw['p']:.3f}" and sgpo["min. detectable diff, points"] == f"{100 * raw['mdd']:.1f}"
    cell = re.compile(r"^([+-]?\d+\.\d|n/a|reference|—|< 0\.001|[01]\.\d{3})( ± (\d+\.\d|n/a))?$")
    assert all(cell.match(v) for r in shown.drop(columns=["variant", "seeds"]).to_dict("records") for v in r.values())
    text = S.read_compare(table, reference)
    assert "excludes 0 for sgpo (+" in text and "\n" not in text

    fig = sweep_figure(summary, table)
    bars = [t for t in fig.data if t.type == "bar"]
    dots = [t for t in fig.data if t.type == "scatter"]
    assert [b.y[0] for b in bars] == pytest.approx([32.0, 42.0]) and [len(d.y) for d in dots] == [3, 3]
    assert [(s.y0, s.line.dash) for s in fig.layout.shapes] == [(pytest.approx(10.0), "dash")]  # the base model


def test_one_seed_and_an_unknown_preset_read_as_na(tmp_path):
    rows = _rows({"a": [0.2], "b": [0.3]})
    record, summary = S.load_sweep(_sweep(tmp_path / "one", rows, preset="not-a-preset"))
    reference, table = S.sweep_compare(record, summary)
    assert reference == "a"  # no preset to name one: the first variant
    shown = S.format_compare(table, reference).set_index("variant")
    assert shown.loc["b"].tolist() == [1, "30.0 ± n/a", "+10.0 ± n/a", "n/a", "n/a"]
    assert "no interval" in S.read_compare(table, reference)


@pytest.mark.parametrize("damage, message", [
    ("no folder", "does not exist"),
    ("no sweep.json", "holds no sweep.json"),
    ("bad sweep.json", "sweep.json cannot be read"),
    ("sweep.json a list", "expected a JSON object"),
    ("no summary", "no summary.parquet yet"),
    ("corrupt summary", "summary.parquet cannot be read"),
    ("missing column", "lacks the column(s) pass_at_k"),
])
def test_load_sweep_says_what_is_wrong_in_one_line(tmp_path, damage, message):
    folder = _sweep(tmp_path / "s")
    if damage == "no folder":
        folder = tmp_path / "nope"
    elif damage == "no sweep.json":
        (folder / "sweep.json").unlink()
    elif damage == "bad sweep.json":
        (folder / "sweep.json").write_text("{not json")
    elif damage == "sweep.json a list":
        (folder / "sweep.json").write_text("[1, 2]")
    elif damage == "no summary":
        (folder / "summary.parquet").unlink()
    elif damage == "corrupt summary":
        (folder / "summary.parquet").write_bytes(b"PAR1 this is not a parquet file\n" * 10)
    else:
        pd.DataFrame(_rows()).drop(columns=["pass_at_k"]).to_parquet(folder / "summary.parquet")
    with pytest.raises(S.SweepError, match=re.escape(message)) as err:
        S.load_sweep(folder)
    assert "\n" not in str(err.value)


@needs_main
def test_the_shipped_main_sweep_reads_as_its_summary_md():
    record, summary = S.load_sweep(MAIN)
    reference, table = S.sweep_compare(record, summary)
    assert reference == "sgpo" and table["variant"].tolist() == ["sgpo", "sft", "grpo", "sft_grpo", "luffy"]
    assert (table["seeds"] == 10).all()
    shown = S.format_compare(table, reference).set_index("variant")
    md = (MAIN / "summary.md").read_text().split("## ID greedy accuracy")[1].split("##")[0]
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip("| ").split("|")]
        if len(cells) != 8 or cells[0] not in shown.index or cells[0] == reference:
            continue
        variant, _, mean, half, diff, diff_half, p, mdd = cells
        row = shown.loc[variant]
        assert row["mean ± 95% CI, %"] == f"{mean} ± {half}"
        assert row["diff vs sgpo ± 95% CI, points"] == f"{float(diff):+.1f} ± {diff_half}"
        assert row["p"] in (p, "< 0.001") and row["min. detectable diff, points"] == mdd


# ------------------------------------------------------------------------------------------ Compare page


def _page(root: Path) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state["runs_root"] = str(root)
    at.run()
    return at.switch_page("views/compare.py").run()


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error if GUARD in e.value]
    return at


def _sweep_table(at: AppTest) -> pd.DataFrame:
    tables = [d.value for d in at.dataframe if "p" in d.value.columns]
    assert len(tables) == 1
    return tables[0]


@needs_main
def test_compare_page_shows_the_main_sweep(tmp_path):
    at = ok(_page(tmp_path))  # an empty runs root: the runs tab says so, the sweeps tab reads sweeps/
    assert at.selectbox(key="sw_sweep").value == "sweeps/main"
    table = _sweep_table(at)
    assert table["variant"].tolist()[0] == "sgpo" and "diff vs sgpo ± 95% CI, points" in table.columns
    assert table.set_index("variant").loc["sgpo", "p"] == "—"
    captions = " | ".join(c.value for c in at.caption)
    assert "Paired by seed against sgpo, the 95% CI of the difference excludes 0 for" in captions
    assert "Preset `main`" in captions and len(at.get("plotly_chart")) == 1
    ok(at.radio(key="sw_split").set_value("ood").run())
    ok(at.radio(key="sw_metric").set_value("pass_at_k").run())
    assert not _sweep_table(at).equals(table)


def test_compare_page_reports_a_broken_sweep_in_one_line(tmp_path):
    bad = _sweep(tmp_path / "bad")
    (bad / "summary.parquet").write_bytes(b"not parquet at all")
    _sweep(tmp_path / "good")
    at = ok(_page(tmp_path))  # the runs root holds both sweeps
    label = next(o for o in at.selectbox(key="sw_sweep").options if o.endswith("bad"))
    ok(at.selectbox(key="sw_sweep").set_value(label).run())
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "summary.parquet cannot be read" in errors[0] and "\n" not in errors[0]
    assert not [d for d in at.dataframe if "p" in d.value.columns]
    label = next(o for o in at.selectbox(key="sw_sweep").options if o.endswith("good"))
    ok(at.selectbox(key="sw_sweep").set_value(label).run())
    assert not at.error and _sweep_table(at)["variant"].tolist() == ["grpo", "sgpo"]
