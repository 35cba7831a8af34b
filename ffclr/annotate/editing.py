"""Pre-annotation by the detector and a person's box edits, each saved at once as append-only
edits of the drawing (see `ffclr.annotate.boxes`)."""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import replace
from typing import Iterator

from ffclr.annotate.boxes import (Box, checked_bbox, class_name, describe, last_person_batch,
                                  replay)
from ffclr.annotate.drawings import drawing_path
from ffclr.detection.boxes import batched_nms, box_iou, xywh_to_xyxy
from ffclr.errors import FfclrError
from ffclr.workspace import Workspace

COVERED_IOU = 0.5
"""A re-run's detection overlapping a box a person kept this much is not proposed again."""
ONE_SYMBOL_IOU = 0.7
"""Detections of different classes overlapping this much box one symbol: only the likeliest is
proposed (NMS is per class, so both survive it, and the labeller would delete one)."""


@contextmanager
def _drawing(workspace: Workspace, drawing_id: int) -> Iterator[tuple]:
    """(store, drawing row, class names) of a drawing that exists."""
    with workspace.open_store() as store:
        drawing = store.drawing(drawing_id)
        if drawing is None:
            raise FfclrError(f"no drawing with id {drawing_id}")
        yield store, drawing, [c["name"] for c in store.classes(drawing["dataset_id"])]


def _box_drawing(store, box_id: int) -> int:
    drawing_id = store.box_drawing_id(box_id)
    if drawing_id is None:
        raise FfclrError(f"no box with id {box_id}")
    return drawing_id


def _check_class(class_names: list[str], class_index) -> int:
    if isinstance(class_index, bool) or not isinstance(class_index, int) \
            or not 0 <= class_index < len(class_names):
        raise FfclrError(f"class index {class_index!r}: not a class of this dataset "
                         f"(0-{len(class_names) - 1})")
    return class_index


def boxes(workspace: Workspace, drawing_id: int) -> list[Box]:
    """The drawing's boxes now. A finished box whose crop was relabelled since (in Explore or
    the Data tab) shows the crop's label, the one the export and refits use; finishing the
    drawing again keeps that label unless the box's class is changed here."""
    with _drawing(workspace, drawing_id) as (store, drawing, names):
        found = replay(store.annotation_edits(drawing_id), names)
        relabelled = {c["box_id"]: (c["class_index"], c["label"])
                      for c in store.drawing_crops(drawing["dataset_id"], drawing_id)
                      if c["label"] != c["class_index"]}
    return [_with_crop_label(box, relabelled.get(box.id), names) for box in found]


def _with_crop_label(box: Box, crop: tuple[int, int] | None, names: list[str]) -> Box:
    if crop is None or crop[0] != box.class_index:
        return box
    return replace(box, class_index=crop[1], class_name=class_name(names, crop[1]))


def _current(edits: list[dict], names: list[str], box_id: int) -> Box:
    for box in replay(edits, names):
        if box.id == box_id:
            return box
    raise FfclrError(f"box {box_id} was deleted")


def _edit_box(workspace: Workspace, box_id: int, make) -> Box | None:
    """Append the person's edit `make(current box)` to the box's drawing; the box after it."""
    with workspace.open_store() as store:
        drawing_id = _box_drawing(store, box_id)
    with _drawing(workspace, drawing_id) as (store, drawing, names):
        def plan(edits):
            return [{"box_id": box_id, "who": "person",
                     **make(_current(edits, names, box_id), drawing, names)}]
        store.edit_drawing(drawing_id, plan)
        after = [b for b in replay(store.annotation_edits(drawing_id), names) if b.id == box_id]
    return after[0] if after else None


def add_box(workspace: Workspace, drawing_id: int, bbox, class_index: int) -> Box:
    """A box a person drew (clipped to the drawing)."""
    with _drawing(workspace, drawing_id) as (store, drawing, names):
        edit = {"who": "person", "action": "add", "new_class_index": _check_class(names, class_index),
                "new_bbox": checked_bbox(bbox, drawing["width"], drawing["height"])}
        (made,) = store.edit_drawing(drawing_id, lambda edits: [edit])
        return _current(store.annotation_edits(drawing_id), names, made["box_id"])


def move_box(workspace: Workspace, box_id: int, bbox) -> Box:
    """Move or resize a box (clipped to the drawing); it counts as accepted."""
    return _edit_box(workspace, box_id, lambda box, drawing, names: {
        "action": "move", "old_bbox": list(box.bbox),
        "new_bbox": checked_bbox(bbox, drawing["width"], drawing["height"])})


