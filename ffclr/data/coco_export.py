"""Write an imported dataset back as a Roboflow-style COCO export, with the corrected labels.

The import keeps the export's location (the dataset's `source`, a folder or .zip) and, per crop,
its split, annotation id and class. Each split's `_annotations.coco.json` is re-read from the
source, every annotation that became a crop gets the `category_id` of its effective class (the
latest relabel), and the images are copied unchanged; images, categories and all other fields
stay as exported, so importing the result gives the same crops with the corrected classes.
A source whose files changed since the import is refused (its fingerprint no longer matches), and
images that link outside the export are not copied.

Drawings labelled in ffclr and finished are added to their split (a split the export lacks is
created with the export's categories): the image copied as `<name>_<hash>.<ext>`, one annotation
per finished crop with its current label, ids after the split's highest.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ffclr.errors import FfclrError
from ffclr.data.export_source import (ANNOTATIONS, ExportFolder, open_export,
                                      read_annotation_json, source_fingerprint)
from ffclr.data.safe_paths import inside, is_utf8, relative_parts, safe_name
from ffclr.workspace import Workspace


@dataclass
class CocoExportResult:
    out: Path
    splits: dict[str, int] = field(default_factory=dict)
    """Split → annotations written."""
    changed: int = 0
    """Annotations whose category_id was corrected."""
    images: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    """Reason → images not copied for it."""
    drawings: int = 0
    """Drawings labelled in ffclr that were added."""


def export_coco(out: str | Path, dataset: str, workspace: Workspace) -> CocoExportResult:
    out = Path(out).expanduser().resolve()
    if out.exists() and any(out.iterdir()):
        raise FfclrError(f"{out}: folder exists and is not empty; choose a new one")
    with workspace.open_store() as store:
        row = store.dataset(dataset)
        if row is None:
            raise FfclrError(f"no imported dataset named {dataset!r} in {workspace.root}")
        coco_id = {c["class_index"]: c["coco_id"] for c in store.classes(row["id"])}
        crops = store.crops(row["id"])
        drawings = store.drawings(row["id"], status="annotated")
    if not row["source"]:
        raise FfclrError(f"dataset {dataset!r} does not record the export it came from")
    if not Path(row["source"]).exists():
        raise FfclrError(f"{row['source']}: the export dataset {dataset!r} was imported from is "
                         "gone; its images are needed to write the COCO export")
    labels = {(c["split"], c["annotation_id"]): c["label"] for c in crops
              if c.get("drawing_id") is None}
    result = CocoExportResult(out)
    categories: list = []
    with open_export(Path(row["source"])) as export:
        _check_unchanged(export, row, dataset)
        for split, folder in export.splits.items():
            coco = _read_split(export, folder)
            categories = coco.get("categories", categories)
            target = out / split
            target.mkdir(parents=True, exist_ok=True)
            for ann in coco.get("annotations", []):
                label = labels.get((split, ann.get("id")))
                if label is not None and coco_id.get(label) is not None \
                        and ann.get("category_id") != coco_id[label]:
                    ann["category_id"] = coco_id[label]
                    result.changed += 1
            for image in coco.get("images", []):
                _copy_image(export, folder, target, image, result)
            _add_drawings(coco, [d for d in drawings if d["split"] == split], crops, coco_id,
                          workspace, target, result)
            (target / ANNOTATIONS).write_text(json.dumps(coco), encoding="utf-8")
            result.splits[split] = len(coco.get("annotations", []))
    for split in sorted({d["split"] for d in drawings} - set(result.splits)):
        coco = {"categories": categories or _categories(store_classes(workspace, row["id"])),
                "images": [], "annotations": []}
        target = out / split
        target.mkdir(parents=True, exist_ok=True)
        _add_drawings(coco, [d for d in drawings if d["split"] == split], crops, coco_id,
                      workspace, target, result)
        (target / ANNOTATIONS).write_text(json.dumps(coco), encoding="utf-8")
        result.splits[split] = len(coco["annotations"])
    return result


def store_classes(workspace: Workspace, dataset_id: int) -> list[dict]:
    with workspace.open_store() as store:
        return store.classes(dataset_id)


def _categories(classes: list[dict]) -> list[dict]:
    return [{"id": c["coco_id"], "name": c["name"], "supercategory": "none"} for c in classes]


def _next_id(entries: list) -> int:
    ids = [e.get("id") for e in entries if isinstance(e, dict)]
    return max([i for i in ids if isinstance(i, int) and not isinstance(i, bool)] + [-1]) + 1


def _add_drawings(coco: dict, drawings: list[dict], crops: list[dict], coco_id: dict,
                  workspace: Workspace, target: Path, result: CocoExportResult) -> None:
    """Each finished drawing as an image of the split, its crops as annotations."""
    image_id = _next_id(coco.setdefault("images", []))
    ann_id = _next_id(coco.setdefault("annotations", []))
    for drawing in drawings:
        source = inside(workspace.root, workspace.root / drawing["path"])
        name = f"{safe_name(Path(drawing['file_name']).stem, 'drawing')[:60]}_" \
               f"{drawing['sha256'][:16]}{source.suffix}"
        shutil.copy2(source, inside(target, target / name))
        coco["images"].append({"id": image_id, "license": 1, "file_name": name,
                               "height": drawing["height"], "width": drawing["width"],
                               "date_captured": drawing["added_at"]})
        for crop in crops:
            if crop.get("drawing_id") != drawing["id"]:
                continue
            bbox = json.loads(crop["bbox"])
            coco["annotations"].append({"id": ann_id, "image_id": image_id,
                                        "category_id": coco_id[crop["label"]], "bbox": bbox,
                                        "area": round(bbox[2] * bbox[3], 3), "segmentation": [],
                                        "iscrowd": 0})
            ann_id += 1
        image_id += 1
        result.drawings += 1


def _check_unchanged(export: ExportFolder, row: dict, dataset: str) -> None:
    """FfclrError when the source's files differ from those imported (when that was recorded)."""
    recorded = row.get("source_fingerprint")
    if recorded and source_fingerprint(export) != recorded:
        raise FfclrError(f"{row['source']}: changed since dataset {dataset!r} was imported from "
                         "it; import it again (import --update) before export-coco")


def _read_split(export: ExportFolder, folder: Path) -> dict:
    path, label = folder / ANNOTATIONS, export.label(folder / ANNOTATIONS)
    if path.exists() and not export.contains(path):
        raise FfclrError(f"{label}: links to a file outside the export; not read")
    coco = read_annotation_json(path, label)
    if not isinstance(coco, dict):
        raise FfclrError(f"{label}: not a COCO annotation file (top level is not an object)")
    return coco


def _copy_image(export: ExportFolder, folder: Path, target: Path, image, result) -> None:
    file_name = image.get("file_name", "") if isinstance(image, dict) else ""
    parts = relative_parts(file_name) if isinstance(file_name, str) and is_utf8(file_name) \
        else None
    source = folder.joinpath(*parts) if parts else None
    if source is None or not source.is_file():
        return
    if not export.contains(source):
        result.skipped["links outside the export"] = \
            result.skipped.get("links outside the export", 0) + 1
        return
    destination = inside(target, target.joinpath(*parts))
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, destination)
    result.images += 1
