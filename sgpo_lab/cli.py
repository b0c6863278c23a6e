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

USER_ERRORS = (ValueError, OSError)  # bad input, and what the system says of files and disks (a full disk, ...)


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
    from sgpo_lab.pretrain import check_model_out, recipe
    from sgpo_lab.pretrain import pretrain as run_pretrain

    cfg = recipe(size, seed=seed, steps=steps)
    check_model_out(out, overwrite=overwrite)  # before training: a refused folder costs nothing
    record = run_pretrain(cfg, out, command=" ".join(["sgpo-lab", "pretrain", *sys.argv[2:]]))
    typer.echo(f"saved {record['parameters']:,}-parameter model to {out} in {record['seconds']:.0f} s "
               f"(final loss {record['final_loss']})")


TASK_HELP = "task: world, world:sum,count, reasoning-gym:DATASET, jsonl:PATH or module:function (sgpo-lab tasks)"


def _task_and_model(task: str, model: str, prompt_style: str = "auto", cards: Path | None = None):
    """The task, the loaded model and tokenizer, its prompter and the card set (``cards`` file or the task's)."""
    from sgpo_lab.cards import load_cards
    from sgpo_lab.models import load_model
    from sgpo_lab.prompts import Prompter
    from sgpo_lab.tasks import load_task

    t = load_task(task)
    card_set = load_cards(cards) if cards is not None else None
    m, tok = load_model(model)
    return t, m, tok, Prompter.for_task(t, tok, prompt_style), card_set


def _positive(name: str, value: int, most: int = 100_000) -> int:
    if not 1 <= value <= most:
        fail(f"--{name} must be from 1 to {most:,}, got {value}")
    return value


