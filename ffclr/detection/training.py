"""`fit_detector`: learn margins, the pixel filter, the probe with its background class and the
score threshold from one labelled split of a COCO export."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ffclr.detection.boxes import MarginModel, box_iou, xywh_to_xyxy
from ffclr.detection.detector import (Detector, DetectorConfig, detections_from_scores,
                                      probe_features, propose, score_candidates,
                                      select_candidates)
from ffclr.detection.images import read_drawing
from ffclr.detection.proposals import stroke_proposals
from ffclr.detection.scoring import LinearScorer, fit_background_probe, pixel_features
from ffclr.errors import FfclrError

Progress = Callable[[int, int, str], None]
MATCH_PAD = 5.0
"""Pixels around an ink extent when matching it to a labelled box to fit the margins."""


@dataclass
class LabelledImage:
    path: Path
    boxes: np.ndarray
    """(N, 4) xyxy."""
    classes: np.ndarray
    """(N,) class index."""


@dataclass
class LabelledSplit:
    class_names: list[str]
    category_ids: list[int]
    images: list[LabelledImage]


def read_labelled_split(export: str | os.PathLike, split: str) -> LabelledSplit:
    """The split's images and boxes, classes indexed over all splits as the importer does."""
    from ffclr.data.coco_import import build_classes, load_coco
    from ffclr.data.export_source import ANNOTATIONS, open_export
    from ffclr.data.safe_paths import relative_parts

    with open_export(Path(export)) as found:
        if not found.source.is_dir():
            raise FfclrError(f"{export}: give the export's folder (unzip it first)")
        if split not in found.splits:
            raise FfclrError(f"{export}: no {split!r} split (has {', '.join(found.splits)})")
        cocos = {s: load_coco(folder / ANNOTATIONS, found.label(folder / ANNOTATIONS))
                 for s, folder in found.splits.items()}
        classes = build_classes(cocos, {s: str(f) for s, f in found.splits.items()})
        index_of = {c["coco_id"]: c["class_index"] for c in classes}
        coco, folder = cocos[split], found.splits[split]
        images = []
        for image_id, info in sorted(coco.imgs.items(), key=lambda kv: str(kv[0])):
            parts = relative_parts(info.get("file_name")) if isinstance(info.get("file_name"), str) else None
            if parts is None:
                continue
            anns = [a for a in coco.imgToAnns.get(image_id, [])
                    if a.get("category_id") in index_of and len(a.get("bbox") or []) == 4]
            images.append(LabelledImage(
                folder.joinpath(*parts),
                xywh_to_xyxy([a["bbox"] for a in anns]),
                np.array([index_of[a["category_id"]] for a in anns], np.int64)))
    if not images:
        raise FfclrError(f"{export}: split {split!r} has no usable images")
    return LabelledSplit([c["name"] for c in classes], [int(c["coco_id"]) for c in classes],
                         images)


def _fit_margins(drawings, n_classes: int) -> MarginModel:
    cores, targets, labels = [], [], []
    for image, found, item in drawings:
        if len(found) == 0 or len(item.boxes) == 0:
            continue
        grown = np.concatenate([found[:, :2] - MATCH_PAD, found[:, 2:] + MATCH_PAD], 1)
        iou = box_iou(item.boxes, grown)
        ok = iou.max(axis=1) >= 0.5
        cores.append(found[iou.argmax(axis=1)[ok]])
        targets.append(item.boxes[ok])
        labels.append(item.classes[ok])
    if not cores:
        raise FfclrError("no labelled box matches any stroke group: are these line drawings?")
    return MarginModel.fit(np.concatenate(cores), np.concatenate(targets),
                           np.concatenate(labels), n_classes)


