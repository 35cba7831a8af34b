"""Scoring detections against labelled drawings with pycocotools' COCOeval: mAP@50,
mAP@[.5:.95], mAP@75, AR@100 and per-class AP, from a COCO file or from labelled drawings."""
from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

import numpy as np

from ffclr.detection.boxes import box_iou, xywh_to_xyxy
from ffclr.errors import FfclrError

ERROR_KINDS = ("classification", "localisation", "both", "duplicate", "background", "missed")
FOREGROUND_IOU, BACKGROUND_IOU = 0.5, 0.1
SIZE_BUCKETS = (("small", 0, 24), ("medium", 24, 48), ("large", 48, 1e5))
"""Box side (square root of its area, in pixels) of each size bucket: symbols on these drawings
are about 30 px, so COCO's own buckets (32 and 96 px) would put nearly all in one."""


def _detection_error(iou_row: np.ndarray, same_class: np.ndarray, matched: np.ndarray) -> str:
    """What one detection is, in the manner of TIDE (Bolya et al. 2020), given its IoU with each
    labelled box, which of them have its class, and which are already taken."""
    right = np.where(same_class & ~matched, iou_row, 0.0)
    if right.max(initial=0.0) >= FOREGROUND_IOU:
        return "hit"
    if np.where(same_class, iou_row, 0.0).max(initial=0.0) >= FOREGROUND_IOU:
        return "duplicate"
    if iou_row.max(initial=0.0) >= FOREGROUND_IOU:
        return "classification"
    if np.where(same_class, iou_row, 0.0).max(initial=0.0) >= BACKGROUND_IOU:
        return "localisation"
    if iou_row.max(initial=0.0) >= BACKGROUND_IOU:
        return "both"
    return "background"


def error_breakdown(images: list, detections: list, min_score: float) -> dict:
    """The detections at or above `min_score` (what a labeller is shown), each counted once as a
    hit or as the error TIDE would call it: classification (right place, IoU ≥ 0.5, wrong class),
    localisation (right class, 0.1 ≤ IoU < 0.5), both (wrong class, 0.1 ≤ IoU < 0.5), duplicate
    (right place and class, box already found), background (IoU < 0.1 with every box); and missed,
    the labelled boxes no shown detection overlaps at IoU ≥ 0.1. Each `images[i]` is a
    `LabelledImage` (boxes xyxy) and `detections[i]` its list of `Detection`."""
    counts = dict.fromkeys(("hit",) + ERROR_KINDS, 0)
    for item, found in zip(images, detections):
        shown = sorted((d for d in found if d.score >= min_score), key=lambda d: -d.score)
        iou = box_iou(xywh_to_xyxy([d.bbox for d in shown]).reshape(-1, 4), item.boxes)
        matched = np.zeros(len(item.boxes), bool)
        for row, d in enumerate(shown):
            same_class = item.classes == d.class_index
            kind = _detection_error(iou[row], same_class, matched)
            if kind == "hit":
                matched[int(np.argmax(np.where(same_class & ~matched, iou[row], 0.0)))] = True
            counts[kind] += 1
        touched = iou.max(axis=0, initial=0.0) >= BACKGROUND_IOU
        counts["missed"] += int(np.sum(~matched & ~touched))
    return {"min_score": min_score, "boxes": int(sum(len(i.boxes) for i in images)), **counts}


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
        evaluation.params.areaRng = [[0, 1e10]] + [[lo**2, hi**2] for _, lo, hi in SIZE_BUCKETS]
        evaluation.params.areaRngLbl = ["all"] + [name for name, _, _ in SIZE_BUCKETS]
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
    by_size = {name: {"AP": float(stats[3 + k]), "AR100": float(stats[9 + k]),
                      "boxes": _boxes_in(truth, id_of.values(), lo, hi)}
               for k, (name, lo, hi) in enumerate(SIZE_BUCKETS)}
    return {"mAP": float(stats[0]), "mAP50": float(stats[1]), "mAP75": float(stats[2]),
            "AR100": float(stats[8]), "by_size": by_size, "per_class": per_class}


def _boxes_in(truth, image_ids, low: float, high: float) -> int:
    ids = set(image_ids)
    return sum(1 for a in truth.anns.values()
               if a["image_id"] in ids
               and low**2 <= a.get("area", a["bbox"][2] * a["bbox"][3]) < high**2)


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
