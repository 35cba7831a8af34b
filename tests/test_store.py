"""The SQLite store: migrations, append-only label edits, runs and metrics, two processes."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import store.db
from store.errors import StoreError
from store import SCHEMA_VERSION, Store
from store.schema import MIGRATIONS

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def db(tmp_path):
    with Store(tmp_path / "ffclr.sqlite") as opened:
        yield opened


def _dataset_with_crops(db: Store, n: int = 3, name: str = "d") -> tuple[int, list[int]]:
    dataset_id = db.upsert_dataset(name, f"/data/{name}_individual", f"/exports/{name}", "fp")
    db.set_classes(dataset_id, [{"class_index": i, "coco_id": i + 1, "name": f"c{i}",
                                 "folder": f"c{i}"} for i in range(3)])
    db.sync_crops(dataset_id, "train", [
        {"class_index": 0, "source_image": "a.jpg", "image_id": 0, "annotation_id": i,
         "bbox": [i, 0, 5, 5], "crop_bbox": [i, 0, 6, 6], "path": f"train/c0/a_{i}.png",
         "sha256": f"h{i}"} for i in range(n)])
    return dataset_id, [c["id"] for c in db.crops(dataset_id)]


def test_fresh_file_gets_the_schema_version(tmp_path):
    path = tmp_path / "new.sqlite"
    with Store(path) as db:
        assert db.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
        tables = {t for t in db.db.table_names()}
        assert {"datasets", "classes", "crops", "runs", "metrics", "label_edits"} <= tables
        assert db.db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopening_runs_only_new_migrations(tmp_path, monkeypatch):
    path = tmp_path / "ffclr.sqlite"
    with Store(path) as db:
        run_id = db.create_run("pretrain", {"epochs": 3})
    with Store(path) as db:  # same version: nothing re-run (a CREATE TABLE would fail)
        assert db.schema_version == SCHEMA_VERSION and db.run(run_id)["config"] == {"epochs": 3}
    extra = "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT); INSERT INTO notes (text) " \
            "VALUES ('once')"
    monkeypatch.setattr(store.db, "MIGRATIONS", [*MIGRATIONS, extra])
    monkeypatch.setattr(store.db, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    for _ in range(2):
        with Store(path) as db:
            assert db.schema_version == SCHEMA_VERSION + 1
            assert [r["text"] for r in db.db.query("SELECT text FROM notes")] == ["once"]
            assert db.run(run_id)["config"] == {"epochs": 3}


def test_a_newer_file_is_refused(tmp_path):
    path = tmp_path / "ffclr.sqlite"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Store(path)


def test_relabel_is_append_only_and_the_latest_edit_is_the_label(db, tmp_path):
    dataset_id, (first, second, _) = _dataset_with_crops(db)
    assert db.crop(first)["label"] == 0 and db.undo_relabel(first) is None
    db.relabel(first, 2, note="looks like c2")
    db.relabel(first, 1)
    assert db.crop(first)["label"] == 1 and db.crop(first)["imported_class_index"] == 0
    assert db.crop(second)["label"] == 0
    edits = db.label_edits(first)
    assert [(e["old_class_index"], e["new_class_index"]) for e in edits] == [(0, 2), (2, 1)]
    assert edits[0]["note"] == "looks like c2" and edits[0]["time"]
    db.undo_relabel(first)
    assert db.crop(first)["label"] == 2
    db.undo_relabel(first)  # a second undo walks further back, to the imported label
    assert db.crop(first)["label"] == 0
    assert db.undo_relabel(first) is None
    assert len(db.label_edits(first)) == 4  # nothing deleted: undos are edits too
    assert [e["crop_id"] for e in db.label_edits(dataset_id=dataset_id)] == [first] * 4
    with pytest.raises(KeyError):
        db.relabel(first, 7)
    with pytest.raises(KeyError):
        db.relabel(9999, 1)
    db.relabel(second, 2)
    db.close()
    with Store(tmp_path / "ffclr.sqlite") as reopened:  # edits are saved at once
        assert reopened.crop(second)["label"] == 2
        assert [c["label"] for c in reopened.crops(dataset_id, "train")] == [0, 2, 0]


def test_sync_keeps_crop_ids_and_edits_when_the_import_changes(db):
    dataset_id, ids = _dataset_with_crops(db)
    db.relabel(ids[1], 2)
    counts = db.sync_crops(dataset_id, "train", [
        {"class_index": 0, "source_image": "a.jpg", "image_id": 0, "annotation_id": i,
         "bbox": [i, 0, 5, 5], "crop_bbox": [i, 0, 6, 6], "path": f"train/c0/a_{i}.png",
         "sha256": "changed" if i == 1 else f"h{i}"} for i in (1, 2, 3)])
    assert counts == {"added": 1, "updated": 1, "unchanged": 1, "removed": 1}
    crops = db.crops(dataset_id)
    assert [c["annotation_id"] for c in crops] == [1, 2, 3]
    assert crops[0]["id"] == ids[1] and crops[0]["label"] == 2
    assert db.crop(ids[0]) is None


def test_runs_and_metrics_round_trip(db):
    run_id = db.create_run("pretrain", {"arch": "resnet18", "lr": 3e-4}, name="r18")
    run = db.run(run_id)
    assert (run["status"], run["config"], run["summary"], run["name"]) == (
        "queued", {"arch": "resnet18", "lr": 3e-4}, {}, "r18")
    db.mark_running(run_id)
    run = db.run(run_id)
    assert run["status"] == "running" and run["started_at"] and run["pid"] > 0
    for step in range(3):
        db.log_metrics(run_id, step, {"loss": 3.0 - step, "top1": 0.1 * step})
    assert [m["value"] for m in db.metrics(run_id, "loss")] == [3.0, 2.0, 1.0]
    assert len(db.metrics(run_id)) == 6
    assert db.latest_metrics(run_id) == pytest.approx({"loss": 1.0, "top1": 0.2})
    db.update_run(run_id, summary={"epochs_done": 1})
    db.finish_run(run_id, "finished", summary={"top1": 0.2}, checkpoint="ck/last.pth.tar")
    run = db.run(run_id)
    assert run["summary"] == {"epochs_done": 1, "top1": 0.2}
    assert run["status"] == "finished" and run["ended_at"] and run["error"] is None
    assert run["checkpoint"] == "ck/last.pth.tar"
    probe = db.create_run("probe")
    assert [r["id"] for r in db.runs(kind="pretrain")] == [run_id]
    assert [r["id"] for r in db.runs(status="queued")] == [probe]
    assert not db.cancel_requested(probe)
    db.request_cancel(probe)
    assert db.cancel_requested(probe)
    with pytest.raises(AssertionError):
        db.update_run(probe, status="exploded")
    db.delete_run(run_id)
    assert db.run(run_id) is None and db.metrics(run_id) == []


def test_mark_interrupted_runs_finds_runs_whose_process_is_gone(db):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lost = db.create_run("pretrain")
    db.mark_running(lost, pid=dead.pid)
    alive = db.create_run("probe")
    db.mark_running(alive)  # this process
    queued = db.create_run("probe")
    assert db.mark_interrupted_runs() == [lost]
    assert db.run(lost)["status"] == "interrupted" and "ended" in db.run(lost)["error"]
    assert db.run(alive)["status"] == "running" and db.run(queued)["status"] == "queued"
    assert db.mark_interrupted_runs() == []


WRITER = """
import sys, time
from store import Store
path, run_id, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with Store(path) as db:
    print("ready", flush=True)
    step, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        db.log_metrics(run_id, step, {"loss": 1.0 / (step + 1), "lr": 0.1})
        step += 1
