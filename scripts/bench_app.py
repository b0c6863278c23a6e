"""Speed of the workbench, the figures the README quotes. Prints them; it is not a timed test.

1. first chart: `streamlit run app/main.py` is started, and headless Chromium opens the Runs page (``/runs``) as
   soon as the server answers /_stcore/health; the time from that answer until its first chart is drawn (target
   <= 3 s), and until both charts are drawn and the script has stopped;
2. interaction re-render: AppTest reruns (the whole page) after a widget change on the Runs, Absorption, Weights,
   Compare and Rollouts pages, and in Chromium the Runs page's metric radio until the chart is redrawn (only that
   fragment reruns), medians over repeats (target <= 1 s);
3. Explore: switching the model from ``small`` to ``medium`` until completions and the token view are shown
   (a model load, sampling and the shift table; target <= 3 s), and back (cached);
4. token-shift analysis of a 100-token completion (``shifts.token_shifts`` with the completion given:
   two forward passes and the table), median over repeats, on ``small`` or the model given (target <= 50 ms).

Data: the shipped ``demo_runs/`` (else synthetic runs from tests/test_viz.py, and it says so).

    .venv/bin/python scripts/bench_app.py [--runs DIR] [--model small] [--repeats 7] [--no-browser]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the synthetic runs writer lives with the tests
sys.path.insert(0, str(REPO / "app"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def runs_root(arg: str | None, tmp: Path) -> tuple[Path, str]:
    from sgpo_lab.runs import RunError, list_runs

    if arg:
        return Path(arg), "given"
    try:
        if not list_runs(REPO / "demo_runs").empty:
            return REPO / "demo_runs", "shipped demo runs"
    except RunError:
        pass
    from test_viz import write_synthetic_runs

    ablations = ("sgpo_no_distill", "sgpo_no_clip", "sgpo_rkl", "sgpo_nll", "sgpo_no_constraints", "sgpo_const_w")
    root = write_synthetic_runs(tmp / "runs", seeds=(0, 1), steps=60, ablations=ablations, live=False, corrupt=False)
    return root, "SYNTHETIC runs shaped like scripts/make_demo_runs.py's (no demo_runs/ yet)"


def first_page_seconds(root: Path, tmp: Path, repeats: int) -> tuple[float, float, list[float]]:
    """(server start -> healthy, healthy -> Runs page populated, each click -> redrawn chart) in seconds,
    with the real server and browser."""
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "SGPO_LAB_RUNS": str(root)})
    url = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as pw:  # the browser starts while the server does
            context = pw.chromium.launch_persistent_context(str(tmp / "profile"), executable_path=CHROMIUM,
                                                            headless=True, args=CHROMIUM_ARGS)
            page = context.new_page()
            page.set_default_timeout(60_000)
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                        if r.read().strip() == b"ok":
                            break
                except OSError:
                    time.sleep(0.05)
            healthy = time.time()
            page.goto(f"{url}/runs")
            page.wait_for_function("[...document.querySelectorAll('.js-plotly-plot')]"
                                   ".filter(p => p.querySelector('.main-svg')).length >= 1")
            first_chart = time.time()
            page.wait_for_function("[...document.querySelectorAll('.js-plotly-plot')]"
                                   ".filter(p => p.querySelector('.main-svg')).length >= 2")
            page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')")
            populated = time.time()
            warm = []  # the same page opened again: the server's caches and imports warm, a new browser session
            for _ in range(2):
                again = context.new_page()
                again.set_default_timeout(60_000)
                t = time.time()
                again.goto(f"{url}/runs")
                again.wait_for_function("[...document.querySelectorAll('.js-plotly-plot')]"
                                        ".filter(p => p.querySelector('.main-svg')).length >= 1")
                warm.append(time.time() - t)
                again.close()
            clicks = []
            for i in range(repeats + 2):  # the metric radio, in the real browser: the accuracy fragment reruns alone
                label, title = (("pass@k", "pass@"), ("greedy accuracy", "greedy accuracy"))[i % 2]
                t = time.time()
                page.get_by_test_id("stRadioGroup").get_by_text(label, exact=True).click()
                page.wait_for_function("t => [...document.querySelectorAll('.js-plotly-plot .ytitle')]"
                                       ".some(e => e.textContent.startsWith(t))", arg=title)
                clicks.append(time.time() - t)
            context.close()
    finally:
        proc.terminate()
        proc.wait(10)
    return healthy - start, first_chart - healthy, populated - healthy, clicks, warm


def rerun_seconds(root: Path, repeats: int) -> dict[str, tuple[float, float]]:
    """Median AppTest rerun (wall, CPU) seconds after each widget change (the script run and figures, no browser)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=120)
    at.session_state["runs_root"] = str(root)
    at.run()
    at.switch_page("views/runs.py").run()  # the app opens on Start
    out = {}

    def timed(name, change):
        wall, cpu = [], []
        for i in range(repeats):
            change(i)
            t, c = time.perf_counter(), time.process_time()
            at.run()
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)  # this process's CPU time: what the rerun costs without contention
            assert not at.exception, at.exception
        out[name] = (statistics.median(wall), statistics.median(cpu))

    # Each setting new (the Runs page caches a figure per runs' files and settings): these are rebuilds.
    timed("runs: smoothing, a new value each time", lambda i: at.slider(key="runs_smooth").set_value(0.05 * (i + 1)))
    families = [f for f in at.multiselect(key="runs_families").options if f != "average of families"]  # the runs'
    subsets = [["all", f] for f in families] + [[f] for f in families]
    timed("runs: families, a new subset each time",
          lambda i: at.multiselect(key="runs_families").set_value(subsets[i % len(subsets)]))
    timed("runs: metric, toggled back and forth (cached figures)",
          lambda i: at.radio(key="runs_metric").set_value(["pass_at_k", "accuracy"][i % 2]))
    at.switch_page("views/absorption.py").run()
    steps = at.select_slider(key="abs_step").options
    timed("absorption: step slider", lambda i: at.select_slider(key="abs_step").set_value(steps[i % len(steps)]))
    at.switch_page("views/weights.py").run()
    families = list(at.multiselect(key="weights_families").options)
    timed("weights: families", lambda i: at.multiselect(key="weights_families").set_value(
        [families[:max(1, len(families) // 2)], families][i % 2]))
    views = ["family", "top", "problem"]  # the selectbox's values (its options are their labels)
    timed("weights: heatmap rows", lambda i: at.selectbox(key="weights_view").set_value(views[i % len(views)]))
    at.switch_page("views/compare.py").run()
    timed("compare: split", lambda i: at.radio(key="cmp_split").set_value(["ood", "id"][i % 2]))
    at.switch_page("views/rollouts.py").run()
    if at.get("select_slider"):
        steps = at.select_slider(key="ro_step").options
        timed("rollouts: step slider", lambda i: at.select_slider(key="ro_step").set_value(steps[i % len(steps)]))
    return out


def explore_seconds(root: Path) -> dict[str, float]:
    """AppTest: Explore on ``small`` (warm), then switched to ``medium`` (loaded, sampled, scored), then back."""
    from streamlit.testing.v1 import AppTest

    from sgpo_lab.models import BASE_MODELS

    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=300)
    at.session_state["runs_root"] = str(root)
    for key, value in {"ex_source": "shipped", "ex_size": "small", "ex_task": "world", "ex_kind": "task",
                       "ex_family": "sum", "ex_index": 0}.items():
        at.session_state[key] = value
    at.run()
    at.switch_page("views/explore.py").run()
    out = {}
    for size in ("medium", "small", "medium"):
        if not (BASE_MODELS / size / "config.json").exists():
            return out
        t = time.perf_counter()
        at.selectbox(key="ex_size").set_value(size).run()
        assert not at.exception, at.exception
        assert "Token shift" in [h.value for h in at.subheader], "the Explore page did not reach its token view"
        out.setdefault(f"Explore: switch to {size}", []).append(time.perf_counter() - t)
    return {k: v for k, v in out.items()}


def shift_ms(spec: str | None, repeats: int) -> tuple[dict[int, float], int, str, int]:
    """Median ms of token_shifts on a 100-token completion per torch thread count (the app's and torch's default);
    (ms by threads, the app's thread count, which model, completion length)."""
    import torch
    from common import inference_threads

    from sgpo_lab.models import ModelLoadError, build_model, load_model
    from sgpo_lab.shifts import token_shifts
    from sgpo_lab.world.problems import make_problems
    from sgpo_lab.world.tokenizer import build_char_tokenizer

    model = None
    for candidate in [spec] if spec else ["small", "medium", "tiny"]:
        try:
            model, tok = load_model(candidate)
            name = candidate
            break
        except ModelLoadError:
            continue
    if model is None:  # no shipped model yet: an untrained one of the small size times the same computation
        tok = build_char_tokenizer()
        model = build_model("small", tok).eval()
        name = "small architecture, UNTRAINED (no shipped model on disk)"
    default_threads = torch.get_num_threads()
    threads = inference_threads(model)  # as the app runs it
    p = make_problems("sum", "ood", 1)[0]
    text = (p.expert_response * 20)[:100]
    ids = tok(text, add_special_tokens=False)["input_ids"][:100]
    result = {}
    for n_threads in dict.fromkeys([threads, default_threads]):
        torch.set_num_threads(n_threads)
        token_shifts(model, tok, p.question, p.strategy, ids)  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            token_shifts(model, tok, p.question, p.strategy, ids)
            times.append(time.perf_counter() - t)
        result[n_threads] = 1000 * statistics.median(times)
    torch.set_num_threads(threads)
    return result, threads, name, len(ids)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", help="runs root (default: demo_runs/, else synthetic runs)")
    ap.add_argument("--model", help="model spec for the token-shift figure (default: small, else medium, tiny)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-browser", action="store_true", help="skip the real-server first-page figure")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root, kind = runs_root(args.runs, tmp)
        print(f"runs: {root} ({kind}); CPU threads: {os.cpu_count()}; load average: {os.getloadavg()[0]:.2f}")
        ms, threads, name, n = shift_ms(args.model, args.repeats)
        for n_threads, value in ms.items():
            who = "as the app runs it" if n_threads == threads else "torch's default"
            print(f"token-shift analysis, {n}-token completion on {name}, {n_threads} thread(s) ({who}): "
                  f"{value:.1f} ms (median of {args.repeats}; target <= 50 ms)")
        for page, (wall, cpu) in rerun_seconds(root, args.repeats).items():
            print(f"re-render after a widget change, {page}: {wall:.3f} s wall, {cpu:.3f} s CPU "
                  "(AppTest, median; target <= 1 s)")
        for what, times in explore_seconds(root).items():
            print(f"{what}: " + ", then ".join(f"{t:.2f} s" for t in times)
                  + " (AppTest: model load, greedy + 8 samples each side, token shifts; target <= 3 s the first time)")
        if args.no_browser or not Path(CHROMIUM).exists():
            print("first page populated: skipped (--no-browser or no /usr/bin/chromium)")
        else:
            boot, chart, first, click, warm = first_page_seconds(root, tmp, args.repeats)
            print(f"server start -> healthy: {boot:.1f} s; healthy -> Runs page's first chart in Chromium: "
                  f"{chart:.1f} s (target <= 3 s); both charts drawn and the script done: {first:.1f} s")
            print("Runs page opened again (warm server, new browser session) -> first chart: "
                  + ", ".join(f"{w:.1f} s" for w in warm) + " (target <= 3 s)")
            print(f"re-render in Chromium, Runs page metric radio -> redrawn accuracy chart: first two (figures "
                  f"built) {click[0]:.2f} s, {click[1]:.2f} s; then toggling (cached figures) "
                  f"{statistics.median(click[2:]):.2f} s median (target <= 1 s)")


if __name__ == "__main__":
    main()
