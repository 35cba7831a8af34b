"""Annotate tab: the box editor's figure and its checks of what the browser sends, and every
control's function on the demo export with a tiny detector: add drawings, the queue in both
orders, open (pre-annotate), accept, draw, move, select, re-class, delete, undo, threshold, done,
next, export; the served app's add and export endpoints through gradio_client."""
from __future__ import annotations

import html
import json
import math
import os
import shutil
import zipfile
from dataclasses import dataclass

import numpy as np
import pytest

from ffclr.errors import FfclrError

HOSTILE = "<img src=x onerror=alert(1)> %{x}"


@dataclass
class FakeBox:
    id: int
    bbox: tuple
    class_index: int
    class_name: str
    score: float | None
    who: str
    accepted: bool


def _scene(path, seed: int):
    from ffclr.demo.scene import draw_schematic

    path.parent.mkdir(parents=True, exist_ok=True)
    draw_schematic(np.random.default_rng(seed), []).image.save(path)
    return path


@pytest.fixture(scope="module")
def annotating(tmp_path_factory, demo_export, detector_file):  # noqa: F811
    """The demo export imported as `demo`, three drawings added (train, train, valid), the
    tiny detector copied to the workspace's detectors/."""
    from ffclr.data.coco_import import import_export
    from ffclr.workspace import resolve_workspace
    from ui import schematics
    from ui.tabs import annotate

    root = tmp_path_factory.mktemp("annotate")
    workspace = resolve_workspace(root / "ws")
    import_export(demo_export, "demo", workspace)
    detector = schematics.detectors_dir(workspace) / "tiny.npz"
    detector.parent.mkdir(parents=True)
    shutil.copy(detector_file, detector)
    files = [str(_scene(root / "in" / f"drawing {i}.png", 10 + i)) for i in range(2)]
    message = annotate.add_drawings(workspace, "demo", files, None, "train")
    assert message.startswith("Added 2 drawings to demo (split train).")
    folder = _scene(root / "folder" / "third.png", 12).parent
    message = annotate.add_drawings(workspace, "demo", None, str(folder), "valid")
    assert message.startswith("Added 1 drawing to demo (split valid).")
    return workspace, str(detector.resolve())


def _drawing_ids(workspace) -> dict[str, int]:
    from ffclr import annotate as core

    return {d["file_name"]: d["id"] for d in core.drawings(workspace, "demo")}


def test_editor_figure_draws_each_box_by_state_with_escaped_labels():
    from ui.annotator import HEIGHT_PX, DrawingView, editor_spec

    boxes = [FakeBox(4, (10, 20, 30, 40), 0, HOSTILE, 0.9, "model", False),
             FakeBox(5, (50, 60, 10, 10), 1, "heat", 0.3, "model", False),
             FakeBox(9, (70, 80, 12, 14), 2, "smoke", 0.8, "model", True),
             FakeBox(11, (1, 2, 3, 4), 1, "heat", None, "person", True)]
    spec = json.loads(editor_spec(DrawingView(3, "/gradio_api/file=/x.png", 800, 600), boxes,
                                  selected=5, min_score=0.5, revision=7, nonce="n1"))
    assert spec["box_ids"] == [4, 5, 9, 11] and spec["drawing_id"] == 3
    assert (spec["selected"], spec["revision"], spec["nonce"]) == (5, 7, "n1")
    shapes = spec["layout"]["shapes"]
    assert [(s["x0"], s["y0"], s["x1"], s["y1"]) for s in shapes[:1]] == [(10, 20, 40, 60)]
    assert [s["line"]["dash"] for s in shapes] == ["dash", "dot", "solid", "solid"]
    assert shapes[1]["line"]["width"] > shapes[0]["line"]["width"]
    labels = [s["label"]["text"] for s in shapes]
    assert labels[0] == "&lt;img src=x onerror=alert(1)&gt; &#37;{x} 0.90"
    assert labels[1:] == ["heat 0.30", "smoke", "heat"]
    layout = spec["layout"]
    assert layout["yaxis"]["range"] == [600, 0] and layout["xaxis"]["range"] == [0, 800]
    assert layout["images"][0]["source"] == "/gradio_api/file=/x.png"
    assert layout["dragmode"] == "drawrect" and layout["height"] == HEIGHT_PX
    assert spec["config"]["scrollZoom"] and spec["config"]["edits"]["shapePosition"]


