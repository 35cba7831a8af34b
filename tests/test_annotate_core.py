"""ffclr.annotate: drawings added to a dataset, pre-annotated by the detector, edited with undo,
finished into crops cut as the import cuts them, kept by a re-import, exported and imported again."""
from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ffclr import annotate
from ffclr.detection.boxes import box_iou, xywh_to_xyxy
from ffclr.errors import FfclrError

"""The detection tests' fixtures: a tiny random encoder and a detector fitted on the demo export."""


@pytest.fixture
def imported(workspace, demo_export):
    from ffclr.data.coco_import import import_export

    import_export(demo_export, "demo", workspace)
    return workspace


def _scene(path: Path, seed: int) -> Path:
    from ffclr.demo.scene import draw_schematic

    path.parent.mkdir(parents=True, exist_ok=True)
    draw_schematic(np.random.default_rng(seed), []).image.save(path)
    return path


def _one_drawing(workspace, tmp_path, seed: int = 1, split: str = "train") -> dict:
    added = annotate.add_drawings(workspace, "demo", [_scene(tmp_path / f"s{seed}.png", seed)],
                                  split=split)
    return added.added[0]


def _store(workspace):
    return workspace.open_store()


def test_drawings_come_from_images_folders_zips_and_exports(imported, demo_export, tmp_path):
    folder = tmp_path / "in"
    _scene(folder / "a.png", 1)
    _scene(folder / "sub" / "b <i>.png", 2)
    shutil.copy(folder / "a.png", folder / "z copy.png")
    (folder / "broken.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("ignored")
    with zipfile.ZipFile(tmp_path / "more.zip", "w") as zf:
        zf.write(_scene(tmp_path / "c.png", 3), "c.png")
        zf.writestr("../evil.png", b"x")
        zf.writestr("__MACOSX/._c.png", b"resource fork")
        zf.writestr(".hidden.png", b"x")
    export = tmp_path / "export"
    shutil.copytree(demo_export, export)
    coco = json.loads((export / "valid" / "_annotations.coco.json").read_text())
    unlabelled = coco["images"][0]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != unlabelled["id"]]
    (export / "valid" / "_annotations.coco.json").write_text(json.dumps(coco))

    result = annotate.add_drawings(imported, "demo", [folder, tmp_path / "more.zip", export,
                                                      tmp_path / "gone.png"], split="test")
    names = sorted(d["file_name"] for d in result.added)
    assert names == ["export/valid/" + unlabelled["file_name"], "in/a.png", "in/sub/b <i>.png",
                     "more.zip/c.png"]
    skipped = "\n".join(result.skipped)
    assert "in/z copy.png: already in demo" in skipped
    assert "in/broken.png: unreadable image" in skipped
    assert "../evil.png: unsafe zip entry" in skipped
    assert "gone.png: no such file or folder" in skipped
    assert "MACOSX" not in skipped and "hidden" not in skipped
    assert "images of export that have annotations: import the export" in skipped
    rows = {d["file_name"]: d for d in annotate.drawings(imported, "demo")}
    assert rows["in/a.png"]["split"] == "test" and rows["in/a.png"]["status"] == "new"
    assert rows["export/valid/" + unlabelled["file_name"]]["split"] == "valid"
    for row in rows.values():
        stored = imported.root / row["path"]
        assert stored.parent == imported.root / "drawings" / "demo" and stored.is_file()
        assert stored.stem == hashlib.sha256(stored.read_bytes()).hexdigest()[:16]
        assert (row["n_boxes"], row["n_accepted"]) == (0, 0)
    again = annotate.add_drawings(imported, "demo", [folder], split="test")
    assert again.added == [] and sum("already in demo" in s for s in again.skipped) == 3
    with pytest.raises(FfclrError, match="no imported dataset named 'nope'"):
        annotate.add_drawings(imported, "nope", [folder])
    with pytest.raises(FfclrError, match="split 'holdout'"):
        annotate.add_drawings(imported, "demo", [folder], split="holdout")