def set_class(workspace: Workspace, box_id: int, class_index: int) -> Box:
    return _edit_box(workspace, box_id, lambda box, drawing, names: {
        "action": "class", "old_class_index": box.class_index,
        "new_class_index": _check_class(names, class_index)})


def delete_box(workspace: Workspace, box_id: int) -> None:
    _edit_box(workspace, box_id, lambda box, drawing, names: {
        "action": "delete", "old_bbox": list(box.bbox), "old_class_index": box.class_index})


def accept_above(workspace: Workspace, drawing_id: int, min_score: float) -> int:
    """Accept every model box scoring at least `min_score`, as one edit batch (one undo).
    Returns how many were accepted."""
    with _drawing(workspace, drawing_id) as (store, _, names):
        return len(store.edit_drawing(drawing_id, lambda edits: [
            {"box_id": b.id, "who": "person", "action": "accept", "score": b.score}
            for b in replay(edits, names)
            if not b.accepted and b.score is not None and b.score >= min_score]))


def undo(workspace: Workspace, drawing_id: int) -> str | None:
    """Revert the person's latest edit (or accept batch) not yet undone, by appending 'undo'
    edits; returns what was undone, None when nothing is left."""
    with _drawing(workspace, drawing_id) as (store, _, names):
        undone = []

        def plan(edits):
            undone.extend(last_person_batch(edits))
            return [{"box_id": e["box_id"], "who": "person", "action": "undo", "undoes": e["id"]}
                    for e in undone]
        store.edit_drawing(drawing_id, plan)
    return describe(undone, names) if undone else None


def one_box_per_symbol(found: list) -> list:
    """The detections (best first) without those overlapping a likelier one of another class by
    more than `ONE_SYMBOL_IOU`."""
    if len(found) < 2:
        return list(found)
    keep = batched_nms(xywh_to_xyxy([d.bbox for d in found]), [d.score for d in found],
                       [0] * len(found), ONE_SYMBOL_IOU)
    return [found[i] for i in sorted(keep)]


def _not_covered(found: list, kept: list) -> list:
    """The detections overlapping no box a person drew or accepted (IoU < `COVERED_IOU`)."""
    if not kept or not found:
        return found
    iou = box_iou(xywh_to_xyxy([d.bbox for d in found]), xywh_to_xyxy(kept))
    return [d for d, best in zip(found, iou.max(axis=1)) if best < COVERED_IOU]


def load_detector_once(detector):
    """A `Detector` as given, or loaded from its file."""
    from ffclr.detection import Detector, load_detector

    if isinstance(detector, Detector):
        return detector
    return load_detector(detector)


def preannotate(workspace: Workspace, drawing_id: int, detector: str | os.PathLike | object,
                min_score: float | None = None) -> list[Box]:
    """Box and classify every symbol of the drawing with the detector (a `Detector` or its file);
    proposals at or above `min_score` (default: the detector's threshold) are recorded as the
    model's edits. Re-running replaces the model's proposals no person has accepted yet (and
    proposes nothing where a person already drew or accepted a box).
    Detector classes that the dataset lacks are matched by name or left out."""
    from ffclr.detection import detect_image

    detector = load_detector_once(detector)
    with _drawing(workspace, drawing_id) as (store, drawing, names):
        path = drawing_path(workspace, drawing)
    index_of = {name: i for i, name in enumerate(names)}
    if not set(detector.class_names) & set(index_of):
        raise FfclrError("the detector knows none of this dataset's classes: fit one on it")
    found = one_box_per_symbol([d for d in detect_image(detector, path, min_score)
                                if d.class_name in index_of])
    with _drawing(workspace, drawing_id) as (store, drawing, names):
        def plan(edits):
            current = replay(edits, names)
            stale = [{"box_id": b.id, "who": "model", "action": "delete", "old_bbox": list(b.bbox),
                      "old_class_index": b.class_index}
                     for b in current if b.who == "model" and not b.accepted]
            kept = [b.bbox for b in current if b.who == "person" or b.accepted]
            return stale + [{"who": "model", "action": "propose", "score": d.score,
                             "new_bbox": checked_bbox(d.bbox, drawing["width"], drawing["height"]),
                             "new_class_index": index_of[d.class_name]}
                            for d in _not_covered(found, kept)]
        store.edit_drawing(drawing_id, plan)
        return replay(store.annotation_edits(drawing_id), names)