def test_edits_from_the_browser_are_checked_and_clipped():
    from ui.annotator import read_edit

    edit = read_edit({"kind": "move", "box_id": 3, "bbox": [10.123, 20, 30, 40]}, 100, 50)
    assert (edit.kind, edit.box_id, edit.bbox) == ("move", 3, (10.12, 20.0, 30.0, 30.0))
    edit = read_edit({"kind": "add", "bbox": [-5, 10, 20, -8]}, 100, 50)
    assert (edit.kind, edit.box_id, edit.bbox) == ("add", None, (0.0, 2.0, 15.0, 8.0))
    bad = [({"kind": "resize", "box_id": 1, "bbox": [1, 1, 5, 5]}, "unknown kind"),
           ({"kind": "move", "box_id": True, "bbox": [1, 1, 5, 5]}, "box id"),
           ({"kind": "move", "box_id": "3", "bbox": [1, 1, 5, 5]}, "box id"),
           ({"kind": "add", "bbox": [1, 1, math.nan, 5]}, "not a number"),
           ({"kind": "add", "bbox": [1, 1, 5]}, r"\[x, y, width, height\]"),
           ({"kind": "add", "bbox": [200, 1, 5, 5]}, "at least 2 pixels"),
           ({"kind": "add", "bbox": [1, 1, 1, 5]}, "at least 2 pixels"),
           ("move", "unknown kind")]
    for data, message in bad:
        with pytest.raises(FfclrError, match=message):
            read_edit(data, 100, 50)


def test_queue_in_both_orders_with_a_reason_for_each_drawing(annotating):
    from ui.tabs import annotate

    workspace, detector = annotating
    ids = set(_drawing_ids(workspace).values())
    shuffled = annotate.queue_items(workspace, "demo", None, None, "random")
    assert {item["id"] for item in shuffled} == ids
    assert all(item["reason"].startswith("Random order") for item in shuffled)
    sure = annotate.queue_items(workspace, "demo", detector, None, "uncertainty")
    assert {item["id"] for item in sure} == ids and all(item["reason"] for item in sure)
    rows = annotate.queue_table(sure)
    assert [row[0] for row in rows] == [1, 2, 3] and rows[0][1] == sure[0]["id"]
    assert {row[3] for row in rows} == {"train", "valid"}
    assert [row[4] for row in rows] == [f"{item['n_boxes']} ({item['n_accepted']})"
                                        for item in sure]
    assert annotate.queue_needed(workspace, "demo", [])  # a reloaded page: its queue is empty
    assert not annotate.queue_needed(workspace, "demo", shuffled)
    assert not annotate.queue_needed(workspace, None, [])
    assert not annotate.queue_needed(workspace, "no such dataset", [])
    assert annotate.opening_queue(workspace, "demo", None, None, "random", shuffled, None) is None
    status, items, table = annotate.opening_queue(workspace, "demo", None, None, "random", [], None)
    assert {item["id"] for item in items} == ids and len(table) == len(ids)
    assert f"{len(ids)} drawings to label" in status
    status, items, table = annotate.opening_queue(workspace, "demo", None, None, "uncertainty", [],
                                                  None)
    assert f"{len(ids)} drawings to label in demo, in random order" in status
    assert "needs a detector" in status and {item["id"] for item in items} == ids
    assert all(item["reason"].startswith("Random order") for item in items)
    with pytest.raises(FfclrError, match="needs a detector"):
        annotate.queue_items(workspace, "demo", None, None, "uncertainty")
    with pytest.raises(FfclrError, match="pick a dataset"):
        annotate.queue_items(workspace, None, detector, None, "random")


