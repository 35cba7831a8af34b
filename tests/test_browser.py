"""The app in headless Chromium: demo data → pretrain (live curve, reload, cancel) → Explore
(click, relabel, lasso a group and relabel it) → Probe (CSV) → Classify (drop an image, then a
whole schematic) → Runs, with a screenshot of each tab; all along, the page must request
nothing from any host but 127.0.0.1.

The demo data's majority class is named like HTML (`HOSTILE`): on every tab the page title stays,
no element is injected, and where the class is shown it reads as text.

Screenshots go to test-artifacts/screenshots/ (printed at the end).
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from test_ui_hostile_names import HOSTILE, write_hostile_export

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"
TIMEOUT_MS = 120_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium "
                       "(apt-get install -y chromium)"),
]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from ffclr.workspace import resolve_workspace
    from ui.serve import start_app

    from ui.tabs.data import DEMO_IMAGES, demo_export_dir

    workspace = resolve_workspace(tmp_path_factory.mktemp("browser") / "ws")
    write_hostile_export(demo_export_dir(workspace), images=DEMO_IMAGES, missing_image=False)
    demo, url = start_app(workspace)
    yield workspace, url
    demo.close()


@pytest.fixture(scope="module")
def outside_requests() -> list[str]:
    """URLs the page asked for beyond 127.0.0.1 (and data:/blob:), filled while `page` runs."""
    return []


@pytest.fixture(scope="module")
def page(app, outside_requests):
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="the optional playwright package is not installed (pip install playwright)")
    workspace, url = app
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000},
                                      accept_downloads=True)
        context.on("request", lambda request: outside_requests.append(request.url)
                   if not request.url.startswith(("http://127.0.0.1", "data:", "blob:"))
                   else None)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        yield page
        browser.close()
    shutil.rmtree(SHOTS / "_tmp", ignore_errors=True)
    print(f"\nscreenshots of every tab: {SHOTS}")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()
    page.wait_for_timeout(500)


def text_of(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id}").inner_text()


def wait_text(page, elem_id: str, needle: str, timeout: int = TIMEOUT_MS) -> None:
    try:
        page.wait_for_function(
            "([id, needle]) => { const el = document.getElementById(id);"
            " return el && el.innerText.includes(needle); }", arg=[elem_id, needle],
            timeout=timeout)
    except Exception:
        shot(page, f"failed-waiting-for-{elem_id}")
        raise AssertionError(f"#{elem_id} never showed {needle!r}; it shows "
                             f"{page.locator(f'#{elem_id}').inner_text()!r} (screenshot in "
                             f"{SHOTS})") from None


def choose(page, elem_id: str, option: str) -> None:
    """Pick an option of a Gradio dropdown by its visible text."""
    page.locator(f"#{elem_id} input").click()
    exact = re.compile(rf"^\W*{re.escape(option)}\s*$")
    page.locator('[data-testid="dropdown-option"]').filter(has_text=exact).first.click()


def assert_names_are_text(page, tab: str, shown_in: str | None = None) -> None:
    """No script ran (title unchanged), no element came from a name, and the hostile class
    name reads as text in `#shown_in`."""
    state = page.evaluate("""() => ({title: document.title, injected: [...document.querySelectorAll(
        'img')].filter((img) => img.hasAttribute('onerror') || img.getAttribute('src') === 'x')
        .length})""")
    assert state == {"title": "ffclr", "injected": 0}, f"{tab}: {state}"
    if shown_in:
        wait_text(page, shown_in, HOSTILE[:10])


MAP_JS = "document.querySelector('#explore-plot .js-plotly-plot')"
POINT_XY_JS = """(crop) => { const gd = %s;
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
    for (const trace of gd.data) {
      const k = trace.customdata.indexOf(crop);
      if (k >= 0) return [box.left + xa._offset + xa.l2p(trace.x[k]),
                          box.top + ya._offset + ya.l2p(trace.y[k])];
    }
    return null; }""" % MAP_JS


def point_xy(page, crop_id: int) -> tuple[float, float]:
    """Where crop `crop_id` is drawn on the map (WebGL draws no element per point: plotly's
    axes turn its data coordinates into pixels)."""
    xy = page.evaluate(POINT_XY_JS, crop_id)
    assert xy is not None, f"crop #{crop_id} is not on the map"
    return xy[0], xy[1]


def map_crops(page) -> list[list[int]]:
    """The crop ids of each trace of the map, drawn with WebGL."""
    return page.evaluate(f"""() => {{ const gd = {MAP_JS};
        if (!gd.querySelector('canvas')) return null;
        return gd.data.filter((t) => t.type === 'scattergl').map((t) => t.customdata); }}""")


def hover_hostile_point(page, crop_id: int) -> tuple[float, float]:
    """Hover points of the hostile class (the trace holding crop `crop_id`) until one shows its
    tooltip (its thumbnail loaded, its caption asked of Python); returns where it is."""
    trace = next((t for t in map_crops(page) if crop_id in t), None)
    assert trace is not None, "no trace of the hostile class on the map"
    tooltip = page.locator("#umap-tooltip")
    for crop in trace[:20]:
        x, y = point_xy(page, crop)
        page.mouse.move(x, y)
        try:
            page.wait_for_function(
                "(name) => { const tip = document.getElementById('umap-tooltip');"
                " const image = tip && tip.querySelector('img');"
                " return tip.style.display === 'block' && tip.innerText.includes(name)"
                " && image && image.complete && image.naturalWidth > 0; }",
                arg=HOSTILE, timeout=2_000)
            shown = True
        except Exception:
            shown = False
        assert page.title() == "ffclr", "hovering a point ran a script from its class name"
        if shown:
            assert tooltip.locator("img").count() == 1
            return x, y
    raise AssertionError("no point of the hostile class showed its name in the tooltip")


def lasso_around(page, x: float, y: float, reach: float = 40) -> int:
    """Drag the map's lasso (its default tool) in a square around (`x`, `y`), kept inside the
    plotting area; returns how many crops the app says are selected."""
    area = page.locator("#explore-plot .nsewdrag").first.bounding_box()
    left, right = max(area["x"] + 2, x - reach), min(area["x"] + area["width"] - 2, x + reach)
    top, bottom = max(area["y"] + 2, y - reach), min(area["y"] + area["height"] - 2, y + reach)
    page.mouse.move(left, top)
    page.mouse.down()
    for corner in ((right, top), (right, bottom), (left, bottom), (left, top + 1)):
        page.mouse.move(*corner, steps=4)
    page.mouse.up()
    try:
        page.wait_for_function("() => /^\\d+ crops selected/.test(document.getElementById("
                               "'explore-selection-info').innerText)", timeout=30_000)
    except Exception:
        shot(page, "failed-lasso")
        raise AssertionError(f"the lasso from ({left:.0f}, {top:.0f}) to ({right:.0f}, "
                             f"{bottom:.0f}) selected nothing (screenshot in {SHOTS})") from None
    return int(text_of(page, "explore-selection-info").split()[0])


def curve_points(page) -> int:
    return page.evaluate("() => { const gd = document.querySelector('#pretrain-plot "
                         ".js-plotly-plot'); return gd && gd.data ? gd.data[0].x.length : 0; }")


def test_newcomer_walkthrough(app, page, outside_requests):
    workspace, url = app

    # Data: one click loads the synthetic export
    page.get_by_role("button", name="Load demo data").click()
    wait_text(page, "data-status", "Dataset demo")
    page.wait_for_selector("#data-gallery img")
    with workspace.open_store() as store:
        dataset = store.dataset("demo")
        n_crops = len(store.crops(dataset["id"]))
    assert f"{n_crops} crops" in text_of(page, "data-summary")
    assert_names_are_text(page, "Data", "data-table")
    shot(page, "1-data")

    # Pretrain: a tiny CPU run; the curve advances; a reload shows the same run; cancel
    open_tab(page, "Pretrain")
    for label, value in (("Image size (px)", "16"), ("Batch", "16"), ("Epochs (at most)", "200"),
                         ("Time budget (s)", "120"),
                         ("kNN every N epochs (0 = never)", "0")):
        page.get_by_label(label, exact=True).fill(value)
    choose(page, "pretrain-precision", "fp32")
    page.get_by_role("button", name="Start", exact=True).click()
    wait_text(page, "pretrain-message", "Started run #")
    run_id = int(text_of(page, "pretrain-message").split("#")[1].split(".")[0])
    wait_text(page, "pretrain-status", "running")
    page.wait_for_function("() => { const gd = document.querySelector('#pretrain-plot "
                           ".js-plotly-plot'); return gd && gd.data && gd.data[0].x.length >= 2; }")
    first = curve_points(page)
    page.wait_for_function(f"() => document.querySelector('#pretrain-plot .js-plotly-plot')"
                           f".data[0].x.length > {first}")
    shot(page, "2-pretrain")
    page.reload()
    open_tab(page, "Pretrain")
    wait_text(page, "pretrain-status", f"Run #{run_id}")
    page.wait_for_function("() => { const gd = document.querySelector('#pretrain-plot "
                           ".js-plotly-plot'); return gd && gd.data && gd.data[0].x.length >= 2; }")
    page.get_by_role("button", name="Cancel", exact=True).click()
    wait_text(page, "pretrain-status", "cancelled")
    assert "Last checkpoint" in text_of(page, "pretrain-status")
    with workspace.open_store() as store:
        run = store.run(run_id)
    assert run["status"] == "cancelled" and Path(run["checkpoint"]).is_file()
    assert_names_are_text(page, "Pretrain")

    # Explore: map, hover thumbnail, click a point, relabel it, find the edit in the store
    open_tab(page, "Explore")
    page.get_by_role("button", name="Compute map").click()
    page.wait_for_function(f"() => {{ const gd = {MAP_JS}; return gd && gd.data"
                           " && gd.querySelector('canvas'); }")
    traces = map_crops(page)
    assert sum(len(t) for t in traces) == n_crops
    with workspace.open_store() as store:
        hostile = next(c["class_index"] for c in store.classes(dataset["id"])
                       if c["name"] == HOSTILE)
        hostile_crop = next(c["id"] for c in store.crops(dataset["id"]) if c["label"] == hostile)
    x, y = hover_hostile_point(page, hostile_crop)
    assert_names_are_text(page, "Explore (hover)")
    page.mouse.click(x, y)
    wait_text(page, "explore-info", "Crop #")
    assert_names_are_text(page, "Explore (click)", "explore-info")
    crop_id = int(text_of(page, "explore-info").split("Crop #")[1].split()[0])
    page.wait_for_function(f"(crop) => {{ const gd = {MAP_JS}, ring = (gd.layout.shapes || [])[0];"
                           " const trace = gd.data.find((t) => t.customdata.includes(crop));"
                           " const k = trace.customdata.indexOf(crop);"
                           " return ring && ring.name === 'clicked'"
                           " && ring.xanchor === trace.x[k] && ring.yanchor === trace.y[k]; }",
                           arg=crop_id)
    assert not page.locator("#umap-tooltip").is_visible(), "the tooltip outlived the click"
    hover_hostile_point(page, hostile_crop)
    page.mouse.move(5, 5)
    page.wait_for_function("() => document.getElementById('umap-tooltip').style.display"
                           " === 'none'")
    with workspace.open_store() as store:
        crop = store.crop(crop_id)
        classes = store.classes(dataset["id"])
    new = next(c for c in classes if c["class_index"] != crop["label"])
    choose(page, "explore-label", new["name"])
    wait_text(page, "explore-status", "Saved")
    assert_names_are_text(page, "Explore (relabel)", "explore-status")
    with workspace.open_store() as store:
        assert store.crop(crop_id)["label"] == new["class_index"]
        assert store.label_edits(crop_id)[-1]["new_class_index"] == new["class_index"]
    from ui.tabs import explore

    emap = next(reversed(explore._MAPS.values()))  # the page's: other tests' maps are older
    expected = explore.step_suspicious(emap, crop_id, 1)
    page.locator("#explore-info").click()
    page.keyboard.press("n")
    wait_text(page, "explore-info", f"Crop #{expected} ")
    n_selected = lasso_around(page, *point_xy(page, traces[0][0]))
    choose(page, "explore-selection-label", new["name"])
    page.get_by_role("button", name="Relabel selection").click()
    wait_text(page, "explore-status", f"of {n_selected} selected crops are now")
    with workspace.open_store() as store:
        batch = [e for e in store.label_edits(dataset_id=dataset["id"])
                 if e["note"] == "app: selection"]
        assert all(store.crop(e["crop_id"])["label"] == new["class_index"] for e in batch)
    shot(page, "3-explore")
    zoomed = page.evaluate(f"""async () => {{ const gd = {MAP_JS}, [a, b] = gd.layout.xaxis.range;
        const range = [a + (b - a) / 4, b - (b - a) / 4];
        await Plotly.relayout(gd, {{'xaxis.range': range}}); return range; }}""")
    choose(page, "explore-colour", "split")
    page.wait_for_function(f"() => {MAP_JS}.layout.legend.title.text === 'split'")
    kept = page.evaluate(f"() => {MAP_JS}.layout.xaxis.range")
    assert kept == pytest.approx(zoomed), "recolouring the map lost its zoom"

    # Probe: fit on train, score on valid, download the CSV
    open_tab(page, "Probe")
    page.get_by_role("button", name="Fit probe").click()
    wait_text(page, "probe-status", "Probe run #")
    assert_names_are_text(page, "Probe", "probe-status")
    with page.expect_download() as download:
        page.locator("#probe-csv").click()
    csv_path = SHOTS.parent / "probe-metrics.csv"
    download.value.save_as(csv_path)
    assert "overall:top1" in csv_path.read_text()
    shot(page, "4-probe")

    # Classify: drop a crop image, read the top-k
    open_tab(page, "Classify")
    page.wait_for_function("() => document.querySelector('#classify-probe input').value !== ''")
    symbol = Path(dataset["root"]) / crop["path"]
    page.locator("#classify-files input[type=file]").set_input_files(str(symbol))
    wait_text(page, "classify-status", "Classified 1 image")
    table = text_of(page, "classify-table")
    assert symbol.name in table and "%" in table, table

    # ...and a whole schematic: fit a detector on the demo export, drop a drawing, see boxes
    page.get_by_role("button", name="Fit detector").click()
    wait_text(page, "detect-status", "Detector saved", timeout=300_000)
    drawing = sorted((workspace.root / "exports" / "demo" / "valid").glob("*.jpg"))[0]
    page.locator("#detect-files input[type=file]").set_input_files(str(drawing))
    page.get_by_role("button", name="Find symbols").click()
    wait_text(page, "detect-status", "symbols in 1 drawing")
    page.wait_for_selector("#detect-coco", state="visible")
    assert_names_are_text(page, "Classify")
    shot(page, "5-classify")

    # Runs: the import, the pretraining and the probe are all there
    open_tab(page, "Runs")
    page.get_by_role("button", name="Refresh").click()
    wait_text(page, "runs-table", "probe")
    table = text_of(page, "runs-table")
    assert "import" in table and "pretrain" in table and "cancelled" in table
    assert_names_are_text(page, "Runs")
    shot(page, "6-runs")
    assert os.listdir(SHOTS)
    assert not outside_requests, \
        f"the page requested hosts other than 127.0.0.1: {outside_requests[:5]}"


CUT_HEADERS_JS = """() => {
    const brokenWord = (th) => {
      const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        for (const word of node.textContent.matchAll(/\\S+/g)) {
          const range = document.createRange();
          range.setStart(node, word.index);
          range.setEnd(node, word.index + word[0].length);
          if (new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size > 1)
            return true;
        }
      }
      return false;
    };
    const clipped = (th) => [th, ...th.querySelectorAll('*')].some(
      (el) => el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1);
    return [...document.querySelectorAll('th')].filter((th) => th.offsetParent)
      .filter((th) => clipped(th) || brokenWord(th))
      .map((th) => `${th.closest('[id]')?.id}: ${th.innerText.trim()}`);
}"""


def test_table_headers_fit_their_columns_on_a_small_laptop_screen(page):
    """After the walkthrough filled them, no table header is cut off or broken inside a word at
    1024 px."""
    page.set_viewport_size({"width": 1024, "height": 800})
    clipped = []
    for tab in ("Data", "Explore", "Probe", "Classify", "Annotate", "Runs"):
        open_tab(page, tab)
        page.wait_for_timeout(500)
        clipped += [f"{tab} · {header}" for header in page.evaluate(CUT_HEADERS_JS)]
    assert clipped == []
