"""Tasks beyond the world: answer extraction, math grading, reasoning-gym datasets and JSONL files (no model)."""

import json
import threading
import time
from pathlib import Path

import pytest

from sgpo_lab.tasks import TaskError, load_task
from sgpo_lab.tasks.answers import _bounded, extract_final_answer, math_equal, normalize_answer
from sgpo_lab.tasks.jsonl import JsonlTask, gold_and_solution, hash_split
from sgpo_lab.tasks.reasoning_gym import ANSWER_INSTRUCTION, ID_SIZE, ReasoningGymTask, extract_tagged_answer

SAMPLE = Path(__file__).resolve().parents[1] / "sgpo_lab" / "data" / "gsm8k_sample.jsonl"


# ------------------------------------------------------------------------------------------ answers


@pytest.mark.parametrize("completion, expected", [
    ("so <answer>1</answer> then <answer> 42 </answer>", "42"),
    ("<answer>7</answer> and \\boxed{9}", "7"),  # the tag comes first in the order
    ("thus \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
    ("\\boxed{a{b}c} then an unclosed \\boxed{x", "a{b}c"),
    ("3 + 4 = 7\n#### 7\nQ: next question", "7"),
    ("total 1,000 #### 1,000", "1,000"),
    ("add them #12\nQ: more", "12"),
    ("<answer></answer>\n#### 5", "5"),  # an empty tag gives way to the next format
    ("no marker at all", None),
    ("#### \n", None),
    ("", None),
])
def test_extract_final_answer(completion, expected):
    assert extract_final_answer(completion) == expected


@pytest.mark.parametrize("pred, gold", [
    ("18", "18"), ("$18", "18"), ("18", "$18"), ("18%", "18"), ("18.0", "18"), ("1000", "1,000"),
    ("1,000", "#### 1,000"), ("1000", "The total is 1,000.\n#### 1,000"), ("\\frac{1}{2}", "0.5"),
    ("0.5", "\\frac{1}{2}"), ("$\\frac{1}{2}$", "0.5"), ("\\boxed{6}", "6"), ("18 dollars", "18"),
    ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}"), ("x = 3", "3"), ("(1,2)", "(1,2)"), ("73.60", "73.6"),
])
def test_math_equal_accepts_the_same_answer(pred, gold):
    assert math_equal(pred, gold)


@pytest.mark.parametrize("pred, gold", [
    ("17", "18"), ("0.18", "18%"), ("1,2", "12"), ("(1,2)", "(2,1)"), ("\\frac{1}{3}", "0.5"), ("abc", "abd"),
    ("", "0"), (None, "18"), ("1" * 400 + "+1", "2"),
])
def test_math_equal_rejects_a_different_answer(pred, gold):
    assert not math_equal(pred, gold)


def test_normalize_answer_strips_dollars_percent_and_commas():
    assert normalize_answer("#### $1,000") == "1000"
    assert normalize_answer("\\boxed{25\\%}") == "25"
    assert normalize_answer("$\\frac{1}{2}$") == "\\frac{1}{2}"


def test_math_equal_works_off_the_main_thread():
    # math-verify's own timeout is signal.alarm, which raises off the main thread (Streamlit, Jupyter)
    results, errors = [], []

    def grade():
        try:
            results.extend([math_equal("0.5", "\\frac{1}{2}"), math_equal("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}"),
                            math_equal("$18", "18"), math_equal("3", "4"), math_equal("x^2+1", "1+x^2")])
        except Exception as err:  # pragma: no cover - the failure this test exists for
            errors.append(err)

    worker = threading.Thread(target=grade)
    worker.start()
    worker.join(60)
    assert not errors
    assert results == [True, True, True, False, True]


def test_math_grading_is_bounded_in_time():
    started = time.monotonic()
    assert _bounded(lambda: time.sleep(2) or True, 0.1) is False  # too slow: not equal, and the caller goes on
    assert time.monotonic() - started < 1.5
    assert _bounded(lambda: 1 / 0, 1) is False  # a grader crash is a wrong answer
    assert _bounded(lambda: True, 1) is True


