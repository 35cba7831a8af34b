"""`Store`: the one SQLite file of a workspace.

WAL mode with a long busy timeout and `BEGIN IMMEDIATE` write transactions, so a training
worker writing metrics while the UI reads never sees "database is locked".
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import sqlite_utils

from store.drawings import DrawingStore
from store.errors import StoreError
from store.schema import MIGRATIONS, SCHEMA_VERSION

RUN_STATUSES = ("queued", "running", "finished", "failed", "cancelled", "interrupted")
ACTIVE_STATUSES = ("queued", "running")
BUSY_TIMEOUT_MS = 60_000
UNDO_NOTE = "undo"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_identity(pid: int | None) -> str | None:
    """`<boot id>:<start time>` of a running process, which a reused pid does not share (after a
    reboot, or once the process ended); None where /proc cannot tell."""
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return f"{_boot_id()}:{fields[19]}"


def pid_alive(pid: int | None, identity: str | None = None) -> bool:
    """Whether the process with this pid runs (a zombie does not count) and, when `identity`
    (from `process_identity`) is given, is still the same process."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().split(")")[-1].split()[0] == "Z":
                return False
    except OSError:
        return True
    current = process_identity(pid)
    return identity is None or current is None or current == identity


def run_alive(run: dict) -> bool:
    """Whether the worker process recorded for a run still runs."""
    return pid_alive(run.get("pid"), run.get("pid_start"))


def _run_row(row: dict) -> dict:
    row = dict(row)
    row["config"] = json.loads(row.get("config") or "{}")
    row["summary"] = json.loads(row.get("summary") or "{}")
    return row


def _normalised_crop(row: dict, split: str) -> dict:
    row = {**row, "split": split}
    for key in ("bbox", "crop_bbox"):
        if not isinstance(row[key], str):
            row[key] = json.dumps([round(float(v), 3) for v in row[key]])
    return row


MAX_TAG_CHARS = 64


def _tag_text(tag: str) -> str:
    text = tag.strip() if isinstance(tag, str) else ""
    if not text or len(text) > MAX_TAG_CHARS:
        raise ValueError(f"tag {tag!r}: give 1-{MAX_TAG_CHARS} characters")
    return text


_LATEST_EDITS = "(SELECT crop_id, MAX(id) AS id FROM label_edits GROUP BY crop_id)"
"""Each edited crop's latest label edit (its id), which gives the crop its effective label."""

_COMPARED = ("class_index", "bbox", "crop_bbox", "path", "sha256", "source_image")


def _existing_crops(conn: sqlite3.Connection, dataset_id: int, split: str) -> dict[int, dict]:
    """The split's crops cut from the export (not those of annotated drawings) by annotation id."""
    cursor = conn.execute(f"SELECT id, annotation_id, {', '.join(_COMPARED)} FROM crops "
                          "WHERE dataset_id = ? AND split = ? AND drawing_id IS NULL",
                          [dataset_id, split])
    names = [d[0] for d in cursor.description]
    return {row[1]: dict(zip(names, row)) for row in cursor.fetchall()}


def _export_splits(conn: sqlite3.Connection, dataset_id: int) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT split FROM crops WHERE dataset_id = ? "
                                       "AND drawing_id IS NULL ORDER BY split", [dataset_id])]


def _make_room(conn: sqlite3.Connection, dataset_id: int, split: str, rows: list[dict]) -> None:
    """Give a drawing's crop whose annotation id an export row now uses a new (negative) one."""
    taken = conn.execute("SELECT id, annotation_id FROM crops WHERE dataset_id = ? AND split = ? "
                         "AND drawing_id IS NOT NULL", [dataset_id, split]).fetchall()
    wanted = {row["annotation_id"] for row in rows}
    for crop_id, annotation_id in taken:
        if annotation_id in wanted:
            lowest = conn.execute("SELECT MIN(annotation_id) FROM crops WHERE dataset_id = ? AND "
                                  "split = ?", [dataset_id, split]).fetchone()[0]
            free = min(lowest, *wanted, 0) - 1
            conn.execute("UPDATE crops SET annotation_id = ? WHERE id = ?", [free, crop_id])


