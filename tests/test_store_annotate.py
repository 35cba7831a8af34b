"""Store schema 4: relabelling and tagging many crops at once (Explore's selection)."""
from __future__ import annotations

import sqlite3

import pytest

from store import SCHEMA_VERSION, Store
from store.schema import MIGRATIONS
from test_store import _dataset_with_crops


@pytest.fixture
def db(tmp_path):
    with Store(tmp_path / "ffclr.sqlite") as opened:
        yield opened


def _dataset(db: Store, name: str = "d", n: int = 4) -> tuple[int, list[int]]:
    return _dataset_with_crops(db, n, name)


def test_relabel_many_gives_each_crop_its_own_undoable_edit(db, tmp_path):
    dataset_id, ids = _dataset(db)
    db.relabel(ids[0], 2)
    assert db.relabel_many([ids[0], ids[1], ids[2], ids[1]], 2, note="lasso") == 2
    assert [c["label"] for c in db.crops(dataset_id)] == [2, 2, 2, 0]
    assert [e["note"] for e in db.label_edits(ids[1])] == ["lasso"]
    db.undo_relabel(ids[1])  # one crop's undo leaves the others relabelled
    assert [c["label"] for c in db.crops(dataset_id)] == [2, 0, 2, 0]
    db.close()
    with Store(tmp_path / "ffclr.sqlite") as reopened:
        assert [c["label"] for c in reopened.crops(dataset_id)] == [2, 0, 2, 0]


def test_relabel_many_is_all_or_nothing(db):
    dataset_id, ids = _dataset(db)
    with pytest.raises(KeyError):
        db.relabel_many([ids[0], 9999], 1)
    with pytest.raises(KeyError):
        db.relabel_many([ids[0], ids[1]], 7)
    assert db.label_edits(dataset_id=dataset_id) == []


def test_tags_per_crop_and_dataset(db):
    dataset_id, ids = _dataset(db)
    other_id, other_ids = _dataset(db, "e", 2)
    assert db.tag_crops([ids[0], ids[1]], " check ") == 2
    assert db.tag_crops([ids[1], ids[2]], "check") == 1
    assert db.tag_crops([ids[1]], "<b>odd</b>") == 1
    db.tag_crops([other_ids[0]], "check")
    assert db.crop_tags(dataset_id) == {ids[0]: ["check"], ids[1]: ["<b>odd</b>", "check"],
                                        ids[2]: ["check"]}
    assert db.untag_crops([ids[1], ids[3]], "check") == 1
    assert db.crop_tags(dataset_id)[ids[1]] == ["<b>odd</b>"]
    assert db.crop_tags(other_id) == {other_ids[0]: ["check"]}
    for bad in ("", "   ", "x" * 65):
        with pytest.raises(ValueError):
            db.tag_crops([ids[0]], bad)
    with pytest.raises(KeyError):
        db.tag_crops([ids[0], 9999], "new")
    assert "new" not in sum(db.crop_tags(dataset_id).values(), [])


def test_a_version_3_store_gains_the_annotation_tables(tmp_path):
    path = tmp_path / "ffclr.sqlite"
    conn = sqlite3.connect(path)
    for number, script in enumerate(MIGRATIONS[:3], start=1):
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {number}")
    conn.execute("INSERT INTO datasets (name, root, created_at, updated_at) VALUES "
                 "('old', '/r', 't', 't')")
    conn.commit()
    conn.close()
    with Store(path) as db:
        assert db.schema_version == SCHEMA_VERSION
        assert {"drawings", "annotation_edits", "crop_tags"} <= set(db.db.table_names())
        assert "drawing_id" in db.db["crops"].columns_dict
        assert db.dataset("old")["root"] == "/r"


def _drawing(db: Store, dataset_id: int, split: str = "train") -> int:
    return db.add_drawing(dataset_id, "new <b>.png", "drawings/d/ab12.png", "ab12", 80, 60, split)


def _box_row(box_id: int, x: float, class_index: int = 1) -> dict:
    return {"box_id": box_id, "class_index": class_index, "source_image": "new <b>.png",
            "image_id": None, "bbox": [x, 1, 5, 5], "crop_bbox": [x, 1, 6, 6],
            "path": f"train/c{class_index}/drawing_{box_id}.png", "sha256": f"s{box_id}-{x}"}


