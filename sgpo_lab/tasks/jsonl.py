"""A local JSONL file of problems as a Task: ``jsonl:PATH``.

One JSON object per line (blank lines skipped):

    {"question": str, "answer": str}                      required
    "split": "train" | "id" | "ood"                       optional; without it, a hash of the question decides
    "type": str                                           the problem type (family); default: the file's stem
    "strategy": str                                       a card text for its type (the first one a type has
                                                          serves every problem of that type that has none)
    "expert": str                                         an expert response (SFT and LUFFY imitate it)
    "id": str | int                                       default: "<file stem>-<line number>"

The gold answer is the text after the last ``####`` (GSM8K: "reasoning ... #### 18"), else the content of the
last ``\\boxed{...}`` (MATH), else the whole answer. Where a record has no ``expert``, an answer that holds
reasoning before its ``####`` or ``\\boxed{}`` serves as the expert response (GSM8K's ``<<...>>`` calculator
notes removed). Records without a split go about 80% to train and 20% to id by a hash of the question, so a
problem keeps its split when the file grows; if that leaves train or id empty, the question with the lowest
hash moves over, so a small file still has both. Completions are graded with ``math_equal``.

This file knows files, records and the Task interface: no model, tokenizer or trainer.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from sgpo_lab.tasks.answers import boxed_content, extract_final_answer, math_equal
from sgpo_lab.tasks.base import MAX_PROBLEMS, SPLITS, Problem, Task, TaskError, check_count

MAX_JSONL_BYTES = 50_000_000
ID_SHARE = 0.2  # records without a split that go to id
_CALCULATOR_NOTE = re.compile(r"<<[^<>\n]*>>")
_EXAMPLE = '{"question": "...", "answer": "... #### 18"}'


def hash_split(question: str) -> tuple[str, int]:
    """The split a question without one goes to, and the hash that decided it (stable across runs)."""
    h = int.from_bytes(hashlib.sha256(question.strip().encode("utf-8")).digest()[:8], "big")
    return ("id" if h % 1000 < ID_SHARE * 1000 else "train"), h


def gold_and_solution(answer: str) -> tuple[str, str | None]:
    """The gold final answer of a record's ``answer`` and, where it holds reasoning, the worked solution."""
    text = answer.strip()
    if "####" in text:
        before, gold = text.rsplit("####", 1)
        gold = gold.strip()
        return gold, (_CALCULATOR_NOTE.sub("", text) if before.strip() else None)
    boxed = boxed_content(text)
    if boxed is not None:
        has_reasoning = bool(text.replace(f"\\boxed{{{boxed}}}", "").strip(" .$\n"))
        return boxed.strip(), (text if has_reasoning else None)
    return text, None