def test_an_image_too_small_for_a_drawing_is_skipped_and_not_detected(imported, tmp_path,
                                                                      detector):
    from ffclr.detection import detect_image

    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    Image.new("RGB", (300, 20)).save(tmp_path / "strip.png")
    result = annotate.add_drawings(imported, "demo", [tmp_path / "dot.png",
                                                      tmp_path / "strip.png"])
    assert result.added == []
    assert result.skipped == [
        "dot.png: image is 1×1 pixels, too small for a drawing (at least 32 a side; a symbol "
        "alone is about 30)",
        "strip.png: image is 300×20 pixels, too small for a drawing (at least 32 a side; a "
        "symbol alone is about 30)"]
    with pytest.raises(FfclrError, match="dot.png: image is 1×1 pixels, too small"):
        detect_image(detector, tmp_path / "dot.png")


def test_an_image_of_the_datasets_own_export_keeps_its_split(imported, demo_export, tmp_path):
    from ffclr.data.coco_import import import_export

    held_out = sorted((demo_export / "test").glob("*.jpg"))[0]
    dropped = shutil.copy(held_out, tmp_path / "new drawing.jpg")
    into_train = annotate.add_drawings(imported, "demo", [dropped], split="train")
    assert into_train.added == []
    assert into_train.skipped == [f"new drawing.jpg: the same image as test/{held_out.name} of "
                                  "demo's export: in train it would be one drawing in two splits"]
    assert len(annotate.add_drawings(imported, "demo", [dropped], split="test").added) == 1
    archive = shutil.make_archive(str(tmp_path / "zipped"), "zip", demo_export)
    import_export(Path(archive), "zipped", imported)
    valid = sorted((demo_export / "valid").glob("*.jpg"))[0]
    refused = annotate.add_drawings(imported, "zipped", [valid], split="train")
    assert refused.added == [] and f"as valid/{valid.name} of zipped's export" in refused.skipped[0]
    elsewhere = _scene(tmp_path / "other.png", 7)
    assert len(annotate.add_drawings(imported, "zipped", [elsewhere], split="train").added) == 1


def _propose(workspace, drawing_id: int, proposals: list[tuple]) -> None:
    """Model proposals (bbox, class, score) as preannotate records them."""
    with _store(workspace) as store:
        store.edit_drawing(drawing_id, lambda edits: [
            {"who": "model", "action": "propose", "new_bbox": list(b), "new_class_index": c,
             "score": s} for b, c, s in proposals])


def test_edits_replay_from_the_store_and_undo_walks_back(imported, tmp_path):
    drawing = _one_drawing(imported, tmp_path)
    _propose(imported, drawing["id"], [((10, 10, 20, 20), 0, 0.9), ((40, 10, 20, 20), 1, 0.7),
                                       ((70, 10, 20, 20), 2, 0.2)])
    sure, fair, weak = annotate.boxes(imported, drawing["id"])
    assert (sure.who, sure.accepted, sure.score) == ("model", False, 0.9)
    assert annotate.accept_above(imported, drawing["id"], 0.5) == 2
    drawn = annotate.add_box(imported, drawing["id"], (-5, 50, 30, 20), 3)
    assert drawn.bbox == (0, 50, 25, 20) and (drawn.who, drawn.score, drawn.accepted) == (
        "person", None, True)
    moved = annotate.move_box(imported, weak.id, (72, 12, 18, 18))
    assert moved.bbox == (72, 12, 18, 18) and moved.accepted and moved.who == "model"
    assert annotate.set_class(imported, fair.id, 2).class_index == 2
    annotate.delete_box(imported, sure.id)
    assert [b.id for b in annotate.boxes(imported, drawing["id"])] == [fair.id, weak.id, drawn.id]
    assert annotate.undo(imported, drawing["id"]) == "deleting a box"
    with _store(imported) as store:
        names = [c["name"] for c in store.classes(1)]
    assert annotate.undo(imported, drawing["id"]) == f"setting a box's class to {names[2]}"
    assert annotate.undo(imported, drawing["id"]) == "moving a box"
    assert annotate.undo(imported, drawing["id"]).startswith("drawing a ")
    assert annotate.undo(imported, drawing["id"]) == "accepting 2 boxes"
    assert [(b.id, b.accepted, b.bbox, b.class_index)
            for b in annotate.boxes(imported, drawing["id"])] == [
        (sure.id, False, sure.bbox, 0), (fair.id, False, fair.bbox, 1),
        (weak.id, False, weak.bbox, 2)]
    assert annotate.undo(imported, drawing["id"]) is None  # the model's proposals stay
    with _store(imported) as store:
        edits = store.annotation_edits(drawing["id"])
    assert len(edits) == 3 + 2 + 4 + 6 and {e["who"] for e in edits} == {"model", "person"}
    assert all(e["time"] for e in edits)
    with pytest.raises(FfclrError, match="class index 99"):
        annotate.add_box(imported, drawing["id"], (1, 1, 5, 5), 99)
    with pytest.raises(FfclrError, match="outside the"):
        annotate.add_box(imported, drawing["id"], (5000, 1, 5, 5), 0)
    with pytest.raises(FfclrError, match="width and height"):
        annotate.move_box(imported, sure.id, (1, 1, 0, 5))
    with pytest.raises(FfclrError, match="no box with id 12345"):
        annotate.delete_box(imported, 12345)
    with pytest.raises(FfclrError, match="no drawing with id 999"):
        annotate.boxes(imported, 999)


