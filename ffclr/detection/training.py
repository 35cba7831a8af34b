"""`fit_detector` / `fit_labelled`: learn margins, the pixel filter, the size prior, the box
refiner, the probe with its background class and the score threshold from one labelled split of
a COCO export, or from any list of labelled drawings."""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ffclr.detection.boxes import MarginModel, box_iou, match_detections, xywh_to_xyxy
from ffclr.detection.detector import (Detector, DetectorConfig, detections_from_scores,
                                      probe_features, propose, select_candidates)
from ffclr.detection.images import read_drawing
from ffclr.detection.proposals import stroke_proposals
from ffclr.detection.refine import BoxRefiner, design, drawing_ink, side_moves
from ffclr.detection.scoring import LinearScorer, fit_background_probe, pixel_features
from ffclr.detection.sizes import SizePrior
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


def matched_ink(found: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows of `boxes` matched, their ink extents): each labelled box takes the ink extent
    (of the proposals `found`) that overlaps it best once grown by MATCH_PAD, if IoU ≥ 0.5."""
    if len(found) == 0 or len(boxes) == 0:
        return np.zeros(0, np.int64), np.zeros((0, 4))
    grown = np.concatenate([found[:, :2] - MATCH_PAD, found[:, 2:] + MATCH_PAD], 1)
    iou = box_iou(boxes, grown)
    rows = np.flatnonzero(iou.max(axis=1) >= 0.5)
    return rows, found[iou.argmax(axis=1)[rows]]


@dataclass
class MatchedBoxes:
    """Labelled boxes of the training drawings that a stroke group matches (`matched_ink`)."""

    ink: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    drawing: np.ndarray
    """Index of the drawing each comes from."""


def _matched_boxes(drawings: "StreamedDrawings") -> MatchedBoxes:
    ink, boxes, classes, drawing = [], [], [], []
    for index, (found, item) in enumerate(drawings.labelled_ink()):
        rows, extents = matched_ink(found, item.boxes)
        ink.append(extents)
        boxes.append(item.boxes[rows])
        classes.append(item.classes[rows])
        drawing.append(np.full(len(rows), index))
    if not sum(len(rows) for rows in ink):
        raise FfclrError("no labelled box matches any stroke group: are these line drawings?")
    return MatchedBoxes(*(np.concatenate(parts) for parts in (ink, boxes, classes, drawing)))


def _fit_size_prior(drawings: "StreamedDrawings", matched: MatchedBoxes, margins: MarginModel,
                    n_classes: int) -> SizePrior:
    items = drawings.labelled()
    prior = SizePrior.fit(np.concatenate([item.boxes.reshape(-1, 4) for item in items]),
                          np.concatenate([item.classes for item in items]), n_classes)
    return prior.fit_shrink(margins.apply(matched.ink, matched.classes), matched.boxes,
                            matched.classes, matched.drawing)


def fit_detector(checkpoint: str | os.PathLike, export: str | os.PathLike, split: str = "train",
                 config: DetectorConfig = DetectorConfig(), seed: int = 0,
                 progress: Progress | None = None, encoder=None) -> Detector:
    """A detector fitted on the labelled drawings of `split` of a COCO export folder."""
    data = read_labelled_split(export, split)
    detector = fit_labelled(checkpoint, data, config, seed, progress, encoder)
    detector.info.update({"split": split, "export": str(export)})
    return detector


def fit_labelled(checkpoint: str | os.PathLike, data: LabelledSplit,
                 config: DetectorConfig = DetectorConfig(), seed: int = 0,
                 progress: Progress | None = None, encoder=None) -> Detector:
    """A detector fitted on any list of labelled drawings (`data.images`, classes indexed over
    `data.class_names`): a subset of an export, or drawings labelled in the app."""
    import torch

    from ffclr.model.checkpoint import load_encoder

    def report(done, total, message):
        if progress:
            progress(done, total, message)

    rng = np.random.default_rng(seed)
    n_classes = len(data.class_names)
    encoder = encoder or load_encoder(checkpoint)
    encoder.model.to(memory_format=torch.channels_last)
    drawings = StreamedDrawings(data, config)
    if not drawings:
        raise FfclrError(f"none of the {len(data.images)} labelled drawings could be read")
    report(0, 5, f"{len(drawings)} drawings, {sum(len(d[2].boxes) for d in drawings)} boxes")
    matched = _matched_boxes(drawings)
    margins = MarginModel.fit(matched.ink, matched.boxes, matched.classes, n_classes)
    pixel_filter, proposals = _fit_pixel_filter(drawings, margins, config, n_classes, rng)
    report(1, 5, "pixel filter fitted")

    detector = Detector(encoder=encoder, probe=None, class_names=data.class_names,
                        category_ids=data.category_ids, margins=margins,
                        pixel_filter=pixel_filter, score_threshold=0.5, config=config,
                        size_prior=_fit_size_prior(drawings, matched, margins, n_classes)
                        if config.size_prior else None)
    report(2, 5, "embedding the probe's training crops")
    features, labels, origin, candidates = _probe_training_crops(detector, drawings, proposals,
                                                                 rng)
    detector.probe = fit_background_probe(features, labels, data.class_names, config.probe_c)
    report(3, 5, "probe fitted; learning the box refiner from its detections")
    folds = _threshold_folds(len(drawings), rng)
    examples = _detect_training_drawings(detector, drawings, candidates)
    judged = {int(i) for fold in folds for i in fold}
    detector.refiner = _fit_refiner(examples, config, exclude=())
    report(4, 5, f"choosing the thresholds on {len(judged)} held-out drawings")
    scores, hits, n_truth = [], [], 0
    for fold in folds:
        judge = detector
        if len(fold) < len(drawings):
            kept = ~np.isin(origin, fold)
            judge = replace(detector, refiner=_fit_refiner(examples, config, exclude=fold),
                            probe=fit_background_probe(features[kept], labels[kept],
                                                       data.class_names, config.probe_c))
        for index in fold:
            image, _, item = drawings[index]
            fold_scores, fold_hits = _judge_drawing(judge, image, item,
                                                    candidates.get(int(index)))
            scores.extend(fold_scores)
            hits.extend(fold_hits)
            n_truth += len(item.boxes)
    detector.score_threshold, detector.accept_threshold, detector.info = _thresholds(
        np.array(scores), np.array(hits, bool), n_truth, config.accept_precision)
    detector.info.update({"threshold_images": len(judged),
                          "threshold_held_out": len(folds[0]) < len(drawings),
                          "images": len(drawings), "training_crops": int(len(labels)),
                          "background_crops": int(np.sum(labels == n_classes)),
                          "checkpoint": str(checkpoint)})
    report(5, 5, f"score threshold {detector.score_threshold:.2f}")
    return detector


class StreamedDrawings(Sequence):
    """(image, ink extents, labelled image) of every readable drawing of the split, each image
    read again when it is asked for: the fit holds one drawing's pixels at a time, however many
    drawings it learns from. The first pass (at construction) keeps the readable ones and their
    ink extents."""

    def __init__(self, data: LabelledSplit, config: DetectorConfig):
        self._kept: list[tuple[LabelledImage, np.ndarray]] = []
        for item in data.images:
            try:
                image, _ = read_drawing(item.path)
            except FfclrError:
                continue
            self._kept.append((item, stroke_proposals(np.asarray(image), config.proposals)))

    def __len__(self) -> int:
        return len(self._kept)

    def labelled(self) -> list[LabelledImage]:
        """The labels of the readable drawings (no image is read)."""
        return [item for item, _ in self._kept]

    def labelled_ink(self) -> list[tuple[np.ndarray, LabelledImage]]:
        """(ink extents, labels) of the readable drawings (no image is read)."""
        return [(found, item) for item, found in self._kept]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        item, found = self._kept[index]
        return read_drawing(item.path)[0], found, item


def _truth_iou(boxes: np.ndarray, truth_boxes: np.ndarray) -> np.ndarray:
    """(len(boxes), len(truth_boxes)) IoU, empty columns when the drawing has no labels."""
    return box_iou(boxes, truth_boxes) if len(truth_boxes) else np.zeros((len(boxes), 0))


def _fit_pixel_filter(drawings, margins: MarginModel, config: DetectorConfig, n_classes: int,
                      rng) -> tuple[LinearScorer, list[tuple]]:
    """The raw-pixel filter, fitted on proposals that match a labelled box (IoU ≥ 0.5, its
    class) against proposals that match none (IoU < 0.3, background), and each drawing's
    proposals as (ink extents, boxes, IoU with the labelled boxes)."""
    filter_x, filter_y, proposals = [], [], []
    for image, found, item in drawings:
        cores, boxes = propose(image, margins, config, found)
        iou = _truth_iou(boxes, item.boxes)
        best = iou.max(axis=1, initial=0.0)
        positive = np.flatnonzero(best >= 0.5)
        negative = rng.permutation(np.flatnonzero(best < 0.3))[: 4 * config.background_per_image]
        filter_x.append(pixel_features(image, boxes[np.concatenate([positive, negative])]))
        matched = item.classes[iou[positive].argmax(axis=1)] if len(positive) else np.zeros(0, int)
        filter_y.append(np.r_[matched, np.full(len(negative), n_classes)])
        proposals.append((cores, boxes, iou))
    pixel_filter = LinearScorer.fit(np.concatenate(filter_x), np.concatenate(filter_y))
    pixel_filter.threshold = _filter_threshold(pixel_filter, drawings, proposals,
                                               config.filter_recall)
    return pixel_filter, proposals


def _filter_threshold(pixel_filter: LinearScorer, drawings, proposals, recall: float) -> float:
    """The logit that lets `recall` of the labelled boxes through, each box counted by its
    best-scoring proposal with IoU ≥ 0.5."""
    best_logits = []
    for (image, _, _), (_, boxes, iou) in zip(drawings, proposals):
        if iou.shape[1] and len(boxes):
            logits = pixel_filter.logit(pixel_features(image, boxes))
            hit = iou >= 0.5
            best_logits.extend(np.where(hit, logits[:, None], -np.inf).max(axis=0)[hit.any(axis=0)])
    return float(np.quantile(best_logits, 1 - recall))


def _detect_training_drawings(detector: Detector, drawings, candidates: dict) -> dict:
    """The box refiner's examples from one pass of the (unrefined) detector over the training
    drawings' `candidates` (the probe's training pass embedded them): (inputs, side moves) per
    drawing index, from the detections that find a labelled box of their class (IoU ≥
    `min_iou`), as detection will hand them to it."""
    config = detector.config.refinement
    examples = {}
    if config is None:
        return examples
    for index, (cand, read) in candidates.items():
        image, _, item = drawings[index]
        if not len(item.boxes):
            continue
        detections = detections_from_scores(detector, image, cand.cores,
                                            detector.probe.predict_proba(read),
                                            detector.config.min_score)
        boxes = xywh_to_xyxy([d.bbox for d in detections])
        classes = np.array([d.class_index for d in detections], np.int64)
        iou = _truth_iou(boxes, item.boxes)
        iou[classes[:, None] != item.classes[None, :]] = 0.0
        rows = np.flatnonzero(iou.max(axis=1, initial=0.0) >= config.min_iou)
        if len(rows):
            truth = item.boxes[iou[rows].argmax(axis=1)]
            ink = drawing_ink(image, detector.config.proposals.ink_threshold)
            inputs = design(ink.windows(boxes[rows], config), boxes[rows], classes[rows],
                            len(detector.class_names))
            examples[index] = (inputs.astype(np.float32), side_moves(boxes[rows], truth))
    return examples


def _fit_refiner(examples: dict, config: DetectorConfig, exclude) -> BoxRefiner | None:
    """The box refiner fitted on the examples of every drawing but `exclude`'s (None when
    refinement is off or no example is left)."""
    left_out = {int(index) for index in exclude}
    kept = [pair for index, pair in examples.items() if index not in left_out]
    if config.refinement is None or not kept:
        return None
    return BoxRefiner.fit(np.concatenate([inputs for inputs, _ in kept]).astype(np.float64),
                          np.concatenate([moves for _, moves in kept]), config.refinement)


def _threshold_folds(n_drawings: int, rng, max_images: int = 48, n_folds: int = 4
                     ) -> list[np.ndarray]:
    """The training drawings the thresholds are chosen on, in folds: each fold is judged by a
    probe and a refiner fitted without it (a model's scores and boxes on drawings it learned
    from are optimistic). Up to `max_images` drawings; under 2 × `n_folds` drawings, all of
    them in one in-sample fold."""
    order = rng.permutation(n_drawings)
    if n_drawings < 2 * n_folds:
        return [np.sort(order)]
    return [np.sort(fold) for fold in np.array_split(order[:max_images], n_folds)]


def _judge_drawing(judge: Detector, image, item: LabelledImage, candidates
                   ) -> tuple[list[float], list[bool]]:
    """(score, whether it found a labelled box of its class) of each detection `judge` makes
    on one training drawing from its kept candidates."""
    if candidates is None:
        return [], []
    cand, read = candidates
    detections = detections_from_scores(judge, image, cand.cores, judge.probe.predict_proba(read),
                                        judge.config.min_score)
    hit, _ = match_detections(xywh_to_xyxy([d.bbox for d in detections]),
                              np.array([d.class_index for d in detections], np.int64),
                              item.boxes, item.classes)
    return [d.score for d in detections], hit.tolist()


def _probe_training_crops(detector: Detector, drawings, proposals, rng
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Features, labels and drawing index of the crops the probe learns from: every labelled
    box, candidates matching them, background candidates and, where the candidates hold too
    little background, easy background proposals; embedded drawing by drawing. Every
    candidate is embedded, and each drawing's candidates are returned with what the probe reads
    for them (by drawing index, drawings with candidates only), for the passes after the
    probe's fit."""
    config, background = detector.config, detector.background_index
    features, labels, origin, candidates = [], [], [], {}
    for index, ((image, found, item), (_, boxes, proposal_iou)) in enumerate(
            zip(drawings, proposals)):
        cand = select_candidates(detector, image, found)
        rows, cand_labels = _candidate_examples(cand.boxes, item, config, background, rng)
        read = probe_features(detector, image, cand.boxes) if len(cand.boxes) else None
        if read is not None:
            candidates[index] = (cand, read)
        groups = []
        if len(item.boxes):
            groups.append((probe_features(detector, image, item.boxes), item.classes))
        if len(rows):
            groups.append((read[rows], cand_labels))
        n_background = int(np.sum(cand_labels == background))
        if n_background < config.background_per_image // 2:
            easy = np.flatnonzero(proposal_iou.max(axis=1, initial=0.0) < 0.3)
            easy = rng.permutation(easy)[: config.background_per_image // 2 - n_background]
            if len(easy):
                groups.append((probe_features(detector, image, boxes[easy]),
                               np.full(len(easy), background, np.int64)))
        for group_features, group_labels in groups:
            features.append(group_features)
            labels.append(group_labels)
            origin.append(np.full(len(group_labels), index))
    return (np.concatenate(features), np.concatenate(labels), np.concatenate(origin),
            candidates)


def _candidate_examples(boxes: np.ndarray, item: LabelledImage, config: DetectorConfig,
                        background: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the candidate `boxes` to train on, with their labels: up to `positives_per_box`
    for each labelled box (IoU ≥ 0.5, and that box their best match), then up to
    `background_per_image` overlapping no labelled box (IoU < 0.3)."""
    iou = _truth_iou(boxes, item.boxes)
    rows, labels = [], []
    for g in range(len(item.boxes)):
        matching = np.flatnonzero((iou[:, g] >= 0.5) & (iou.argmax(axis=1) == g))
        matching = rng.permutation(matching)[: config.positives_per_box]
        rows.extend(matching)
        labels.extend([item.classes[g]] * len(matching))
    far = rng.permutation(np.flatnonzero(iou.max(axis=1, initial=0.0) < 0.3))
    far = far[: config.background_per_image]
    rows.extend(far)
    labels.extend([background] * len(far))
    return np.array(rows, np.int64), np.array(labels, np.int64)


def _thresholds(scores: np.ndarray, hits: np.ndarray, n_truth: int, precision_min: float
                ) -> tuple[float, float | None, dict]:
    """(the F1 threshold, the accept threshold never under it, their figures); 0.5 and None
    when there is no detection to choose from."""
    if not len(scores):
        return 0.5, None, {"threshold_f1": None}
    threshold, info = _best_f1_threshold(scores, hits, n_truth)
    accept, accept_info = _precise_threshold(scores, hits, n_truth, precision_min)
    if accept is not None and accept < threshold:
        accept, accept_info = threshold, {"accept_precision": info["threshold_precision"],
                                          "accept_recall": info["threshold_recall"]}
    return threshold, accept, info | accept_info


def _best_f1_threshold(scores: np.ndarray, hits: np.ndarray, n_truth: int) -> tuple[float, dict]:
    """The score whose detections and above give the best F1, with that F1 and its precision
    and recall; `hits` marks the detections that matched a labelled box."""
    order = np.argsort(-scores)
    tp = np.cumsum(hits[order])
    precision = tp / np.arange(1, len(order) + 1)
    recall = tp / max(n_truth, 1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-9)
    best = int(np.argmax(f1))
    return float(scores[order][best]), {
        "threshold_f1": float(f1[best]), "threshold_precision": float(precision[best]),
        "threshold_recall": float(recall[best])}


def _precise_threshold(scores: np.ndarray, hits: np.ndarray, n_truth: int, precision_min: float
                       ) -> tuple[float | None, dict]:
    """The lowest score whose detections and above have precision ≥ `precision_min` (the most
    recall at that precision), with the recall there; None when even the best score misses."""
    order = np.argsort(-scores)
    tp = np.cumsum(hits[order])
    precision = tp / np.arange(1, len(order) + 1)
    reaching = np.flatnonzero(precision >= precision_min)
    if not len(reaching):
        return None, {"accept_precision": None, "accept_recall": 0.0}
    deepest = int(reaching[-1])
    return float(scores[order][deepest]), {
        "accept_precision": float(precision[deepest]),
        "accept_recall": float(tp[deepest] / max(n_truth, 1))}
