"""Store schema 4: relabelling and tagging many crops at once (Explore's selection)."""
from __future__ import annotations

import sqlite3

import pytest

from store import SCHEMA_VERSION, Store
from store.schema import MIGRATIONS


@pytest.fixture
def db(tmp_path):
    with Store(tmp_path / "ffclr.sqlite") as opened:
        yield opened


def _dataset(db: Store, name: str = "d", n: int = 4) -> tuple[int, list[int]]:
    dataset_id = db.upsert_dataset(name, f"/data/{name}_individual", f"/exports/{name}", "fp")
    db.set_classes(dataset_id, [{"class_index": i, "coco_id": i + 1, "name": f"c{i}",
                                 "folder": f"c{i}"} for i in range(3)])
    db.sync_crops(dataset_id, "train", [
        {"class_index": 0, "source_image": "a.jpg", "image_id": 0, "annotation_id": i,
         "bbox": [i, 0, 5, 5], "crop_bbox": [i, 0, 6, 6], "path": f"train/c0/a_{i}.png",
         "sha256": f"h{i}"} for i in range(n)])
    return dataset_id, [c["id"] for c in db.crops(dataset_id)]


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
        assert db.schema_version == SCHEMA_VERSION == 4
        assert {"drawings", "annotation_edits", "crop_tags"} <= set(db.db.table_names())
        assert "drawing_id" in db.db["crops"].columns_dict
        assert db.dataset("old")["root"] == "/r"