def test_preannotation_proposes_and_a_rerun_keeps_what_a_person_touched(imported, detector_file,
                                                                         detector, demo_export):
    valid = sorted((demo_export / "valid").glob("*.jpg"))[:1]
    (drawing,) = annotate.add_drawings(imported, "demo", valid, split="valid").added
    first = annotate.preannotate(imported, drawing["id"], detector_file)
    assert first and all(b.who == "model" and not b.accepted for b in first)
    assert all(b.score >= detector.score_threshold for b in first)
    assert {b.class_name for b in first} <= set(detector.class_names)
    kept = annotate.set_class(imported, first[0].id, (first[0].class_index + 1) % 3)
    again = annotate.preannotate(imported, drawing["id"], detector)
    assert again[0] == kept and sum(b.accepted for b in again) == 1
    assert {b.id for b in again[1:]}.isdisjoint({b.id for b in first})  # replaced
    assert len(again) <= len(first)
    for box in again[1:]:  # nothing proposed again where the person kept a box
        assert box_iou(xywh_to_xyxy([box.bbox]), xywh_to_xyxy([kept.bbox]))[0, 0] < 0.5
    low = annotate.preannotate(imported, drawing["id"], detector, min_score=0.0)
    assert len(low) >= len(again) and low[0] == kept
    sure = [b for b in low[1:] if b.score >= 0.3]
    assert len(sure) >= 2
    assert annotate.accept_above(imported, drawing["id"], 0.3) == len(sure)
    assert [b.id for b in annotate.boxes(imported, drawing["id"]) if b.accepted] == [
        kept.id, *(b.id for b in sure)]
    assert annotate.undo(imported, drawing["id"]) == f"accepting {len(sure)} boxes"
    assert [b.accepted for b in annotate.boxes(imported, drawing["id"])] == [True] + [False] * (
        len(low) - 1)


def _train_image(demo_export: Path) -> tuple[Path, list[dict]]:
    coco = json.loads((demo_export / "train" / "_annotations.coco.json").read_text())
    image = coco["images"][0]
    return (demo_export / "train" / image["file_name"],
            [a for a in coco["annotations"] if a["image_id"] == image["id"]])


def _label_like_the_export(workspace, demo_export, split="valid") -> tuple[dict, list[dict]]:
    """An export image added as a new drawing and boxed exactly as the export boxes it. It is
    added as a PNG: the same pixels in other bytes, so not the export's own image (which would
    have to stay in its split)."""
    path, anns = _train_image(demo_export)
    copy = workspace.root / "incoming" / f"{path.stem}.png"
    copy.parent.mkdir(parents=True, exist_ok=True)
    Image.open(path).convert("RGB").save(copy)
    (drawing,) = annotate.add_drawings(workspace, "demo", [copy], split=split).added
    with _store(workspace) as store:
        index_of = {c["coco_id"]: c["class_index"] for c in store.classes(1)}
    for ann in anns:
        annotate.add_box(workspace, drawing["id"], ann["bbox"], index_of[ann["category_id"]])
    return drawing, anns