def fit_detector(checkpoint: str | os.PathLike, export: str | os.PathLike, split: str = "train",
                 config: DetectorConfig = DetectorConfig(), seed: int = 0,
                 progress: Progress | None = None, encoder=None) -> Detector:
    """A detector fitted on the labelled drawings of `split` of a COCO export folder."""
    import torch

    from ffclr.model.checkpoint import load_encoder

    def report(done, total, message):
        if progress:
            progress(done, total, message)

    rng = np.random.default_rng(seed)
    data = read_labelled_split(export, split)
    n_classes = len(data.class_names)
    encoder = encoder or load_encoder(checkpoint)
    encoder.model.to(memory_format=torch.channels_last)
    drawings = []
    for item in data.images:
        try:
            image, _ = read_drawing(item.path)
        except FfclrError:
            continue
        drawings.append((image, stroke_proposals(np.asarray(image), config.proposals), item))
    if not drawings:
        raise FfclrError(f"{export}: no readable image in split {split!r}")
    report(0, 4, f"{len(drawings)} drawings, {sum(len(d[2].boxes) for d in drawings)} boxes")
    margins = _fit_margins(drawings, n_classes)

    filter_x, filter_y, best_logit_rows, proposals = [], [], [], []
    for image, found, item in drawings:
        cores, boxes = propose(image, margins, config, found)
        iou = box_iou(boxes, item.boxes) if len(item.boxes) else np.zeros((len(boxes), 0))
        best = iou.max(axis=1, initial=0.0)
        positive = np.flatnonzero(best >= 0.5)
        negative = np.flatnonzero(best < 0.3)
        negative = rng.permutation(negative)[: 4 * config.background_per_image]
        rows = np.concatenate([positive, negative])
        filter_x.append(pixel_features(image, boxes[rows]))
        matched = item.classes[iou[positive].argmax(axis=1)] if len(positive) else np.zeros(0, int)
        filter_y.append(np.r_[matched, np.full(len(negative), n_classes)])
        proposals.append((cores, boxes, iou))
    pixel_filter = LinearScorer.fit(np.concatenate(filter_x), np.concatenate(filter_y))
    for (image, _, item), (cores, boxes, iou) in zip(drawings, proposals):
        if iou.shape[1] and len(boxes):
            logits = pixel_filter.logit(pixel_features(image, boxes))
            hit = iou >= 0.5
            best_logit_rows.extend(np.where(hit, logits[:, None], -np.inf).max(axis=0)[hit.any(axis=0)])
    pixel_filter.threshold = float(np.quantile(best_logit_rows, 1 - config.filter_recall))
    report(1, 4, "pixel filter fitted")

    detector = Detector(encoder=encoder, probe=None, class_names=data.class_names,
                        category_ids=data.category_ids, margins=margins,
                        pixel_filter=pixel_filter, score_threshold=0.5, config=config)
    groups = []
    for index, (image, found, item) in enumerate(drawings):
        groups.append((image, item.boxes, item.classes))
        cand = select_candidates(detector, image, found)
        iou = box_iou(cand.boxes, item.boxes) if len(item.boxes) else np.zeros((len(cand.boxes), 0))
        best = iou.max(axis=1, initial=0.0)
        chosen, chosen_labels = [], []
        for g in range(len(item.boxes)):
            rows = rng.permutation(np.flatnonzero((iou[:, g] >= 0.5) & (iou.argmax(axis=1) == g)))
            chosen.extend(rows[: config.positives_per_box])
            chosen_labels.extend([item.classes[g]] * len(rows[: config.positives_per_box]))
        background = rng.permutation(np.flatnonzero(best < 0.3))[: config.background_per_image]
        chosen.extend(background)
        chosen_labels.extend([n_classes] * len(background))
        groups.append((image, cand.boxes[np.array(chosen, np.int64)],
                       np.array(chosen_labels, np.int64)))
        if len(background) < config.background_per_image // 2:
            _, boxes, all_iou = proposals[index]
            easy = np.flatnonzero(all_iou.max(axis=1, initial=0.0) < 0.3)
            easy = rng.permutation(easy)[: config.background_per_image // 2 - len(background)]
            groups.append((image, boxes[easy], np.full(len(easy), n_classes, np.int64)))
    groups = [g for g in groups if len(g[1])]
    labels = np.concatenate([g[2] for g in groups])
    report(2, 4, f"embedding {len(labels)} training crops")
    features = np.concatenate([probe_features(detector, image, boxes) for image, boxes, _ in groups])
    detector.probe = fit_background_probe(features, labels, data.class_names, config.probe_c)
    report(3, 4, "probe fitted")
    detector.score_threshold, detector.info = _choose_threshold(detector, drawings, rng)
    detector.info.update({"split": split, "export": str(export), "images": len(drawings),
                          "training_crops": int(len(labels)),
                          "background_crops": int(np.sum(labels == n_classes)),
                          "checkpoint": str(checkpoint)})
    report(4, 4, f"score threshold {detector.score_threshold:.2f}")
    return detector


def _choose_threshold(detector: Detector, drawings, rng, max_images: int = 12
                      ) -> tuple[float, dict]:
    """The score maximising F1 (IoU ≥ 0.5, same class) on some training drawings."""
    rows = rng.permutation(len(drawings))[:max_images]
    scores, hits, n_truth = [], [], 0
    for i in rows:
        image, found, item = drawings[i]
        cand = select_candidates(detector, image, found)
        if len(cand.boxes) == 0:
            n_truth += len(item.boxes)
            continue
        found = detections_from_scores(detector, image.size, cand.cores,
                                       score_candidates(detector, image, cand),
                                       detector.config.min_score)
        n_truth += len(item.boxes)
        matched = np.zeros(len(item.boxes), bool)
        for det in found:
            box = xywh_to_xyxy([det.bbox])
            iou = box_iou(box, item.boxes)[0] if len(item.boxes) else np.zeros(0)
            iou[(item.classes != det.class_index) | matched] = 0
            hit = len(iou) and iou.max() >= 0.5
            if hit:
                matched[iou.argmax()] = True
            scores.append(det.score)
            hits.append(bool(hit))
    if not scores:
        return 0.5, {"threshold_f1": None}
    order = np.argsort(-np.array(scores))
    tp = np.cumsum(np.array(hits)[order])
    precision = tp / np.arange(1, len(order) + 1)
    recall = tp / max(n_truth, 1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-9)
    best = int(np.argmax(f1))
    return float(np.array(scores)[order][best]), {
        "threshold_f1": float(f1[best]), "threshold_precision": float(precision[best]),
        "threshold_recall": float(recall[best]), "threshold_images": int(len(rows))}