@app.command("report")
def report_cmd(
    task: str = typer.Option("world", help=TASK_HELP),
    size: str = typer.Option("small", "--size", "--model", help="a size name, a run or checkpoint dir, or a model dir"),
    problems: int = typer.Option(32, help="problems per family and split"),
    samples: int = typer.Option(8, help="samples per problem (temperature 1)"),
    seed: int = typer.Option(0),
    family: list[str] = typer.Option([], help="problem types to report (repeatable; default: all of the task's)"),
    split: list[str] = typer.Option([], help="splits to report: id, ood (repeatable; default: those the task has)"),
    cards: Path | None = typer.Option(None, help="card file (JSONL) to guide with instead of the task's own cards"),
    prompt_style: str = typer.Option("auto", help="auto | plain | chat"),
    max_new_tokens: int = typer.Option(144, help="longest completion sampled"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Unguided and guided pass rates of a model on a task, per problem type and split."""
    from sgpo_lab.evaluate import task_report

    _positive("problems", problems)
    _positive("samples", samples, 1024)
    _positive("max-new-tokens", max_new_tokens, 4096)
    if "train" in split:
        fail("split 'train' holds RL training problems; expected id or ood")
    t, model, tokenizer, prompter, card_set = _task_and_model(task, size, prompt_style, cards)
    families = t.check_families(family or None)
    splits = tuple(t.check_split(s) for s in split) or None
    rows = task_report(model, tokenizer, task=t, n_problems=problems, n_samples=samples, seed=seed, splits=splits,
                       families=families, prompter=prompter, cards=card_set, max_new_tokens=max_new_tokens)
    for sp in dict.fromkeys(r["split"] for r in list(rows)):
        part = [r for r in rows if r["split"] == sp]
        rows.append({"family": "average", "split": sp,
                     "unguided": sum(r["unguided"] for r in part) / len(part),
                     "guided": sum(r["guided"] for r in part) / len(part)})
    for r in rows:
        r["gap"] = r["guided"] - r["unguided"]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo(_table(rows, ["family", "split", "unguided", "guided", "gap"]))


app.command("world-report", help="The report on the Strategy World (same as 'report'; kept for old scripts).")(
    report_cmd)


@app.command()
def tasks(spec: str | None = typer.Argument(None, help="a task spec to describe (default: list the kinds)")) -> None:
    """List the kinds of task the lab runs, or describe one (its problem types, splits and threshold)."""
    from sgpo_lab.tasks import TASK_KINDS, load_task

    if spec is None:
        width = max(map(len, TASK_KINDS))
        for name, text in TASK_KINDS.items():
            typer.echo(f"{name.ljust(width)}  {text}")
        return
    info = load_task(spec).describe()
    for key, value in info.items():
        typer.echo(f"{key:12s} {', '.join(map(str, value)) if isinstance(value, list) else value}")


@app.command("rank-strategies")
def rank_strategies(
    size: str = typer.Option("small", "--size", "--model", help="a size name or a model dir"),
    problems: int = typer.Option(16, help="held-out problems per family"),
    samples: int = typer.Option(4, help="samples per problem"),
    out: Path | None = typer.Option(None, help="also write the ranking as JSON here"),
) -> None:
    """Rank each family's candidate strategy cards by the model's guided pass rate on held-out problems."""
    from sgpo_lab.models import load_model
    from sgpo_lab.strategies import rank_all

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
    task: str | None = typer.Option(None, help=TASK_HELP + " [world]"),
    model: str | None = typer.Option(None, help="size name, run/checkpoint dir or local HF model dir [small]"),
    steps: int | None = typer.Option(None, help="optimizer steps [60]"),
    seed: int | None = typer.Option(None, help="seed [0]"),
    out: Path = typer.Option(..., help="run directory to write"),
    config: Path | None = typer.Option(None, help="YAML file of TrainConfig fields (flags override it)"),
    resume: bool = typer.Option(False, help="continue an interrupted run from its last checkpoint"),
    overwrite: bool = typer.Option(False, help="replace an existing run directory"),
    set_: list[str] = typer.Option([], "--set", help="any config field, e.g. --set kl_delta=0.5 (repeatable)"),
    engine: str = typer.Option("lab", help="lab: the lab's trainer; trl: TRL's GRPOTrainer (accelerate, DeepSpeed, "
                               "vLLM; needs the trl extra), TRL's own fields under 'trl:' in --config"),
) -> None:
    """Train a method on a task (the Strategy World by default) and write a run directory (watch it in the app)."""
    from sgpo_lab.config import load_config_file, make_config, parse_field_values

    if engine not in ("lab", "trl"):
        fail(f"unknown engine {engine!r}; expected lab or trl")
    if engine == "trl":  # one line on stderr when TRL is missing or of another release
        from sgpo_lab.trl import load_config_file, trl_section
        from sgpo_lab.trl import train as run_train
    else:
        from sgpo_lab.trainer import train as run_train
    fields = parse_field_values(set_)
    if "method" in fields:
        set_method = fields.pop("method")
        if method != "sgpo" and set_method != method:
            fail(f"--method {method} and --set method={set_method} disagree; expected one of them")
        method = set_method
    for name, flag in (("task", task), ("model", model), ("steps", steps), ("seed", seed)):
        if flag is not None and name in fields and fields[name] != flag:
            fail(f"--{name} {flag} and --set {name}={fields[name]} disagree; expected one of them")
        if flag is not None:
            fields[name] = flag
    if resume:
        from sgpo_lab.runs import read_run_config

        saved = read_run_config(out)
        if not saved or "method" not in saved:
            fail(f"nothing to resume in {str(out)!r}; expected a run directory with config.yaml naming its method")
        if fields.get("steps") is not None and fields["steps"] < saved.get("steps", 0):
            fail(f"--steps {fields['steps']} is below the run's {saved.get('steps')} steps; expected at least that "
                 "(a larger value extends the run)")
        changed = {k: v for k, v in fields.items() if k != "steps" and v is not None and saved.get(k) != v}
        if changed:
            fail(f"--resume continues the run as configured; cannot change {', '.join(changed)} (only --steps "
                 "extends it)")
        if fields.get("steps") is not None:
            saved["steps"] = fields["steps"]
        cfg = make_config(saved.pop("method"), **saved)
    elif config is not None:
        cfg = load_config_file(config, method=method if method != "sgpo" else None, **fields)
    else:
        cfg = make_config(method, **fields)
    extra = {"trl_fields": trl_section(config) if config is not None else {}} if engine == "trl" else {}
    try:
        status = run_train(cfg, out, resume=resume, overwrite=overwrite, **extra)
    except KeyboardInterrupt:
        fail(f"interrupted; continue with: sgpo-lab train --out {out} --resume"
             f"{' --engine trl' if engine == 'trl' else ''}", code=130)
    typer.echo(f"{cfg.method}: {status['state']} at step {status['step']}/{status['total']} -> {out}")


@app.command()
def compare(
    preset: str = typer.Option(..., help="quick | main | ablations | constraints | teacher | scaling"),
    out: Path = typer.Option(..., help="folder of the sweep's run directories and summary"),
    seeds: int | None = typer.Option(None, help="seeds per variant (default: the preset's; main 10, others 5)"),
    jobs: int = typer.Option(2, help="runs side by side (one torch thread each)"),
    set_: list[str] = typer.Option([], "--set", help="a config field for every run, e.g. --set steps=30"),
    keep_checkpoints: bool = typer.Option(False, help="keep each finished run's checkpoints (large)"),
    reuse: list[Path] = typer.Option([], help="a folder of finished runs (another sweep): a run trained with "
                                              "exactly the same config there is copied instead of retrained"),
    variants: str | None = typer.Option(None, help="only these variants of the preset, comma-separated "
                                                   "(e.g. tiny-sgpo,small-sgpo); the rest can follow later"),
) -> None:
    """Run methods x seeds as a resumable pool and write summary.parquet and summary.md (rerun to continue)."""
    from sgpo_lab.config import parse_field_values
    from sgpo_lab.sweeps import run_sweep

    summary = run_sweep(preset, out, seeds=seeds, jobs=jobs, overrides=parse_field_values(set_),
                        keep_checkpoints=keep_checkpoints, reuse=reuse,
                        variants=[v.strip() for v in variants.split(",") if v.strip()] if variants else None)
    typer.echo((out / "summary.md").read_text())
    variants = summary["variant"][~summary["variant"].str.endswith("@base")].nunique() if not summary.empty else 0
    typer.echo(f"{variants} variants; summary in {out / 'summary.md'} and summary.parquet")


@app.command()
def claims(
    from_: Path = typer.Option(..., "--from", help="folder of sweeps (main/, ablations/, constraints/, ...)"),
    out: Path = typer.Option(Path("reports"), help="where claims.md and claims.json go"),
) -> None:
    """Measure each claim of the paper from sweep summaries; write reports/claims.md with verdicts."""
    from sgpo_lab.claims import write_claims

    results = write_claims(from_, out)
    for key, r in results.items():
        typer.echo(f"({key}) {r['verdict']:15s} {r['title']}")
    typer.echo(f"report: {out / 'claims.md'}")


@app.command()
def methods() -> None:
    """List the methods and ablation presets."""
    from sgpo_lab.config import METHOD_HELP

    width = max(map(len, METHOD_HELP))
    for name, text in METHOD_HELP.items():
        typer.echo(f"{name.ljust(width)}  {text}")


@app.command("eval")
def eval_cmd(
    task: str = typer.Option("world", help=TASK_HELP),
    model: str = typer.Option("small", help="size name, run/checkpoint dir or local HF model dir"),
    problems: int = typer.Option(32, help="problems per family and split"),
    k: int = typer.Option(4, help="k of pass@k"),
    guided: bool = typer.Option(False, help="evaluate with each problem's strategy card in the prompt"),
    cards: Path | None = typer.Option(None, help="card file (JSONL) for --guided instead of the task's own cards"),
    prompt_style: str = typer.Option("auto", help="auto | plain | chat"),
    max_new_tokens: int = typer.Option(144, help="longest completion sampled"),
    seed: int = typer.Option(0),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Greedy accuracy and pass@k of a model on a task (unguided by default), per problem type and split."""
    import torch

    from sgpo_lab.evaluate import evaluate

    _positive("problems", problems)
    _positive("k", k, 1024)
    _positive("max-new-tokens", max_new_tokens, 4096)
    t, m, tok, prompter, card_set = _task_and_model(task, model, prompt_style, cards)
    problems_ = [p for split in ("id", "ood") if split in t.splits for p in t.problems(split, problems)]
    if not problems_:
        fail(f"task {t.name!r} has no evaluation problems; expected an id (or ood) split")
    rows = [vars(r) for r in evaluate(m, tok, problems_, k=k, generator=torch.Generator().manual_seed(seed),
                                      guided=guided, task=t, prompter=prompter, cards=card_set,
                                      max_new_tokens=max_new_tokens)]
    typer.echo(json.dumps(rows, indent=2) if as_json else _table(rows, ["family", "split", "accuracy", "pass_at_k"]))


@app.command()
def shifts(
    task: str = typer.Option("world", help=TASK_HELP),
    model: str = typer.Option("small", help="size name, run/checkpoint dir or local HF model dir"),
    problem: str = typer.Option(..., help="a problem id of the task (e.g. sum-id-0003) or a question text"),
    strategy: str | None = typer.Option(None, help="strategy card text (world: also family/strategy such as "
                                           "sum/left_to_right); default: the problem's own card"),
    cards: Path | None = typer.Option(None, help="card file (JSONL): the card of the problem's type"),
    completion: str | None = typer.Option(None, help="completion to analyse (default: greedy guided sample)"),
    prompt_style: str = typer.Option("auto", help="auto | plain | chat"),
    top_k: int = typer.Option(3, help="alternatives shown per distribution"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Per-token KL and probabilities with and without a strategy, for one completion."""
    from sgpo_lab.evaluate import card_of
    from sgpo_lab.shifts import MAX_TEXT_CHARS, token_shifts
    from sgpo_lab.world.strategies import resolve_strategy

    _positive("top-k", top_k, 50)
    if len(problem) > MAX_TEXT_CHARS:
        fail(f"--problem has {len(problem):,} characters; expected at most {MAX_TEXT_CHARS:,}")
    t, m, tok, prompter, card_set = _task_and_model(task, model, prompt_style, cards)
    found = t.find(problem)
    question = found.question if found else problem
    if strategy:
        card = resolve_strategy(strategy) if t.name.startswith("world") else strategy
    else:
        card = card_of(t, found, card_set) if found else None
    if not card:
        fail("a typed question needs --strategy (a card's text; world: or family/strategy such as sum/left_to_right)")
    table = token_shifts(m, tok, question, card, completion, top_k=top_k, prompter=prompter)
    if as_json:
        typer.echo(json.dumps({"question": question, "strategy": card, "completion": table.attrs["completion"],
                               "tokens": table.to_dict("records")}, indent=2))
        return
    typer.echo(f"completion: {table.attrs['completion']!r}  ({'sampled' if table.attrs['sampled'] else 'given'})")
    rows = [{"pos": r.position, "token": repr(r.token), "kl": f"{r.kl:.3f}", "p_guided": f"{r.p_guided:.3f}",
             "p_unguided": f"{r.p_unguided:.3f}", "top_guided": " ".join(repr(t) for t in r.top_guided),
             "top_unguided": " ".join(repr(t) for t in r.top_unguided)} for r in table.itertuples()]
    typer.echo(_table(rows, list(rows[0])))


from sgpo_lab.cli_strategies import strategies_app  # noqa: E402 - registered beside the other commands

app.add_typer(strategies_app, name="strategies")

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
        torch.set_num_threads(_positive("threads", threads, 256))
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


@bench_app.command("engines")
def bench_engines_cmd(
    model: str = typer.Option("small", help="size name or model dir"),
    problems: int = typer.Option(8, help="problems per step"),
    group: int = typer.Option(8, help="G: autonomous rollouts per problem"),
    guided: int = typer.Option(4, help="H: guided rollouts per problem (SGPO)"),
    steps: int = typer.Option(8, help="timed steps per block, engine and method (after one warm-up step)"),
    blocks: int = typer.Option(2, help="blocks (seed, seed + 1, ...): step times vary with what is sampled"),
    threads: int = typer.Option(1, help="torch threads"),
    seed: int = typer.Option(0, help="first seed"),
    max_new_tokens: int | None = typer.Option(None, help="longest completion (default: the methods' 96)"),
) -> None:
    """The same GRPO and SGPO steps on the lab's engine and on TRL, interleaved in one process: median step times,
    ratios and where each engine's time goes (needs the trl extra)."""
    from sgpo_lab.trl import bench_engines

    for name, value, most in (("problems", problems, 256), ("group", group, 64), ("guided", guided, 64),
                              ("steps", steps, 100), ("blocks", blocks, 20), ("threads", threads, 256)):
        _positive(name, value, most)
    bench_engines(model=model, problems=problems, group=group, guided=guided, steps=steps, blocks=blocks,
                  threads=threads, seed=seed, max_new_tokens=max_new_tokens, echo=typer.echo)


def _every_answer_right(spec: str):
    """A copy of a task whose verifier passes every completion (for benchmarks on random models)."""
    from sgpo_lab.tasks import FunctionTask, load_task

    task = load_task(spec)
    return FunctionTask(name=f"{task.name} (every answer right)",
                        problems_by_split={s: task.problems(s, 64) for s in task.splits},
                        score_fn=lambda problem, completion: 1.0)


@bench_app.command("memory")
def bench_memory(
    vocab: int = typer.Option(151_936, help="vocabulary size of the random Qwen2-style model (Qwen2's: 151,936)"),
    hidden: int = typer.Option(64, help="hidden size of the random model"),
    problems: int = typer.Option(8, help="problems per step (default: the lab's default step)"),
    max_new_tokens: int = typer.Option(96, help="completion length (a random model writes to the limit)"),
    budget_mb: float = typer.Option(256, help="logits_budget_mb of the step"),
    steps: int = typer.Option(1, help="SGPO steps to run"),
) -> None:
    """Peak memory of default SGPO steps on a random Qwen2-style model with a large vocabulary (target <= 4 GB)."""
    import resource
    import tempfile
    import time

    from sgpo_lab.config import make_config
    from sgpo_lab.toy import save_toy_model
    from sgpo_lab.trainer import Trainer

    _positive("vocab", vocab, 1_000_000)
    _positive("hidden", hidden, 4096)
    _positive("problems", problems, 256)
    _positive("max-new-tokens", max_new_tokens, 4096)
    _positive("steps", steps, 100)

    def rss_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_toy_model(Path(tmp) / "model", vocab_size=vocab, pad_to=vocab, hidden=hidden,
                                   ffn=4 * hidden, layers=2)
        cfg = make_config("sgpo", model=str(model_dir), steps=steps, problems_per_step=problems,
                          max_new_tokens=max_new_tokens, logits_budget_mb=budget_mb, eval_every=0,
                          checkpoint_every=0, probe_problems=0)
        # a random model never answers right; a verifier that passes every rollout makes every phase run (target
        # ranking, the teacher's and the student's logits on the targets), which is what the benchmark is about
        trainer = Trainer(cfg, Path(tmp) / "run", progress=False, task=_every_answer_right(cfg.task))
        before = rss_mb()
        typer.echo(f"random Qwen2-style model: vocabulary {vocab:,}, hidden {hidden}; {problems} problems x "
                   f"(G {cfg.group_size} + H {cfg.guided_size}) rows, {max_new_tokens} new tokens, "
                   f"logits budget {budget_mb:g} MB")
        for step in range(1, steps + 1):
            t0 = time.perf_counter()
            row = trainer.rl_step(step)
            typer.echo(f"  step {step}: {time.perf_counter() - t0:.1f} s (sample {row['time_sample']:.1f} s, "
                       f"update {row['time_update']:.1f} s), completion length {row['completion_len']:.0f}, "
                       f"{row['n_targets']} distillation targets")
    peak = rss_mb()
    typer.echo(f"  peak RSS before the step: {before:,.0f} MB; after: {peak:,.0f} MB  (target <= 4,096 MB)")


def main() -> None:
    """Console entry point: user errors become one line and exit code 2."""
    try:
        app()
    except USER_ERRORS as err:
        typer.echo(f"error: {(str(err).splitlines()[0] if str(err) else type(err).__name__)[:400]}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as err:  # a bug, not bad input: still one line; SGPO_LAB_DEBUG=1 shows the traceback
        if os.environ.get("SGPO_LAB_DEBUG"):
            raise
        typer.echo(f"error: unexpected {type(err).__name__}: {(str(err).splitlines() or [''])[0][:300]} "
                   "(set SGPO_LAB_DEBUG=1 for the traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