# ------------------------------------------------------------------------------------------ reasoning-gym


@pytest.fixture(scope="module")
def arithmetic():
    return ReasoningGymTask("basic_arithmetic")


def test_reasoning_gym_problems_are_deterministic(arithmetic):
    a = arithmetic.problems("train", 20)
    assert a == ReasoningGymTask("basic_arithmetic").problems("train", 20)
    assert a[:5] == arithmetic.problems("train", 5)  # a prefix: ids never move when more are asked for
    assert [p.id for p in a[:2]] == ["basic_arithmetic-train-0000", "basic_arithmetic-train-0001"]
    assert all(p.family == "basic_arithmetic" and p.split == "train" for p in a)
    assert all(p.question.endswith(ANSWER_INSTRUCTION) for p in a)
    assert arithmetic.problems("train", 20) is not arithmetic.problems("train", 20)  # callers get their own list


def test_reasoning_gym_train_and_id_are_disjoint(arithmetic):
    train = {p.question for p in arithmetic.problems("train", 300)}
    ident = [p.question for p in arithmetic.problems("id", ID_SIZE)]
    assert len(ident) == ID_SIZE
    assert train.isdisjoint(ident)
    assert arithmetic.splits == ("train", "id") and arithmetic.families == ("basic_arithmetic",)
    with pytest.raises(TaskError, match="no 'ood' split"):
        arithmetic.problems("ood", 1)
    with pytest.raises(TaskError, match="at most"):
        arithmetic.problems("id", ID_SIZE + 1)


def test_reasoning_gym_scores_its_answer_format(arithmetic):
    p = arithmetic.problems("id", 4)[3]
    right = f"Working it out.\n<answer>{p.answer}</answer>"
    assert arithmetic.extract_answer(right) == p.answer
    assert arithmetic.score(p, right) == 1.0 and arithmetic.correct(p, right)
    assert not arithmetic.correct(p, f"<answer>{int(p.answer) + 1}</answer>")
    assert arithmetic.score(p, "no answer written") == 0.0
    assert arithmetic.correct(p, f"<answer>{p.answer}")  # an unclosed last tag runs to the end
    assert arithmetic.correct(p, f"#### {p.answer}")  # the shared formats are the fallback


def test_reasoning_gym_partial_credit_is_not_correct(arithmetic, monkeypatch):
    p = arithmetic.problems("train", 1)[0]
    # basic_arithmetic gives partial credit to an answer that contains the gold one among other text
    partial = f"<answer>{p.answer} apples</answer>"
    assert 0.0 < arithmetic.score(p, partial) < 1.0
    assert not arithmetic.correct(p, partial)
    monkeypatch.setattr(ReasoningGymTask, "score", lambda self, problem, completion: 0.99)
    assert not arithmetic.correct(p, "anything")
    monkeypatch.setattr(ReasoningGymTask, "score", lambda self, problem, completion: 1.0)
    assert arithmetic.correct(p, "anything")


def test_reasoning_gym_find_card_and_no_experts(arithmetic):
    p = arithmetic.problems("train", 4)[3]
    assert arithmetic.find("basic_arithmetic-train-0003") == p
    assert arithmetic.find("basic_arithmetic-id-9999") is None
    assert arithmetic.find("sum-train-0003") is None and arithmetic.find("junk") is None
    card = arithmetic.card(p)
    assert card.startswith("Problem type: Basic arithmetic\nStrategy: ") and "Key steps: 1. " in card
    assert not any(ch.isdigit() for ch in card.replace("1. ", "").replace("2. ", "").replace("3. ", "")
                   .replace("4. ", ""))
    assert not arithmetic.has_experts()
    with pytest.raises(TaskError, match="no expert response"):
        arithmetic.expert(p)