def test_a_finished_drawing_becomes_crops_cut_as_the_import_cuts_them(imported, demo_export,
                                                                      monkeypatch):
    drawing, anns = _label_like_the_export(imported, demo_export)
    assert annotate.finish_drawing(imported, drawing["id"]) == len(anns)
    with _store(imported) as store:
        dataset = store.dataset("demo")
        mine = store.drawing_crops(dataset["id"], drawing["id"])
        theirs = [c for c in store.crops(dataset["id"], "train")
                  if c["source_image"] == _train_image(demo_export)[0].name]
        assert store.drawing(drawing["id"])["status"] == "annotated"
    root = Path(dataset["root"])
    assert len(mine) == len(theirs) == len(anns) and {c["split"] for c in mine} == {"valid"}
    assert sorted(c["sha256"] for c in mine) == sorted(c["sha256"] for c in theirs)
    assert sorted(c["crop_bbox"] for c in mine) == sorted(c["crop_bbox"] for c in theirs)
    for crop in mine:
        assert hashlib.sha256((root / crop["path"]).read_bytes()).hexdigest() == crop["sha256"]
        assert crop["annotation_id"] < 0 and crop["label"] == crop["class_index"]
    from ffclr.data.cropset import load_dataset_split

    crop_set = load_dataset_split("demo", "valid", imported)
    assert set(c["id"] for c in mine) <= set(crop_set.crop_ids)
    listed = annotate.drawings(imported, "demo")[0]
    assert (listed["n_accepted"], listed["edited_since_finish"]) == (len(anns), False)

    box = annotate.boxes(imported, drawing["id"])[0]
    annotate.set_class(imported, box.id, (box.class_index + 1) % 3)
    annotate.move_box(imported, annotate.boxes(imported, drawing["id"])[1].id,
                      np.add(anns[1]["bbox"], [1, 1, 0, 0]))
    annotate.delete_box(imported, annotate.boxes(imported, drawing["id"])[-1].id)
    assert annotate.set_split(imported, drawing["id"], "test")["split"] == "test"
    with pytest.raises(FfclrError, match="split 'holdout'"):
        annotate.set_split(imported, drawing["id"], "holdout")
    old_files = {c["path"] for c in mine}
    assert annotate.drawings(imported, "demo")[0]["edited_since_finish"]
    with _store(imported) as store:
        before = (store.drawing_crops(dataset["id"]), store.drawing(drawing["id"]))
    files_before = sorted(p.relative_to(root) for p in root.rglob("*"))

    def fail(*args, **kwargs):
        raise OSError("disk full")
    with monkeypatch.context() as patch:  # a failure leaves crops, rows and files as they were
        patch.setattr("store.drawings.DrawingStore.finish_drawing", fail)
        with pytest.raises(OSError):
            annotate.finish_drawing(imported, drawing["id"])
    with _store(imported) as store:
        assert (store.drawing_crops(dataset["id"]), store.drawing(drawing["id"])) == before
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == files_before
    assert annotate.finish_drawing(imported, drawing["id"]) == len(anns) - 1
    assert not annotate.drawings(imported, "demo")[0]["edited_since_finish"]
    with _store(imported) as store:
        after = store.drawing_crops(dataset["id"], drawing["id"])
    assert after[0]["id"] == mine[0]["id"] and after[0]["label"] == (box.class_index + 1) % 3
    assert {c["split"] for c in after} == {"test"} and all(c["path"].startswith("test/")
                                                           for c in after)
    assert after[1]["id"] == mine[1]["id"] and after[1]["sha256"] != mine[1]["sha256"]
    current = {c["path"] for c in after}
    assert all((root / p).is_file() for p in current)
    assert not any((root / p).exists() for p in old_files - current)


