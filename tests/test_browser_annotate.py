"""The Annotate tab in headless Chromium, one drawing end to end: add it, open it from the queue
(pre-annotated by a tiny detector whose majority class has the dataset's hostile name; the
queue is listed again after a page reload), accept with `a`, select a box and delete it with
`x`, draw a box, change its class in the dropdown, undo with `u`, Done, export the zip and import
it again.
The dataset is the hostile-named demo export of tests/test_browser.py (its fixtures and helpers
are reused), so the class named like HTML must read as text here too."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ffclr.demo.scene import draw_schematic
from test_browser import (CHROMIUM, app, assert_names_are_text,  # noqa: F401
                          open_tab, outside_requests, page, shot, wait_text)
from test_ui_hostile_names import HOSTILE, most_common_category

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium "
                       "(apt-get install -y chromium)"),
]

EDITOR = "#annotate-editor .annotator-plot"


def editor_state(pg) -> dict:
    return pg.evaluate(f"""() => {{ const gd = document.querySelector('{EDITOR}');
        return {{boxes: Number(gd.dataset.boxes || -1), selected: gd.dataset.selected || '',
                 revision: Number(gd.dataset.revision || -1)}}; }}""")


def wait_editor(pg, condition: str) -> None:
    """Wait until `condition` holds of the editor's dataset (`d`), e.g. "d.boxes > 0"."""
    pg.wait_for_function(f"""() => {{ const gd = document.querySelector('{EDITOR}');
        if (!gd || gd.dataset.boxes === undefined) return false;
        const d = {{boxes: Number(gd.dataset.boxes), selected: gd.dataset.selected,
                   revision: Number(gd.dataset.revision)}}; return {condition}; }}""")


def shape_centre(pg, index: int) -> tuple[float, float]:
    pg.locator(EDITOR).scroll_into_view_if_needed()
    box = pg.locator(f"{EDITOR} .shapelayer path[data-index='{index}']").bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def empty_spot(pg) -> tuple[float, float]:
    """Screen point of a drawing pixel in view, with 30 px free of boxes around it (room to
    draw one)."""
    pg.locator(EDITOR).scroll_into_view_if_needed()
    return tuple(pg.evaluate(f"""() => {{
        const gd = document.querySelector('{EDITOR}');
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, image = gd.layout.images[0];
        const area = gd.querySelector('.nsewdrag').getBoundingClientRect();
        const left = Math.max(xa.range[0], 0) + 10, right = Math.min(xa.range[1], image.sizex) - 40;
        const top = Math.max(ya.range[1], 0) + 10, bottom = Math.min(ya.range[0], image.sizey) - 40;
        for (let y = top; y < bottom; y += 5) for (let x = left; x < right; x += 5) {{
          const free = gd.layout.shapes.every((s) => x + 50 < s.x0 || x - 30 > s.x1 ||
                                                    y + 50 < s.y0 || y - 30 > s.y1);
          if (free) return [area.left + xa.l2p(x), area.top + ya.l2p(y)];
        }}
        return null; }}"""))


def x_range(pg) -> list[float]:
    return pg.evaluate(f"() => document.querySelector('{EDITOR}')._fullLayout.xaxis.range")


def press(pg, key: str) -> None:
    """A shortcut key with the focus outside any input."""
    pg.locator("#annotate-info").click()
    pg.keyboard.press(key)


def type_class(pg, name: str) -> None:
    """Set the class by typing its first letters in the dropdown and pressing Enter."""
    field = pg.locator("#annotate-class input")
    field.click()
    field.fill(name[:5])
    pg.wait_for_selector('[data-testid="dropdown-option"]')
    pg.keyboard.press("Enter")


