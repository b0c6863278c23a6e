"""Correctness shown: the Strategy World's gold answer of any typed question, each written step checked, and the
world's notations explained in words.

The world's four question formats (``sgpo_lab.world.tasks``) are parsed back into their parameters, so a typed
question such as ``sum 3 8 5 2`` has a gold answer the page can show and grade against. A completion's steps are
checked as arithmetic (``12+5=17``, ``47/5=9r2``), as a tally (``9:1``: after 9, one number so far is over the
threshold) and as guess and check (``x2:11<17``: x = 2 gives 11, less than 17). A completion whose final answer is
right while a step is wrong is worth a note: the verifier only reads what follows the last ``#``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SUM = re.compile(r"^\s*sum((?:\s+-?\d+)+)\s*$")
_COUNT = re.compile(r"^\s*count\s+over\s+(-?\d+)\s+in((?:\s+-?\d+)+)\s*$")
_EQUATION = re.compile(r"^\s*(\d+)\s*x\s*\+\s*(\d+)\s*=\s*(-?\d+)\s*$")
_MUL = re.compile(r"^\s*(\d+)\s*\*\s*(\d+)\s*$")
_ARITH = re.compile(r"(?<![\w.])(\d+)([+\-*/])(\d+)=(\d+)(?:r(\d+))?")
_TALLY = re.compile(r"(?<![\w:])(\d+):(\d+)(?![\d<=>])")
_GUESS = re.compile(r"x(\d+):(-?\d+)([<=>])(-?\d+)")
MAX_NUMBERS = 40  # a typed question with more numbers than this is not a world question


@dataclass(frozen=True)
class Parsed:
    family: str
    params: dict
    answer: str


def parse_question(question: str) -> Parsed | None:
    """The family, parameters and gold answer of a question in one of the world's formats, or None."""
    text = " ".join(str(question).split())
    if m := _SUM.match(text):
        xs = [int(v) for v in m.group(1).split()]
        return Parsed("sum", {"xs": xs}, str(sum(xs))) if len(xs) <= MAX_NUMBERS else None
    if m := _COUNT.match(text):
        t, xs = int(m.group(1)), [int(v) for v in m.group(2).split()]
        return Parsed("count", {"t": t, "xs": xs}, str(sum(x > t for x in xs))) if len(xs) <= MAX_NUMBERS else None
    if m := _EQUATION.match(text):
        a, b, c = (int(g) for g in m.groups())
        if a == 0 or (c - b) % a:
            return None  # no whole-number x: not a question of the world
        return Parsed("equation", {"a": a, "b": b, "c": c}, str((c - b) // a))
    if m := _MUL.match(text):
        n, d = int(m.group(1)), int(m.group(2))
        return Parsed("mul", {"n": n, "d": d}, str(n * d)) if len(m.group(1)) <= 12 else None
    return None


def gold_answer(question: str) -> str | None:
    """The gold answer of a typed world question (``sum 3 8 5 2`` -> ``18``), or None when it is not one."""
    parsed = parse_question(question)
    return parsed.answer if parsed else None


def _arith_ok(a: int, op: str, b: int, c: int, r: str | None) -> bool:
    if op == "+":
        return a + b == c and r is None
    if op == "-":
        return a - b == c and r is None
    if op == "*":
        return a * b == c and r is None
    if b == 0:
        return False
    return a // b == c and a % b == int(r or 0)


def wrong_steps(question: str, completion: str) -> list[str]:
    """The written steps of ``completion`` that are wrong (as written), for a world question; [] when all hold.

    Arithmetic steps are checked everywhere; a tally is checked against the question's threshold (in either
    direction), a guess against the equation. Steps of a misconception are wrong only where their arithmetic is:
    ``ends 3+2=5`` is a correct sum of the wrong numbers (the answer is what shows that).
    """
    body = str(completion).split("#")[0] if "#" in str(completion) else str(completion)
    bad = []
    for m in _ARITH.finditer(body):
        a, op, b, c, r = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4)), m.group(5)
        if not _arith_ok(a, op, b, c, r):
            bad.append(m.group(0))
    parsed = parse_question(question)
    if parsed is None:
        return bad
    if parsed.family == "count":
        t = parsed.params["t"]
        steps = [(m.group(0), int(m.group(1)), int(m.group(2))) for m in _TALLY.finditer(body)]

        def errors(keep) -> list[str]:  # a tally keeps one rule throughout: over t (the strategy) or under t
            count, out = 0, []
            for text, x, k in steps:
                if k != count + bool(keep(x)):
                    out.append(text)
                count += bool(keep(x))  # the true tally: one slip is one wrong step
            return out

        bad += min(errors(lambda x: x > t), errors(lambda x: x < t), key=len)
    if parsed.family == "equation":
        a, b, c = parsed.params["a"], parsed.params["b"], parsed.params["c"]
        for m in _GUESS.finditer(body):
            k, value, sign, rhs = int(m.group(1)), int(m.group(2)), m.group(3), int(m.group(4))
            truth = "<" if value < rhs else "=" if value == rhs else ">"
            if value != a * k + b or rhs != c or sign != truth:
                bad.append(m.group(0))
    return bad


def notation_notes(family: str | None, texts: list[str]) -> list[str]:
    """One sentence per world notation that ``texts`` use: what ``9:1``, ``x1:4<8``, ``#``, ``9r2`` mean."""
    joined = " ".join(str(t) for t in texts)
    steps = re.sub(r"#\S*", " ", joined)  # the written steps, without the final answers
    notes = []
    if "#" in joined:
        notes.append("`#17` is the final answer: the verifier reads only what follows the last `#`.")
    if family in (None, "count") and _TALLY.search(steps):
        notes.append("`9:1` is a tally step: after reading 9, the count of numbers over the threshold is 1 "
                     "(`count over 4 in 9 3 5` tallies `9:1 3:1 5:2 #2`).")
    if _GUESS.search(steps):
        notes.append("`x1:4<8` is guess and check: try x = 1, the left side gives 4, which is less than 8; "
                     "the guesses stop at `=`.")
    if re.search(r"\d+/\d+=\d+r\d+", joined):
        notes.append("`47/5=9r2` is a division with its remainder (9, remainder 2): x is not a whole number there.")
    if re.search(r"\b(left|right)\b", joined) and family in (None, "sum"):
        notes.append("`left`/`right` is the decision token of a sum: it commits to a running total from the left "
                     "or from the right.")
    return notes


def verdict_line(correct: bool | None, gold: str | None, question: str, completion: str, *,
                 world: bool) -> str:
    """``✓ right`` / ``✗ wrong`` with the answer given and the gold one, and a note when a step is wrong."""
    from sgpo_lab.world.tasks import extract_answer

    given = extract_answer(str(completion))
    mark = "❔ not graded" if correct is None else "✓ right" if correct else "✗ wrong"
    parts = [mark, f"answer `{given}`" if given is not None else "no final answer (`#`)"]
    if gold is not None:
        parts.append(f"gold `{gold}`")
    line = " · ".join(parts)
    if world:
        bad = wrong_steps(question, completion)
        if bad and correct:
            named = ", ".join(f"`{b}`" for b in bad[:3])
            line += f" · ⚠ right answer, but the step{'s' if len(bad) > 1 else ''} {named} " \
                    f"{'are' if len(bad) > 1 else 'is'} wrong"
        elif bad:
            line += f" · wrong step{'s' if len(bad) > 1 else ''}: {', '.join(f'`{b}`' for b in bad[:3])}"
    return line
