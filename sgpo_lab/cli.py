"""The ``sgpo-lab`` command line: a thin face over the library.

Every command turns bad input into one line on stderr and a non-zero exit; no bare traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

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
    steps: int | None = typer.Option(None, help="optimizer steps (default: the size's recipe)"),
    seed: int = typer.Option(0, help="seed for init and corpus"),
    overwrite: bool = typer.Option(False, help="replace an existing model directory"),
) -> None:
    """Pretrain a base model on the Strategy World corpus."""
    from sgpo_lab.pretrain import pretrain as run_pretrain
    from sgpo_lab.pretrain import recipe

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
    family: list[str] = typer.Option([], help="families to report (repeatable; default: all four)"),
    split: list[str] = typer.Option([], help="splits to report: id, ood (repeatable; default: both)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Unguided and guided pass rates of a model, per family and split."""
    from sgpo_lab.evaluate import world_report
    from sgpo_lab.models import load_model
    from sgpo_lab.world.tasks import check_split, get_family

    families = [get_family(f).name for f in family] or None
    splits = tuple(check_split(s) for s in split) or ("id", "ood")
    if "train" in splits:
        fail("split 'train' holds RL training problems; expected id or ood")
    model, tokenizer = load_model(size)
    rows = world_report(model, tokenizer, n_problems=problems, n_samples=samples, seed=seed, splits=splits,
                        families=families)
    for split in splits:
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


@app.command("rank-strategies")
def rank_strategies(
    size: str = typer.Option("small", "--size", "--model", help="a size name or a model dir"),
    problems: int = typer.Option(16, help="held-out problems per family"),
    samples: int = typer.Option(4, help="samples per problem"),
    out: Path | None = typer.Option(None, help="also write the ranking as JSON here"),
) -> None:
    """Rank each family's candidate strategy cards by the model's guided pass rate on held-out problems."""
    from sgpo_lab.models import load_model
    from sgpo_lab.world.ranking import rank_all

    model, tokenizer = load_model(size)
    ranking = rank_all(model, tokenizer, n_problems=problems, n_samples=samples)
    rows = [{"family": f, "rank": i + 1, "card": r["card_id"], "guided": r["guided_pass_rate"]}
            for f, cards in ranking.items() for i, r in enumerate(cards)]
    typer.echo(_table(rows, ["family", "rank", "card", "guided"]))
    if out is not None:
        out.write_text(json.dumps({"model": size, "problems": problems, "samples": samples,
                                   "command": " ".join(["sgpo-lab", *sys.argv[1:]]), "ranking": ranking}, indent=2))


@app.command()
def train(
    method: str = typer.Option("sgpo", help="method or preset (sgpo-lab methods lists them)"),
    model: str | None = typer.Option(None, help="size name, run/checkpoint dir or local HF model dir [small]"),
    steps: int | None = typer.Option(None, help="optimizer steps [60]"),
    seed: int | None = typer.Option(None, help="seed [0]"),
    out: Path = typer.Option(..., help="run directory to write"),
    config: Path | None = typer.Option(None, help="YAML file of TrainConfig fields (flags override it)"),
    resume: bool = typer.Option(False, help="continue an interrupted run from its last checkpoint"),
    overwrite: bool = typer.Option(False, help="replace an existing run directory"),
    set_: list[str] = typer.Option([], "--set", help="any config field, e.g. --set kl_delta=0.5 (repeatable)"),
) -> None:
    """Train a method on the Strategy World and write a run directory (watch it in the app)."""
    from sgpo_lab.config import load_config_file, make_config
    from sgpo_lab.trainer import train as run_train

    fields = _parse_sets(set_)
    fields.update(model=model, steps=steps, seed=seed)
    if resume:
        from sgpo_lab.runs import read_config

        saved = {k: v for k, v in read_config(out).items() if k != "versions"}
        if not saved:
            fail(f"nothing to resume in {str(out)!r}; expected a run directory with config.yaml")
        cfg = make_config(saved.pop("method"), **saved)
    elif config is not None:
        cfg = load_config_file(config, method=method if method != "sgpo" else None, **fields)
    else:
        cfg = make_config(method, **fields)
    try:
        status = run_train(cfg, out, resume=resume, overwrite=overwrite)
    except KeyboardInterrupt:
        fail(f"interrupted; continue with: sgpo-lab train --out {out} --resume", code=130)
    typer.echo(f"{cfg.method}: {status['state']} at step {status['step']}/{status['total']} -> {out}")


