"""The boxes of a drawing as the replay of its append-only edits, and which edits an undo reverts.

An edit is a store row of `annotation_edits`: who ('model' | 'person'), action ('propose' |
'add' | 'move' | 'class' | 'delete' | 'accept' | 'undo'), the box it is about, old and new box
and class. An 'undo' edit names the edit it `undoes`; a replay skips undone edits, which is the
same as reverting them because an undo always takes the person's latest batch still standing.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ffclr.errors import FfclrError

WHO = ("model", "person")
ACTIONS = ("propose", "add", "move", "class", "delete", "accept", "undo")


@dataclass
class Box:
    id: int
    bbox: tuple[float, float, float, float]
    """COCO (x, y, width, height) in drawing pixels."""
    class_index: int
    class_name: str
    score: float | None
    """The model's score; None for a box a person drew."""
    who: str
    """Who drew it: 'model' or 'person'."""
    accepted: bool
    """A person accepted, moved, re-classed or drew it."""

    def as_dict(self) -> dict:
        return {**asdict(self), "bbox": list(self.bbox)}


def class_name(class_names: list[str], index: int) -> str:
    if 0 <= index < len(class_names):
        return class_names[index]
    return f"(class {index}, no longer in the dataset)"


def undone_ids(edits: list[dict]) -> set[int]:
    return {e["undoes"] for e in edits if e["action"] == "undo"}


def replay(edits: list[dict], class_names: list[str]) -> list[Box]:
    """The current boxes, in the order they were first drawn."""
    undone, boxes = undone_ids(edits), {}
    for edit in edits:
        if edit["action"] == "undo" or edit["id"] in undone:
            continue
        box_id, action = edit["box_id"], edit["action"]
        if action in ("propose", "add"):
            boxes[box_id] = {"bbox": edit["new_bbox"], "class_index": edit["new_class_index"],
                             "score": edit["score"], "who": edit["who"],
                             "accepted": action == "add"}
        elif box_id not in boxes:
            continue
        elif action == "delete":
            del boxes[box_id]
        elif action == "move":
            boxes[box_id].update(bbox=edit["new_bbox"], accepted=True)
        elif action == "class":
            boxes[box_id].update(class_index=edit["new_class_index"], accepted=True)
        elif action == "accept":
            boxes[box_id]["accepted"] = True
    return [Box(id=box_id, bbox=tuple(float(v) for v in b["bbox"]), class_index=b["class_index"],
                class_name=class_name(class_names, b["class_index"]), score=b["score"],
                who=b["who"], accepted=b["accepted"]) for box_id, b in boxes.items()]


def last_person_batch(edits: list[dict]) -> list[dict]:
    """The edits of the person's latest batch not yet undone (empty when none is left)."""
    undone = undone_ids(edits)
    standing = [e for e in edits if e["who"] == "person" and e["action"] != "undo"
                and e["id"] not in undone]
    if not standing:
        return []
    batch = standing[-1]["batch"]
    return [e for e in standing if e["batch"] == batch]


def describe(batch: list[dict], class_names: list[str]) -> str:
    """What a batch of person edits did, in a few words (for the undo message)."""
    first = batch[0]
    index = first["new_class_index"]
    name = class_name(class_names, index) if index is not None else ""
    if len(batch) > 1:
        return f"accepting {len(batch)} boxes"
    return {"add": f"drawing a {name} box", "move": "moving a box",
            "class": f"setting a box's class to {name}", "delete": "deleting a box",
            "accept": "accepting a box"}.get(first["action"], first["action"])


def checked_bbox(bbox, width: int, height: int) -> list[float]:
    """[x, y, w, h] clipped to the drawing, or FfclrError when it is not a box inside it."""
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise FfclrError(f"box {bbox!r}: give four numbers x, y, width, height") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise FfclrError(f"box {bbox!r}: width and height must be positive numbers")
    left, top = max(x, 0.0), max(y, 0.0)
    right, bottom = min(x + w, float(width)), min(y + h, float(height))
    if right - left < 1 or bottom - top < 1:
        raise FfclrError(f"box {bbox!r}: outside the {width}×{height} drawing")
    return [round(left, 2), round(top, 2), round(right - left, 2), round(bottom - top, 2)]
