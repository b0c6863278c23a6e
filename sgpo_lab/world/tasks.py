"""The four task families of the Strategy World: generators, methods, expert solver, verifier.

Every family is a small procedure that a character-level model can execute step by step, and
that it can also get wrong in a few *plausible* ways. Each family has:

- a generator of problem parameters for the ID split and a larger OOD split (same skill, bigger size);
- two or more **strategies**: correct methods, each written out step by step (what a guided model does);
- one or more **misconceptions**: plausible but wrong methods, executed just as carefully;
- an **expert** response per strategy: correct and terse, it skips the steps a small model cannot skip
  (these are the trajectories SFT and LUFFY imitate);
- a verifier: the answer is whatever follows the last ``#`` of a completion.

The pretraining corpus (``corpus.py``) decides how often each method follows an unguided question;
this file only knows how to write each method. It knows nothing of models or tokenizers.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

Params = dict[str, object]
Writer = Callable[[Params], str]

ANSWER_MARK = "#"
SPLITS = ("train", "id", "ood")


def extract_answer(completion: str) -> str | None:
    """The text after the last ``#`` up to the end of its line, stripped; None if there is no ``#``."""
    if ANSWER_MARK not in completion:
        return None
    return completion.rsplit(ANSWER_MARK, 1)[1].split("\n", 1)[0].strip()


def verify(completion: str, answer: str) -> bool:
    """R(y, a*) in {0, 1}: True when the completion's final answer equals the gold answer exactly."""
    return extract_answer(completion) == answer


@dataclass(frozen=True)
class Family:
    """One task family: how to make its problems and how each method writes a solution."""

    name: str
    title: str  # the "Problem type" line of its strategy cards
    sample: Callable[[random.Random, str], Params]  # (rng, split) -> params
    question: Callable[[Params], str]
    answer: Callable[[Params], str]
    strategies: dict[str, Writer]  # correct methods, step by step
    misconceptions: dict[str, Writer]  # plausible wrong methods, step by step
    expert: dict[str, Writer]  # terse expert response per strategy

    def solve(self, params: Params, method: str) -> str:
        """The completion text (leading space, steps, ``#answer``) that ``method`` writes for ``params``."""
        writer = self.strategies.get(method) or self.misconceptions.get(method)
        if writer is None:
            allowed = ", ".join([*self.strategies, *self.misconceptions])
            raise ValueError(f"unknown method {method!r} for family {self.name!r}; expected one of: {allowed}")
        return writer(params)

    @property
    def methods(self) -> list[str]:
        return [*self.strategies, *self.misconceptions]


def _final(steps: str, answer: object) -> str:
    return f" {steps} {ANSWER_MARK}{answer}" if steps else f" {ANSWER_MARK}{answer}"


# --------------------------------------------------------------------------------------------- sum
# "sum 3 8 5 2": add a short list of distinct digits.


def _sum_sample(rng: random.Random, split: str) -> Params:
    n = rng.randint(3, 4) if split != "ood" else rng.randint(5, 6)
    return {"xs": rng.sample(range(1, 10), n)}  # distinct digits: each step's next number is unambiguous


def _running(xs: list[int]) -> str:
    total, steps = xs[0], []
    for x in xs[1:]:
        steps.append(f"{total}+{x}={total + x}")
        total += x
    return " ".join(steps)


SUM = Family(
    name="sum",
    title="list sum",
    sample=_sum_sample,
    question=lambda p: "sum " + " ".join(map(str, p["xs"])),
    answer=lambda p: str(sum(p["xs"])),
    # Each method opens with a word that commits to it (``left``/``right``, ``ends``, ``count``, ``max``): the first
    # token is the decision, and the steps after it follow one direction (no drifting between the two totals).
    strategies={
        "left_to_right": lambda p: _final("left " + _running(p["xs"]), sum(p["xs"])),
        "right_to_left": lambda p: _final("right " + _running(p["xs"][::-1]), sum(p["xs"])),
    },
    misconceptions={
        "first_last": lambda p: _final(f"ends {p['xs'][0]}+{p['xs'][-1]}={p['xs'][0] + p['xs'][-1]}",
                                       p["xs"][0] + p["xs"][-1]),
        "count": lambda p: _final(f"count {len(p['xs'])}", len(p["xs"])),
        "largest": lambda p: _final(f"max {max(p['xs'])}", max(p["xs"])),
    },
    expert={
        "left_to_right": lambda p: _final("(" * (len(p["xs"]) - 2) + str(p["xs"][0]) + "".join(
            f"+{x})" for x in p["xs"][1:-1]) + f"+{p['xs'][-1]}", sum(p["xs"])),
        "right_to_left": lambda p: _final("".join(f"{x}+(" for x in p["xs"][:-2]) + f"{p['xs'][-2]}+{p['xs'][-1]}"
                                          + ")" * (len(p["xs"]) - 2), sum(p["xs"])),
    },
)

