"""The store under stress: concurrent openers, a corrupt file, reused pids, racing undos and
finishing runs, deleted run ids."""
from __future__ import annotations

import os
import sqlite3
import threading
import time

import pytest

import store.db
from store.errors import StoreError
from store import Store
from store.schema import MIGRATIONS


def _dataset_with_crop(db: Store) -> int:
    dataset_id = db.upsert_dataset("d", "/data/d", None, "fp")
    db.set_classes(dataset_id, [{"class_index": i, "name": f"c{i}", "folder": f"c{i}"}
                                for i in range(3)])
    db.sync_crops(dataset_id, "train", [
        {"class_index": 0, "source_image": "a.jpg", "image_id": 0, "annotation_id": 1,
         "bbox": [0, 0, 5, 5], "crop_bbox": [0, 0, 6, 6], "path": "train/c0/a_1.png",
         "sha256": "h"}])
    return db.crops(dataset_id)[0]["id"]


def test_opening_a_current_store_takes_no_write_lock(tmp_path, monkeypatch):
    path = tmp_path / "ffclr.sqlite"
    with Store(path) as db:
        run_id = db.create_run("pretrain")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(store.db, "BUSY_TIMEOUT_MS", 200)
    try:
        with Store(path) as db:
            assert db.run(run_id)["status"] == "queued"
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_corrupt_file_is_refused_in_one_line_and_left_untouched(tmp_path):
    path = tmp_path / "ffclr.sqlite"
    garbage = b"this is not a database " * 200
    path.write_bytes(garbage)
    with pytest.raises(StoreError, match="not a readable ffclr store") as error:
        Store(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)
    assert path.read_bytes() == garbage


def test_the_workspace_reports_an_unusable_store_as_a_user_error(tmp_path):
    from ffclr.errors import FfclrError
    from ffclr.workspace import Workspace

    workspace = Workspace(tmp_path)
    workspace.db_path.write_bytes(b"\0garbage" * 100)
    with pytest.raises(FfclrError, match="not a readable ffclr store"):
        workspace.open_store()


def test_a_run_whose_pid_was_reused_is_interrupted(tmp_path):
    with Store(tmp_path / "ffclr.sqlite") as db:
        ours, reused = db.create_run("pretrain"), db.create_run("pretrain")
        db.mark_running(ours)
        db.update_run(reused, status="running", pid=os.getpid(),
                      pid_start="another-boot:12345")
        assert db.run(ours)["pid_start"] == store.db.process_identity(os.getpid())
        assert db.mark_interrupted_runs() == [reused]
        assert db.run(ours)["status"] == "running"
        assert db.run(reused)["status"] == "interrupted"


def test_a_run_that_finishes_meanwhile_is_not_marked_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "ffclr.sqlite"
    with Store(path) as db:
        run_id = db.create_run("pretrain", status="running")

        def finishes_while_checked(run):
            with Store(path) as worker:
                worker.finish_run(run["id"], "finished", summary={"steps": 3})
            return False

        monkeypatch.setattr(store.db, "run_alive", finishes_while_checked)
        assert db.mark_interrupted_runs() == []
        assert db.run(run_id)["status"] == "finished" and db.run(run_id)["error"] is None


def test_two_undos_at_once_undo_two_edits(tmp_path, monkeypatch):
    path = tmp_path / "ffclr.sqlite"
    with Store(path) as db:
        crop_id = _dataset_with_crop(db)
        db.relabel(crop_id, 1)
        db.relabel(crop_id, 2)
    second = Store(path)
    other = threading.Thread(target=lambda: second.undo_relabel(crop_id))
    real_now = store.db.now

    def now_with_a_second_undo_racing():
        if not other.is_alive() and other.ident is None:
            other.start()
            time.sleep(0.3)
        return real_now()

    monkeypatch.setattr(store.db, "now", now_with_a_second_undo_racing)
    with Store(path) as db:
        db.undo_relabel(crop_id)
        other.join(timeout=30)
        second.close()
        assert db.crop(crop_id)["label"] == 0
        assert [e["new_class_index"] for e in db.label_edits(crop_id)] == [1, 2, 1, 0]


def test_a_deleted_runs_id_is_never_given_again(tmp_path):
    path = tmp_path / "ffclr.sqlite"
    with Store(path) as db:
        ids = [db.create_run("pretrain") for _ in range(3)]
        db.delete_run(ids[-1])
    with Store(path) as db:
        assert db.create_run("probe") == ids[-1] + 1


def test_upgrading_a_version_1_store_keeps_run_ids_counting_up(tmp_path):
    path = tmp_path / "ffclr.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(MIGRATIONS[0])
    conn.execute("INSERT INTO runs (id, kind, status, created_at) VALUES (7, 'pretrain', "
                 "'finished', 'then')")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    with Store(path) as db:
        assert db.run(7)["status"] == "finished" and db.run(7)["pid_start"] is None
        db.delete_run(7)
        assert db.create_run("pretrain") == 8
