"""The Strategy World: deterministic generators, verified expert responses, clean strategy cards, prompts."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sgpo_lab.world import corpus
from sgpo_lab.world.problems import ID_SIZE, make_problems, world_problems
from sgpo_lab.world.prompts import autonomous_prompt, guided_prompt
from sgpo_lab.world.strategies import all_cards, card_numbers, extract_candidates, make_card, strategy_card
from sgpo_lab.world.tasks import FAMILIES, SPLITS, detect_strategy, extract_answer, get_family, verify

FAMILY_NAMES = list(FAMILIES)


@pytest.mark.parametrize("family", FAMILY_NAMES)
@pytest.mark.parametrize("split", SPLITS)
def test_generators_are_deterministic_by_seed(family, split):
    a = make_problems(family, split, 20, seed=7)
    assert a == make_problems(family, split, 20, seed=7)
    assert a != make_problems(family, split, 20, seed=8)
    assert len({p.question for p in a}) == 20


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_train_and_id_splits_are_disjoint(family):
    train = {p.question for p in make_problems(family, "train", 64)}
    assert train.isdisjoint(p.question for p in make_problems(family, "id", ID_SIZE))


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_ood_is_larger_than_id(family):
    id_len = max(len(p.question) for p in make_problems(family, "id", 50))
    ood_len = min(len(p.question) for p in make_problems(family, "ood", 50))
    assert ood_len >= id_len - 2  # same skill at a larger size: longer lists, more digits
    assert sum(len(p.question) for p in make_problems(family, "ood", 50)) > \
        sum(len(p.question) for p in make_problems(family, "id", 50))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), family=st.sampled_from(FAMILY_NAMES), split=st.sampled_from(SPLITS))
def test_every_method_writes_a_checkable_answer_and_strategies_are_correct(seed, family, split):
    fam = get_family(family)
    params = fam.sample(random.Random(seed), split)
    gold = fam.answer(params)
    for strategy in fam.strategies:
        assert verify(fam.solve(params, strategy), gold), (strategy, params)
        expert = fam.expert[strategy](params)
        assert verify(expert, gold), (strategy, expert)
        assert len(expert) < len(fam.solve(params, strategy)), "the expert is terse: it skips steps"
    for wrong in fam.misconceptions:
        assert extract_answer(fam.solve(params, wrong)) is not None


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), family=st.sampled_from(FAMILY_NAMES), delta=st.integers(1, 9))
def test_corrupted_answers_do_not_verify(seed, family, delta):
    fam = get_family(family)
    params = fam.sample(random.Random(seed), "id")
    gold = fam.answer(params)
    expert = fam.expert[next(iter(fam.strategies))](params)
    corrupted = expert.rsplit("#", 1)[0] + "#" + str(int(gold) + delta)
    assert not verify(corrupted, gold)
    assert not verify(expert.rsplit("#", 1)[0], gold), "no answer mark, no credit"


def test_misconceptions_are_mostly_wrong():
    # they are plausible wrong methods: wrong on most problems (an occasional coincidence is allowed)
    for fam in FAMILIES.values():
        problems = [fam.sample(random.Random(i), "id") for i in range(200)]
        for wrong in fam.misconceptions:
            hits = sum(verify(fam.solve(p, wrong), fam.answer(p)) for p in problems)
            assert hits < 0.35 * len(problems), (fam.name, wrong, hits)


def test_verifier_reads_the_last_answer_mark():
    assert extract_answer(" 3+4=7 #7") == "7"
    assert extract_answer(" #1 then #12\nmore") == "12"
    assert extract_answer("no mark") is None
    assert verify(" x #12 ", "12") and not verify(" x #123", "12")


def test_each_family_has_two_distinct_strategies_and_cards_hold_no_numbers():
    for family, fam in FAMILIES.items():
        assert len(fam.strategies) >= 2
        texts = {strategy_card(family, s) for s in fam.strategies}
        assert len(texts) == len(fam.strategies)
    for card in all_cards():
        assert card.text.startswith("Problem type: ")
        assert "\nStrategy: " in card.text
        assert card_numbers(card.text) == [], card.text
        if card.style == "full":
            assert "\nKey steps: 1. " in card.text


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_no_card_contains_a_problems_numbers(family):
    for p in make_problems(family, "id", 64) + make_problems(family, "ood", 64):
        numbers = set(filter(None, "".join(c if c.isdigit() else " " for c in p.question + p.answer).split()))
        for card in extract_candidates(family, [(p.question, p.expert_response)]):
            assert not numbers & set(card_numbers(card.text))


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_strategy_extraction_recovers_the_experts_method(family):
    problems = make_problems(family, "train", 64)
    detected = [detect_strategy(family, p.expert_response, p.question) for p in problems]
    known = [(d, p.strategy_id) for d, p in zip(detected, problems) if d is not None]
    assert len(known) > 0.6 * len(problems)
    assert all(d == s for d, s in known)
    cands = extract_candidates(family, [(p.question, p.expert_response) for p in problems])
    assert len(cands) >= 5 and len({c.text for c in cands}) == len(cands)
    assert {c.strategy for c in cands} == set(get_family(family).strategies) | {"generic"}


def test_prompt_formats_share_question_and_completion():
    card = strategy_card("sum", "left_to_right")
    assert guided_prompt("sum 1 2 3", card) == card + "\n" + autonomous_prompt("sum 1 2 3")
    assert guided_prompt("sum 1 2 3", "   ") == autonomous_prompt("sum 1 2 3")
    assert autonomous_prompt("sum 1 2 3").endswith("\nA:")


def test_problem_records_carry_what_the_lab_needs():
    p = world_problems("id", 1)[0]
    assert set(p.to_dict()) >= {"id", "family", "split", "question", "answer", "expert_response", "strategy_id"}
    assert p.strategy == strategy_card(p.family, p.strategy_id)


def test_corpus_documents_follow_their_card():
    rng = random.Random(0)
    docs = [corpus.sample_document(rng) for _ in range(400)]
    guided = [d for d in docs if d.guided]
    assert 0.5 < len(guided) / len(docs) < 0.7
    for d in guided:
        assert d.method in FAMILIES[d.family].strategies
        assert d.prompt.startswith("Problem type: ")
    unguided = [d for d in docs if not d.guided]
    share = sum(d.method in FAMILIES[d.family].strategies for d in unguided) / len(unguided)
    assert 0.2 < share < 0.4  # the prior puts most mass on misconceptions


@pytest.mark.parametrize("bad,message", [
    (lambda: get_family("algebra"), "unknown family 'algebra'"),
    (lambda: make_problems("sum", "test", 3), "unknown split 'test'"),
    (lambda: make_problems("sum", "id", ID_SIZE + 1), "problems must be"),
    (lambda: make_card("sum", "guess"), "unknown strategy 'guess'"),
])
def test_bad_world_input_names_what_was_wrong(bad, message):
    with pytest.raises(ValueError, match=message):
        bad()