# ------------------------------------------------------------------------------------------- count
# "count over 4 in 3 8 1 9 6": how many numbers of a list of distinct digits exceed a threshold.


def _count_sample(rng: random.Random, split: str) -> Params:
    n = rng.randint(4, 6) if split != "ood" else rng.randint(7, 8)
    return {"xs": rng.sample(range(1, 10), n), "t": rng.randint(2, 7)}


def _tally(xs: list[int], keep) -> str:
    count, steps = 0, []
    for x in xs:
        count += bool(keep(x))
        steps.append(f"{x}:{count}")
    return " ".join(steps)


def _over(p: Params) -> int:
    return sum(x > p["t"] for x in p["xs"])


COUNT = Family(
    name="count",
    title="counting",
    sample=_count_sample,
    question=lambda p: f"count over {p['t']} in " + " ".join(map(str, p["xs"])),
    answer=lambda p: str(_over(p)),
    strategies={
        "tally_forward": lambda p: _final(_tally(p["xs"], lambda x: x > p["t"]), _over(p)),
        "tally_backward": lambda p: _final(_tally(p["xs"][::-1], lambda x: x > p["t"]), _over(p)),
    },
    misconceptions={
        "all_numbers": lambda p: _final(f"{len(p['xs'])} numbers", len(p["xs"])),
        "count_under": lambda p: _final(_tally(p["xs"], lambda x: x < p["t"]), sum(x < p["t"] for x in p["xs"])),
        "first_over": lambda p: _final(f"first {next((x for x in p['xs'] if x > p['t']), 0)}",
                                       next((x for x in p["xs"] if x > p["t"]), 0)),
    },
    expert={
        "tally_forward": lambda p: _final("over: " + ",".join(str(x) for x in p["xs"] if x > p["t"]), _over(p)),
        "tally_backward": lambda p: _final("over: " + ",".join(str(x) for x in p["xs"][::-1] if x > p["t"]),
                                           _over(p)),
    },
)

# ---------------------------------------------------------------------------------------- equation
# "3x+5=17": solve a one-step linear equation for a whole number x.


def _equation_sample(rng: random.Random, split: str) -> Params:
    a = rng.randint(2, 5)
    x = rng.randint(2, 9) if split != "ood" else rng.randint(10, 14)
    b = rng.randint(1, 9)
    return {"a": a, "x": x, "b": b, "c": a * x + b}


def _guess_check(p: Params) -> str:
    a, b, c = p["a"], p["b"], p["c"]
    return " ".join(f"x{k}:{a * k + b}{'<' if a * k + b < c else '='}{c}" for k in range(1, p["x"] + 1))


