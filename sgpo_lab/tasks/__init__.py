"""Tasks a user can name: ``load_task(spec)`` turns a spec into a ``Task``.

    world                       the Strategy World (the default), all four families
    world:sum,count             a subset of its families
    reasoning-gym:DATASET       any reasoning-gym dataset (splits from disjoint seeds, graded by its score_answer)
    jsonl:PATH                  a local file of {"question", "answer"} records (GSM8K "#### n" or MATH \\boxed{})
    module:function             ``module.function()`` returns a Task (anything else)

``TASK_KINDS`` lists them for ``sgpo-lab tasks``; a bad spec is a one-line ``TaskError``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from sgpo_lab.tasks.base import MAX_PROBLEMS, SPLITS, FunctionTask, Problem, Task, TaskError, check_count

DEFAULT_TASK = "world"
TASK_KINDS: dict[str, str] = {
    "world": "the Strategy World (default); world:sum,count for a subset of its families",
    "reasoning-gym:DATASET": "any reasoning-gym dataset, e.g. reasoning-gym:basic_arithmetic (graded by its "
                             "own score_answer, correct at 1.0)",
    "jsonl:PATH": "a local JSONL file of {question, answer} records (optional split, type, strategy, expert), "
                  "graded with math-verify",
    "module:function": "a Python function that returns a sgpo_lab.tasks.Task (e.g. mytasks:make_task)",
}

__all__ = ["DEFAULT_TASK", "MAX_PROBLEMS", "SPLITS", "TASK_KINDS", "FunctionTask", "Problem", "Task", "TaskError",
           "check_count", "load_task"]

_CACHE: dict[str, Task] = {}


def load_task(spec: str | Task | None = None) -> Task:
    """The task a spec names (a Task passes through); cached per spec, so a run and its views share one."""
    if isinstance(spec, Task):
        return spec
    spec = (spec or DEFAULT_TASK).strip()
    if spec not in _CACHE:
        _CACHE[spec] = _build(spec)
    return _CACHE[spec]


def _build(spec: str) -> Task:
    kind, _, arg = spec.partition(":")
    if kind == "world":
        from sgpo_lab.tasks.world import WorldTask

        return WorldTask([f.strip() for f in arg.split(",") if f.strip()] or None)
    if kind == "reasoning-gym":
        from sgpo_lab.tasks.reasoning_gym import ReasoningGymTask

        return ReasoningGymTask(arg)
    if kind == "jsonl":
        from sgpo_lab.tasks.jsonl import JsonlTask

        return JsonlTask(arg)
    if kind and arg and "/" not in kind and "\\" not in kind and kind.replace(".", "").replace("_", "").isalnum():
        return _from_module(kind, arg)
    raise TaskError(f"unknown task {spec!r}; expected one of: {', '.join(TASK_KINDS)}")


def _from_module(module: str, function: str) -> Task:
    """``module:function``: import (the working directory first, as ``python -m`` would) and call."""
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        mod = importlib.import_module(module)
    except ImportError as err:
        raise TaskError(f"cannot import module {module!r} for task {module}:{function} ({err}); expected an "
                        "importable module (a .py file in the working directory or an installed package)") from None
    fn = getattr(mod, function, None)
    if not callable(fn):
        raise TaskError(f"module {module!r} has no function {function!r}; expected {module}:FUNCTION returning a Task")
    task = fn()
    if not isinstance(task, Task):
        raise TaskError(f"{module}:{function}() returned {type(task).__name__}; expected a sgpo_lab.tasks.Task")
    if task.name in ("task", "custom"):
        task.name = f"{module}:{function}"
    return task
