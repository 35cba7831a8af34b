"""A finished drawing becomes crops of its dataset at once (cut as the import cuts them, with the
padding the dataset was imported with), and labelled drawings feed detector refits."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ffclr.annotate.boxes import replay
from ffclr.annotate.drawings import check_split, dataset_row, drawing_path
from ffclr.data.coco_import import crop_box, png_bytes, read_rgb
from ffclr.data.export_source import open_export
from ffclr.data.safe_paths import inside, safe_name
from ffclr.detection.boxes import xywh_to_xyxy
from ffclr.detection.training import LabelledImage, LabelledSplit, read_labelled_split
from ffclr.errors import FfclrError
from ffclr.workspace import Workspace

DEFAULT_PADDING = 0.05


def import_padding(store, dataset_id: int) -> float:
    """The padding of the dataset's latest finished import (what its crops were cut with)."""
    for run in store.runs(kind="import", status="finished"):
        padding = run["config"].get("padding")
        if run["dataset_id"] == dataset_id and isinstance(padding, (int, float)):
            return float(padding)
    return DEFAULT_PADDING


def _crop_rows(drawing: dict, image, boxes, classes: list[dict], padding: float, root: Path
               ) -> tuple[list[dict], dict[Path, bytes]]:
    """The store rows of the drawing's crops and the files they need."""
    stem = safe_name(Path(drawing["file_name"]).stem, fallback="drawing")[:60]
    rows, files = [], {}
    for box in boxes:
        reason, _, (left, top, right, bottom) = crop_box(list(box.bbox), image.size, padding)
        if reason:
            raise FfclrError(f"box {box.id}: {reason}")
        data = png_bytes(image.crop((left, top, right, bottom)))
        sha = hashlib.sha256(data).hexdigest()
        relative = (f"{drawing['split']}/{classes[box.class_index]['folder']}/"
                    f"{stem}_box{box.id}-{sha[:8]}.png")
        files[inside(root, root / relative)] = data
        rows.append({"box_id": box.id, "class_index": box.class_index,
                     "source_image": drawing["file_name"], "image_id": None,
                     "bbox": list(box.bbox), "crop_bbox": [left, top, right - left, bottom - top],
                     "path": relative, "sha256": sha})
    return rows, files


def finish_drawing(workspace: Workspace, drawing_id: int) -> int:
    """Mark the drawing annotated and make its boxes crops of its dataset, in its split, now:
    crop files and store rows (no re-import). Again after more edits, the crops follow them.
    Returns the number of crops. A failure leaves the previous crops and files as they were."""
    with workspace.open_store() as store:
        drawing = store.drawing(drawing_id)
        if drawing is None:
            raise FfclrError(f"no drawing with id {drawing_id}")
        dataset = store.dataset_by_id(drawing["dataset_id"])
        classes = store.classes(dataset["id"])
        boxes = replay(store.annotation_edits(drawing_id), [c["name"] for c in classes])
        unknown = [b.id for b in boxes if not 0 <= b.class_index < len(classes)]
        if unknown:
            raise FfclrError(f"boxes {unknown}: their class is no longer in the dataset; "
                             "choose another")
        padding = import_padding(store, dataset["id"])
        previous = {c["path"] for c in store.drawing_crops(dataset["id"], drawing_id)}
    image, reason, _ = read_rgb(drawing_path(workspace, drawing))
    if image is None:
        raise FfclrError(f"{drawing['file_name']}: {reason}")
    root = Path(dataset["root"])
    rows, files = _crop_rows(drawing, image, boxes, classes, padding, root)
    written, made = _write_new(files)
    try:
        with workspace.open_store() as store:
            store.finish_drawing(drawing_id, rows)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        for folder in sorted(made, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    for relative in previous - {r["path"] for r in rows}:
        (root / relative).unlink(missing_ok=True)
    return len(rows)


def _write_new(files: dict[Path, bytes]) -> tuple[list[Path], list[Path]]:
    """Write the files not yet there (a name holds its content's hash); returns the files
    written and the folders made for them."""
    written, made = [], []
    for path, data in files.items():
        if path.is_file():
            continue
        made.extend(p for p in [path.parent, *path.parent.parents] if not p.exists())
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.{os.getpid()}.part")
        part.write_bytes(data)
        os.replace(part, path)
        written.append(path)
    return written, made


def labelled_drawings(workspace: Workspace, dataset: str, split: str) -> list[LabelledImage]:
    """The export's drawings of `split` and the annotated drawings of that split, with their
    boxes (the finished crops, with their current labels), for refitting the detector."""
    return labelled_split(workspace, dataset, split).images


def labelled_split(workspace: Workspace, dataset: str, split: str) -> LabelledSplit:
    """`labelled_drawings` with the dataset's classes, as `fit_labelled` takes them."""
    check_split(split)
    with workspace.open_store() as store:
        row = dataset_row(store, dataset)
        classes = store.classes(row["id"])
        drawings = store.drawings(row["id"], status="annotated")
        crops = store.drawing_crops(row["id"])
    images = _export_images(row, split)
    for drawing in drawings:
        if drawing["split"] != split:
            continue
        mine = [c for c in crops if c["drawing_id"] == drawing["id"]]
        images.append(LabelledImage(
            drawing_path(workspace, drawing),
            xywh_to_xyxy([_bbox(c["bbox"]) for c in mine]).reshape(-1, 4),
            np.array([c["label"] for c in mine], np.int64)))
    if not images:
        raise FfclrError(f"dataset {dataset!r} has no labelled drawings in split {split!r}")
    return LabelledSplit([c["name"] for c in classes],
                         [int(c["coco_id"]) if c["coco_id"] is not None else i
                          for i, c in enumerate(classes)], images)


def _export_images(dataset: dict, split: str) -> list[LabelledImage]:
    """The labelled images of the split of the export the dataset was imported from."""
    if not dataset["source"]:
        return []
    with open_export(Path(dataset["source"])) as found:
        if not found.source.is_dir():
            raise FfclrError(f"{dataset['source']}: dataset {dataset['name']!r} was imported "
                             "from a zip; unzip it and import the folder to refit from it")
        if split not in found.splits:
            return []
    return read_labelled_split(dataset["source"], split).images


def _bbox(text) -> list[float]:
    return json.loads(text) if isinstance(text, str) else list(text)
