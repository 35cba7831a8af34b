"""Classify tab handlers: dropped images → top-k, neighbours, unknown flag; bad files refused."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from ffclr.errors import FfclrError
from test_ui_probe import demo_with_tiny_checkpoint
from ui.tabs import classify, probe


@pytest.fixture
def classifier(workspace, demo_export, monkeypatch):
    checkpoint = demo_with_tiny_checkpoint(workspace, demo_export, monkeypatch)
    report = probe.run_probe(workspace, str(checkpoint), "demo", "train", "valid")
    return workspace, report.run_id


def test_classify_gives_top_k_neighbours_and_refuses_non_images(classifier, tmp_path):
    workspace, run_id = classifier
    assert [v for _, v in classify.classifier_choices(workspace)] == [run_id]
    with workspace.open_store() as store:
        dataset = store.dataset("demo")
        crop = store.crops(dataset["id"], "train")[0]
        class_names = {c["name"] for c in store.classes(dataset["id"])}
        root = dataset["root"]
    symbol = f"{root}/{crop['path']}"
    text = tmp_path / "notes.png"
    text.write_text("this is text, not a picture")
    huge = tmp_path / "huge.png"
    Image.new("RGB", (8000, 6000)).save(huge)
    entries = classify.classify(workspace, run_id, [symbol, str(text), str(huge)], top_k=3)
    top = entries[0]["result"].top
    assert len(class_names) > 3 and len(top) == 3
    names, probabilities = zip(*top)
    assert set(names) <= class_names and len(set(names)) == 3
    assert list(probabilities) == sorted(probabilities, reverse=True)
    assert probabilities[-1] > 0 and sum(probabilities) <= 1 + 1e-6
    assert "not an image" in entries[1]["error"] and "too large" in entries[2]["error"]
    rows = classify.result_rows(entries)
    assert rows[0][:3] == [crop["path"].rsplit("/", 1)[-1], names[0],
                           round(100 * probabilities[0], 1)]
    assert rows[0][5].startswith(f"{names[0]} ")
    assert rows[1][1] == "refused" and "not an image" in rows[1][5]
    gallery = classify.neighbour_gallery(entries)
    assert len(gallery) == 8 and gallery[0][0] == symbol  # the crop itself is its own nearest


def test_a_whole_drawing_dropped_among_symbols_is_refused_by_its_name(classifier, demo_export):
    workspace, run_id = classifier
    drawing = sorted((demo_export / "valid").glob("*.jpg"))[0]
    entries = classify.classify(workspace, run_id, [str(drawing)])
    assert entries[0]["result"] is None
    assert entries[0]["error"].startswith(f"{drawing.name}: a whole schematic (")
    row = classify.result_rows(entries)[0]
    assert row[1] == "refused" and str(drawing.parent) not in row[5]
    status = classify.classify_message(entries)
    assert "✓" not in status and "ffclr-error" in status and "a whole schematic" in status
    symbol = sorted((workspace.root / "datasets").rglob("*.png"))[0]
    both = classify.classify(workspace, run_id, [str(symbol), str(drawing)])
    status = classify.classify_message(both)
    assert status.startswith("✓ Classified 1 image(s)") and f"Refused {drawing.name}" in status


def test_classify_explains_what_is_missing(classifier):
    workspace, run_id = classifier
    with pytest.raises(FfclrError, match="drop one or more"):
        classify.classify(workspace, run_id, [])
    with pytest.raises(FfclrError, match="pick a classifier"):
        classify.classify(workspace, None, ["x.png"])


def test_schematics_fit_detect_draw_and_write_coco(classifier, demo_export, tmp_path):
    import json

    from ui import schematics

    workspace, run_id = classifier
    with workspace.open_store() as store:
        checkpoint = store.run(run_id)["config"]["checkpoint"]
    path = schematics.fit(workspace, checkpoint, "demo")
    assert [p for _, p in schematics.detector_choices(workspace)] == [path]
    refitted = schematics.detectors_dir(workspace) / "demo-refit-0001.npz"
    shutil.copy(path, refitted)
    with workspace.open_store() as store:
        refit = store.create_run("refit", {})
        store.finish_run(refit, "finished", summary={"detector": str(refitted)})
        fit_run = store.runs(kind="detector")[0]["id"]
    assert schematics.detector_choices(workspace) == [
        (f"refit #{refit} · demo-refit-0001.npz", str(refitted.resolve())),
        (f"detector #{fit_run} · {Path(path).name}", path)]
    drawing = sorted((demo_export / "valid").glob("*.jpg"))[0]
    text = tmp_path / "drawing.png"
    text.write_text("not a drawing")
    result = schematics.detect(workspace, path, [str(drawing), str(text)], tmp_path / "out")
    (image, caption), = result["drawn"]
    width, height = Image.open(drawing).size
    assert image.size[0] >= width and abs(image.size[0] / image.size[1] - width / height) < 0.02
    assert caption == f"{drawing.name}: {len(result['rows'])} symbols"
    assert result["refused"] and "not an image" in result["refused"][0]
    coco = json.loads(Path(result["coco"]).read_text())
    assert coco["images"][0]["file_name"] == drawing.name
    assert len(coco["annotations"]) == len(result["rows"])
    with pytest.raises(FfclrError, match="pick a detector"):
        schematics.detect(workspace, None, [str(drawing)], tmp_path / "out")


def test_result_table_and_found_symbols_fit_their_boxes(workspace):
    """The probability sat behind a long file name and top-k list; the drawings of "Symbols
    found" were square tiles taller than their box, cutting off the bottom of each drawing."""
    from ui.build import build_app
    from ui_wiring import component

    assert classify.RESULT_COLUMNS.index("prob. (%)") == 2
    assert classify.RESULT_COLUMNS[-1].startswith("top-k")
    demo = build_app(workspace)
    table = component(demo, "classify-table")
    assert table.wrap and len(table.column_widths) == len(classify.RESULT_COLUMNS)
    drawn = component(demo, "detect-drawn")
    assert drawn.object_fit == "contain" and drawn.height == classify.DRAWING_HEIGHT
    from ui.build import CSS

    rule = next(line for line in CSS.splitlines() if line.startswith("#detect-drawn"))
    tile = int(rule.split("height:")[1].split("px")[0])
    assert "aspect-ratio: auto" in rule and tile < classify.DRAWING_HEIGHT - 40


