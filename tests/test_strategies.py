"""Strategy cards for any task: parsing, leak checks, extraction (world solver, a strong model), ranking, the CLI."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sgpo_lab import rollout
from sgpo_lab.cards import load_cards, read_card_file
from sgpo_lab.cli_strategies import strategies_app
from sgpo_lab.models import load_model
from sgpo_lab.rollout import Rollouts
from sgpo_lab.strategies import (
    HELDOUT_OFFSET,
    card_leaks,
    extract_cards,
    heldout_problems,
    parse_card,
    rank_cards,
    write_card_file,
)
from sgpo_lab.tasks import FunctionTask, Problem, load_task
from sgpo_lab.world.strategies import card_numbers
from sgpo_lab.world.tasks import FAMILIES

ASSET = Path(__file__).parents[1] / "sgpo_lab" / "assets" / "base" / "small"
CLEAN = "Problem type: list sum\nStrategy: running total\nKey steps: 1. start at the left 2. add each number"


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny")


@pytest.fixture(scope="module")
def chat_model(tiny_chat_model_dir):
    return load_model(tiny_chat_model_dir)


def _canned(monkeypatch, answer) -> list[list[str]]:
    """Replace sampling with ``answer(prompt) -> text``; returns the prompts of every call."""
    calls: list[list[str]] = []

    def fake_sample(model, tokenizer, prompts, **kwargs):
        calls.append(list(prompts))
        texts = [answer(p) for p in prompts]
        return Rollouts(list(prompts), [[] for _ in prompts], texts, [True] * len(prompts))

    monkeypatch.setattr(rollout, "sample", fake_sample)
    return calls


# ------------------------------------------------------------------------------------------- parsing


def test_parse_card_normalises_the_three_fields_to_three_lines():
    assert parse_card(CLEAN) == CLEAN
    messy = ("Problem type: **list sum**\n**Strategy:** running total\n**Key steps:**\n1. start at the left\n"
             "2) add each number\n\nI hope this helps! Problem type: again")
    assert parse_card(messy) == CLEAN
    bullets = "problem type: list sum\nstrategy: running total\nkey steps:\n- start at the left\n- add each number"
    assert parse_card(bullets) == CLEAN
    assert parse_card("Problem type: list sum\nStrategy: running total\nKey steps: add them") == (
        "Problem type: list sum\nStrategy: running total\nKey steps: 1. add them")


@pytest.mark.parametrize("text", [
    "",
    "Problem type: list sum\nStrategy: running total",  # no key steps
    "Strategy: running total\nProblem type: list sum\nKey steps: 1. add",  # out of order
    "Problem type: \nStrategy: running total\nKey steps: 1. add",  # empty field
    "Problem type: <the kind of problem, in words>\nStrategy: <the idea>\nKey steps: 1. <first step>",  # template
])
def test_parse_card_refuses_what_is_not_a_card(text):
    assert parse_card(text) is None


def test_card_leaks_rejects_numbers_and_answers_and_keeps_a_clean_card():
    p = Problem(id="sum-x", family="sum", split="train", question="sum 3 8 5", answer="16")
    assert card_leaks(CLEAN, p) is None  # the "1. 2." markers are not numbers
    assert "from the question" in card_leaks(CLEAN.replace("running total", "start with 8"), p)
    assert "gold answer" in card_leaks(CLEAN.replace("running total", "the total is 16"), p)
    assert "number 7" in card_leaks(CLEAN.replace("running total", "add 7 tens"), p)
    assert card_leaks(CLEAN.replace("running total", "step 3. add"), p) is not None  # a marker outside the steps
    worded = Problem(id="w", family="w", split="train", question="Which city?", answer="Paris")
    assert "gold answer" in card_leaks(CLEAN.replace("running total", "think of paris"), worded)
    assert card_leaks(CLEAN, Problem(id="n", family="w", split="train", question="Yes or no?", answer="no")) is None


# ---------------------------------------------------------------------------------------- extraction


def test_world_cards_come_from_its_solver_without_digits():
    world = load_task("world")
    records = extract_cards(world, None, None)
    assert {r["family"] for r in records} == set(FAMILIES)
    for r in records:
        assert card_numbers(r["card"]) == [], r
        assert r["card"].startswith("Problem type: ") and "\nStrategy: " in r["card"]
        assert r["card_id"].startswith(r["family"] + "/cand-")
        assert r["source"] == "expert" and r["strong_model"] == "world-solver"
        assert world.find(r["source_problem"]).family == r["family"]
        assert card_leaks(r["card"], world.find(r["source_problem"])) is None
    assert len({r["card_id"] for r in records}) == len(records)


def _plain_task(experts: bool) -> FunctionTask:
    def problem(i, split):
        return Problem(id=f"add-{split}-{i}", family="add", split=split, question=f"add {i} and {i + 10}",
                       answer=str(2 * i + 10), expert_response=f"{i}+{i + 10} #{2 * i + 10}" if experts else None)

    return FunctionTask(name="adder", problems_by_split={"train": [problem(i, "train") for i in range(20)],
                                                         "id": [problem(i, "id") for i in range(20, 24)]},
                        score_fn=lambda p, c: float(c.rsplit("#", 1)[-1].strip() == p.answer))


def test_a_task_without_a_rule_based_writer_needs_a_model():
    with pytest.raises(ValueError, match="expected a strong model") as err:
        extract_cards(_plain_task(experts=True), None, None)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs", [{"k": 0}, {"k": 65}, {"problems_per_type": 0}, {"max_new_tokens": 10**6}])
def test_sizes_are_bounded_before_any_work(kwargs):
    with pytest.raises(ValueError, match="must be an integer from"):
        extract_cards("world", None, None, **kwargs)


def test_a_random_chat_model_writes_no_card_and_says_so_in_one_line(chat_model):
    model, tokenizer = chat_model
    with pytest.raises(ValueError, match="wrote no card in the form") as err:
        extract_cards("world:sum", model, tokenizer, k=2, problems_per_type=2, max_new_tokens=12)
    message = str(err.value)
    assert "\n" not in message and "'sum'" in message and "in 2 tries" in message and "expected" in message


def test_extraction_keeps_clean_distinct_cards_from_a_chat_model(chat_model, monkeypatch):
    model, tokenizer = chat_model
    outputs = iter([
        " list sum\nStrategy: running total\nKey steps: 1. start at the left 2. add each number",
        " list sum\nStrategy: add 7 first\nKey steps: 1. add",  # leaks a number
        " nonsense without the fields",
        " list sum\nStrategy: running total\nKey steps: 1. start at the left 2. add each number",  # a repeat
        " list sum\nStrategy: pair the ends\nKey steps: 1. add the first and last 2. go inward",
    ])
    calls = _canned(monkeypatch, lambda prompt: next(outputs))
    records = extract_cards("world:sum", model, tokenizer, k=5, problems_per_type=2, strong_model_name="toy")
    assert [r["card_id"] for r in records] == ["sum/cand-0", "sum/cand-4"]
    assert records[0]["card"] == CLEAN
    assert all(r["source"] == "expert" and r["strong_model"] == "toy" for r in records)
    assert [r["source_problem"] for r in records] == ["sum-train-0000", "sum-train-0000"]  # problems in turn
    (prompts,) = calls  # the world has expert responses: one call, the card prompts only
    assert all(p.startswith("<|im_start|>user\n") and p.endswith("<|im_start|>assistant\nProblem type:")
               for p in prompts)
    assert "Solution:" in prompts[0] and "Key steps" in prompts[0]


def test_without_experts_the_strong_model_solves_first_and_only_verified_answers_count(tiny, monkeypatch):
    task = _plain_task(experts=False)

    def answer(prompt):
        if "Solution:" in prompt:  # the card prompt of a solved problem
            return " addition\nStrategy: add the two numbers\nKey steps: 1. add the ones 2. add the tens"
        left = int(prompt.split("add ", 1)[1].split(" ")[0])
        return f" #{2 * left + 10}" if left % 2 == 0 else " #0"  # solves the even problems only

    calls = _canned(monkeypatch, answer)
    records = extract_cards(task, *tiny, k=2, problems_per_type=3, strong_model_name="tiny")
    assert len(calls) == 2 and len(calls[0]) == 3 * 2  # every problem tried k times, then the cards
    assert all(r["source"] == "strong-model" for r in records)
    assert {r["source_problem"] for r in records} <= {"add-train-0", "add-train-2"}
    assert "Solution:  #10" not in calls[1][0] and "Solution: #10" in calls[1][0]


def test_a_strong_model_that_solves_nothing_is_one_line(tiny, monkeypatch):
    _canned(monkeypatch, lambda prompt: " #wrong")
    with pytest.raises(ValueError, match="solved none of the 2 train problems of type 'add'") as err:
        extract_cards(_plain_task(experts=False), *tiny, k=1, problems_per_type=2)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------- ranking


def test_rank_cards_scores_every_card_best_first_with_a_baseline(tiny):
    records = extract_cards("world:sum,equation", None, None)
    ranked = rank_cards("world:sum,equation", *tiny, records, n_problems=2, n_samples=1)
    assert sorted(r["card_id"] for r in ranked) == sorted(r["card_id"] for r in records)
    for family in ("sum", "equation"):
        rows = [r for r in ranked if r["family"] == family]
        rates = [r["guided_pass_rate"] for r in rows]
        assert rates == sorted(rates, reverse=True)
        assert all(0 <= r <= 1 and (2 * r).is_integer() for r in rates)
        assert len({r["unguided_pass_rate"] for r in rows}) == 1
    assert [r["family"] for r in ranked] == sorted((r["family"] for r in ranked), key=["sum", "equation"].index)
    assert ranked == rank_cards("world:sum,equation", *tiny, records, n_problems=2, n_samples=1)  # seeded


def test_rank_cards_refuses_cards_of_an_unknown_type(tiny):
    with pytest.raises(ValueError, match="does not have"):
        rank_cards("world:sum", *tiny, [{"family": "count", "card": CLEAN}], n_problems=1, n_samples=1)


def test_heldout_problems_are_neither_training_nor_evaluation_problems():
    world = load_task("world")
    held = {p.question for p in heldout_problems(world, "sum", 16)}
    used = {p.question for split in ("train", "id") for p in world.problems(split, 64, families=["sum"])}
    assert len(held) == 16 and not held & used
    task = _plain_task(experts=True)
    tail = heldout_problems(task, "add", 4)
    assert [p.id for p in tail] == [f"add-train-{i}" for i in range(16, 20)]
    with pytest.raises(ValueError, match="too few to hold out"):
        heldout_problems(task, "add", 20)
    assert HELDOUT_OFFSET > 64  # an unbounded train split: past what a run trains on by default


def test_card_files_round_trip(tmp_path):
    records = extract_cards("world", None, None)
    write_card_file(tmp_path / "cards.jsonl", records)
    assert read_card_file(tmp_path / "cards.jsonl") == records
    with pytest.raises(ValueError, match="lacks a string 'family'"):
        write_card_file(tmp_path / "bad.jsonl", [{"card": CLEAN}])


# ----------------------------------------------------------------------------------------------- CLI


def test_cli_extracts_then_ranks_into_a_card_file_a_run_reads(tmp_path):
    runner = CliRunner()
    candidates, ranked = tmp_path / "candidates.jsonl", tmp_path / "ranked.jsonl"
    result = runner.invoke(strategies_app, ["extract", "--task", "world:sum,count", "--out", str(candidates)])
    assert result.exit_code == 0, result.output
    assert "card_id" in result.output and "sum/cand-0" in result.output and "running total" in result.output
    again = runner.invoke(strategies_app, ["extract", "--task", "world:sum,count", "--out", str(candidates)])
    assert isinstance(again.exception, ValueError) and "--overwrite" in str(again.exception)
    result = runner.invoke(strategies_app, ["rank", "--task", "world:sum,count", "--model", "tiny", "--cards",
                                            str(candidates), "--problems", "2", "--samples", "1", "--out", str(ranked)])
    assert result.exit_code == 0, result.output
    assert "guided" in result.output and "unguided" in result.output
    cards = load_cards(ranked)
    assert set(cards) == {"sum", "count"}
    rows = [json.loads(line) for line in ranked.read_text().splitlines()]
    assert all("guided_pass_rate" in r and r["student"] == "tiny" for r in rows)
    assert cards["sum"] == rows[0]["card"]


@pytest.mark.parametrize("args", [
    ["extract", "--k", "0", "--out", "x.jsonl"],
    ["extract", "--problems-per-type", "65", "--out", "x.jsonl"],
    ["rank", "--cards", "x.jsonl", "--problems", "1001"],
    ["rank", "--cards", "x.jsonl", "--samples", "0"],
])
def test_cli_bounds_sizes_in_one_line(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(strategies_app, args)
    assert isinstance(result.exception, ValueError), result.output
    assert "must be an integer from" in str(result.exception) and "\n" not in str(result.exception)
    assert not (tmp_path / "x.jsonl").exists()


def test_cli_names_a_task_with_no_card_writer(tmp_path):
    result = CliRunner().invoke(strategies_app, ["extract", "--task", "nosuchkind", "--out", str(tmp_path / "c")])
    assert isinstance(result.exception, ValueError) and "unknown task" in str(result.exception)


# ----------------------------------------------------------------------------------------- the asset


def test_the_shipped_world_cards_are_ranked_by_the_small_model():
    records = read_card_file(ASSET / "cards.jsonl")
    assert {r["family"] for r in records} == set(FAMILIES)
    for family in FAMILIES:
        rows = [r for r in records if r["family"] == family]
        rates = [r["guided_pass_rate"] for r in rows]
        assert rates == sorted(rates, reverse=True), family
        assert all((64 * r).is_integer() for r in rates)  # 16 problems x 4 samples
        assert all(r["student"] == "small" and card_numbers(r["card"]) == [] for r in rows)
    command = (ASSET / "cards.command.txt").read_text()
    assert "sgpo-lab strategies rank --task world --model small" in command and "--seed 0" in command
