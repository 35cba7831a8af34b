"""The store's side of labelling new drawings: drawing rows, their append-only annotation edits
and the crops a finished drawing gives (`DrawingStore`, mixed into `Store`)."""
from __future__ import annotations

import json
import sqlite3
from typing import Callable

DRAWING_STATUSES = ("new", "annotated")
EDIT_FIELDS = ("box_id", "who", "action", "old_bbox", "new_bbox", "old_class_index",
               "new_class_index", "score", "undoes")
_CROP_FIELDS = ("class_index", "source_image", "image_id", "bbox", "crop_bbox", "path", "sha256")


def _bbox_text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps([round(float(v), 3) for v in value])


def _edit_row(row: dict) -> dict:
    row = dict(row)
    for key in ("old_bbox", "new_bbox"):
        row[key] = json.loads(row[key]) if row[key] else None
    return row


class DrawingStore:
    """Needs `write()`, `_query()` and `now` of `Store`."""

    def add_drawing(self, dataset_id: int, file_name: str, path: str, sha256: str, width: int,
                    height: int, split: str) -> int | None:
        """The new drawing's id, or None when the dataset already has a drawing of these bytes."""
        from store.db import now

        with self.write() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO drawings (dataset_id, file_name, path, sha256, width, "
                "height, split, status, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'new', ?)",
                [dataset_id, file_name, path, sha256, int(width), int(height), split, now()])
            return cursor.lastrowid if cursor.rowcount else None

    def drawing(self, drawing_id: int) -> dict | None:
        rows = self._query("SELECT * FROM drawings WHERE id = ?", [drawing_id])
        return rows[0] if rows else None

    def drawing_by_sha(self, dataset_id: int, sha256: str) -> dict | None:
        rows = self._query("SELECT * FROM drawings WHERE dataset_id = ? AND sha256 = ?",
                           [dataset_id, sha256])
        return rows[0] if rows else None

    def drawings(self, dataset_id: int, status: str | None = None) -> list[dict]:
        if status is None:
            return self._query("SELECT * FROM drawings WHERE dataset_id = ? ORDER BY id",
                               [dataset_id])
        return self._query("SELECT * FROM drawings WHERE dataset_id = ? AND status = ? "
                           "ORDER BY id", [dataset_id, status])

    def set_drawing_split(self, drawing_id: int, split: str) -> None:
        with self.write() as conn:
            conn.execute("UPDATE drawings SET split = ? WHERE id = ?", [split, drawing_id])

    def remove_drawing(self, drawing_id: int) -> None:
        """Delete the drawing with its edits and the crops it gave (their label edits and tags
        go with them), in one transaction."""
        with self.write() as conn:
            conn.execute("DELETE FROM drawings WHERE id = ?", [drawing_id])

    def box_drawing_id(self, box_id: int) -> int | None:
        """The drawing a box (by its stable id) belongs to."""
        rows = self._query("SELECT drawing_id FROM annotation_edits WHERE box_id = ? LIMIT 1",
                           [box_id])
        return rows[0]["drawing_id"] if rows else None

    def annotation_edits(self, drawing_id: int) -> list[dict]:
        """The drawing's edits in order, boxes as [x, y, w, h] lists."""
        return [_edit_row(r) for r in self._query(
            "SELECT * FROM annotation_edits WHERE drawing_id = ? ORDER BY id", [drawing_id])]

    def edit_drawing(self, drawing_id: int,
                     plan: Callable[[list[dict]], list[dict]]) -> list[dict]:
        """Append the edits `plan(current edits)` returns, in one transaction with the read, so
        two clicks at once cannot both act on the same state. Edits of one call share a batch;
        an edit without `box_id` is a new box and gets a never-reused id. Returns the appended
        edits as stored."""
        from store.db import now

        with self.write() as conn:
            current = [_edit_row(dict(zip([d[0] for d in cursor.description], row)))
                       for cursor in [conn.execute("SELECT * FROM annotation_edits WHERE "
                                                   "drawing_id = ? ORDER BY id", [drawing_id])]
                       for row in cursor.fetchall()]
            new = plan(current)
            ids, batch, stamp = [], None, now()
            for edit in new:
                box_id = edit.get("box_id") or _next_box_id(conn)
                values = {**{k: edit.get(k) for k in EDIT_FIELDS}, "box_id": box_id}
                values["old_bbox"], values["new_bbox"] = (_bbox_text(values["old_bbox"]),
                                                          _bbox_text(values["new_bbox"]))
                cursor = conn.execute(
                    f"INSERT INTO annotation_edits (drawing_id, batch, time, {', '.join(EDIT_FIELDS)})"
                    f" VALUES (?, ?, ?, {', '.join('?' * len(EDIT_FIELDS))})",
                    [drawing_id, batch, stamp, *values.values()])
                batch = batch or cursor.lastrowid
                ids.append(cursor.lastrowid)
            if ids:
                conn.execute("UPDATE annotation_edits SET batch = ? WHERE id = ?", [ids[0], ids[0]])
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        return [_edit_row(r) for r in self._query(
            f"SELECT * FROM annotation_edits WHERE id IN ({marks}) ORDER BY id", ids)]

    def drawing_crops(self, dataset_id: int, drawing_id: int | None = None) -> list[dict]:
        """The crops finished drawings gave (with `label`, as `crops`)."""
        if drawing_id is None:
            return self._query(self._CROP_SELECT + "WHERE c.dataset_id = ? AND c.drawing_id IS "
                               "NOT NULL ORDER BY c.id", [dataset_id])
        return self._query(self._CROP_SELECT + "WHERE c.dataset_id = ? AND c.drawing_id = ? "
                           "ORDER BY c.id", [dataset_id, drawing_id])

    def finish_drawing(self, drawing_id: int, rows: list[dict],
                       before_commit: Callable[[], None] | None = None) -> dict:
        """Make the drawing's crops exactly `rows` (one per box, keyed by `box_id`; the fields of
        `crops` but split and annotation id, which the store gives) in the drawing's split
        and mark it annotated, in one transaction; `before_commit` runs last inside it. A crop
        keeps its id while its box stays; label edits of a crop whose box or class changed, or
        that left, are set aside. Returns counts added, updated, unchanged, removed."""
        from store.db import _set_aside_edits, now

        with self.write() as conn:
            dataset_id, split = conn.execute("SELECT dataset_id, split FROM drawings WHERE id = ?",
                                             [drawing_id]).fetchone()
            counts = _write_drawing_crops(conn, dataset_id, split, drawing_id, rows,
                                          _set_aside_edits)
            conn.execute("UPDATE drawings SET status = 'annotated', annotated_at = ? "
                         "WHERE id = ?", [now(), drawing_id])
            if before_commit is not None:
                before_commit()
        return counts