def test_reasoning_gym_unknown_dataset_suggests_names():
    with pytest.raises(TaskError) as err:
        ReasoningGymTask("basic_arithmetc")
    message = str(err.value)
    assert "\n" not in message and "basic_arithmetic" in message and "sgpo-lab tasks" in message


def test_extract_tagged_answer_reads_multiline_answers():
    assert extract_tagged_answer("grid:\n<answer>1 2\n3 4</answer> done") == "1 2\n3 4"
    assert extract_tagged_answer("<ANSWER> 5 ") == "5"


# ------------------------------------------------------------------------------------------ JSONL


@pytest.fixture(scope="module")
def sample():
    return JsonlTask(SAMPLE)


def test_shipped_sample_splits_families_and_cards(sample):
    assert sample.splits == ("train", "id")
    assert sample.families == ("money", "percent", "rates")
    assert len(sample.problems("train", 100)) == 16 and len(sample.problems("id", 100)) == 4
    assert all(sample.split_size("id", f) >= 1 for f in sample.families)
    assert [p.family for p in sample.problems("train", 1)] == ["money", "percent", "rates"]
    for fam in sample.families:
        card = sample.card(sample.problems("train", 1, families=[fam])[0])
        assert card.startswith("Problem type: ") and "\nStrategy: " in card and "\nKey steps: 1. " in card
    questions = [p.question for s in sample.splits for p in sample.problems(s, 100)]
    assert any("$" in q for q in questions) and any("%" in q for q in questions)


def test_shipped_sample_experts_grade_right(sample):
    assert sample.has_experts()
    for split in sample.splits:
        for p in sample.problems(split, 100):
            assert "####" not in p.answer and p.answer.strip() == p.answer
            assert sample.correct(p, sample.expert(p)), p.id  # every expert response is right by the verifier
            assert not sample.correct(p, "#### 123456789")
            assert sample.find(p.id) == p


def test_shipped_sample_money_and_percent_answers(sample):
    by_question = {p.question: p for s in sample.splits for p in sample.problems(s, 100)}
    tablets = next(p for q, p in by_question.items() if "tablets" in q)
    assert tablets.answer == "1,200"
    for written in ("#### 1200", "#### $1,200", "The club spends \\boxed{1200} dollars.", "<answer>$1200</answer>"):
        assert sample.correct(tablets, written), written
    score = next(p for q, p in by_question.items() if "What percent" in q)
    assert sample.correct(score, "He scores 70% of the points.\n#### 70%")
    assert sample.correct(score, "#### 70")
    assert not sample.correct(score, "#### 0.7")


def test_gold_and_solution_reads_gsm8k_and_math_answers():
    assert gold_and_solution("2 + 3 = <<2+3=5>>5\n#### 5") == ("5", "2 + 3 = 5\n#### 5")
    assert gold_and_solution("#### 5") == ("5", None)
    assert gold_and_solution("\\boxed{\\frac{1}{2}}") == ("\\frac{1}{2}", None)
    gold, solution = gold_and_solution("Halve it: $\\boxed{\\frac{1}{2}}$.")
    assert gold == "\\frac{1}{2}" and solution.startswith("Halve")
    assert gold_and_solution("18") == ("18", None)