def test_every_editing_control_saves_at_once_and_undoes(annotating):
    from ffclr import annotate as core
    from ui.tabs import annotate

    workspace, detector = annotating
    drawing_id = _drawing_ids(workspace)["drawing 0.png"]
    threshold = annotate.detector_threshold(detector)
    message = annotate.open_drawing(workspace, drawing_id, detector, threshold)
    assert message.startswith("The detector proposes")
    proposed = core.boxes(workspace, drawing_id)
    assert proposed and all(b.who == "model" and not b.accepted for b in proposed)
    assert annotate.open_drawing(workspace, drawing_id, detector, threshold).startswith("Drawing")
    proposed = core.boxes(workspace, drawing_id)
    assert "none at or above the threshold 1.01: lower the threshold" in \
        annotate.proposal_message(proposed, 1.01)
    assert "press **a** to accept those" in annotate.proposal_message(proposed, 0.0)
    assert annotate.proposal_message([], 0.5).endswith("0 boxes: draw the symbols it missed.")
    shown = annotate.show(workspace, drawing_id, None, threshold)
    spec = json.loads(shown.spec)
    assert spec["box_ids"] == [b.id for b in proposed] and shown.selected is None
    assert f"{len(proposed)} boxes, 0 accepted" in shown.info

    assert annotate.accept(workspace, drawing_id, 0.0).startswith(f"Accepted {len(proposed)}")
    assert all(b.accepted for b in core.boxes(workspace, drawing_id))
    assert "Undone" in annotate.undo(workspace, drawing_id)
    assert not any(b.accepted for b in core.boxes(workspace, drawing_id))

    new_id, message = annotate.apply_edit(workspace, drawing_id,
                                          {"kind": "add", "bbox": [5, 6, 20, 22]}, 1)
    assert message.startswith(f"Added box #{new_id}")
    moved_id, message = annotate.apply_edit(
        workspace, drawing_id, {"kind": "move", "box_id": new_id, "bbox": [8, 9, 20, 22]}, 1)
    assert moved_id == new_id and message.startswith("Moved")
    _, message = annotate.apply_edit(
        workspace, drawing_id, {"kind": "move", "box_id": new_id, "bbox": [8, 9, 24, 22]}, 1)
    assert message.startswith("Resized")
    _, message = annotate.apply_edit(
        workspace, drawing_id, {"kind": "move", "box_id": new_id, "bbox": [8, 9, 20, 22]}, 1)
    assert annotate.select_box(workspace, drawing_id, {"box_id": new_id}) == new_id
    assert annotate.change_class(workspace, drawing_id, new_id, 2).endswith("is now " +
        annotate.class_choices(workspace, "demo")[2][0] + ".")
    assert annotate.change_class(workspace, drawing_id, new_id, 2) is None
    assert annotate.change_class(workspace, drawing_id, None, 0) is None
    box = next(b for b in core.boxes(workspace, drawing_id) if b.id == new_id)
    assert (box.bbox, box.class_index, box.who) == ((8, 9, 20, 22), 2, "person")
    shown = annotate.show(workspace, drawing_id, new_id, threshold)
    assert shown.selected == new_id and shown.class_value == 2 and f"Box #{new_id}" in shown.box

    assert "Deleted" in annotate.delete_selected(workspace, drawing_id, new_id)
    assert annotate.show(workspace, drawing_id, new_id, threshold).selected is None
    assert "Undone" in annotate.undo(workspace, drawing_id)
    with workspace.open_store() as store:
        actions = [(e["who"], e["action"]) for e in store.annotation_edits(drawing_id)]
    assert ("person", "add") in actions and ("person", "move") in actions
    assert ("person", "class") in actions and ("person", "delete") in actions
    assert actions.count(("person", "undo")) >= 2


