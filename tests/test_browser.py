"""The workbench in a real browser: `streamlit run app/main.py` driven by Debian's headless Chromium (Playwright).

Visits every page twice: as opened (light, 1440x1000), and in presentation mode with the dark theme at 1024x768
(the settings come from the address, ``?presentation=1&theme=dark``). Each time it checks that charts render
(``.js-plotly-plot``), that the token views show coloured token boxes whose glyphs stay inside them, that no text it
can measure overlaps (figure titles, subplot titles, legends, axis titles), that no traceback reaches a page and
that no request leaves localhost (plotly's JS is the copy Streamlit serves). It saves one screenshot per page to
``docs/screenshots/<page>.png`` (the README's), and the dark presentation views as ``<page>-presentation.png``.

Data: the shipped ``demo_runs/`` and model when they exist, else synthetic runs and a tiny untrained model.
Without Chromium the test is skipped, except under ``CI=true`` where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from test_viz import write_synthetic_runs

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / "docs" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGE_TIMEOUT_MS = 45_000  # a page's first run imports torch on a shared CPU; most take a second or two
# url path -> (screenshot name, charts the page must show at least, a text shown once the page is complete)
PAGES = {"": ("start", 0, "The notebooks"), "runs": ("runs", 2, "Training metrics"),
         "explore": ("explore", 2, "Pinned token"), "absorption": ("absorption", 2, "Probe problem"),
         "weights": ("weights", 3, "Weight against p_auto"), "rollouts": ("rollouts", 0, "Guided (with the card)"),
         "compare": ("compare", 1, "Absolute numbers are not"), "train": ("train", 0, "Launch")}
PRESENTATION_SHOTS = ("explore", "runs")  # dark presentation screenshots kept for the README


def _browser_or_skip() -> str:
    if Path(CHROMIUM).exists() or shutil.which("chromium"):
        return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if os.environ.get("CI") == "true":
        pytest.fail("Chromium is missing at /usr/bin/chromium; CI must install it (apt-get install chromium)")
    pytest.skip("Chromium is not installed (apt-get install chromium); the browser test needs it")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> float:
    start = time.time()
    while time.time() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return time.time() - start
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"streamlit did not answer {url}/_stcore/health in {timeout} s")


def _data(tmp_path: Path) -> tuple[Path, str]:
    """(runs root, model spec): the shipped demo runs and model if present, else synthetic ones."""
    from sgpo_lab.models import BASE_MODELS
    from sgpo_lab.runs import RunError, list_runs

    try:
        root = REPO / "demo_runs" if not list_runs(REPO / "demo_runs").empty else None
    except RunError:
        root = None
    root = root or write_synthetic_runs(tmp_path / "runs", corrupt=False, live=False)
    shipped = [s for s in ("small", "tiny") if (BASE_MODELS / s / "config.json").exists()]
    if shipped:
        return root, shipped[0]
    from sgpo_lab.models import build_model
    from sgpo_lab.world.tokenizer import build_char_tokenizer

    tok = build_char_tokenizer()
    build_model("tiny", tok).save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    return root, str(tmp_path / "tiny")


def _rollouts_root(tmp: Path) -> Path:
    """A runs root with one run that stored its rollouts (the shipped demo runs predate them)."""
    from test_classroom import write_rollouts

    root = write_synthetic_runs(tmp / "rollout-runs", methods=("sgpo",), seeds=(0,), corrupt=False, live=False)
    write_rollouts(root / "sgpo-s0", steps=(5, 10))
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    browser = _browser_or_skip()
    tmp = tmp_path_factory.mktemp("browser")
    root, model = _data(tmp)
    rollouts = _rollouts_root(tmp)
    port = _free_port()
    env = {**os.environ, "SGPO_LAB_RUNS": str(root)}
    log = open(tmp / "streamlit.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false"], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield {"url": url, "model": model, "root": root, "browser": browser, "tmp": tmp, "rollouts": rollouts}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _settle(page, charts: int, text: str) -> None:
    """Wait until the page shows ``text``, at least ``charts`` drawn plotly charts, and the script has stopped."""
    page.wait_for_selector('[data-testid="stSidebarNav"]')
    page.get_by_text(text).first.wait_for()
    if charts:
        page.wait_for_function("n => [...document.querySelectorAll('.js-plotly-plot')]"
                               ".filter(p => p.querySelector('.main-svg')).length >= n", arg=charts)
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')")  # shown while running
    page.wait_for_timeout(400)  # let plotly finish its transitions before the screenshot


def _screenshot(page, path: Path, width: int = 1440) -> None:
    """The whole page: Streamlit scrolls inside its main container, so grow the viewport to its height first."""
    height = page.evaluate("Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"], "
                           "[data-testid=\"stAppViewContainer\"]')].map(e => e.scrollHeight), 700)")
    size = page.viewport_size
    page.set_viewport_size({"width": width, "height": min(int(height) + 40, 5000)})
    page.wait_for_timeout(500)  # plotly re-lays out on resize
    page.screenshot(path=str(path))
    page.set_viewport_size(size)


def _token_colours(page) -> list[str]:
    """Background colours of the token boxes of every token view on the page."""
    return page.eval_on_selector_all(".tok", "els => els.map(e => getComputedStyle(e).backgroundColor)")


OVERLAPS = """() => {
  const out = [];
  for (const e of document.querySelectorAll('.tok')) {  // a glyph outside its box
    const box = e.getBoundingClientRect();
    if (box.width === 0) continue;
    const range = document.createRange(); range.selectNodeContents(e);
    const ink = range.getBoundingClientRect();
    if (ink.left < box.left - 1 || ink.right > box.right + 1 || ink.top < box.top - 2 || ink.bottom > box.bottom + 2)
      out.push(`token ${JSON.stringify(e.textContent)} spills out of its box`);
  }
  const plots = document.querySelectorAll('.js-plotly-plot');
  plots.forEach((plot, k) => {  // titles, subplot titles, axis titles and the legend of one figure
    const boxes = [];
    const add = (el, what) => {
      const r = el.getBoundingClientRect();
      if (r.width > 1 && r.height > 1) boxes.push([what, r]);
    };
    plot.querySelectorAll('.gtitle').forEach(e => add(e, 'title ' + e.textContent));
    plot.querySelectorAll('.annotation-text').forEach(e => add(e, 'subplot title ' + e.textContent));
    plot.querySelectorAll('.g-xtitle text, .g-ytitle text, [class^="g-x"] .xtitle, .g-y2title text').forEach(
      e => add(e, 'axis title ' + e.textContent));
    plot.querySelectorAll('.legend .bg').forEach(e => add(e, 'legend'));
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
      const [a, r] = boxes[i], [b, q] = boxes[j];
      const w = Math.min(r.right, q.right) - Math.max(r.left, q.left);
      const h = Math.min(r.bottom, q.bottom) - Math.max(r.top, q.top);
      if (w > 3 && h > 3) out.push(`chart ${k}: ${a.slice(0, 40)} overlaps ${b.slice(0, 40)}`);
    }
  });
  return out;
}"""


def _visit(page, server, path: str, name: str, charts: int, text: str, query: str = "") -> float:
    start = time.time()
    root = f"root={server['rollouts']}" if name == "rollouts" else ""
    params = "&".join(p for p in (root, query) if p)
    page.goto(f"{server['url']}/{path}" + (f"?{params}" if params else ""))
    if name == "explore":
        _drive_explore(page, server["model"])
    _settle(page, charts, text)
    assert page.locator('[data-testid="stException"]').count() == 0, f"traceback on {name} ({query or 'default'})"
    assert page.locator(".js-plotly-plot").count() >= charts, name
    if name in ("explore", "absorption"):
        colours = _token_colours(page)
        assert len(colours) >= 5, f"no token boxes on {name}"
        assert len(set(colours)) >= 2, f"token boxes on {name} are not coloured by value: {set(colours)}"
    overlaps = page.evaluate(OVERLAPS)
    assert not overlaps, f"{name} ({query or 'default'}): {overlaps[:5]}"
    return round(time.time() - start, 1)


def test_every_page_renders_offline_in_both_looks_without_overlapping_text(server):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    outside: list[str] = []

    def only_localhost(route):
        host = urlparse(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(server["tmp"] / "chromium-profile"), executable_path=server["browser"], headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1440, "height": 1000})
        try:
            context.route("**/*", only_localhost)
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            timings = {}
            for path, (name, charts, text) in PAGES.items():
                timings[name] = _visit(page, server, path, name, charts, text)
                if name == "explore":
                    assert "p(token | with strategy)" in _token_tip(page, SHOTS / "explore-hover.png")
                _screenshot(page, SHOTS / f"{name}.png")
            page.set_viewport_size({"width": 1024, "height": 768})
            for path, (name, charts, text) in PAGES.items():
                timings[f"{name}, presentation + dark"] = _visit(page, server, path, name, charts, text,
                                                                 "presentation=1&theme=dark")
                try:  # the page's style sheet is an element of the page: it may land a moment after the text
                    page.wait_for_function("getComputedStyle(document.documentElement).fontSize === '21px' && "
                                           "getComputedStyle(document.querySelector('[data-testid=\"stApp\"]'))"
                                           ".backgroundColor === 'rgb(14, 17, 23)'", timeout=10_000)
                except Exception:  # playwright's TimeoutError: say what the page has instead
                    found = page.evaluate("[getComputedStyle(document.documentElement).fontSize, getComputedStyle("
                                          "document.querySelector('[data-testid=\"stApp\"]')).backgroundColor]")
                    pytest.fail(f"{name} is not in dark presentation mode: font size, background = {found}")
                if page.locator(".js-plotly-plot").count():
                    paper = page.eval_on_selector(".js-plotly-plot .main-svg", "e => getComputedStyle(e).background")
                    assert "rgb(14, 17, 23)" in paper, f"{name}: a figure is not dark ({paper[:40]})"
                if name in PRESENTATION_SHOTS:
                    _screenshot(page, SHOTS / f"{name}-presentation.png", width=1024)
            print("seconds per page:", timings)
        finally:
            context.close()
    assert not outside, f"requests left localhost: {outside[:5]}"


def _token_tip(page, shot: Path) -> str:
    """The strongest token of the token view (darkest box): its hover text (the box's title); and a screenshot of the
    pinned token's panel (the strongest token is pinned by default)."""
    darkest = page.eval_on_selector_all(".tok", """els => {
        const sums = els.map(e => getComputedStyle(e).backgroundColor.match(/\\d+/g).slice(0, 3)
                                    .reduce((a, b) => a + +b, 0));
        return sums.indexOf(Math.min(...sums)); }""")
    token = page.locator(".tok").nth(darkest)
    token.scroll_into_view_if_needed()
    token.hover()
    page.locator(".js-plotly-plot").last.screenshot(path=str(shot))  # the pinned token's two top-k distributions
    return token.get_attribute("title") or ""


def _drive_explore(page, model: str) -> None:
    """Pick the model (a shipped size, or the tiny directory) and wait for the token view."""
    page.wait_for_selector('[data-testid="stRadio"]')
    if "/" in model:
        page.get_by_text("local HF model directory").click()
        box = page.get_by_role("textbox", name="Model directory", exact=True)
        box.fill(model)
        box.press("Enter")
    else:
        page.get_by_role("combobox", name="Size").click()
        page.get_by_role("option", name=model, exact=True).click()
    page.wait_for_selector("text=Token shift")