def test_a_relabel_in_explore_shows_on_the_drawings_box_and_survives_finishing_again(
        imported, demo_export):
    drawing, anns = _label_like_the_export(imported, demo_export)
    annotate.finish_drawing(imported, drawing["id"])
    with _store(imported) as store:
        dataset_id = store.dataset("demo")["id"]
        crop = store.drawing_crops(dataset_id, drawing["id"])[0]
        store.relabel(crop["id"], (crop["label"] + 1) % 3)
    relabelled = (crop["label"] + 1) % 3
    shown = {b.id: b for b in annotate.boxes(imported, drawing["id"])}
    assert shown[crop["box_id"]].class_index == relabelled
    assert annotate.finish_drawing(imported, drawing["id"]) == len(anns)
    with _store(imported) as store:
        again = store.drawing_crops(dataset_id, drawing["id"])[0]
    assert (again["id"], again["label"]) == (crop["id"], relabelled)
    drawn = annotate.labelled_drawings(imported, "demo", "valid")[-1]  # what a refit learns
    x, y = (json.loads(crop["bbox"]) if isinstance(crop["bbox"], str) else crop["bbox"])[:2]
    row = np.flatnonzero(np.isclose(drawn.boxes[:, 0], x) & np.isclose(drawn.boxes[:, 1], y))
    assert drawn.classes[row[0]] == relabelled

    chosen = (crop["label"] + 2) % 3  # a class chosen in the drawing itself wins from now on
    annotate.set_class(imported, crop["box_id"], chosen)
    assert {b.id: b for b in annotate.boxes(imported, drawing["id"])}[
        crop["box_id"]].class_index == chosen
    annotate.finish_drawing(imported, drawing["id"])
    with _store(imported) as store:
        assert store.drawing_crops(dataset_id, drawing["id"])[0]["label"] == chosen


def test_removing_a_drawing_takes_its_crops_edits_and_copy_and_nothing_else(imported,
                                                                           demo_export):
    drawing, anns = _label_like_the_export(imported, demo_export)
    other = annotate.add_drawings(imported, "demo", [sorted((demo_export / "valid").glob(
        "*.jpg"))[1]], split="valid").added[0]
    annotate.add_box(imported, other["id"], (10, 10, 20, 20), 1)
    annotate.finish_drawing(imported, drawing["id"])
    with _store(imported) as store:
        dataset = store.dataset("demo")
        mine = store.drawing_crops(dataset["id"], drawing["id"])
        store.relabel(mine[0]["id"], (mine[0]["label"] + 1) % 3)
        export_crops = store.crops(dataset["id"], "train")
    root, copy = Path(dataset["root"]), annotate.drawing_path(imported, drawing)
    assert copy.is_file() and all((root / c["path"]).is_file() for c in mine)
    source_files = sorted(p.read_bytes() for p in demo_export.rglob("*") if p.is_file())

    assert annotate.remove_drawing(imported, drawing["id"]) == {
        "file_name": drawing["file_name"], "crops": len(anns)}
    with _store(imported) as store:
        assert store.drawing(drawing["id"]) is None
        assert store.annotation_edits(drawing["id"]) == []
        assert store.drawing_crops(dataset["id"]) == []
        assert store.crops(dataset["id"], "train") == export_crops
        assert store.label_edit_count(dataset["id"]) == 0
    assert not copy.exists() and not any((root / c["path"]).exists() for c in mine)
    assert [d["id"] for d in annotate.drawings(imported, "demo")] == [other["id"]]
    assert len(annotate.boxes(imported, other["id"])) == 1
    assert annotate.drawing_path(imported, other).is_file()
    assert sorted(p.read_bytes() for p in demo_export.rglob("*") if p.is_file()) == source_files
    with pytest.raises(FfclrError, match=f"no drawing with id {drawing['id']}"):
        annotate.remove_drawing(imported, drawing["id"])