def test_opening_classify_picks_a_detector_fitted_since_the_page_loaded(workspace):
    from ui import schematics
    from ui.build import build_app
    from ui_wiring import component

    demo = build_app(workspace)
    dropdown = component(demo, "detect-detector")
    assert dropdown.value is None
    schematics.detectors_dir(workspace).mkdir(parents=True)
    fitted = schematics.detectors_dir(workspace) / "fitted.npz"
    fitted.write_bytes(b"")
    tab = component(demo, "tab-classify")._id
    refresh, = [fn for fn in demo.fns.values() if (tab, "select") in fn.targets
                and dropdown in fn.outputs]
    update = refresh.fn(None, None, None)[-1]
    assert update["value"] == str(fitted.resolve())
    assert refresh.fn(None, None, "/gone.npz")[-1]["value"] == str(fitted.resolve())


def test_a_fitted_detector_is_reported_with_its_held_out_figures(detector):
    from dataclasses import replace

    info = detector.info
    summary = classify.fit_summary(detector)
    assert f"boxes scoring {detector.score_threshold:.2f} or more are shown" in summary
    assert f"precision {info['threshold_precision']:.2f}" in summary
    assert f"recall {info['threshold_recall']:.2f}" in summary
    never = classify.fit_summary(replace(detector, accept_threshold=None))
    assert never.endswith("so Annotate has no accept-all threshold.")
    sure = classify.fit_summary(replace(detector, accept_threshold=0.9))
    assert "Accept-all in Annotate from 0.90" in sure
    assert classify.fit_summary(replace(detector, info={})) == ""
