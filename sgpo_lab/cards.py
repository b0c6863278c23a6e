"""Strategy cards as files: the card set a run distils, read from a JSONL file of ranked candidates.

A card file holds one JSON object per line: ``{"family": <problem type>, "card": <text>}`` plus, optionally,
``card_id``, ``guided_pass_rate`` (from ``sgpo-lab strategies rank``) and anything else. A run given
``cards=PATH`` uses, per family, the card with the highest ``guided_pass_rate`` (the first in the file when
none is scored); problem types the file does not cover keep the task's own card.

This file knows tasks and card texts, not models (extraction and ranking live in ``sgpo_lab.strategies``).
"""

from __future__ import annotations

import json
from pathlib import Path

MAX_CARD_FILE_BYTES = 20_000_000
MAX_CARD_CHARS = 4_000


class CardFileError(ValueError):
    """A card file that cannot be read as cards."""


def read_card_file(path: str | Path) -> list[dict]:
    """Every card record of a JSONL card file, checked (one-line ``CardFileError`` naming the bad line)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CardFileError(f"card file {str(path)!r} does not exist or is not a file; expected a JSONL file "
                            "written by 'sgpo-lab strategies extract' or 'rank'")
    if path.stat().st_size > MAX_CARD_FILE_BYTES:
        raise CardFileError(f"card file {str(path)!r} is over {MAX_CARD_FILE_BYTES // 1_000_000} MB; "
                            "expected a small JSONL file of cards")
    records = []
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            raise CardFileError(f"card file {str(path)!r} line {n} is not JSON; expected one object per line "
                                'such as {"family": "sum", "card": "Problem type: ..."}') from None
        if not isinstance(rec, dict) or not isinstance(rec.get("family"), str) or not isinstance(rec.get("card"), str):
            raise CardFileError(f"card file {str(path)!r} line {n} lacks a string 'family' and 'card'; "
                                'expected e.g. {"family": "sum", "card": "Problem type: ..."}')
        if not rec["card"].strip() or len(rec["card"]) > MAX_CARD_CHARS:
            raise CardFileError(f"card file {str(path)!r} line {n}: the card is empty or over {MAX_CARD_CHARS} "
                                "characters; expected a short 'Problem type / Strategy / Key steps' card")
        records.append(rec)
    if not records:
        raise CardFileError(f"card file {str(path)!r} holds no cards; expected one JSON object per line")
    return records


def top_cards(records: list[dict]) -> dict[str, dict]:
    """Per family, its best record: highest ``guided_pass_rate``, else the first in the file."""
    best: dict[str, dict] = {}

    def rate(rec: dict) -> float:
        value = rec.get("guided_pass_rate")
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else -1.0

    for rec in records:  # strictly higher wins: among equal scores, the first in the file
        cur = best.get(rec["family"])
        if cur is None or rate(rec) > rate(cur):
            best[rec["family"]] = rec
    return best


def load_cards(path: str | Path) -> dict[str, str]:
    """Per family, the text of the top-ranked card in a card file."""
    return {family: rec["card"] for family, rec in top_cards(read_card_file(path)).items()}