def test_editing_refuses_what_does_not_belong_to_the_drawing(annotating):
    from ffclr import annotate as core
    from ui.tabs import annotate

    workspace, detector = annotating
    ids = _drawing_ids(workspace)
    first, other = ids["drawing 0.png"], ids["drawing 1.png"]
    box_id, _ = annotate.apply_edit(workspace, first, {"kind": "add", "bbox": [1, 1, 9, 9]}, 0)
    for call in (lambda: annotate.apply_edit(workspace, other, {"kind": "move", "box_id": box_id,
                                                                "bbox": [1, 1, 9, 9]}, 0),
                 lambda: annotate.select_box(workspace, other, {"box_id": box_id}),
                 lambda: annotate.delete_selected(workspace, other, box_id)):
        with pytest.raises(FfclrError, match="not on this drawing"):
            call()
    with pytest.raises(FfclrError, match="open a drawing first"):
        annotate.accept(workspace, None, 0.5)
    with pytest.raises(FfclrError, match="select a box first"):
        annotate.delete_selected(workspace, first, None)
    with pytest.raises(FfclrError, match="pick the class"):
        annotate.apply_edit(workspace, first, {"kind": "add", "bbox": [1, 1, 9, 9]}, None)
    with pytest.raises(FfclrError, match="nothing to undo"):
        annotate.undo(workspace, ids["folder/third.png"])
    assert core.boxes(workspace, other) == []


def test_threshold_restyles_boxes_and_names_are_text(annotating):
    from ui.tabs import annotate

    workspace, detector = annotating
    drawing_id = _drawing_ids(workspace)["drawing 0.png"]
    low = json.loads(annotate.show(workspace, drawing_id, None, 0.0).spec)
    high = json.loads(annotate.show(workspace, drawing_id, None, 1.0).spec)
    dashes = [s["line"]["dash"] for s in low["layout"]["shapes"]]
    assert "dash" in dashes and "dot" not in dashes
    assert "dash" not in [s["line"]["dash"] for s in high["layout"]["shapes"]]
    row = {"id": 1, "file_name": "<b>x</b>_*y*", "split": "train", "width": 4, "height": 3,
           "status": "new"}
    assert "<b>" not in annotate.drawing_info(row, [])
    box = FakeBox(2, (1, 2, 3, 4), 0, "<script>", 0.4, "model", False)
    assert "&lt;script&gt;" in annotate.box_info(box, 0.5) and "below the threshold" in \
        annotate.box_info(box, 0.5)


def test_done_makes_crops_next_skips_it_and_the_export_holds_it(annotating, tmp_path):
    from ffclr.data.coco_import import import_export
    from ui.tabs import annotate

    workspace, detector = annotating
    ids = _drawing_ids(workspace)
    drawing_id = ids["drawing 1.png"]
    annotate.apply_edit(workspace, drawing_id, {"kind": "add", "bbox": [10, 10, 24, 24]}, 0)
    message = annotate.finish(workspace, drawing_id)
    assert message.startswith("Saved drawing 1.png: 1 symbol in the crops of split train")
    with workspace.open_store() as store:
        crops = [c for c in store.crops(store.dataset("demo")["id"])
                 if c.get("drawing_id") == drawing_id]
        assert crops and store.drawing(drawing_id)["status"] == "annotated"
    items = [{"id": i} for i in (drawing_id, ids["drawing 0.png"], ids["folder/third.png"])]
    assert annotate.next_in_queue(workspace, items, None) == ids["drawing 0.png"]
    assert annotate.next_in_queue(workspace, items, ids["drawing 0.png"]) == ids["folder/third.png"]
    assert annotate.next_in_queue(workspace, items, ids["folder/third.png"]) == ids["drawing 0.png"]
    with pytest.raises(FfclrError, match="queue is empty"):
        annotate.next_in_queue(workspace, [], None)

    archive = annotate.export_zip(workspace, "demo")
    assert archive.name == "demo-coco.zip"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp_path / "export")
    coco = json.loads((tmp_path / "export" / "train" / "_annotations.coco.json").read_text())
    assert any(image["file_name"].startswith("drawing 1") for image in coco["images"])
    result = import_export(tmp_path / "export", "again", workspace)
    assert result is not None
    with workspace.open_store() as store:
        assert len(store.crops(store.dataset("again")["id"])) == \
            len(store.crops(store.dataset("demo")["id"]))


