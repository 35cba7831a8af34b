"""Write an imported dataset back as a Roboflow-style COCO export, with the corrected labels.

The import keeps the export's location (the dataset's `source`, a folder or .zip) and, per crop,
its split, annotation id and class. Each split's `_annotations.coco.json` is re-read from the
source, every annotation that became a crop gets the `category_id` of its effective class (the
latest relabel), and the images are copied unchanged; images, categories and all other fields
stay as exported, so importing the result gives the same crops with the corrected classes.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ffclr.errors import FfclrError
from ffclr.data.export_source import ANNOTATIONS, open_export
from ffclr.data.safe_paths import inside, relative_parts
from ffclr.workspace import Workspace


@dataclass
class CocoExportResult:
    out: Path
    splits: dict[str, int] = field(default_factory=dict)
    """Split → annotations written."""
    changed: int = 0
    """Annotations whose category_id was corrected."""
    images: int = 0


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
    if not row["source"]:
        raise FfclrError(f"dataset {dataset!r} does not record the export it came from")
    if not Path(row["source"]).exists():
        raise FfclrError(f"{row['source']}: the export dataset {dataset!r} was imported from is "
                         "gone; its images are needed to write the COCO export")
    labels = {(c["split"], c["annotation_id"]): c["label"] for c in crops}
    result = CocoExportResult(out)
    with open_export(Path(row["source"])) as export:
        for split, folder in export.splits.items():
            try:
                coco = json.loads((folder / ANNOTATIONS).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise FfclrError(f"{export.label(folder / ANNOTATIONS)}: unreadable ({exc})") from None
            target = out / split
            target.mkdir(parents=True, exist_ok=True)
            for ann in coco.get("annotations", []):
                label = labels.get((split, ann.get("id")))
                if label is not None and coco_id.get(label) is not None \
                        and ann.get("category_id") != coco_id[label]:
                    ann["category_id"] = coco_id[label]
                    result.changed += 1
            for image in coco.get("images", []):
                parts = relative_parts(image.get("file_name", ""))
                source = folder.joinpath(*parts) if parts else None
                if source is None or not source.is_file():
                    continue
                destination = inside(target, target.joinpath(*parts))
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination)
                result.images += 1
            (target / ANNOTATIONS).write_text(json.dumps(coco), encoding="utf-8")
            result.splits[split] = len(coco.get("annotations", []))
    return result