def _next_box_id(conn: sqlite3.Connection) -> int:
    conn.execute("UPDATE counters SET value = value + 1 WHERE name = 'boxes'")
    return conn.execute("SELECT value FROM counters WHERE name = 'boxes'").fetchone()[0]


def _free_annotation_id(conn: sqlite3.Connection, dataset_id: int, split: str,
                        box_id: int) -> int:
    """`-box_id`, or below every annotation id of the split when an export crop holds it."""
    taken = conn.execute("SELECT 1 FROM crops WHERE dataset_id = ? AND split = ? AND "
                         "annotation_id = ?", [dataset_id, split, -box_id]).fetchone()
    if not taken:
        return -box_id
    lowest = conn.execute("SELECT MIN(annotation_id) FROM crops WHERE dataset_id = ? AND "
                          "split = ?", [dataset_id, split]).fetchone()[0]
    return min(lowest, 0) - 1


def _write_drawing_crops(conn: sqlite3.Connection, dataset_id: int, split: str,
                         drawing_id: int, rows: list[dict], set_aside: Callable) -> dict:
    existing = {r[0]: r for r in conn.execute(
        "SELECT box_id, id, class_index, bbox, split, path, sha256 FROM crops "
        "WHERE drawing_id = ?", [drawing_id])}
    counts = {"added": 0, "updated": 0, "unchanged": 0, "removed": 0}
    for row in rows:
        values = {k: _bbox_text(row[k]) if k in ("bbox", "crop_bbox") else row[k]
                  for k in _CROP_FIELDS}
        old = existing.get(row["box_id"])
        if old is None:
            conn.execute(f"INSERT INTO crops (dataset_id, split, annotation_id, drawing_id, box_id, "
                         f"{', '.join(_CROP_FIELDS)}) VALUES (?, ?, ?, ?, ?, "
                         f"{', '.join('?' * len(_CROP_FIELDS))})",
                         [dataset_id, split, _free_annotation_id(conn, dataset_id, split,
                                                                 row["box_id"]),
                          drawing_id, row["box_id"], *values.values()])
            counts["added"] += 1
            continue
        if old[2:] == (values["class_index"], values["bbox"], split, values["path"],
                       values["sha256"]):
            counts["unchanged"] += 1
            continue
        if (old[2], old[3]) != (values["class_index"], values["bbox"]):
            set_aside(conn, old[1], "its box or class changed in the drawing's annotation")
        annotation_id = conn.execute("SELECT annotation_id FROM crops WHERE id = ?",
                                     [old[1]]).fetchone()[0]
        if old[4] != split:
            annotation_id = _free_annotation_id(conn, dataset_id, split, row["box_id"])
        conn.execute(f"UPDATE crops SET split = ?, annotation_id = ?, "
                     f"{', '.join(f'{k} = ?' for k in _CROP_FIELDS)} WHERE id = ?",
                     [split, annotation_id, *values.values(), old[1]])
        counts["updated"] += 1
    kept = {row["box_id"] for row in rows}
    for box_id, old in existing.items():
        if box_id not in kept:
            set_aside(conn, old[1], "its box was deleted from the drawing's annotation")
            conn.execute("DELETE FROM crops WHERE id = ?", [old[1]])
            counts["removed"] += 1
    return counts