print(step, flush=True)
"""


def test_a_worker_process_writing_while_this_one_reads_and_writes(tmp_path):
    path = tmp_path / "ffclr.sqlite"
    with Store(path) as db:
        worker_run = db.create_run("pretrain")
        db.mark_running(worker_run)
    worker = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(worker_run), "2"],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    assert worker.stdout.readline().strip() == "ready"
    reads = writes = 0
    mine = []
    with Store(path) as db:
        while worker.poll() is None:
            db.metrics(worker_run, "loss")
            db.latest_metrics(worker_run)
            db.runs()
            reads += 1
            run_id = db.create_run("probe", {"i": writes})
            db.log_metrics(run_id, 0, {"acc": writes})
            db.finish_run(run_id, "finished", summary={"i": writes})
            mine.append(run_id)
            writes += 1
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        assert "locked" not in err
        steps = int(out.strip().splitlines()[-1])
        loss = db.metrics(worker_run, "loss")
        assert steps > 0 and [m["step"] for m in loss] == list(range(steps))
        assert len(db.metrics(worker_run)) == 2 * steps
        assert reads > 0 and writes > 0
        for i, run_id in enumerate(mine):
            run = db.run(run_id)
            assert run["status"] == "finished" and run["summary"] == {"i": i}
            assert [m["value"] for m in db.metrics(run_id)] == [i]


def test_label_edits_follow_their_classes_when_indices_move(db):
    dataset_id, crop_ids = _dataset_with_crops(db)
    db.relabel(crop_ids[0], 2)
    db.relabel(crop_ids[1], 1)
    # a re-imported export gained a category sorting first and lost class c1
    db.set_classes(dataset_id, [{"class_index": 0, "coco_id": 0, "name": "new", "folder": "new"},
                                {"class_index": 1, "coco_id": 1, "name": "c0", "folder": "c0"},
                                {"class_index": 2, "coco_id": 3, "name": "c2", "folder": "c2"}])
    names = {c["class_index"]: c["name"] for c in db.classes(dataset_id)}
    assert names[db.crop(crop_ids[0])["label"]] == "c2"
    assert [(e["old_class_index"], e["new_class_index"]) for e in db.label_edits(crop_ids[0])] \
        == [(1, 2)]
    assert db.label_edits(crop_ids[1]) == []
    aside = db.set_aside_edits(dataset_id)  # the edit to the gone class is kept aside, not lost
    assert [(e["annotation_id"], e["new_class_index"]) for e in aside] == [(1, 1)]
    assert "'c1' is no longer in the export" in aside[0]["reason"]


def _rows(boxes: dict[int, int]) -> list[dict]:
    """Crop rows: annotation id → the box's x."""
    return [{"class_index": 0, "source_image": "a.jpg", "image_id": 0, "annotation_id": i,
             "bbox": [x, 0, 5, 5], "crop_bbox": [x, 0, 6, 6], "path": f"train/c0/a_{i}.png",
             "sha256": f"h{i}-{x}"} for i, x in boxes.items()]