def _write(tmp_path, lines, name="probs.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_jsonl_without_splits_hashes_questions_into_train_and_id(tmp_path):
    records = [{"question": f"What is {i} + {i}?", "answer": f"#### {2 * i}"} for i in range(20)]
    task = JsonlTask(_write(tmp_path, records))
    assert task.splits == ("train", "id")
    assert task.families == ("probs",)  # no type: the file's stem
    train, ident = task.problems("train", 100), task.problems("id", 100)
    assert len(train) + len(ident) == 20 and 1 <= len(ident) <= 10
    assert {p.question for p in train}.isdisjoint(p.question for p in ident)
    assert JsonlTask(_write(tmp_path, records, "again.jsonl")).problems("id", 100)[0].question == ident[0].question
    assert all(hash_split(p.question)[0] == "id" for p in ident) or len(ident) == 1
    assert task.find("probs-0001").question == "What is 0 + 0?"
    assert not task.has_experts()  # "#### n" alone is not a worked solution


def test_jsonl_small_file_still_gets_both_splits(tmp_path):
    records = [{"question": f"Q{i}", "answer": str(i)} for i in range(2)]
    task = JsonlTask(_write(tmp_path, records))
    assert task.splits == ("train", "id")


def test_jsonl_expert_field_id_field_and_math_answers(tmp_path):
    path = _write(tmp_path, [
        {"question": "Half of one?", "answer": "\\boxed{\\frac{1}{2}}", "split": "train", "id": 7,
         "expert": "One over two: \\boxed{\\frac12}", "type": "fractions"},
        {"question": "A $5 toy at 20% off costs?", "answer": "$4", "split": "ood", "type": "money"},
    ])
    task = JsonlTask(path)
    assert task.splits == ("train", "ood")
    half = task.find("7")
    assert half.answer == "\\frac{1}{2}" and task.correct(half, task.expert(half))
    assert task.correct(half, "#### 0.5") and not task.correct(half, "#### 0.25")
    toy = task.problems("ood", 1)[0]
    assert toy.answer == "$4" and task.correct(toy, "#### $4.00") and task.correct(toy, "#### 4")
    with pytest.raises(TaskError, match="no expert response"):
        task.expert(toy)


@pytest.mark.parametrize("lines, match", [
    (["{not json"], "line 1 is not JSON"),
    ([{"question": "q"}], "line 1 lacks a non-empty string 'answer'"),
    (["", {"question": "q", "answer": "1"}, {"answer": "1"}], "line 3 lacks a non-empty string 'question'"),
    ([{"question": "q", "answer": 18}], "line 1 lacks a non-empty string 'answer'"),
    ([{"question": "q", "answer": "1", "split": "test"}], "line 1: unknown split 'test'"),
    (["[1, 2]"], "line 1 is not a JSON object"),
    ([{"question": "q", "answer": "1", "split": "id"}], "no train problems"),
    ([{"question": "q", "answer": "1", "id": "a"}, {"question": "r", "answer": "2", "id": "a"}], "used twice"),
    ([{"question": "q", "answer": "####"}], "no final answer"),
    (["", "   "], "holds no records"),
])
def test_jsonl_bad_input_is_one_line_naming_file_and_line(tmp_path, lines, match):
    path = _write(tmp_path, lines)
    with pytest.raises(TaskError, match=match) as err:
        JsonlTask(path)
    assert "\n" not in str(err.value) and "probs.jsonl" in str(err.value)


def test_jsonl_missing_and_empty_files(tmp_path):
    with pytest.raises(TaskError, match="does not exist"):
        JsonlTask(tmp_path / "nope.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(TaskError, match="holds no records"):
        JsonlTask(empty)


# ------------------------------------------------------------------------------------------ load_task


def test_load_task_round_trips():
    task = load_task(f"jsonl:{SAMPLE}")
    assert isinstance(task, JsonlTask) and task.name == f"jsonl:{SAMPLE}"
    assert load_task(task.name) is task
    gym = load_task("reasoning-gym:basic_arithmetic")
    assert isinstance(gym, ReasoningGymTask) and gym.name == "reasoning-gym:basic_arithmetic"
    assert load_task(gym.name) is gym
    assert gym.describe()["experts"] is False and task.describe()["experts"] is True
    with pytest.raises(TaskError, match="unknown reasoning-gym dataset"):
        load_task("reasoning-gym:no_such_dataset")
    with pytest.raises(TaskError, match="does not exist"):
        load_task("jsonl:/no/such/file.jsonl")
