"""Strategy-card ranking: measured on held-out problems, sorted, written by the CLI, and kept beside the model."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sgpo_lab.models import load_model
from sgpo_lab.strategies import heldout_problems, rank_candidates
from sgpo_lab.tasks import load_task
from sgpo_lab.world.strategies import card_numbers, extract_candidates
from sgpo_lab.world.tasks import FAMILIES

SHIPPED = Path(__file__).parents[1] / "sgpo_lab" / "assets" / "base" / "small" / "cards.jsonl"


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny")


def test_rank_candidates_scores_every_candidate_and_sorts_best_first(tiny):
    rows = rank_candidates(*tiny, "equation", n_problems=4, n_samples=2)
    heldout = heldout_problems(load_task("world"), "equation", 4)
    expected = {c.card_id for c in extract_candidates("equation", [(p.question, p.expert_response) for p in heldout])}
    assert {r["card_id"] for r in rows} == expected
    rates = [r["guided_pass_rate"] for r in rows]
    assert rates == sorted(rates, reverse=True)
    # 4 problems x 2 samples: every rate is a count of verified answers out of 8
    assert all(0 <= r <= 1 and (r * 8).is_integer() for r in rates)
    assert all(card_numbers(r["text"]) == [] for r in rows)


def test_rank_candidates_is_deterministic_by_seed(tiny):
    first = rank_candidates(*tiny, "sum", n_problems=3, n_samples=2, seed=5)
    again = rank_candidates(*tiny, "sum", n_problems=3, n_samples=2, seed=5)
    assert first == again


def test_cli_writes_the_ranking_of_every_family(tmp_path):
    out = tmp_path / "ranking.json"
    result = subprocess.run([sys.executable, "-m", "sgpo_lab.cli", "rank-strategies", "--size", "tiny",
                             "--problems", "2", "--samples", "1", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    saved = json.loads(out.read_text())
    assert set(saved["ranking"]) == set(FAMILIES)
    assert saved["command"].startswith("sgpo-lab rank-strategies")
    assert "family" in result.stdout and "guided" in result.stdout


def test_the_shipped_small_model_keeps_its_ranked_cards():
    """The shipped ranking is a card file made by `strategies extract` and `strategies rank` (commands beside it)."""
    from sgpo_lab.cards import load_cards, read_card_file

    records = read_card_file(SHIPPED)
    assert {r["family"] for r in records} == set(FAMILIES)
    for family in FAMILIES:
        rates = [r["guided_pass_rate"] for r in records if r["family"] == family]
        assert rates == sorted(rates, reverse=True), family
        assert all(card_numbers(r["card"]) == [] for r in records if r["family"] == family)
    top = load_cards(SHIPPED)
    assert all(top[f] == next(r["card"] for r in records if r["family"] == f) for f in FAMILIES)
    command = (SHIPPED.parent / "cards.command.txt").read_text()
    assert "sgpo-lab strategies extract" in command and "sgpo-lab strategies rank" in command