def test_edits_of_a_crop_whose_box_changed_or_left_are_set_aside(db):
    dataset_id, ids = _dataset_with_crops(db)
    db.relabel(ids[0], 2)
    db.relabel(ids[1], 1)
    db.relabel(ids[2], 2)
    counts = db.sync_crops(dataset_id, "train", _rows({0: 0, 1: 9}))  # 1 moved, 2 gone
    assert counts == {"added": 0, "updated": 2, "unchanged": 0, "removed": 1}
    assert db.crop(ids[0])["label"] == 2  # same box (its file changed): the edit stays
    assert db.crop(ids[1])["label"] == 0 and db.label_edits(ids[1]) == []
    aside = db.set_aside_edits(dataset_id)
    assert [(e["annotation_id"], e["bbox"], e["new_class_index"]) for e in aside] == [
        (1, "[1.0, 0.0, 5.0, 5.0]", 1), (2, "[2.0, 0.0, 5.0, 5.0]", 2)]
    assert "changed" in aside[0]["reason"] and "no longer" in aside[1]["reason"]


def test_apply_import_is_one_transaction_with_its_last_step(db):
    dataset_id, ids = _dataset_with_crops(db)
    db.relabel(ids[1], 2)
    classes = db.classes(dataset_id)
    before = (db.dataset("d"), db.crops(dataset_id), db.label_edits(dataset_id=dataset_id))
    plan = db.plan_import(dataset_id, classes, {"train": _rows({0: 0, 1: 9})})
    assert plan == {"splits": {"train": {"added": 0, "updated": 2, "unchanged": 0, "removed": 1}},
                    "removed_splits": [], "classes_changed": False, "edits_set_aside": 1}

    def fail():
        raise OSError("swap failed")
    with pytest.raises(OSError):
        db.apply_import("d", "/data/d_individual", "/exports/d2", "fp2", "src2", classes,
                        {"train": _rows({0: 0, 1: 9})}, before_commit=fail)
    assert (db.dataset("d"), db.crops(dataset_id), db.label_edits(dataset_id=dataset_id)) == before
    assert db.set_aside_edits(dataset_id) == []
    _, done = db.apply_import("d", "/data/d_individual", "/exports/d2", "fp2", "src2", classes,
                              {"train": _rows({0: 0, 1: 9})})
    assert done["edits_set_aside"] == 1 and db.dataset("d")["source_fingerprint"] == "src2"
    assert db.plan_import(dataset_id, classes, {"train": _rows({0: 0, 1: 9})})["splits"] == {
        "train": {"added": 0, "updated": 0, "unchanged": 2, "removed": 0}}


