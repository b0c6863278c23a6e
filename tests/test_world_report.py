"""The shipped `small` base model meets the world's contract: the strategy matters, and RL has signal and room."""

from sgpo_lab.evaluate import world_report
from sgpo_lab.models import load_model


def test_shipped_small_model_has_a_strategy_gap_with_signal_and_room():
    model, tok = load_model("small")
    rows = world_report(model, tok, n_problems=32, n_samples=8, seed=0, splits=("id",))
    unguided = {r["family"]: r["unguided"] for r in rows}
    guided = {r["family"]: r["guided"] for r in rows}
    gap = sum(guided.values()) / 4 - sum(unguided.values()) / 4
    assert gap >= 0.25, f"guided - unguided ID pass rate averaged over families is {gap:.1%}; expected >= 25 points"
    for family, rate in unguided.items():
        assert 0.05 <= rate <= 0.50, f"{family}: unguided ID pass rate {rate:.1%}; expected between 5% and 50%"