def _parse_sets(items: list[str]) -> dict:
    import yaml

    fields = {}
    for item in items:
        if "=" not in item:
            fail(f"--set {item!r} is not field=value; expected e.g. --set kl_delta=0.5")
        key, value = item.split("=", 1)
        fields[key.strip()] = yaml.safe_load(value)
    return fields


@app.command()
def methods() -> None:
    """List the methods and ablation presets."""
    from sgpo_lab.config import METHOD_HELP

    width = max(map(len, METHOD_HELP))
    for name, text in METHOD_HELP.items():
        typer.echo(f"{name.ljust(width)}  {text}")


@app.command("eval")
def eval_cmd(
    model: str = typer.Option("small", help="size name, run/checkpoint dir or local HF model dir"),
    problems: int = typer.Option(32, help="problems per family and split"),
    k: int = typer.Option(4, help="k of pass@k"),
    guided: bool = typer.Option(False, help="evaluate with each problem's strategy card in the prompt"),
    seed: int = typer.Option(0),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Greedy accuracy and pass@k of a model (unguided by default), per family and split."""
    import torch

    from sgpo_lab.evaluate import evaluate
    from sgpo_lab.models import load_model
    from sgpo_lab.world.problems import world_problems

    m, tok = load_model(model)
    rows = [vars(r) for r in evaluate(m, tok, world_problems("id", problems) + world_problems("ood", problems), k=k,
                                      generator=torch.Generator().manual_seed(seed), guided=guided)]
    typer.echo(json.dumps(rows, indent=2) if as_json else _table(rows, ["family", "split", "accuracy", "pass_at_k"]))


@app.command()
def shifts(
    model: str = typer.Option("small", help="size name, run/checkpoint dir or local HF model dir"),
    problem: str = typer.Option(..., help="a world problem id (e.g. sum-id-0003) or a question text"),
    strategy: str | None = typer.Option(None, help="strategy card text, or family/strategy (e.g. "
                                           "sum/left_to_right); default: the problem's own card"),
    completion: str | None = typer.Option(None, help="completion to analyse (default: greedy guided sample)"),
    top_k: int = typer.Option(3, help="alternatives shown per distribution"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Per-token KL and probabilities with and without a strategy, for one completion."""
    from sgpo_lab.models import load_model
    from sgpo_lab.shifts import token_shifts
    from sgpo_lab.world.problems import find_problem
    from sgpo_lab.world.strategies import resolve_strategy

    found = find_problem(problem)
    question = found.question if found else problem
    card = resolve_strategy(strategy) if strategy else (found.strategy if found else None)
    if card is None:
        fail("a typed question needs --strategy (card text or family/strategy such as sum/left_to_right)")
    m, tok = load_model(model)
    table = token_shifts(m, tok, question, card, completion, top_k=top_k)
    if as_json:
        typer.echo(json.dumps({"question": question, "strategy": card, "completion": table.attrs["completion"],
                               "tokens": table.to_dict("records")}, indent=2))
        return
    typer.echo(f"completion: {table.attrs['completion']!r}  ({'sampled' if table.attrs['sampled'] else 'given'})")
    rows = [{"pos": r.position, "token": repr(r.token), "kl": f"{r.kl:.3f}", "p_guided": f"{r.p_guided:.3f}",
             "p_unguided": f"{r.p_unguided:.3f}", "top_guided": " ".join(repr(t) for t in r.top_guided),
             "top_unguided": " ".join(repr(t) for t in r.top_unguided)} for r in table.itertuples()]
    typer.echo(_table(rows, list(rows[0])))


bench_app = typer.Typer(help="Benchmarks that print figures (ratios measured side by side in one process).")
app.add_typer(bench_app, name="bench")


@bench_app.command("step")
def bench_step(
    model: str = typer.Option("small", help="size name or model dir"),
    steps: int = typer.Option(10, help="timed steps per method and seed (after one warm-up step)"),
    seed: int = typer.Option(0, help="first seed"),
    seeds: int = typer.Option(3, help="how many seeds (seed, seed + 1, ...): step times vary with what is sampled"),
) -> None:
    """Time SGPO steps against GRPO steps on the same problems; print the ratio and peak RSS."""
    import resource
    import statistics
    import tempfile
    import time

    import torch

    from sgpo_lab.config import make_config
    from sgpo_lab.trainer import Trainer

    methods = ("grpo", "sgpo")
    times: dict[str, list[float]] = {m: [] for m in methods}
    phases: dict[str, list[dict]] = {m: [] for m in methods}
    typer.echo(f"model {model}, {steps} steps each per seed, {torch.get_num_threads()} torch thread(s), "
               "median seconds per step:")
    for s in range(seed, seed + seeds):
        seed_times: dict[str, list[float]] = {m: [] for m in methods}
        with tempfile.TemporaryDirectory() as tmp:
            trainers = {m: Trainer(make_config(m, model=model, seed=s, steps=steps + 1), Path(tmp) / m,
                                   progress=False) for m in methods}
            for step in range(1, steps + 2):
                for name, trainer in trainers.items():  # interleaved: both see the same problems and machine load
                    t0 = time.perf_counter()
                    metrics = trainer.rl_step(step)
                    if step > 1:
                        seed_times[name].append(time.perf_counter() - t0)
                        phases[name].append(metrics)
            del trainers
        med = {m: statistics.median(t) for m, t in seed_times.items()}
        typer.echo(f"  seed {s}: grpo {med['grpo']:.3f} s, sgpo {med['sgpo']:.3f} s, "
                   f"ratio {med['sgpo'] / med['grpo']:.2f}x")
        for m in methods:
            times[m] += seed_times[m]
    med = {m: statistics.median(t) for m, t in times.items()}
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    typer.echo(f"  all {len(times['grpo'])} steps of each:")
    for m, t in med.items():
        split = ", ".join(f"{phase} {statistics.median(r[f'time_{phase}'] for r in phases[m]):.3f}"
                          for phase in ("sample", "score", "update"))
        typer.echo(f"  {m:5s} {t:.3f} s   (min {min(times[m]):.3f}, max {max(times[m]):.3f}; {split})")
    typer.echo(f"  sgpo / grpo step time ratio: {med['sgpo'] / med['grpo']:.2f}x  (target <= 1.5x)")
    typer.echo(f"  peak RSS: {rss_mb:.0f} MB  (target <= 1536 MB)")


@bench_app.command("run")
def bench_run(
    method: str = typer.Option("sgpo", help="method or preset"),
    model: str = typer.Option("small", help="size name or model dir"),
    seed: int = typer.Option(0),
    steps: int | None = typer.Option(None, help="optimizer steps (default: the method's default run)"),
    threads: int | None = typer.Option(None, help="torch threads (default: torch's own choice)"),
) -> None:
    """Time one default training run end to end (evaluations included) and print what it moved."""
    import tempfile
    import time

    import torch

    from sgpo_lab.config import make_config
    from sgpo_lab.runs import load_eval, load_metrics
    from sgpo_lab.trainer import train as run_train

    if threads is not None:
        torch.set_num_threads(threads)
    cfg = make_config(method, model=model, seed=seed, steps=steps)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        status = run_train(cfg, Path(tmp) / "run")
        seconds = time.perf_counter() - t0
        ev, metrics = load_eval(Path(tmp) / "run"), load_metrics(Path(tmp) / "run")
    first, last = int(ev["step"].min()), int(ev["step"].max())
    steps_s = float(metrics["time_step"].sum())
    typer.echo(f"{method} on {model}, {cfg.steps} steps, seed {seed}, {torch.get_num_threads()} torch thread(s): "
               f"{status['state']} in {seconds:.0f} s (target <= 180 s); training steps {steps_s:.0f} s "
               f"(mean {steps_s / len(metrics):.2f} s), evaluations and the rest {seconds - steps_s:.0f} s")

    def mean(split: str, family: str, step: int, column: str) -> float:
        part = ev[(ev["split"] == split) & (ev["step"] == step)]
        return float((part if family == "average" else part[part["family"] == family])[column].mean())

    rows = [{"family": family, "split": split,
             **{f"{label} @{step}": mean(split, family, step, column)
                for column, label in (("accuracy", "greedy"), ("pass_at_k", "pass@k")) for step in (first, last)}}
            for split in ("id", "ood") for family in [*ev["family"].unique(), "average"]]
    typer.echo(_table(rows, list(rows[0])))


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
    except Exception as err:  # a bug, not bad input: still one line; SGPO_LAB_DEBUG=1 shows the traceback
        if os.environ.get("SGPO_LAB_DEBUG"):
            raise
        typer.echo(f"error: unexpected {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''} "
                   "(set SGPO_LAB_DEBUG=1 for the traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