class JsonlTask(Task):
    """Problems read from a JSONL file once, graded by ``math_equal`` against the gold final answer."""

    def __init__(self, path: str | Path):
        self.path = Path(str(path).strip()).expanduser()
        self.name = f"jsonl:{path}"
        where = f"JSONL task file {str(self.path)!r}"
        try:
            usable = bool(str(path).strip()) and "\x00" not in str(path) and self.path.is_file()
            size = self.path.stat().st_size if usable else 0
        except OSError:  # a name too long for the filesystem, a folder that cannot be read, ...
            usable, size = False, 0
        if not usable:
            raise TaskError(f"{where[:200]} does not exist or is not a file; expected jsonl:PATH to a file of "
                            f"records such as {_EXAMPLE}")
        if size > MAX_JSONL_BYTES:
            raise TaskError(f"{where} is over {MAX_JSONL_BYTES // 1_000_000} MB; expected a smaller JSONL file")
        stem = self.path.stem or "default"
        records = self._read(where, stem)
        if not records:
            raise TaskError(f"{where} holds no records; expected one JSON object per line such as {_EXAMPLE}")
        self._assign_splits(records)
        cards: dict[str, str] = {}
        for rec in records:
            if rec["strategy"]:
                cards.setdefault(rec["family"], rec["strategy"])
        self._by_split: dict[str, list[Problem]] = {s: [] for s in SPLITS}
        self._by_id: dict[str, Problem] = {}
        for rec in records:
            gold, solution = gold_and_solution(rec["answer"])
            if not gold:
                raise TaskError(f"{where} line {rec['line']}: the answer has no final answer; expected e.g. "
                                "'... #### 18', '\\boxed{18}' or '18'")
            problem = Problem(id=rec["id"], family=rec["family"], split=rec["split"], question=rec["question"],
                              answer=gold, expert_response=rec["expert"] or solution,
                              strategy=rec["strategy"] or cards.get(rec["family"], ""))
            if problem.id in self._by_id:
                raise TaskError(f"{where} line {rec['line']}: id {problem.id!r} is used twice; expected unique ids")
            self._by_id[problem.id] = problem
            self._by_split[problem.split].append(problem)
        if not self._by_split["train"]:
            raise TaskError(f"{where} has no train problems; expected some records with \"split\": \"train\" "
                            "or without a split")
        self.splits = tuple(s for s in SPLITS if self._by_split[s])
        self.families = tuple(dict.fromkeys(r["family"] for r in records))
        n_by = ", ".join(f"{len(self._by_split[s])} {s}" for s in self.splits)
        self.description = (f"problems from {self.path.name} ({n_by}; types: {', '.join(self.families)}), "
                            "graded with math-verify against the final answer")

    # ------------------------------------------------------------------------------- reading

    def _read(self, where: str, stem: str) -> list[dict[str, Any]]:
        records = []
        with self.path.open(encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    raise TaskError(f"{where} line {n} is not JSON; expected one object per line such as "
                                    f"{_EXAMPLE}") from None
                records.append(self._check(rec, where, n, stem))
                if len(records) > MAX_PROBLEMS:
                    raise TaskError(f"{where} holds over {MAX_PROBLEMS} records; expected a smaller file")
        return records

    @staticmethod
    def _check(rec: Any, where: str, n: int, stem: str) -> dict[str, Any]:
        at = f"{where} line {n}"
        if not isinstance(rec, dict):
            raise TaskError(f"{at} is not a JSON object; expected e.g. {_EXAMPLE}")
        for key in ("question", "answer"):
            if not isinstance(rec.get(key), str) or not rec[key].strip():
                raise TaskError(f"{at} lacks a non-empty string {key!r}; expected e.g. {_EXAMPLE}")
        for key in ("type", "strategy", "expert"):
            if rec.get(key) is not None and not isinstance(rec[key], str):
                raise TaskError(f"{at}: {key!r} is {type(rec[key]).__name__}; expected a string")
        split = rec.get("split")
        if split is not None and split not in SPLITS:
            raise TaskError(f"{at}: unknown split {split!r}; expected one of: {', '.join(SPLITS)} (or no split)")
        rid = rec.get("id")
        if rid is not None and (isinstance(rid, bool) or not isinstance(rid, (str, int)) or not str(rid).strip()):
            raise TaskError(f"{at}: id {rid!r} is not a string or an integer; expected a unique id")
        return {"line": n, "question": rec["question"].strip(), "answer": rec["answer"],
                "split": split, "family": (rec.get("type") or "").strip() or stem,
                "strategy": (rec.get("strategy") or "").strip(), "expert": (rec.get("expert") or "").strip() or None,
                "id": str(rid).strip() if rid is not None else f"{stem}-{n:04d}"}

    @staticmethod
    def _assign_splits(records: list[dict[str, Any]]) -> None:
        unsplit: dict[str, int] = {}
        for rec in records:
            if rec["split"] is None:
                rec["split"], unsplit[rec["question"]] = hash_split(rec["question"])
        if len(unsplit) < 2:
            return
        # a small file might hash all one way: move the lowest-hash question so train and id both exist
        for empty in ("train", "id"):
            if not any(r["split"] == empty for r in records):
                mover = min(unsplit, key=unsplit.get)
                for rec in records:
                    if rec["question"] == mover:
                        rec["split"] = empty

    # ------------------------------------------------------------------------------- problems

    def problems(self, split: str, n: int, *, families: list[str] | None = None) -> list[Problem]:
        self.check_split(split)
        check_count(n)
        out: list[Problem] = []
        for fam in self.check_families(families):
            out += [p for p in self._by_split[split] if p.family == fam][:n]
        return out

    def split_size(self, split: str, family: str) -> int | None:
        return sum(p.family == family for p in self._by_split.get(split, []))

    def find(self, problem_id: str) -> Problem | None:
        return self._by_id.get(problem_id.strip())

    # ------------------------------------------------------------------------------- grading

    def extract_answer(self, completion: str) -> str | None:
        return extract_final_answer(completion)

    def score(self, problem: Problem, completion: str) -> float:
        answer = self.extract_answer(completion)
        return 1.0 if answer is not None and math_equal(answer, problem.answer) else 0.0

    # ------------------------------------------------------------------------------- cards and experts

    def has_experts(self) -> bool:
        return any(p.expert_response for p in self._by_id.values())