def test_drawings_are_unique_by_bytes_and_edits_are_batched(db):
    dataset_id, _ = _dataset(db)
    drawing_id = _drawing(db, dataset_id)
    assert _drawing(db, dataset_id) is None  # same bytes: not added twice
    assert db.drawing(drawing_id)["status"] == "new"
    edits = db.edit_drawing(drawing_id, lambda current: [
        {"who": "model", "action": "propose", "new_bbox": [1, 2, 3, 4], "new_class_index": 0,
         "score": 0.9},
        {"who": "model", "action": "propose", "new_bbox": [5, 6, 7, 8], "new_class_index": 1,
         "score": 0.4}])
    assert [e["batch"] for e in edits] == [edits[0]["id"]] * 2
    assert edits[0]["box_id"] != edits[1]["box_id"] and edits[1]["new_bbox"] == [5, 6, 7, 8]
    seen = []
    more = db.edit_drawing(drawing_id, lambda current: seen.extend(current) or [
        {"box_id": edits[0]["box_id"], "who": "person", "action": "delete",
         "old_bbox": [1, 2, 3, 4]}])
    assert [e["id"] for e in seen] == [e["id"] for e in edits]
    assert more[0]["batch"] == more[0]["id"] and more[0]["box_id"] == edits[0]["box_id"]
    assert len(db.annotation_edits(drawing_id)) == 3
    assert db.edit_drawing(drawing_id, lambda current: []) == []


def test_a_finished_drawing_gives_crops_that_an_import_keeps(db):
    dataset_id, ids = _dataset(db)
    drawing_id = _drawing(db, dataset_id)
    counts = db.finish_drawing(drawing_id, [_box_row(7, 1), _box_row(8, 20)])
    assert counts == {"added": 2, "updated": 0, "unchanged": 0, "removed": 0}
    assert db.drawing(drawing_id)["status"] == "annotated"
    mine = db.drawing_crops(dataset_id)
    assert [(c["annotation_id"], c["box_id"], c["split"]) for c in mine] == [
        (-7, 7, "train"), (-8, 8, "train")]
    db.relabel(mine[0]["id"], 2)
    db.relabel(mine[1]["id"], 2)
    # an import of the export: its crops change, the drawing's stay (a -8 in the export too)
    rows = [{"class_index": 0, "source_image": "a.jpg", "image_id": 0, "annotation_id": i,
             "bbox": [i, 0, 5, 5], "crop_bbox": [i, 0, 6, 6], "path": f"train/c0/a_{i}.png",
             "sha256": f"h{i}"} for i in (0, -8)]
    plan = db.plan_import(dataset_id, db.classes(dataset_id), {"train": rows})
    assert plan["splits"]["train"] == {"added": 1, "updated": 0, "unchanged": 1, "removed": 3}
    _, done = db.apply_import("d", "/data/d_individual", "/exports/d", "fp2", "s2",
                              db.classes(dataset_id), {"train": rows, "valid": []})
    assert done["removed_splits"] == []
    after = db.drawing_crops(dataset_id)
    assert [(c["id"], c["box_id"], c["label"]) for c in after] == [
        (mine[0]["id"], 7, 2), (mine[1]["id"], 8, 2)]
    assert after[1]["annotation_id"] not in (0, -8, -7)
    assert sorted(c["annotation_id"] for c in db.crops(dataset_id) if c["drawing_id"] is None) \
        == [-8, 0]
    # finishing again: a moved box's relabel is set aside, a deleted box's crop leaves
    counts = db.finish_drawing(drawing_id, [_box_row(7, 3)])
    assert counts == {"added": 0, "updated": 1, "unchanged": 0, "removed": 1}
    assert [(c["id"], c["label"]) for c in db.drawing_crops(dataset_id)] == [(mine[0]["id"], 1)]
    reasons = [e["reason"] for e in db.set_aside_edits(dataset_id)]
    assert any("changed in the drawing" in r for r in reasons)
    assert any("deleted from the drawing" in r for r in reasons)
    assert db.finish_drawing(drawing_id, [_box_row(7, 3)])["unchanged"] == 1


def test_a_drawings_classes_follow_a_reimport_that_moves_them(db):
    dataset_id, _ = _dataset(db)
    drawing_id = _drawing(db, dataset_id)
    db.edit_drawing(drawing_id, lambda current: [
        {"who": "person", "action": "add", "new_bbox": [1, 1, 5, 5], "new_class_index": 1}])
    db.finish_drawing(drawing_id, [_box_row(1, 1, class_index=1), _box_row(2, 9, class_index=2)])
    db.set_classes(dataset_id, [{"class_index": 0, "coco_id": 0, "name": "new", "folder": "new"},
                                {"class_index": 1, "coco_id": 1, "name": "c0", "folder": "c0"},
                                {"class_index": 2, "coco_id": 2, "name": "c1", "folder": "c1"}])
    assert db.annotation_edits(drawing_id)[0]["new_class_index"] == 2
    assert [c["class_index"] for c in db.drawing_crops(dataset_id)] == [2]  # c2 is gone
    assert db.drawing(drawing_id)["status"] == "new"  # to be finished again