def test_served_app_adds_drawings_and_exports(annotating, tmp_path):
    from gradio_client import Client, handle_file

    from ui.serve import start_app

    workspace, detector = annotating
    demo, url = start_app(workspace)
    try:
        client = Client(url, verbose=False)
        status, table, _ = client.predict("demo", detector, "", "random",
                                          [handle_file(str(_scene(tmp_path / "new.png", 40)))],
                                          "", "test", api_name="/annotate_add")
        assert "Added 1 drawing to demo (split test)" in status
        assert "new.png" in [row[2] for row in table["data"]]
        status, download = client.predict("demo", api_name="/annotate_export")
        assert "Exported demo" in status
        with zipfile.ZipFile(download if isinstance(download, str) else download["value"]) as zf:
            assert "train/_annotations.coco.json" in zf.namelist()
    finally:
        demo.close()


def test_refit_figures_read_before_and_after(annotating):
    from ui.tabs import annotate_refit as annotate

    workspace, detector = annotating
    summary = {"detector": "/ws/detectors/demo-refit-0007.npz", "drawings": 4, "boxes": 31,
               "score_threshold": 0.8,
               "detector_new": {"drawings": 3, "mAP50": 0.85, "mAP": 0.5, "AR100": 0.6},
               "detector_old": {"drawings": 3, "mAP50": 0.8125, "mAP": 0.45, "AR100": 0.55},
               "probe_new": {"run": 9, "top1": 0.9, "macro_f1": 0.7, "n_train": 120},
               "probe_old": None}
    rows = annotate.refit_rows(summary)
    assert rows[0] == ["detector mAP@50", "0.812", "0.850"]
    assert ["drawings scored", "3", "3"] in rows
    assert ["probe top-1", "", "0.900"] in rows and ["probe training crops", "", "120"] in rows

    assert annotate.refit_view(workspace, "demo")[:3] == ("No refit yet for this dataset.", [],
                                                          False)
    with workspace.open_store() as store:
        dataset_id = store.dataset("demo")["id"]
        running = store.create_run("refit", {"dataset": "demo"}, dataset_id=dataset_id)
        store.mark_running(running, os.getpid())
        store.log_metrics(running, 1, {"progress": 0.25})
    status, rows, active, new = annotate.refit_view(workspace, "demo")
    assert status == f"Refit run #{running}: running (25%)." and active and new is None
    with workspace.open_store() as store:
        store.finish_run(running, "finished", summary=summary)
    status, rows, active, new = annotate.refit_view(workspace, "demo")
    assert "on 4 drawings, 31 boxes; the new detector demo-refit-0007.npz is picked" in status
    assert rows == annotate.refit_rows(summary) and not active
    assert new == summary["detector"]
    with pytest.raises(FfclrError, match="pick the checkpoint"):
        annotate.start_refit(workspace, "demo", None, None)
    with pytest.raises(FfclrError, match="pick a dataset"):
        annotate.start_refit(workspace, None, None, detector)


def test_a_drawing_changes_split(annotating):
    from ui.tabs import annotate

    workspace, detector = annotating
    drawing_id = _drawing_ids(workspace)["folder/third.png"]
    assert annotate.show(workspace, drawing_id, None, 0.5).split == "valid"
    assert annotate.change_split(workspace, drawing_id, "test") == \
        "folder/third.png goes to split test."
    assert annotate.change_split(workspace, drawing_id, "test") is None
    assert annotate.show(workspace, drawing_id, None, 0.5).split == "test"
    with pytest.raises(FfclrError, match="split 'holdout'"):
        annotate.change_split(workspace, drawing_id, "holdout")
    annotate.change_split(workspace, drawing_id, "valid")