def _diff_split(existing: dict[int, dict], rows: list[dict]) -> dict:
    """Counts, rows to write, crop ids whose symbol changed (image or box) and crop ids gone."""
    counts = {"added": 0, "updated": 0, "unchanged": 0, "removed": 0}
    upserts, moved, keep = [], [], set()
    for row in rows:
        keep.add(row["annotation_id"])
        old = existing.get(row["annotation_id"])
        if old and all(old[k] == row[k] for k in _COMPARED):
            counts["unchanged"] += 1
            continue
        counts["updated" if old else "added"] += 1
        upserts.append(row)
        if old and (old["source_image"], old["bbox"]) != (row["source_image"], row["bbox"]):
            moved.append(old["id"])
    stale = [old["id"] for ann_id, old in existing.items() if ann_id not in keep]
    counts["removed"] = len(stale)
    return {"counts": counts, "upserts": upserts, "moved": moved, "stale": stale}


def _set_aside_edit(conn: sqlite3.Connection, edit_id: int, reason: str) -> None:
    conn.execute(
        "INSERT INTO set_aside_edits (dataset_id, split, annotation_id, source_image, bbox, "
        "old_class_index, new_class_index, time, note, reason, set_aside_at) "
        "SELECT c.dataset_id, c.split, c.annotation_id, c.source_image, c.bbox, "
        "e.old_class_index, e.new_class_index, e.time, e.note, ?, ? "
        "FROM label_edits e JOIN crops c ON c.id = e.crop_id WHERE e.id = ?",
        [reason, now(), edit_id])
    conn.execute("DELETE FROM label_edits WHERE id = ?", [edit_id])


def _set_aside_edits(conn: sqlite3.Connection, crop_id: int, reason: str) -> int:
    """Move the crop's label edits to `set_aside_edits`, with the identity of the symbol edited."""
    moved = conn.execute(
        "INSERT INTO set_aside_edits (dataset_id, split, annotation_id, source_image, bbox, "
        "old_class_index, new_class_index, time, note, reason, set_aside_at) "
        "SELECT c.dataset_id, c.split, c.annotation_id, c.source_image, c.bbox, "
        "e.old_class_index, e.new_class_index, e.time, e.note, ?, ? "
        "FROM label_edits e JOIN crops c ON c.id = e.crop_id WHERE e.crop_id = ? ORDER BY e.id",
        [reason, now(), crop_id]).rowcount
    conn.execute("DELETE FROM label_edits WHERE crop_id = ?", [crop_id])
    return moved


def _edits_of_gone_classes(conn: sqlite3.Connection, dataset_id: int, old: list[dict],
                           new: list[dict]) -> set[int]:
    """Ids of the label edits naming a class of `old` whose name is not in `new`."""
    names = {c["name"] for c in new}
    gone = [c["class_index"] for c in old if c["name"] not in names]
    if not gone:
        return set()
    marks = ", ".join("?" * len(gone))
    return {r[0] for r in conn.execute(
        "SELECT e.id FROM label_edits e JOIN crops c ON c.id = e.crop_id WHERE c.dataset_id = ? "
        f"AND (e.old_class_index IN ({marks}) OR e.new_class_index IN ({marks}))",
        [dataset_id, *gone, *gone])}


def _move_drawing_classes(conn: sqlite3.Connection, dataset_id: int,
                          moved: dict[int, int | None]) -> int:
    """Follow class indices that moved in the drawings' edits and crops. A crop of a class that
    is gone leaves (its label edits set aside) and its drawing is to be finished again.
    Returns the label edits set aside."""
    edits = conn.execute("SELECT e.id, e.old_class_index, e.new_class_index FROM annotation_edits "
                         "e JOIN drawings d ON d.id = e.drawing_id WHERE d.dataset_id = ?",
                         [dataset_id]).fetchall()
    for edit_id, old, new in edits:
        old, new = (moved.get(old, old) if old is not None else None,
                    moved.get(new, new) if new is not None else None)
        conn.execute("UPDATE annotation_edits SET old_class_index = COALESCE(?, old_class_index), "
                     "new_class_index = COALESCE(?, new_class_index) WHERE id = ?",
                     [old, new, edit_id])
    set_aside = 0
    crops = conn.execute("SELECT id, class_index, drawing_id FROM crops WHERE dataset_id = ? "
                         "AND drawing_id IS NOT NULL", [dataset_id]).fetchall()
    for crop_id, class_index, drawing_id in crops:
        if class_index not in moved:
            continue
        if moved[class_index] is None:
            set_aside += _set_aside_edits(conn, crop_id, "its class is no longer in the export")
            conn.execute("DELETE FROM crops WHERE id = ?", [crop_id])
            conn.execute("UPDATE drawings SET status = 'new' WHERE id = ?", [drawing_id])
        else:
            conn.execute("UPDATE crops SET class_index = ? WHERE id = ?",
                         [moved[class_index], crop_id])
    return set_aside


