"""Detections as a COCO file: what ffclr's importer, CVAT and Label Studio read."""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from ffclr.derived_files import write_aside


def detections_to_coco(results, class_names: list[str], category_ids: list[int]) -> dict:
    """COCO dict from `detect_images` results: (file name, (width, height), detections) each.

    `images` carry the input file names and sizes; `annotations` carry `bbox` (x, y, w, h),
    `category_id`, `score`, `area` and `iscrowd` 0; `categories` are the training classes with
    the training export's ids, so the file lines up with that export.
    """
    images, annotations = [], []
    for image_id, (file_name, (width, height), detections) in enumerate(results, start=1):
        images.append({"id": image_id, "file_name": file_name, "width": int(width),
                       "height": int(height)})
        for det in detections:
            x, y, w, h = (float(v) for v in det.bbox)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(det.category_id), "bbox": [x, y, w, h],
                                "area": round(w * h, 2), "iscrowd": 0, "segmentation": [],
                                "score": float(det.score)})
    categories = [{"id": int(i), "name": name, "supercategory": "symbol"}
                  for i, name in zip(category_ids, class_names)]
    return {"info": {"description": "ffclr detections",
                     "date_created": datetime.now(timezone.utc).isoformat(timespec="seconds")},
            "licenses": [], "images": images, "annotations": annotations,
            "categories": categories}


def write_coco(coco: dict, path: str | os.PathLike) -> Path:
    path = Path(path)
    write_aside(path, lambda tmp: tmp.write_text(json.dumps(coco, indent=1)))
    return path