def test_refit_takes_the_detectors_checkpoint(annotating, tiny_checkpoint,  # noqa: F811
                                              monkeypatch):
    from ffclr.train import jobs
    from ui.tabs import annotate_refit

    workspace, detector = annotating
    queued = []
    monkeypatch.setattr(jobs, "start_job", lambda ws, kind, config, **kw: queued.append(
        (kind, config)) or 41)
    with pytest.raises(FfclrError, match="pick the checkpoint"):
        annotate_refit.start_refit(workspace, "demo", None, detector)
    with workspace.open_store() as store:
        run = store.create_run("detector", {"checkpoint": str(tiny_checkpoint)})
        store.finish_run(run, "finished", summary={"detector": detector})
    message = annotate_refit.start_refit(workspace, "demo", None, detector)
    assert message.startswith("Refit run #41 queued")
    (kind, config), = queued
    assert kind == "refit" and config["dataset"] == "demo" and config["detector"] == detector
    assert config["checkpoint"] == str(tiny_checkpoint)


def test_the_slider_starts_at_the_detectors_accept_threshold(annotating, tmp_path):
    from dataclasses import replace

    from ffclr.detection import load_detector, save_detector
    from ui.tabs import annotate

    _, detector = annotating
    loaded = load_detector(detector)
    precise = save_detector(replace(loaded, accept_threshold=0.876), tmp_path / "precise.npz")
    older = save_detector(replace(loaded, accept_threshold=None), tmp_path / "older.npz")
    assert annotate.detector_threshold(str(precise)) == 0.87  # cut, so a 0.876 box is above
    assert annotate.detector_threshold(str(older)) == math.floor(loaded.score_threshold * 100) / 100
    assert annotate.detector_threshold(None) == annotate.DEFAULT_THRESHOLD
    from ui.annotator import score_text

    assert [score_text(v) for v in (0.9996, 1.0, 0.5, 0.876)] == ["0.99", "1.00", "0.50", "0.87"]


def test_remove_asks_for_confirmation_then_opens_the_next_drawing(annotating, tmp_path):
    from ffclr import annotate as core
    from ui.build import build_app
    from ui.tabs import annotate
    from ui_wiring import call, skipped

    workspace, detector = annotating
    added = annotate.add_drawings(workspace, "demo", [str(_scene(tmp_path / "spare.png", 41))],
                                  None, "train")
    assert added.startswith("Added 1 drawing")
    ids = _drawing_ids(workspace)
    spare, other = ids["spare.png"], ids["drawing 0.png"]
    annotate.apply_edit(workspace, spare, {"kind": "add", "bbox": [10, 10, 24, 24]}, 0)
    copy = core.drawing_path(workspace, next(d for d in core.drawings(workspace, "demo")
                                             if d["id"] == spare))
    queue = [{"id": spare, "file_name": "spare.png", "split": "train", "n_boxes": 1,
              "n_accepted": 0, "reason": "random"},
             {"id": other, "file_name": "drawing 0.png", "split": "train", "n_boxes": 0,
              "n_accepted": 0, "reason": "random"}]
    demo = build_app(workspace)
    refused = call(demo, "annotate-remove", "click", queue, spare, False, None, 0.5, None)
    assert "tick 'yes, remove it' to confirm" in html.unescape(refused["annotate-status"])
    assert skipped(refused["annotate-queue"]) and spare in _drawing_ids(workspace).values()

    done = call(demo, "annotate-remove", "click", queue, spare, True, None, 0.5, None)
    assert "Removed spare.png with its boxes and 0 crops." in done["annotate-status"]
    assert spare not in _drawing_ids(workspace).values() and not copy.exists()
    assert [row[1] for row in done["annotate-queue"]] == [other]
    assert "drawing 0.png" in done["annotate-info"] and done["annotate-remove-confirm"] is False
    with pytest.raises(FfclrError, match=f"no drawing with id {spare}"):
        annotate.remove(workspace, spare, True)