def _divide(n: int, d: int) -> str:
    """``n/d`` written with its remainder: ``47/5=9r2`` (a wrong method never lands on x by accident)."""
    return f"{n // d}r{n % d}" if n % d else str(n // d)


EQUATION = Family(
    name="equation",
    title="linear equation",
    sample=_equation_sample,
    question=lambda p: f"{p['a']}x+{p['b']}={p['c']}",
    answer=lambda p: str(p["x"]),
    strategies={
        "undo": lambda p: _final(f"{p['c']}-{p['b']}={p['c'] - p['b']} {p['c'] - p['b']}/{p['a']}={p['x']}", p["x"]),
        "guess_check": lambda p: _final(_guess_check(p), p["x"]),
    },
    misconceptions={
        "forget_divide": lambda p: _final(f"{p['c']}-{p['b']}={p['c'] - p['b']}", p["c"] - p["b"]),
        "ignore_constant": lambda p: _final(f"{p['c']}/{p['a']}={_divide(p['c'], p['a'])}", _divide(p["c"], p["a"])),
        "wrong_sign": lambda p: _final(
            f"{p['c']}+{p['b']}={p['c'] + p['b']} {p['c'] + p['b']}/{p['a']}={_divide(p['c'] + p['b'], p['a'])}",
            _divide(p["c"] + p["b"], p["a"])),
    },
    expert={
        "undo": lambda p: _final(f"x=({p['c']}-{p['b']})/{p['a']}", p["x"]),
        "guess_check": lambda p: _final(f"{p['a']}*{p['x']}+{p['b']}={p['c']}", p["x"]),
    },
)

# --------------------------------------------------------------------------------------------- mul
# "23*4": multiply a number by one digit.


def _mul_sample(rng: random.Random, split: str) -> Params:
    n = rng.randint(11, 59) if split != "ood" else rng.randint(101, 199)
    return {"n": n, "d": rng.randint(2, 4)}


def _place_parts(n: int) -> list[int]:
    digits = str(n)
    return [int(ch) * 10 ** (len(digits) - i - 1) for i, ch in enumerate(digits) if ch != "0"]


def _split(p: Params) -> str:
    n, d = p["n"], p["d"]
    parts = _place_parts(n)
    steps = [f"{part}*{d}={part * d}" for part in parts]
    total = parts[0] * d
    for part in parts[1:]:
        steps.append(f"{total}+{part * d}={total + part * d}")
        total += part * d
    return " ".join(steps)


def _repeat(p: Params) -> str:
    n, d = p["n"], p["d"]
    return " ".join(f"{n * k - n}+{n}={n * k}" for k in range(2, d + 1))


MUL = Family(
    name="mul",
    title="multiplication",
    sample=_mul_sample,
    question=lambda p: f"{p['n']}*{p['d']}",
    answer=lambda p: str(p["n"] * p["d"]),
    strategies={
        "split_places": lambda p: _final(_split(p), p["n"] * p["d"]),
        "repeated_add": lambda p: _final(_repeat(p), p["n"] * p["d"]),
    },
    misconceptions={
        "digitwise": lambda p: _final(" ".join(f"{ch}*{p['d']}={int(ch) * p['d']}" for ch in str(p["n"])),
                                      "".join(str(int(ch) * p["d"]) for ch in str(p["n"]))),
        "add_instead": lambda p: _final(f"{p['n']}+{p['d']}={p['n'] + p['d']}", p["n"] + p["d"]),
    },
    expert={
        "split_places": lambda p: _final("+".join(f"{part}*{p['d']}" for part in _place_parts(p["n"])),
                                         p["n"] * p["d"]),
        "repeated_add": lambda p: _final("+".join([str(p["n"])] * p["d"]), p["n"] * p["d"]),
    },
)

FAMILIES: dict[str, Family] = {f.name: f for f in (SUM, COUNT, EQUATION, MUL)}


def get_family(name: str) -> Family:
    """The family called ``name``; a one-line error naming the known families otherwise."""
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; expected one of: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of: {', '.join(SPLITS)}")
    return split


# The expert's method can be read off its terse response: the shape of the formula shows it.
_EXPERT_SHAPES: dict[str, list[tuple[str, re.Pattern[str]]]] = {
    "sum": [("left_to_right", re.compile(r"^ \(|^ \d\+\d #")), ("right_to_left", re.compile(r"\+\("))],
    "equation": [("undo", re.compile(r"x=\(")), ("guess_check", re.compile(r"\d\*\d+\+\d+="))],
    "mul": [("split_places", re.compile(r"\*")), ("repeated_add", re.compile(r"^ \d+(\+\d+)+ #"))],
}


def _count_direction(expert_response: str, question: str) -> str | None:
    listed = re.findall(r"\d", expert_response.split("#")[0])
    order = [ch for ch in question.split(" in ", 1)[-1] if ch.isdigit() and ch in listed]
    if len(listed) < 2:
        return None  # zero or one number over the threshold reads the same both ways
    return "tally_forward" if listed == order else "tally_backward"


def detect_strategy(family: str, expert_response: str, question: str | None = None) -> str | None:
    """Which strategy a terse expert response used, read from its shape (None if it cannot tell).

    ``count`` needs the question too: the order in which the expert lists the numbers tells the direction.
    """
    if family == "count":
        return None if question is None else _count_direction(expert_response, question)
    for strategy, pattern in _EXPERT_SHAPES[family]:
        if pattern.search(expert_response):
            return strategy
    return None
