"""The ``sgpo-lab`` command line: a thin face over the library.

Every command turns bad input into one line on stderr and a non-zero exit; no bare traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="sgpo-lab: learn, inspect and reproduce Strategy-Guided Policy Optimization on a CPU.")

USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, PermissionError, NotADirectoryError, IsADirectoryError)


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _table(rows: list[dict], columns: list[str]) -> str:
    cells = [[c for c in columns]] + [[_fmt(r[c]) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(v) -> str:
    return f"{100 * v:.1f}%" if isinstance(v, float) else str(v)


@app.command()
def pretrain(
    size: str = typer.Option("small", help="model size: tiny | small | medium"),
    out: Path = typer.Option(..., help="directory to write the model to (save_pretrained + pretrain.json)"),
    steps: Optional[int] = typer.Option(None, help="optimizer steps (default: the size's recipe)"),
    seed: int = typer.Option(0, help="seed for init and corpus"),
    overwrite: bool = typer.Option(False, help="replace an existing model directory"),
) -> None:
    """Pretrain a base model on the Strategy World corpus."""
    from sgpo_lab.pretrain import recipe, pretrain as run_pretrain

    cfg = recipe(size, seed=seed, steps=steps)
    if (out / "config.json").exists() and not overwrite:
        fail(f"{out} already holds a model; pass --overwrite to replace it")
    record = run_pretrain(cfg, out, command=" ".join(["sgpo-lab", "pretrain", *sys.argv[2:]]))
    typer.echo(f"saved {record['parameters']:,}-parameter model to {out} in {record['seconds']:.0f} s "
               f"(final loss {record['final_loss']})")


@app.command("world-report")
def world_report_cmd(
    size: str = typer.Option("small", "--size", "--model", help="a size name, a run or checkpoint dir, or a model dir"),
    problems: int = typer.Option(32, help="problems per family and split"),
    samples: int = typer.Option(8, help="samples per problem (temperature 1)"),
    seed: int = typer.Option(0),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Unguided and guided pass rates of a model, per family and split."""
    from sgpo_lab.evaluate import world_report
    from sgpo_lab.models import load_model

    model, tokenizer = load_model(size)
    rows = world_report(model, tokenizer, n_problems=problems, n_samples=samples, seed=seed)
    for split in ("id", "ood"):
        part = [r for r in rows if r["split"] == split]
        rows.append({"family": "average", "split": split,
                     "unguided": sum(r["unguided"] for r in part) / len(part),
                     "guided": sum(r["guided"] for r in part) / len(part)})
    for r in rows:
        r["gap"] = r["guided"] - r["unguided"]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo(_table(rows, ["family", "split", "unguided", "guided", "gap"]))


def main() -> None:
    """Console entry point: user errors become one line and exit code 2."""
    try:
        app()
    except USER_ERRORS as err:
        typer.echo(f"error: {str(err).splitlines()[0] if str(err) else type(err).__name__}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