def _mixed_dataset(db: Store, name: str) -> int:
    """Twelve crops of classes 0-2 in train and valid, relabelled into and out of class 1."""
    dataset_id = db.upsert_dataset(name, f"/data/{name}", None, "fp")
    db.set_classes(dataset_id, [{"class_index": i, "coco_id": i + 1, "name": f"c{i}",
                                 "folder": f"c{i}"} for i in range(3)])
    for split, first in (("train", 0), ("valid", 100)):
        db.sync_crops(dataset_id, split, [
            {"class_index": i % 3, "source_image": "a.jpg", "image_id": 0, "annotation_id": i,
             "bbox": [i, 0, 5, 5], "crop_bbox": [i, 0, 6, 6], "path": f"{split}/{i}.png",
             "sha256": f"{split}{i}"} for i in range(first, first + 6)])
    ids = [c["id"] for c in db.crops(dataset_id)]
    db.relabel(ids[0], 1)                    # into class 1
    db.relabel(ids[1], 2)                    # out of class 1
    db.relabel(ids[4], 0)
    db.relabel(ids[4], 1)                    # out and back in
    db.relabel(ids[7], 1)
    db.undo_relabel(ids[7])                  # in, then undone
    db.relabel(ids[8], 1)
    assert db.relabel(ids[8], 1) is None     # into class 1 again: no edit
    return dataset_id


def test_a_class_page_is_the_python_filter_of_every_crop_sliced(db):
    other = _mixed_dataset(db, "other")
    dataset_id = _mixed_dataset(db, "d")
    db.relabel(db.crops(other)[2]["id"], 1)
    every = db.crops(dataset_id)
    for label in range(3):
        for split in (None, "train", "valid"):
            want = [c for c in every if c["label"] == label and split in (None, c["split"])]
            assert db.class_crops(dataset_id, label, split) == want
            for limit, offset in ((2, 0), (2, 2), (3, len(want) - 1), (2, len(want)), (1, 99)):
                assert db.class_crops(dataset_id, label, split, limit, offset) == \
                    want[offset:offset + limit], (label, split, limit, offset)
    in_class_1 = [c["id"] for c in db.class_crops(dataset_id, 1)]
    assert every[0]["id"] in in_class_1 and every[1]["id"] not in in_class_1
    assert every[4]["id"] in in_class_1 and every[7]["id"] not in in_class_1
    assert db.class_crops(dataset_id, 1, limit=0) == [] and db.class_crops(dataset_id, 7) == []


def test_label_counts_group_every_crop_by_its_latest_label_and_split(db):
    other = _mixed_dataset(db, "other")
    dataset_id = _mixed_dataset(db, "d")
    db.relabel(db.crops(other)[2]["id"], 1)
    for ds in (dataset_id, other):
        counted = Counter((c["label"], c["split"]) for c in db.crops(ds))
        rows = db.label_counts(ds)
        assert {(r["label"], r["split"]): r["crops"] for r in rows} == counted
        assert [(r["label"], r["split"]) for r in rows] == sorted(counted)
        for label in range(3):
            assert db.label_counts(ds, label) == [r for r in rows if r["label"] == label]
        assert db.splits(ds) == sorted({c["split"] for c in db.crops(ds)}) == ["train", "valid"]
    assert db.label_counts(dataset_id, 7) == [] and db.label_counts(999) == []
    assert db.label_edit_count(dataset_id) == 7 and db.label_edit_count(other) == 8
    db.sync_crops(other, "valid", [])
    assert db.splits(other) == ["train"] and db.splits(999) == []


def test_a_version_4_workspace_opens_with_the_class_index(tmp_path):
    path = tmp_path / "ffclr.sqlite"
    with Store(path) as db:
        dataset_id = _mixed_dataset(db, "d")
        before = db.crops(dataset_id)
    conn = sqlite3.connect(path)
    conn.execute("DROP INDEX crops_dataset_class")
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    with Store(path) as db:
        assert db.schema_version == SCHEMA_VERSION == 5
        assert "crops_dataset_class" in {i.name for i in db.db["crops"].indexes}
        assert db.crops(dataset_id) == before
        assert db.class_crops(dataset_id, 1) == [c for c in before if c["label"] == 1]


def test_labels_by_id_are_the_effective_labels_of_the_crops(db):
    dataset_id = _mixed_dataset(db, "d")
    other = _mixed_dataset(db, "other")
    every = {c["id"]: c["label"] for c in db.crops(dataset_id)}
    assert db.labels(dataset_id) == every
    some = list(every)[::3] + [max(every) + 10_000] + [c["id"] for c in db.crops(other)][:2]
    assert db.labels(dataset_id, some) == {c: every[c] for c in list(every)[::3]}
    assert db.labels(dataset_id, []) == {}
