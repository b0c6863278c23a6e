"""Strategy cards and strategy extraction.

A strategy card is the abstract, reusable part of an expert solution, with every number and answer
stripped:

    Problem type: <family title>
    Strategy: <the idea>
    Key steps: 1. <step> 2. <step>

Extraction mimics the paper (docs/design.md, "Strategy cards"): a batch of the strong solver's terse responses is
read, the method each used is recognised from the shape of its formula, and candidate cards are
written for the methods found: a full card and a brief card (no key steps) per method, plus a
generic card. ``sgpo_lab.strategies.rank_candidates`` orders them by a measured
criterion, the base model's guided pass rate on held-out problems.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass

from sgpo_lab.world.tasks import FAMILIES, detect_strategy, get_family

# (idea, key steps) per family and strategy: the content of each full card.
_IDEAS: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "sum": {
        "left_to_right": ("running total from the left", ("add the next number to the total", "go on to the end")),
        "right_to_left": ("running total from the right", ("start at the last number", "add numbers leftward")),
    },
    "count": {
        "tally_forward": ("tally from the left", ("read each number in turn", "add one if it is over")),
        "tally_backward": ("tally from the right", ("read numbers from the end", "add one if it is over")),
    },
    "equation": {
        "undo": ("undo the operations", ("subtract the constant", "divide by the coefficient")),
        "guess_check": ("guess and check", ("try x from one upward", "stop when both sides match")),
    },
    "mul": {
        "split_places": ("split by place value", ("multiply each place apart", "add the parts")),
        "repeated_add": ("repeated addition", ("add the number to itself", "repeat as many times as the digit")),
    },
}

GENERIC_IDEA = ("work it out step by step", ("read the problem", "write the answer"))
CARD_STYLES = ("full", "brief", "generic")
_LIST_MARKER = re.compile(r"\b\d\. ")


@dataclass(frozen=True)
class StrategyCard:
    """One candidate strategy card for a family: its method, its style and its text."""

    family: str
    strategy: str  # the method it describes, or "generic"
    style: str  # full | brief | generic
    text: str

    @property
    def card_id(self) -> str:
        return f"{self.family}/{self.strategy}/{self.style}"

    def to_dict(self) -> dict[str, str]:
        return {**asdict(self), "card_id": self.card_id}


def render_card(family: str, idea: str, steps: tuple[str, ...] = ()) -> str:
    """Write a card in the house format; ``steps`` empty gives a brief card."""
    lines = [f"Problem type: {get_family(family).title}", f"Strategy: {idea}"]
    if steps:
        lines.append("Key steps: " + " ".join(f"{i}. {step}" for i, step in enumerate(steps, 1)))
    return "\n".join(lines)


def make_card(family: str, strategy: str, style: str = "full") -> StrategyCard:
    """The card of ``style`` for one of a family's strategies (``strategy="generic"`` for the generic card)."""
    if style not in CARD_STYLES:
        raise ValueError(f"unknown card style {style!r}; expected one of: {', '.join(CARD_STYLES)}")
    fam = get_family(family)
    if style == "generic" or strategy == "generic":
        return StrategyCard(family, "generic", "generic", render_card(family, *GENERIC_IDEA))
    if strategy not in fam.strategies:
        raise ValueError(f"unknown strategy {strategy!r} for {family!r}; expected one of: {', '.join(fam.strategies)}")
    idea, steps = _IDEAS[family][strategy]
    return StrategyCard(family, strategy, style, render_card(family, idea, steps if style == "full" else ()))


def strategy_card(family: str, strategy: str) -> str:
    """The text of the default (full) card for a strategy: the one guided prompts use."""
    return make_card(family, strategy, "full").text


def all_cards() -> list[StrategyCard]:
    """Every full and brief card of every family, then each family's generic card."""
    cards = [make_card(f, s, style) for f in FAMILIES for s in FAMILIES[f].strategies for style in ("full", "brief")]
    return cards + [make_card(f, "generic") for f in FAMILIES]


def extract_candidates(family: str, expert_responses: list[tuple[str, str]]) -> list[StrategyCard]:
    """Abstract terse expert responses into candidate cards (most used method first).

    ``expert_responses`` holds (question, response) pairs. Each response's method is read from its shape
    (``detect_strategy``); no text of any response enters a card, so no problem's numbers can leak into one.
    """
    found = Counter(s for s in (detect_strategy(family, r, q) for q, r in expert_responses) if s is not None)
    candidates = [make_card(family, s, style) for s, _ in found.most_common() for style in ("full", "brief")]
    return candidates + [make_card(family, "generic")]


def card_numbers(text: str) -> list[str]:
    """Digits in a card other than its list markers ("1. ", "2. "): must be empty for every card."""
    return re.findall(r"\d+", _LIST_MARKER.sub("", text))


def resolve_strategy(spec: str) -> str:
    """A card text from ``family/strategy[/style]`` (e.g. ``sum/left_to_right``), or ``spec`` itself as card text."""
    parts = spec.strip().split("/")
    if len(parts) in (2, 3) and parts[0] in FAMILIES and "\n" not in spec:
        return make_card(*parts).text
    return spec
