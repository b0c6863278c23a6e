"""The shipped `small` base model against the world's contract: the strategy matters, and RL has signal and room."""

import pytest

from sgpo_lab.evaluate import world_report
from sgpo_lab.models import load_model


@pytest.fixture(scope="module")
def report():
    model, tok = load_model("small")
    rows = world_report(model, tok, n_problems=32, n_samples=8, seed=0, splits=("id",))
    return {r["family"]: r for r in rows}


def test_guided_pass_rate_exceeds_unguided_by_25_points(report):
    gap = sum(r["guided"] - r["unguided"] for r in report.values()) / len(report)
    assert gap >= 0.25, f"guided - unguided ID pass rate averaged over families is {gap:.1%}; expected >= 25 points"


@pytest.mark.parametrize("family", ["sum", "count", "equation", "mul"])
def test_unguided_pass_rate_leaves_rl_signal_and_room(report, family):
    rate = report[family]["unguided"]
    assert rate <= 0.50, f"{family}: unguided ID pass rate {rate:.1%}; expected at most 50% (room to improve)"
    assert rate >= 0.05, f"{family}: unguided ID pass rate {rate:.1%}; expected at least 5% (a signal for RL)"
