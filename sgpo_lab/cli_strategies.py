"""``sgpo-lab strategies``: extract candidate strategy cards with a strong model, rank them with the student.

    sgpo-lab strategies extract --task world --out cards.jsonl                     (the world's own solver)
    sgpo-lab strategies extract --task jsonl:gsm8k.jsonl --model ./qwen --k 5 --out cards.jsonl
    sgpo-lab strategies rank --task world --model small --cards cards.jsonl --out ranked.jsonl

A thin face over ``sgpo_lab.strategies``: every size is bounded before a model loads, and bad input is a
one-line ValueError (the main CLI prints it as ``error: ...`` and exits 2). Registered by ``sgpo_lab.cli``.
"""

from __future__ import annotations

from pathlib import Path

import typer

strategies_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                             help="Strategy cards for any task: extract candidates with a strong model, rank them "
                                  "by the student's guided pass rate on held-out problems.")


def _check_out(out: Path, overwrite: bool) -> Path:
    out = out.expanduser()
    if out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a directory; expected a path to a .jsonl card file")
    if out.exists() and not overwrite:
        raise ValueError(f"--out {str(out)!r} already exists; pass --overwrite to replace it")
    return out


def _strategy_line(card: str) -> str:
    line = next((ln for ln in card.splitlines() if ln.startswith("Strategy:")), card.splitlines()[0])
    return line.removeprefix("Strategy:").strip()


def _table(rows: list[dict], columns: list[str]) -> str:
    def fmt(v) -> str:
        return f"{100 * v:.1f}%" if isinstance(v, float) else str(v)

    cells = [columns] + [[fmt(r[c]) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@strategies_app.command("extract")
def extract(
    task: str = typer.Option("world", help="task spec: world, world:sum,count, reasoning-gym:NAME, jsonl:PATH, "
                                           "module:function"),
    model: str | None = typer.Option(None, help="the strong model (size name or local HF model dir); optional for "
                                                "the world, whose rule-based solver writes its cards"),
    k: int = typer.Option(5, help="candidate cards sampled per problem type (1-64)"),
    problems_per_type: int = typer.Option(4, help="train problems per type the strong model reads (1-64)"),
    seed: int = typer.Option(0, help="seed of the strong model's sampling"),
    max_new_tokens: int = typer.Option(160, help="tokens the strong model may write per card"),
    out: Path = typer.Option(..., help="the JSONL card file to write"),
    overwrite: bool = typer.Option(False, help="replace an existing --out"),
) -> None:
    """Write candidate strategy cards (k per problem type) with the numbers stripped, as a JSONL card file."""
    from sgpo_lab import strategies as S
    from sgpo_lab.tasks import load_task

    S.check_range(k, 1, S.MAX_K, "--k")
    S.check_range(problems_per_type, 1, S.MAX_PROBLEMS_PER_TYPE, "--problems-per-type")
    S.check_range(max_new_tokens, 1, S.MAX_TOKENS, "--max-new-tokens")
    out = _check_out(out, overwrite)
    the_task = load_task(task)
    strong, tokenizer = None, None
    if model is not None:
        from sgpo_lab.models import load_model

        strong, tokenizer = load_model(model)
    records = S.extract_cards(the_task, strong, tokenizer, k=k, problems_per_type=problems_per_type, seed=seed,
                              max_new_tokens=max_new_tokens, strong_model_name=model)
    S.write_card_file(out, records)
    rows = [{"family": r["family"], "card_id": r["card_id"], "strategy": _strategy_line(r["card"])} for r in records]
    typer.echo(_table(rows, ["family", "card_id", "strategy"]))
    typer.echo(f"wrote {len(records)} cards to {out}")


@strategies_app.command("rank")
def rank(
    task: str = typer.Option("world", help="task spec (as for extract)"),
    model: str = typer.Option("small", help="the student: a size name, a run or checkpoint dir, or a model dir"),
    cards: Path = typer.Option(..., help="a JSONL card file (from 'strategies extract')"),
    problems: int = typer.Option(16, help="held-out problems per type (1-1000)"),
    samples: int = typer.Option(4, help="samples per problem, temperature 1 (1-64)"),
    seed: int = typer.Option(0, help="seed of the student's sampling (the same for every card)"),
    out: Path | None = typer.Option(None, help="write the ranked cards here (JSONL, best first per type)"),
    overwrite: bool = typer.Option(False, help="replace an existing --out"),
) -> None:
    """Rank cards by the student's guided pass rate on held-out problems (unguided rate as the baseline)."""
    from sgpo_lab.cards import read_card_file
    from sgpo_lab.models import load_model
    from sgpo_lab.strategies import MAX_RANK_PROBLEMS, MAX_SAMPLES, check_range, rank_cards, write_card_file
    from sgpo_lab.tasks import load_task

    check_range(problems, 1, MAX_RANK_PROBLEMS, "--problems")
    check_range(samples, 1, MAX_SAMPLES, "--samples")
    if out is not None:
        out = _check_out(out, overwrite)
    records = read_card_file(cards)
    the_task = load_task(task)
    student, tokenizer = load_model(model)
    ranked = rank_cards(the_task, student, tokenizer, records, n_problems=problems, n_samples=samples, seed=seed)
    ranked = [{**r, "student": model} for r in ranked]
    if out is not None:
        write_card_file(out, ranked)
    rank_in: dict[str, int] = {}
    rows = []
    for r in ranked:
        rank_in[r["family"]] = rank_in.get(r["family"], 0) + 1
        rows.append({"family": r["family"], "rank": rank_in[r["family"]], "card_id": r.get("card_id", "-"),
                     "guided": r["guided_pass_rate"], "unguided": r["unguided_pass_rate"],
                     "strategy": _strategy_line(r["card"])})
    typer.echo(_table(rows, ["family", "rank", "card_id", "guided", "unguided", "strategy"]))
    if out is not None:
        typer.echo(f"wrote {len(ranked)} ranked cards to {out}")