def test_a_reimport_of_the_export_keeps_the_drawings_crops(imported, demo_export, tmp_path):
    from ffclr.data.coco_import import import_export

    drawing, anns = _label_like_the_export(imported, demo_export, split="test")
    annotate.finish_drawing(imported, drawing["id"])
    with _store(imported) as store:
        dataset_id = store.dataset("demo")["id"]
        before = store.drawing_crops(dataset_id)
        store.relabel(before[0]["id"], (before[0]["label"] + 1) % 3)
    changed = tmp_path / "changed"
    shutil.copytree(demo_export, changed)
    coco = json.loads((changed / "train" / "_annotations.coco.json").read_text())
    coco["annotations"] = coco["annotations"][1:]
    (changed / "train" / "_annotations.coco.json").write_text(json.dumps(coco))
    result = import_export(changed, "demo", imported, update=True)
    assert result.splits["train"].changes["removed"] == 1
    with _store(imported) as store:
        after = store.drawing_crops(dataset_id)
        assert "test" in store.splits(dataset_id)
    assert [(c["id"], c["path"], c["sha256"]) for c in after] == [
        (c["id"], c["path"], c["sha256"]) for c in before]
    assert after[0]["label"] == (before[0]["label"] + 1) % 3
    root = Path(result.root)
    assert all((root / c["path"]).is_file() for c in after)


def test_export_coco_adds_the_drawings_and_imports_again(imported, demo_export, tmp_path):
    from ffclr.data.coco_export import export_coco
    from ffclr.data.coco_import import LABELLED_DRAWING, import_export

    drawing, anns = _label_like_the_export(imported, demo_export, split="valid")
    annotate.finish_drawing(imported, drawing["id"])
    other = annotate.add_drawings(imported, "demo", [_scene(tmp_path / "x.png", 5)],
                                  split="valid").added[0]
    annotate.add_box(imported, other["id"], (10, 10, 20, 20), 1)  # not finished: not exported
    result = export_coco(tmp_path / "out", "demo", imported)
    assert result.drawings == 1
    coco = json.loads((tmp_path / "out" / "valid" / "_annotations.coco.json").read_text())
    (image,) = [i for i in coco["images"] if drawing["sha256"][:16] in i["file_name"]]
    assert (tmp_path / "out" / "valid" / image["file_name"]).read_bytes() == \
        (imported.root / drawing["path"]).read_bytes()
    mine = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
    assert sorted(map(tuple, (a["bbox"] for a in mine))) == sorted(
        tuple(float(v) for v in a["bbox"]) for a in anns)
    assert sorted(a["category_id"] for a in mine) == sorted(a["category_id"] for a in anns)
    assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"])
    again = import_export(tmp_path / "out", "again", imported)
    with _store(imported) as store:
        crops = store.crops(store.dataset("again")["id"], "valid")
        original = store.crops(store.dataset("demo")["id"], "valid")
    assert len(crops) == len(original) and again.splits["valid"].crops == len(original)
    assert sorted(c["sha256"] for c in crops) == sorted(c["sha256"] for c in original)
    # the same export imported into the dataset it came from: the drawing is not doubled
    back = import_export(tmp_path / "out", "demo", imported, update=True)
    assert back.splits["valid"].skipped == {LABELLED_DRAWING: 1}
    with _store(imported) as store:
        after = store.crops(store.dataset("demo")["id"], "valid")
    assert sorted(c["sha256"] for c in after) == sorted(c["sha256"] for c in original)
    assert [c["id"] for c in after if c["drawing_id"]] == [
        c["id"] for c in original if c["drawing_id"]]
    assert back.splits["train"].skipped == {} and back.splits["train"].changes["removed"] == 0


def test_labelled_drawings_hold_the_export_split_and_the_finished_drawings(imported,
                                                                          demo_export):
    drawing, anns = _label_like_the_export(imported, demo_export, split="valid")
    before = annotate.labelled_drawings(imported, "demo", "valid")
    annotate.finish_drawing(imported, drawing["id"])
    split = annotate.labelled_split(imported, "demo", "valid")
    assert len(split.images) == len(before) + 1
    last = split.images[-1]
    assert last.path == imported.root / drawing["path"] and len(last.boxes) == len(anns)
    assert np.allclose(last.boxes[:, 2:] - last.boxes[:, :2],
                       [a["bbox"][2:] for a in anns])
    with _store(imported) as store:
        assert split.class_names == [c["name"] for c in store.classes(1)]


