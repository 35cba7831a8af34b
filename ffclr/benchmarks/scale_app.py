"""The app's part of `bench scale`: `python app.py` on the benchmark's workspace, driven in
headless Chromium as a user would: the Data gallery of the largest class, the Explore map
computed and drawn, a point clicked, the Runs table.

Seconds are what the page takes to show each result; the map's draw is also timed alone
(plotly drawing the figure already in the page: the cost once its data has arrived). Peak memory
is the app server's (one process for all app stages).
"""
from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ffclr.benchmarks.measure import Measured, wait_measured

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
REPOSITORY = Path(__file__).resolve().parents[2]
STAGES = ("app_data_gallery", "app_explore_map", "app_map_draw", "app_click", "app_runs")
TIMEOUT_MS = 3_600_000
MAP = "document.querySelector('#explore-plot .js-plotly-plot')"
DRAW_JS = """async () => { const gd = %s;
    const data = JSON.parse(JSON.stringify(gd.data)), layout = JSON.parse(JSON.stringify(gd.layout));
    const start = performance.now();
    await Plotly.react(gd, data, layout);
    await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
    return (performance.now() - start) / 1000; }""" % MAP
"""The figure redrawn from copies of its data and layout (new arrays: plotly recomputes and
redraws every trace; its event handlers stay), until the next frame is painted."""
FIRST_POINT_JS = """() => { const gd = %s;
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
    const trace = gd.data.find((t) => t.x.length);
    const k = Math.floor(trace.x.length / 2);
    return [box.left + xa._offset + xa.l2p(trace.x[k]), box.top + ya._offset + ya.l2p(trace.y[k])];
    }""" % MAP


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_served(url: str, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the app exited at start")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the app did not answer at {url}")


def _largest_class(workspace: Path, dataset: str) -> str:
    from ffclr.workspace import Workspace

    with Workspace(workspace).open_store() as store:
        row = store.dataset(dataset)
        counts = store.label_counts(row["id"])
        names = {c["class_index"]: c["name"] for c in store.classes(row["id"])}
    totals: dict[int, int] = {}
    for count in counts:
        totals[count["label"]] = totals.get(count["label"], 0) + count["crops"]
    return names[max(totals, key=totals.get)]


def _choose(page, elem_id: str, option: str | None = None) -> None:
    page.locator(f"#{elem_id} input").click()
    options = page.locator('[data-testid="dropdown-option"]')
    if option is not None:
        options = options.filter(has_text=re.compile(rf"^\W*{re.escape(option)}\s*$"))
    options.first.click()


def _timed(action, wait) -> float:
    start = time.perf_counter()
    action()
    wait()
    return time.perf_counter() - start


def _drive(page, url: str, largest: str, run_name: str) -> dict[str, float]:
    seconds = {}
    page.goto(url)
    page.wait_for_selector("#data-dataset")
    seconds["app_data_gallery"] = _timed(
        lambda: _choose(page, "data-class", largest),
        lambda: page.wait_for_selector("#data-gallery img"))

    page.get_by_role("tab", name="Explore", exact=True).click()
    _choose(page, "explore-checkpoint")
    seconds["app_explore_map"] = _timed(
        lambda: page.locator("#explore-compute").click(),
        lambda: page.wait_for_function(f"() => {{ const gd = {MAP}; return gd && gd.data"
                                       " && gd.data.length && gd.querySelector('canvas'); }"))
    page.wait_for_timeout(1000)
    seconds["app_map_draw"] = page.evaluate(DRAW_JS)
    x, y = page.evaluate(FIRST_POINT_JS)
    page.mouse.move(x, y)
    page.wait_for_timeout(500)
    seconds["app_click"] = _timed(
        lambda: page.mouse.click(x, y),
        lambda: page.wait_for_function("() => document.getElementById('explore-info')"
                                       ".innerText.includes('Crop #')"))

    page.get_by_role("tab", name="Runs", exact=True).click()
    seconds["app_runs"] = _timed(
        lambda: page.locator("#runs-refresh").click(),
        lambda: page.wait_for_function(
            "(name) => document.getElementById('runs-table').innerText.includes(name)",
            arg=run_name))
    return seconds


def measure_app(workspace: Path, dataset: str, run_name: str, log: Path
                ) -> list[tuple[str, float | None, Measured | None]]:
    """(stage, seconds or None when it failed, the app server's measurement) per app stage."""
    if not CHROMIUM.exists():
        print("  app stages skipped: no Chromium at /usr/bin/chromium", flush=True)
        return []
    from playwright.sync_api import sync_playwright

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log.parent.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    with open(log, "wb") as out:
        started = time.perf_counter()
        server = subprocess.Popen([sys.executable, str(REPOSITORY / "app.py"), "--workspace",
                                   str(workspace), "--port", str(port), "--no-demo"],
                                  stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_served(url, server)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                     args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(TIMEOUT_MS)
                seconds = _drive(page, url, _largest_class(workspace, dataset), run_name)
                browser.close()
        except Exception as exc:  # noqa: BLE001 - recorded as the app stages' failure
            out.write(f"\napp stages: {type(exc).__name__}: {exc}\n".encode())
        finally:
            server.send_signal(signal.SIGINT)
            measured = wait_measured(server, started, log, timeout=30)
    if not seconds:
        failed = Measured(measured.seconds, measured.peak_rss_mb, 1, log)
        return [(name, None, failed) for name in STAGES]
    return [(name, seconds.get(name), Measured(measured.seconds, measured.peak_rss_mb, 0, log))
            for name in STAGES]