def _class_key(classes: list[dict]) -> list[tuple]:
    return [(c["class_index"], c.get("coco_id"), c["name"], c["folder"]) for c in classes]


class Store(DrawingStore):
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000,
                               isolation_level=None, check_same_thread=False)
        self.db = sqlite_utils.Database(conn)
        self._lock = threading.RLock()
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys = ON")
            self.db.enable_wal()
            self._migrate()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{self.path}: not a readable ffclr store ({exc}); it was left as it "
                             "is: move it aside to start a new one") from None

    def close(self) -> None:
        self.db.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken up front, so it waits for other writers instead of failing."""
        with self._lock:
            conn = self.db.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _query(self, sql: str, params: Iterable | dict = ()) -> list[dict]:
        with self._lock:
            return list(self.db.query(sql, params))

    def _migrate(self) -> None:
        """Bring the schema up to date. An up-to-date file is only read: opening a store takes
        no write lock, so the app's timers and the workers never queue for it."""
        if self._schema_current():
            return
        with self.write() as conn:
            if self._schema_current():
                return
            version = self.schema_version
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    def _schema_current(self) -> bool:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema version {version} is newer than this "
                             f"ffclr ({SCHEMA_VERSION}); upgrade ffclr")
        return version == SCHEMA_VERSION

    @property
    def schema_version(self) -> int:
        return self.db.conn.execute("PRAGMA user_version").fetchone()[0]

    # datasets and classes

    def dataset(self, name: str) -> dict | None:
        rows = self._query("SELECT * FROM datasets WHERE name = ?", [name])
        return rows[0] if rows else None

    def dataset_by_id(self, dataset_id: int) -> dict | None:
        rows = self._query("SELECT * FROM datasets WHERE id = ?", [dataset_id])
        return rows[0] if rows else None

    def datasets(self) -> list[dict]:
        return self._query("SELECT * FROM datasets ORDER BY name")

    def upsert_dataset(self, name: str, root: str, source: str | None,
                       fingerprint: str | None, source_fingerprint: str | None = None) -> int:
        with self.write() as conn:
            return self._upsert_dataset(conn, name, root, source, fingerprint, source_fingerprint)

    @staticmethod
    def _upsert_dataset(conn: sqlite3.Connection, name: str, root: str, source: str | None,
                        fingerprint: str | None, source_fingerprint: str | None) -> int:
        conn.execute(
            "INSERT INTO datasets (name, source, root, fingerprint, source_fingerprint, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
            "source=excluded.source, root=excluded.root, fingerprint=excluded.fingerprint, "
            "source_fingerprint=excluded.source_fingerprint, updated_at=excluded.updated_at",
            [name, source, root, fingerprint, source_fingerprint, now(), now()])
        return conn.execute("SELECT id FROM datasets WHERE name = ?", [name]).fetchone()[0]

    def set_classes(self, dataset_id: int, classes: list[dict]) -> None:
        """Replace the class list: dicts with class_index, coco_id, name, folder.

        Label edits follow their classes by name when indices move (a category added to a
        re-imported export); edits naming a class that no longer exists are set aside.
        """
        with self.write() as conn:
            self._set_classes(conn, dataset_id, classes)

    @staticmethod
    def _set_classes(conn: sqlite3.Connection, dataset_id: int, classes: list[dict]) -> int:
        """Returns the number of label edits set aside because their class is gone."""
        set_aside = 0
        old_names = dict(conn.execute("SELECT class_index, name FROM classes "
                                      "WHERE dataset_id = ?", [dataset_id]).fetchall())
        new_index = {c["name"]: c["class_index"] for c in classes}
        moved = {old: new_index.get(name) for old, name in old_names.items()
                 if new_index.get(name) != old}
        if moved:
            edits = conn.execute(
                "SELECT e.id, e.old_class_index, e.new_class_index FROM label_edits e "
                "JOIN crops c ON c.id = e.crop_id WHERE c.dataset_id = ?",
                [dataset_id]).fetchall()
            for edit_id, old_class, new_class in edits:
                if old_class not in moved and new_class not in moved:
                    continue
                edit_old, edit_new = old_class, new_class
                old_class, new_class = (moved.get(old_class, old_class),
                                        moved.get(new_class, new_class))
                if old_class is None or new_class is None:
                    gone = [old_names[i] for i in (edit_old, edit_new) if moved.get(i, i) is None]
                    _set_aside_edit(conn, edit_id, f"its class {gone[0]!r} is no longer in the "
                                                   "export")
                    set_aside += 1
                else:
                    conn.execute("UPDATE label_edits SET old_class_index = ?, "
                                 "new_class_index = ? WHERE id = ?",
                                 [old_class, new_class, edit_id])
        if moved:
            set_aside += _move_drawing_classes(conn, dataset_id, moved)
        conn.execute("DELETE FROM classes WHERE dataset_id = ?", [dataset_id])
        conn.executemany(
            "INSERT INTO classes (dataset_id, class_index, coco_id, name, folder) "
            "VALUES (?, ?, ?, ?, ?)",
            [(dataset_id, c["class_index"], c.get("coco_id"), c["name"], c["folder"])
             for c in classes])
        return set_aside

    def classes(self, dataset_id: int) -> list[dict]:
        return self._query("SELECT class_index, coco_id, name, folder FROM classes "
                           "WHERE dataset_id = ? ORDER BY class_index", [dataset_id])

    # crops

    CROP_COLUMNS = ("split", "class_index", "source_image", "image_id", "annotation_id",
                    "bbox", "crop_bbox", "path", "sha256")

    def sync_crops(self, dataset_id: int, split: str, rows: list[dict]) -> dict:
        """Make the split's crops from the export exactly `rows` (keyed by annotation id),
        keeping crop ids stable; the crops of finished drawings stay as they are.

        Returns counts of added, updated, unchanged and removed rows. Label edits of a crop whose
        image or box changed, or that is removed, are set aside (`set_aside_edits`).
        """
        with self.write() as conn:
            return self._sync_split(conn, dataset_id, split, rows)[0]

    def _sync_split(self, conn: sqlite3.Connection, dataset_id: int, split: str,
                    rows: list[dict]) -> tuple[dict, int]:
        """(counts, label edits set aside)."""
        rows = [_normalised_crop(row, split) for row in rows]
        _make_room(conn, dataset_id, split, rows)
        diff = _diff_split(_existing_crops(conn, dataset_id, split), rows)
        set_aside = sum(_set_aside_edits(conn, crop_id, "its box or image changed in the export")
                        for crop_id in diff["moved"])
        set_aside += sum(_set_aside_edits(conn, crop_id, "its box is no longer in the export")
                         for crop_id in diff["stale"])
        for row in diff["upserts"]:
            conn.execute(
                f"INSERT INTO crops (dataset_id, {', '.join(self.CROP_COLUMNS)}) "
                f"VALUES (?, {', '.join('?' * len(self.CROP_COLUMNS))}) "
                "ON CONFLICT(dataset_id, split, annotation_id) DO UPDATE SET "
                + ", ".join(f"{c}=excluded.{c}" for c in self.CROP_COLUMNS),
                [dataset_id, *(row.get(c) for c in self.CROP_COLUMNS)])
        conn.executemany("DELETE FROM crops WHERE id = ?", [(i,) for i in diff["stale"]])
        return diff["counts"], set_aside

    def plan_import(self, dataset_id: int | None, classes: list[dict],
                    rows_by_split: dict[str, list[dict]], keep_splits: Iterable[str] = ()) -> dict:
        """What `apply_import` would change, without writing: per split the crops added,
        updated, unchanged and removed; the splits removed; whether the class list changes; and
        how many label edits would be set aside."""
        plan = {"splits": {}, "removed_splits": [], "classes_changed": False, "edits_set_aside": 0}
        if dataset_id is None:
            plan["splits"] = {s: {"added": len(r)} for s, r in rows_by_split.items()}
            return plan
        conn, affected = self.db.conn, set()
        with self._lock:
            old_classes = self.classes(dataset_id)
            plan["classes_changed"] = _class_key(old_classes) != _class_key(classes)
            for split in _export_splits(conn, dataset_id):
                if split not in rows_by_split and split not in keep_splits:
                    plan["removed_splits"].append(split)
            for split in [*rows_by_split, *plan["removed_splits"]]:
                diff = _diff_split(_existing_crops(conn, dataset_id, split),
                                   [_normalised_crop(r, split)
                                    for r in rows_by_split.get(split, [])])
                plan["splits"][split] = diff["counts"]
                for crop_id in diff["moved"] + diff["stale"]:
                    affected.update(r[0] for r in conn.execute(
                        "SELECT id FROM label_edits WHERE crop_id = ?", [crop_id]))
            affected.update(_edits_of_gone_classes(conn, dataset_id, old_classes, classes))
        plan["edits_set_aside"] = len(affected)
        return plan

    def apply_import(self, name: str, root: str, source: str | None, fingerprint: str,
                     source_fingerprint: str | None, classes: list[dict],
                     rows_by_split: dict[str, list[dict]], keep_splits: Iterable[str] = (),
                     before_commit: Callable[[], None] | None = None) -> tuple[int, dict]:
        """The dataset row, its classes and every split's crops in ONE transaction: splits not
        in `rows_by_split` nor `keep_splits` are emptied. `before_commit` runs last inside the
        transaction (the importer swaps the crop folder there); if it raises, nothing is written.

        Returns (dataset id, {"splits": split → counts, "removed_splits": [...],
        "edits_set_aside": label edits moved to `set_aside_edits`}).
        """
        done = {"splits": {}, "removed_splits": [], "edits_set_aside": 0}
        with self.write() as conn:
            dataset_id = self._upsert_dataset(conn, name, root, source, fingerprint,
                                              source_fingerprint)
            done["edits_set_aside"] += self._set_classes(conn, dataset_id, classes)
            previous = _export_splits(conn, dataset_id)
            for split in dict.fromkeys([*rows_by_split, *previous]):
                if split in rows_by_split:
                    counts, set_aside = self._sync_split(conn, dataset_id, split,
                                                         rows_by_split[split])
                    done["splits"][split] = counts
                elif split not in keep_splits:
                    set_aside = self._sync_split(conn, dataset_id, split, [])[1]
                    done["removed_splits"].append(split)
                else:
                    continue
                done["edits_set_aside"] += set_aside
            if before_commit is not None:
                before_commit()
        return dataset_id, done

    def set_aside_edits(self, dataset_id: int) -> list[dict]:
        """Label edits kept aside because their crop no longer matches the symbol edited."""
        return self._query("SELECT * FROM set_aside_edits WHERE dataset_id = ? ORDER BY id",
                           [dataset_id])

    _LABEL = ("COALESCE((SELECT e.new_class_index FROM label_edits e WHERE e.crop_id = c.id "
              "ORDER BY e.id DESC LIMIT 1), c.class_index)")
    """The effective label of crop `c`: its latest edit's class, else the imported one."""
    _CROP_SELECT = (f"SELECT c.*, c.class_index AS imported_class_index, {_LABEL} AS label "
                    "FROM crops c ")

    def crops(self, dataset_id: int, split: str | None = None) -> list[dict]:
        """Crops with `label`, the effective class index (the latest edit, else the imported one)."""
        if split is None:
            return self._query(self._CROP_SELECT + "WHERE c.dataset_id = ? ORDER BY c.id",
                               [dataset_id])
        return self._query(self._CROP_SELECT + "WHERE c.dataset_id = ? AND c.split = ? "
                           "ORDER BY c.id", [dataset_id, split])

    def labels(self, dataset_id: int, crop_ids: Iterable[int] | None = None) -> dict[int, int]:
        """Effective label (the latest edit, else the imported class) by crop id: of every crop
        of the dataset, or of these crops of it (ids not in it are left out); ids and labels
        only, without the rest of each crop's row."""
        select = f"SELECT c.id, {self._LABEL} AS label FROM crops c WHERE c.dataset_id = ?"
        if crop_ids is None:
            return {r["id"]: r["label"] for r in self._query(select, [dataset_id])}
        ids, found = [int(c) for c in crop_ids], {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = self._query(select + f" AND c.id IN ({', '.join('?' * len(chunk))})",
                               [dataset_id, *chunk])
            found.update((r["id"], r["label"]) for r in rows)
        return found

    def crop(self, crop_id: int) -> dict | None:
        rows = self._query(self._CROP_SELECT + "WHERE c.id = ?", [crop_id])
        return rows[0] if rows else None

    def crop_by_path(self, path: str) -> dict | None:
        rows = self._query(self._CROP_SELECT + "WHERE c.path = ?", [str(path)])
        return rows[0] if rows else None

    def splits(self, dataset_id: int) -> list[str]:
        """The splits holding crops of the dataset, sorted; found split after split through the
        index, without reading every crop."""
        return [r["split"] for r in self._query(
            "WITH RECURSIVE s(split) AS (SELECT MIN(split) FROM crops WHERE dataset_id = :d "
            "UNION ALL SELECT (SELECT MIN(split) FROM crops WHERE dataset_id = :d AND "
            "split > s.split) FROM s WHERE s.split IS NOT NULL) "
            "SELECT split FROM s WHERE split IS NOT NULL", {"d": dataset_id})]

    def class_crops(self, dataset_id: int, label: int, split: str | None = None,
                    limit: int | None = None, offset: int = 0) -> list[dict]:
        """The crops whose effective label is `label` (of one split, if given), as `crops` gives
        them, ordered by id: `limit` of them from `offset` (all when `limit` is None)."""
        params = {"dataset": dataset_id, "label": int(label), "split": split,
                  "limit": -1 if limit is None else max(int(limit), 0),
                  "offset": max(int(offset), 0)}
        in_split = "" if split is None else " AND c.split = :split"
        ids = (f"SELECT c.id FROM crops c WHERE c.dataset_id = :dataset AND c.class_index = :label"
               f"{in_split} AND c.id NOT IN (SELECT crop_id FROM label_edits) UNION ALL "
               f"SELECT c.id FROM {_LATEST_EDITS} l CROSS JOIN label_edits e ON e.id = l.id "
               "CROSS JOIN crops c ON c.id = l.crop_id WHERE c.dataset_id = :dataset AND "
               f"e.new_class_index = :label{in_split} ORDER BY 1 LIMIT :limit OFFSET :offset")
        return self._query(self._CROP_SELECT + f"WHERE c.id IN ({ids}) ORDER BY c.id", params)

    def label_counts(self, dataset_id: int, label: int | None = None) -> list[dict]:
        """Crops per effective label and split (of one label, if given): rows with `label`,
        `split` and `crops`, none with no crops, ordered by label and split. Counted from the
        imported classes with the latest label edits applied, without reading every crop."""
        params = {"dataset": dataset_id, "label": label}
        one = "" if label is None else " AND {} = :label"
        sql = (
            "SELECT label, split, SUM(n) AS crops FROM ("
            "SELECT class_index AS label, split, COUNT(*) AS n FROM crops c WHERE "
            f"dataset_id = :dataset{one.format('c.class_index')} GROUP BY class_index, split "
            f"UNION ALL SELECT c.class_index, c.split, -1 FROM {_LATEST_EDITS} l "
            "CROSS JOIN crops c ON c.id = l.crop_id WHERE "
            f"c.dataset_id = :dataset{one.format('c.class_index')} "
            f"UNION ALL SELECT e.new_class_index, c.split, 1 FROM {_LATEST_EDITS} l CROSS JOIN "
            "label_edits e ON e.id = l.id CROSS JOIN crops c ON c.id = l.crop_id WHERE "
            f"c.dataset_id = :dataset{one.format('e.new_class_index')}"
            ") GROUP BY label, split HAVING SUM(n) > 0 ORDER BY label, split")
        return self._query(sql, params)

    def label_edit_count(self, dataset_id: int) -> int:
        return self._query("SELECT COUNT(*) AS n FROM label_edits e JOIN crops c ON "
                           "c.id = e.crop_id WHERE c.dataset_id = ?", [dataset_id])[0]["n"]

    # label edits (append-only)

    def relabel(self, crop_id: int, new_class_index: int, note: str | None = None) -> int | None:
        """Append an edit giving the crop `new_class_index`; None (and nothing written) when it
        already has it. The check and the write are one transaction, so two requests for the
        same change append one edit."""
        with self.write() as conn:
            if self._label(conn, crop_id) == new_class_index:
                return None
            return self._append_edit(conn, crop_id, new_class_index, note)

    @staticmethod
    def _append_edit(conn: sqlite3.Connection, crop_id: int, new_class_index: int,
                     note: str | None) -> int:
        crop = conn.execute(f"SELECT c.dataset_id, {Store._LABEL} FROM crops c WHERE c.id = ?",
                            [crop_id]).fetchone()
        if crop is None:
            raise KeyError(f"no crop with id {crop_id}")
        known = conn.execute("SELECT 1 FROM classes WHERE dataset_id = ? AND class_index = ?",
                             [crop[0], new_class_index]).fetchone()
        if not known:
            raise KeyError(f"class index {new_class_index} is not a class of this dataset")
        cursor = conn.execute(
            "INSERT INTO label_edits (crop_id, old_class_index, new_class_index, time, note) "
            "VALUES (?, ?, ?, ?, ?)", [crop_id, crop[1], new_class_index, now(), note])
        return cursor.lastrowid

    def relabel_many(self, crop_ids: Iterable[int], new_class_index: int,
                     note: str | None = None) -> int:
        """Relabel several crops in ONE transaction, each with its own edit (so each crop's undo
        still works); crops already of that label get no edit. Returns the edits appended; an
        unknown crop or class raises KeyError and nothing is written."""
        with self.write() as conn:
            appended = 0
            for crop_id in dict.fromkeys(crop_ids):
                if self._label(conn, crop_id) != new_class_index:
                    self._append_edit(conn, crop_id, new_class_index, note)
                    appended += 1
            return appended

    @staticmethod
    def _label(conn: sqlite3.Connection, crop_id: int) -> int:
        row = conn.execute(f"SELECT {Store._LABEL} FROM crops c WHERE c.id = ?",
                           [crop_id]).fetchone()
        if row is None:
            raise KeyError(f"no crop with id {crop_id}")
        return row[0]

    def undo_relabel(self, crop_id: int) -> int | None:
        """Append an edit restoring the label before the latest edit not yet undone.

        Repeated undos walk back through the edits (an undo does not undo the previous undo);
        None when no edit is left to undo.
        """
        with self.write() as conn:
            pending: list[int] = []
            for old_class_index, note in conn.execute(
                    "SELECT old_class_index, note FROM label_edits WHERE crop_id = ? ORDER BY id",
                    [crop_id]):
                if note == UNDO_NOTE and pending:
                    pending.pop()
                else:
                    pending.append(old_class_index)
            if not pending:
                return None
            return self._append_edit(conn, crop_id, pending[-1], UNDO_NOTE)

    def label_edits(self, crop_id: int | None = None, dataset_id: int | None = None) -> list[dict]:
        if crop_id is not None:
            return self._query("SELECT * FROM label_edits WHERE crop_id = ? ORDER BY id", [crop_id])
        return self._query("SELECT e.* FROM label_edits e JOIN crops c ON c.id = e.crop_id "
                           "WHERE c.dataset_id = ? ORDER BY e.id", [dataset_id])

    # tags

    def tag_crops(self, crop_ids: Iterable[int], tag: str) -> int:
        """Give the crops a tag (text, stripped, not empty); returns how many did not have it.
        An unknown crop raises KeyError and nothing is written."""
        tag = _tag_text(tag)
        with self.write() as conn:
            added = 0
            for crop_id in dict.fromkeys(crop_ids):
                if not conn.execute("SELECT 1 FROM crops WHERE id = ?", [crop_id]).fetchone():
                    raise KeyError(f"no crop with id {crop_id}")
                added += conn.execute("INSERT OR IGNORE INTO crop_tags (crop_id, tag, time) "
                                      "VALUES (?, ?, ?)", [crop_id, tag, now()]).rowcount
            return added

    def untag_crops(self, crop_ids: Iterable[int], tag: str) -> int:
        """Take the tag off the crops; returns how many had it."""
        tag = _tag_text(tag)
        with self.write() as conn:
            return sum(conn.execute("DELETE FROM crop_tags WHERE crop_id = ? AND tag = ?",
                                    [crop_id, tag]).rowcount for crop_id in dict.fromkeys(crop_ids))

    def crop_tags(self, dataset_id: int) -> dict[int, list[str]]:
        """Crop id → its tags (sorted), for the dataset's tagged crops."""
        tags: dict[int, list[str]] = {}
        for row in self._query("SELECT t.crop_id, t.tag FROM crop_tags t JOIN crops c ON "
                               "c.id = t.crop_id WHERE c.dataset_id = ? ORDER BY t.crop_id, t.tag",
                               [dataset_id]):
            tags.setdefault(row["crop_id"], []).append(row["tag"])
        return tags

    # runs and metrics

    def create_run(self, kind: str, config: dict | None = None, name: str | None = None,
                   dataset_id: int | None = None, status: str = "queued") -> int:
        assert status in RUN_STATUSES
        with self.write() as conn:
            conn.execute("UPDATE counters SET value = MAX(value, (SELECT COALESCE(MAX(id), 0) "
                         "FROM runs)) + 1 WHERE name = 'runs'")
            run_id = conn.execute("SELECT value FROM counters WHERE name = 'runs'").fetchone()[0]
            conn.execute(
                "INSERT INTO runs (id, kind, name, dataset_id, config, status, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [run_id, kind, name, dataset_id, json.dumps(config or {}, default=str), status,
                 now()])
            return run_id

    def update_run(self, run_id: int, **fields: Any) -> None:
        if "status" in fields:
            assert fields["status"] in RUN_STATUSES, fields["status"]
        if "pid" in fields and "pid_start" not in fields:
            fields["pid_start"] = process_identity(fields["pid"])
        for key in ("config", "summary"):
            if key in fields and not isinstance(fields[key], str):
                fields[key] = json.dumps(fields[key], default=str)
        with self.write() as conn:
            conn.execute(f"UPDATE runs SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                         [*fields.values(), run_id])

    def mark_running(self, run_id: int, pid: int | None = None) -> None:
        self.update_run(run_id, status="running", started_at=now(), pid=pid or os.getpid())

    def finish_run(self, run_id: int, status: str, error: str | None = None,
                   summary: dict | None = None, checkpoint: str | None = None) -> None:
        fields: dict[str, Any] = {"status": status, "ended_at": now(), "error": error}
        if summary is not None:
            fields["summary"] = {**self.run(run_id)["summary"], **summary}
        if checkpoint is not None:
            fields["checkpoint"] = str(checkpoint)
        self.update_run(run_id, **fields)

    def run(self, run_id: int) -> dict | None:
        rows = self._query("SELECT * FROM runs WHERE id = ?", [run_id])
        return _run_row(rows[0]) if rows else None

    def runs(self, kind: str | None = None, status: str | None = None) -> list[dict]:
        where, params = [], []
        if kind:
            where.append("kind = ?")
            params.append(kind)
        if status:
            where.append("status = ?")
            params.append(status)
        sql = "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "")
        return [_run_row(r) for r in self._query(sql + " ORDER BY id DESC", params)]

    def request_cancel(self, run_id: int) -> None:
        self.update_run(run_id, cancel_requested=1)

    def cancel_requested(self, run_id: int) -> bool:
        rows = self._query("SELECT cancel_requested FROM runs WHERE id = ?", [run_id])
        return bool(rows and rows[0]["cancel_requested"])

    def mark_interrupted_runs(self) -> list[int]:
        """Runs recorded as running whose process is gone (killed, machine restarted, its pid
        reused); a run that ends meanwhile keeps the status it reported."""
        lost = [r["id"] for r in self._query(
            "SELECT id, pid, pid_start FROM runs WHERE status = 'running'") if not run_alive(r)]
        marked = []
        if not lost:
            return marked
        with self.write() as conn:
            for run_id in lost:
                cursor = conn.execute(
                    "UPDATE runs SET status = 'interrupted', ended_at = ?, error = ? "
                    "WHERE id = ? AND status = 'running'",
                    [now(), "the worker process ended without reporting (killed?)", run_id])
                if cursor.rowcount:
                    marked.append(run_id)
        return marked

    def delete_run(self, run_id: int) -> None:
        with self.write() as conn:
            conn.execute("DELETE FROM metrics WHERE run_id = ?", [run_id])
            conn.execute("DELETE FROM runs WHERE id = ?", [run_id])

    def log_metrics(self, run_id: int, step: int, values: dict[str, float]) -> None:
        stamp = now()
        with self.write() as conn:
            conn.executemany(
                "INSERT INTO metrics (run_id, step, name, value, time) VALUES (?, ?, ?, ?, ?)",
                [(run_id, int(step), name, float(value), stamp) for name, value in values.items()])

    def metrics(self, run_id: int, name: str | None = None) -> list[dict]:
        if name:
            return self._query("SELECT step, name, value, time FROM metrics WHERE run_id = ? "
                               "AND name = ? ORDER BY step", [run_id, name])
        return self._query("SELECT step, name, value, time FROM metrics WHERE run_id = ? "
                           "ORDER BY name, step", [run_id])

    def latest_metrics(self, run_id: int) -> dict[str, float]:
        rows = self._query("SELECT name, value FROM metrics m WHERE run_id = ? AND step = "
                           "(SELECT MAX(step) FROM metrics WHERE run_id = m.run_id AND "
                           "name = m.name)", [run_id])
        return {r["name"]: r["value"] for r in rows}
