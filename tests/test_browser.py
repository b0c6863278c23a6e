"""The workbench in a real browser: `streamlit run app/main.py` driven by Debian's headless Chromium (Playwright).

Visits every page, checks that charts render (``.js-plotly-plot``), that the token view shows coloured
token boxes, that no traceback reaches a page and that no request leaves localhost (plotly's JS is the
copy Streamlit serves), and saves one screenshot per page to ``docs/screenshots/<page>.png`` (the README's).

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
PAGES = {"": ("runs", 2, "Training metrics"), "weights": ("weights", 3, "Weight against p_auto"),
         "absorption": ("absorption", 3, "Probe problem"), "compare": ("compare", 1, "Absolute numbers are not"),
         "train": ("train", 0, "Launch"), "explore": ("explore", 1, "Completion to analyse")}


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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    browser = _browser_or_skip()
    tmp = tmp_path_factory.mktemp("browser")
    root, model = _data(tmp)
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
        yield {"url": url, "model": model, "root": root, "browser": browser, "tmp": tmp}
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


def _screenshot(page, path: Path) -> None:
    """The whole page: Streamlit scrolls inside its main container, so grow the viewport to its height first."""
    height = page.evaluate("Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"], "
                           "[data-testid=\"stAppViewContainer\"]')].map(e => e.scrollHeight), 800)")
    page.set_viewport_size({"width": 1440, "height": min(int(height) + 40, 5000)})
    page.wait_for_timeout(500)  # plotly re-lays out on resize
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1440, "height": 1000})


def _token_fills(page) -> list[str]:
    """Fill colours of the token boxes (plotly layout shapes) of every chart on the page."""
    return page.eval_on_selector_all(".js-plotly-plot .shapelayer path",
                                     "els => els.map(e => getComputedStyle(e).fill)")


def test_every_page_renders_offline_with_coloured_tokens(server):
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
                start = time.time()
                page.goto(f"{server['url']}/{path}")
                if name == "explore":
                    _drive_explore(page, server["model"])
                _settle(page, charts, text)
                timings[name] = round(time.time() - start, 1)
                assert page.locator('[data-testid="stException"]').count() == 0, f"traceback on {name}"
                assert page.locator(".js-plotly-plot").count() >= charts, name
                if name in ("explore", "absorption"):
                    fills = _token_fills(page)
                    assert len(fills) >= 5, f"no token boxes on {name}"
                    assert len(set(fills)) >= 2, f"token boxes on {name} are not coloured by value: {set(fills)}"
                if name == "explore":
                    assert "p(token | with strategy)" in _hover_strongest_token(page, SHOTS / "explore-hover.png")
                _screenshot(page, SHOTS / f"{name}.png")
            print("seconds per page:", timings)
        finally:
            context.close()
    assert not outside, f"requests left localhost: {outside[:5]}"


def _hover_strongest_token(page, shot: Path) -> str:
    """Hover the darkest token box (the largest shift) of the token view; the hover label's text (and a screenshot)."""
    boxes = page.locator(".js-plotly-plot .shapelayer path")
    darkest = page.eval_on_selector_all(".js-plotly-plot .shapelayer path", """els => {
        const sums = els.map(e => getComputedStyle(e).fill.match(/\\d+/g).slice(0, 3).reduce((a, b) => a + +b, 0));
        return sums.indexOf(Math.min(...sums)); }""")
    label = page.locator(".hoverlayer .hovertext").first
    for attempt in range(10):  # plotly hovers on mousemove; a re-render in between needs another move
        box = boxes.nth(darkest)
        box.scroll_into_view_if_needed()
        bounds = box.bounding_box()
        page.mouse.move(5, 5)
        page.mouse.move(bounds["x"] + bounds["width"] / 2, bounds["y"] + bounds["height"] / 2 + (attempt % 3) - 1,
                        steps=4)
        try:
            label.wait_for(timeout=1500)
            break
        except Exception:  # playwright's TimeoutError: move again
            continue
    text = label.text_content()
    page.locator(".js-plotly-plot").filter(has=page.locator(".shapelayer path")).first.screenshot(path=str(shot))
    page.mouse.move(5, 5)
    return text


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
