"""Final-answer extraction and math grading, shared by the tasks that grade free-text answers.

``extract_final_answer`` reads the answer a completion wrote (``<answer>...</answer>``, ``\\boxed{...}``,
``#### n`` or ``# n``); ``math_equal`` decides whether two answers are the same number or expression, with a
plain-number fast path and math-verify for the rest. Both are safe to call from any thread.

This file knows answers as strings: no task, problem, model or tokenizer.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

# Answers longer than this (after normalisation) are not handed to sympy: a final answer is short, and a long
# string is where parsing can run away. Identical strings still compare equal, whatever their length.
MAX_MATH_CHARS = 300

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
# a number followed by unit words ("18 dollars", "4.5 km per hour"): the number is the answer
_NUMBER_THEN_UNITS = re.compile(r"([-+]?\d[\d,]*(?:\.\d+)?)\s*((?:[A-Za-z]{2,}\.?\s*)+)")
_NOT_UNITS = {"pi", "sqrt", "frac", "times", "cdot", "mod", "or", "and"}

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ extraction


def boxed_content(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` in ``text`` (braces balanced), or None if there is none."""
    start = text.rfind("\\boxed")
    while start != -1:
        i = start + len("\\boxed")
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[i + 1:j]
        # an unclosed or brace-less \boxed: look at the one before it
        start = text.rfind("\\boxed", 0, start)
    return None


def _after_mark(text: str, mark: str) -> str | None:
    if mark not in text:
        return None
    # only the rest of the line: a model that goes on after its answer (a new "Q:") must not spoil it
    return text.rsplit(mark, 1)[1].split("\n", 1)[0].strip()


def extract_final_answer(completion: str) -> str | None:
    """The final answer a completion wrote, stripped; None if it wrote none.

    In order: the content of the last ``<answer>...</answer>``, the content of the last ``\\boxed{...}``,
    the rest of the line after the last ``####``, the rest of the line after the last ``#``. A format
    that is present but empty gives way to the next one.
    """
    if not isinstance(completion, str):
        return None
    tags = _ANSWER_TAG.findall(completion)
    candidates = [
        tags[-1].strip() if tags else None,
        boxed_content(completion),
        _after_mark(completion, "####"),
        _after_mark(completion, "#"),
    ]
    for found in candidates:
        if found is not None and found.strip():
            return found.strip()
    return None


# ------------------------------------------------------------------------------------------ grading


def normalize_answer(text: str) -> str:
    """A final answer with its wrapping removed: ``#### ``, ``\\boxed{}``, ``$`` signs and delimiters, ``%``,
    a trailing full stop, unit words after a number and thousands commas (``"#### $1,000"`` -> ``"1000"``,
    ``"18 dollars"`` -> ``"18"``)."""
    s = text.strip()
    if "####" in s:
        s = s.rsplit("####", 1)[1].strip()
    boxed = boxed_content(s)
    if boxed is not None:
        s = boxed.strip()
    if s.startswith("\\(") and s.endswith("\\)"):
        s = s[2:-2].strip()
    # "$" is a currency sign ("$18") or a LaTeX delimiter ("$\frac12$"): either way it is not the answer
    s = s.replace("\\$", "").strip().strip("$").strip()
    s = s.removesuffix(".").strip()
    s = s.removesuffix("\\%").removesuffix("%").strip()
    s = s.replace("{,}", ",")
    units = _NUMBER_THEN_UNITS.fullmatch(s)
    if units and not _NOT_UNITS & {w.strip(".").lower() for w in units.group(2).split()}:
        s = units.group(1)
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    return s


def _plain_number(s: str) -> Decimal | None:
    if not _PLAIN_NUMBER.fullmatch(s):
        return None
    try:
        return Decimal(s)
    except InvalidOperation:
        return None


class _QuietTimeoutNotice(logging.Filter):
    """math-verify warns once that its timeout is off; here it is off on purpose (``_bounded`` bounds it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_QuietTimeoutNotice())


def _parse(s: str) -> list:
    from math_verify import parse

    # parsing_timeout=None: math-verify's own timeout is signal.alarm, which raises off the main thread
    # (Streamlit's script thread, a Jupyter kernel's worker); the caller bounds the time instead
    # inside math delimiters the whole answer is read ("1+x^2", "\sqrt{2}/2", "(1,2)"); bare, math-verify
    # takes the first expression it finds ("1+x^2" -> 1), so bare text is only the fallback
    found = parse(f"${s}$", parsing_timeout=None)
    if not any(not isinstance(x, str) for x in found):
        found = parse(s, parsing_timeout=None)
    return found


def _sympy_equal(pred: str, gold: str) -> bool:
    from math_verify import verify

    gold_parsed, pred_parsed = _parse(gold), _parse(pred)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


def _bounded(fn: Callable[[], bool], timeout_s: float | None) -> bool:
    """``fn()`` in a daemon thread, False if it raises or is not done within ``timeout_s`` seconds.

    A thread, not a signal, so that it works from any thread; a daemon, so that a runaway sympy call
    (already made unlikely by MAX_MATH_CHARS) is abandoned rather than blocking the caller or the exit.
    """
    result: list[bool] = []

    def run() -> None:
        try:
            result.append(bool(fn()))
        except Exception:  # a grader crash on a model's odd answer is a wrong answer, not a failed run
            log.debug("math grading failed", exc_info=True)

    worker = threading.Thread(target=run, name="sgpo-math-equal", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        log.warning("math grading took over %ss; counted as not equal", timeout_s)
        return False
    return bool(result and result[0])


def math_equal(pred: str, gold: str, timeout_s: float = 5) -> bool:
    """Whether a predicted final answer equals the gold answer as mathematics.

    Both sides are normalised (``normalize_answer``: ``$``, ``%``, thousands commas, ``####``, ``\\boxed``);
    two plain numbers are compared exactly without sympy ("18" == "18.0" == "$18"); anything else goes to
    math-verify (``\\frac{1}{2}`` == ``0.5``), bounded by ``timeout_s`` seconds and by MAX_MATH_CHARS.
    Safe from any thread. A None or non-string ``pred`` is not equal to anything.
    """
    if not isinstance(pred, str) or not isinstance(gold, str):
        return False
    p, g = normalize_answer(pred), normalize_answer(gold)
    if not p or not g:
        return False
    if p == g:
        return True
    p_num, g_num = _plain_number(p), _plain_number(g)
    if p_num is not None and g_num is not None:
        return p_num == g_num
    if len(p) > MAX_MATH_CHARS or len(g) > MAX_MATH_CHARS:
        return False
    return _bounded(lambda: _sympy_equal(p, g), timeout_s)