def annotate_one_drawing(pg, drawing, classes: list[str], out) -> Path:
    """Everything in the browser; the drawn box gets the first of `classes` it does not have.
    Returns the downloaded export (saved under `out`)."""
    open_tab(pg, "Annotate")
    pg.wait_for_function("() => document.querySelector('#annotate-detector input').value")
    pg.locator("#annotate-files input[type=file]").set_input_files(str(drawing))
    pg.wait_for_timeout(500)
    pg.locator("#annotate-add").click()
    wait_text(pg, "annotate-status", "Added 1 drawing ")
    pg.reload()
    open_tab(pg, "Annotate")
    wait_text(pg, "annotate-status", "1 drawing to label")
    pg.locator('#annotate-queue [data-testid="cell-0-2"]').click()
    wait_editor(pg, "d.boxes > 0")
    start = editor_state(pg)
    x, y = shape_centre(pg, 0)
    whole = x_range(pg)
    pg.mouse.move(x, y)
    pg.mouse.wheel(0, -400)
    pg.wait_for_function(f"() => {{ const r = document.querySelector('{EDITOR}')._fullLayout"
                         f".xaxis.range; return r[1] - r[0] < {whole[1] - whole[0] - 1}; }}")
    zoomed = x_range(pg)

    press(pg, "a")
    wait_text(pg, "annotate-status", "Accepted")
    wait_editor(pg, f"d.revision > {start['revision']}")
    assert x_range(pg) == pytest.approx(zoomed), "an edit's redraw lost the zoom"
    x, y = shape_centre(pg, 0)
    pg.mouse.move(x, y)
    pg.mouse.click(x, y)
    wait_text(pg, "annotate-box", "Box #")
    press(pg, "x")
    wait_text(pg, "annotate-status", "Deleted box")
    wait_editor(pg, f"d.boxes === {start['boxes'] - 1}")

    x, y = empty_spot(pg)
    pg.mouse.move(x, y)
    pg.mouse.down()
    pg.mouse.move(x + 30, y + 30, steps=6)
    pg.mouse.up()
    wait_text(pg, "annotate-status", "Added box")
    wait_editor(pg, f"d.boxes === {start['boxes']} && d.selected !== ''")

    drawn_as = pg.locator("#annotate-class input").input_value()
    new_class = next(name for name in classes if name != drawn_as)
    type_class(pg, new_class)
    wait_text(pg, "annotate-status", " is now ")
    wait_text(pg, "annotate-status", new_class[:12])
    press(pg, "u")
    wait_text(pg, "annotate-status", "Undone")
    pg.locator("#annotate-finish").click()
    wait_text(pg, "annotate-status", "Saved")
    shot(pg, "7-annotate")
    pg.locator("#annotate-export").click()
    pg.wait_for_selector("#annotate-download", state="visible")
    with pg.expect_download() as download:
        pg.locator("#annotate-download").click()
    path = out / "annotate-export.zip"
    download.value.save_as(path)
    return path


def test_annotate_one_drawing_end_to_end(app, page, outside_requests, detector_file,  # noqa: F811
                                         demo_export, tmp_path):
    from dataclasses import replace

    from ffclr.data.coco_import import import_export
    from ffclr.detection import load_detector, save_detector
    from ui import schematics
    from ui.tabs.data import demo_export_dir

    workspace, url = app
    import_export(demo_export_dir(workspace), "demo", workspace)
    schematics.detectors_dir(workspace).mkdir(parents=True, exist_ok=True)
    tiny = load_detector(detector_file)
    majority = tiny.category_ids.index(most_common_category(demo_export))
    names = [HOSTILE if i == majority else name for i, name in enumerate(tiny.class_names)]
    save_detector(replace(tiny, accept_threshold=tiny.score_threshold, class_names=names),
                  schematics.detectors_dir(workspace) / "tiny.npz")
    with workspace.open_store() as store:
        classes = [c["name"] for c in store.classes(store.dataset("demo")["id"])]
    drawing = tmp_path / "new-drawing.png"  # a drawing the export does not hold
    draw_schematic(np.random.default_rng(1234), []).image.save(drawing)

    archive = annotate_one_drawing(page, drawing, [HOSTILE, *classes], tmp_path)
    assert_names_are_text(page, "Annotate")
    assert not outside_requests, f"requests beyond 127.0.0.1: {outside_requests[:5]}"
    with workspace.open_store() as store:
        (row,) = store.drawings(store.dataset("demo")["id"])
        assert row["status"] == "annotated"
        edits = store.annotation_edits(row["id"])
        n_crops = len(store.drawing_crops(row["dataset_id"], row["id"]))
    assert {"propose", "accept", "delete", "add", "class", "undo"} <= {e["action"] for e in edits}
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp_path / "export")
    coco = json.loads((tmp_path / "export" / "train" / "_annotations.coco.json").read_text())
    image = next(i for i in coco["images"] if i["file_name"].startswith(drawing.stem))
    assert len([a for a in coco["annotations"] if a["image_id"] == image["id"]]) == n_crops > 0
    import_export(tmp_path / "export", "again", workspace)
    with workspace.open_store() as store:
        assert len(store.crops(store.dataset("again")["id"])) == \
            len(store.crops(store.dataset("demo")["id"]))