def test_the_cli_labels_a_drawing_headless(imported, detector_file, demo_export, tmp_path,
                                           capsys):
    from ffclr.cli import main

    ws = ["--workspace", str(imported.root)]
    held_out = [*sorted((demo_export / "test").glob("*.jpg"))[:1], _scene(tmp_path / "s.png", 4)]
    assert main(["annotate", "add", "demo", *map(str, held_out), "--split", "test", *ws]) == 0
    assert "added 2 drawings" in capsys.readouterr().out
    assert main(["annotate", "add", "demo", str(held_out[0]), *ws]) == 1
    assert "already in demo" in capsys.readouterr().out
    assert main(["annotate", "preannotate", "1", "--detector", str(detector_file), *ws]) == 0
    proposed = annotate.boxes(imported, 1)
    assert f"drawing 1: {len(proposed)} boxes" in capsys.readouterr().out
    assert main(["annotate", "accept", "1", "--min-score", "0", *ws]) == 0
    assert f"accepted {len(proposed)} boxes" in capsys.readouterr().out
    with _store(imported) as store:
        name = store.classes(1)[2]["name"]
    assert main(["annotate", "box", "1", "3", "4", "20", "20", "--class", name, *ws]) == 0
    drawn = annotate.boxes(imported, 1)[-1]
    assert (drawn.class_name, drawn.bbox) == (name, (3, 4, 20, 20))
    assert main(["annotate", "set-class", str(drawn.id), "0", *ws]) == 0
    assert main(["annotate", "move", str(drawn.id), "5", "5", "20", "20", *ws]) == 0
    assert main(["annotate", "delete", str(drawn.id), *ws]) == 0
    assert main(["annotate", "undo", "1", *ws]) == 0
    assert "undid deleting a box" in capsys.readouterr().out
    assert main(["annotate", "finish", "1", *ws]) == 0
    assert f"annotated, {len(proposed) + 1} crops" in capsys.readouterr().out
    assert main(["annotate", "list", "demo", *ws]) == 0
    out = capsys.readouterr().out
    assert "[test, annotated]" in out and "[test, new]" in out and "2 drawings in demo" in out
    assert main(["annotate", "remove", "2", *ws]) == 0
    assert "drawing 2 (" in capsys.readouterr().out
    assert main(["annotate", "remove", "2", *ws]) == 1
    assert capsys.readouterr().err.strip() == "error: no drawing with id 2"
    assert main(["annotate", "move", "9999", "1", "1", "5", "5", *ws]) == 1
    assert capsys.readouterr().err.strip() == "error: no box with id 9999"
    assert main(["annotate", "box", "1", "1", "1", "5", "5", "--class", "nope", *ws]) == 1
    assert main(["export-coco", str(tmp_path / "out"), "--dataset", "demo", *ws]) == 0
    assert "1 drawings labelled in ffclr added" in capsys.readouterr().out
    coco = json.loads((tmp_path / "out" / "test" / "_annotations.coco.json").read_text())
    assert sum(1 for a in coco["annotations"] if a["image_id"] == coco["images"][-1]["id"]) \
        == len(proposed) + 1


def test_one_symbol_boxed_by_two_classes_is_proposed_once():
    """Class-wise NMS keeps both boxes of a symbol read as two classes; the pre-annotation keeps
    the likelier, and leaves boxes that merely touch or share a class apart."""
    from ffclr.annotate.editing import ONE_SYMBOL_IOU, one_box_per_symbol
    from ffclr.detection.detector import Detection

    def found(bbox, k, score):
        return Detection(bbox=bbox, class_index=k, class_name=f"c{k}", category_id=k + 1,
                         score=score)

    symbol = found((10, 10, 30, 30), 0, 0.9)
    twin = found((11, 11, 30, 30), 1, 0.6)
    neighbour = found((30, 10, 30, 30), 1, 0.8)
    overlapping = found((22, 10, 30, 30), 2, 0.7)
    iou = box_iou(xywh_to_xyxy([symbol.bbox]), xywh_to_xyxy([twin.bbox, overlapping.bbox]))[0]
    assert iou[0] > ONE_SYMBOL_IOU > iou[1]
    assert one_box_per_symbol([symbol, neighbour, overlapping, twin]) == \
        [symbol, neighbour, overlapping]
    assert one_box_per_symbol([twin]) == [twin] and one_box_per_symbol([]) == []
