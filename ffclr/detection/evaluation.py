"""Scoring detections against labelled drawings with pycocotools' COCOeval: mAP@50,
mAP@[.5:.95], mAP@75, AR@100 and per-class AP, from a COCO file or from labelled drawings."""
from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

from ffclr.errors import FfclrError


def coco_scores(truth_file: Path, results, image_ids: list) -> dict:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(truth_file))
    id_of = {truth.imgs[i]["file_name"]: i for i in image_ids}
    dets = [{"image_id": id_of[name], "category_id": d.category_id, "bbox": list(d.bbox),
             "score": d.score} for name, _, found in results for d in found]
    if not dets:
        raise FfclrError("no detections at all on the valid schematics")
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(truth, truth.loadRes(dets), "bbox")
        evaluation.params.imgIds = list(image_ids)
        used = sorted({a["category_id"] for a in truth.anns.values() if a["image_id"] in id_of.values()})
        evaluation.params.catIds = used
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = evaluation.stats
    precision = evaluation.eval["precision"]
    per_class = []
    for k, cat_id in enumerate(used):
        p_all, p50 = precision[:, :, k, 0, -1], precision[0, :, k, 0, -1]
        support = sum(1 for a in truth.anns.values() if a["category_id"] == cat_id
                      and a["image_id"] in id_of.values())
        per_class.append({"category_id": cat_id, "name": truth.cats[cat_id]["name"],
                          "support": support,
                          "AP": float(p_all[p_all > -1].mean()) if (p_all > -1).any() else None,
                          "AP50": float(p50[p50 > -1].mean()) if (p50 > -1).any() else None})
    return {"mAP": float(stats[0]), "mAP50": float(stats[1]), "mAP75": float(stats[2]),
            "AR100": float(stats[8]), "per_class": per_class}


def labelled_coco(images: list, class_names: list[str], category_ids: list[int]) -> dict:
    """A COCO ground truth of `LabelledImage`s (boxes xyxy); image i is named "i:<file name>"."""
    annotations = []
    for i, item in enumerate(images):
        for (x0, y0, x1, y1), k in zip(item.boxes.tolist(), item.classes.tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": i,
                                "category_id": int(category_ids[k]),
                                "bbox": [x0, y0, x1 - x0, y1 - y0],
                                "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
    return {"images": [{"id": i, "file_name": f"{i}:{item.path.name}"}
                       for i, item in enumerate(images)],
            "annotations": annotations,
            "categories": [{"id": int(c), "name": n} for n, c in zip(class_names, category_ids)]}


def labelled_scores(images: list, detections: list, class_names: list[str],
                    category_ids: list[int]) -> dict:
    """`coco_scores` of `detections` (a list of Detection per image) against `images`
    (LabelledImage), whose classes index `class_names` / `category_ids`."""
    if not any(len(item.boxes) for item in images):
        raise FfclrError("no labelled box to score the detections against")
    with tempfile.TemporaryDirectory(prefix="ffclr-coco-") as tmp:
        truth_file = Path(tmp) / "truth.json"
        truth_file.write_text(json.dumps(labelled_coco(images, class_names, category_ids)))
        results = [(f"{i}:{item.path.name}", None, found)
                   for i, (item, found) in enumerate(zip(images, detections))]
        return coco_scores(truth_file, results, list(range(len(images))))
