"""How consistently the labels box a symbol: the limit they put on localisation figures.

Two symbols of one class in one drawing whose ink extents have the same size are the same
symbol drawn twice; moved so that their ink coincides, their two labelled boxes should coincide
too. How often they do (IoU ≥ t) measures the annotators' own agreement. Read as independent
noise around a mean box (each box's offset has half the variance of a pair's difference), the
same offsets give the share of labelled boxes that a detector drawing exactly the mean box would
match at each IoU threshold: an estimate of the best recall, and so of the best AR, any detector
can reach on these labels.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ffclr.detection.boxes import box_iou

IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def identical_symbols(drawings, size_tolerance: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(first, second): xyxy labelled boxes of each pair of identical symbols, the second moved
    so that its ink coincides with the first's.

    `drawings`: (ink extent of each labelled box, LabelledImage) per drawing, the extents in the
    rows of the boxes (NaN where a box matched no ink)."""
    first, second = [], []
    for ink, item in drawings:
        sizes = ink[:, 2:] - ink[:, :2]
        for k in np.unique(item.classes):
            rows = np.flatnonzero((item.classes == k) & ~np.isnan(ink[:, 0]))
            a, b = np.triu_indices(len(rows), 1)
            a, b = rows[a], rows[b]
            same = np.abs(sizes[a] - sizes[b]).max(axis=1) <= size_tolerance
            a, b = a[same], b[same]
            first.append(item.boxes[a])
            second.append(item.boxes[b] + np.tile(ink[a, :2] - ink[b, :2], 2))
    if not first:
        return np.zeros((0, 4)), np.zeros((0, 4))
    return np.concatenate(first).reshape(-1, 4), np.concatenate(second).reshape(-1, 4)


def labelled_ink(images: list, config) -> Iterator[tuple[np.ndarray, object]]:
    """(ink extent of each labelled box, NaN where none matched; LabelledImage) for each
    readable drawing of `images`, from the detector's proposals (`config`: DetectorConfig)."""
    from ffclr.detection.training import LabelledSplit, StreamedDrawings, matched_ink

    for found, item in StreamedDrawings(LabelledSplit([], [], images), config).labelled_ink():
        ink = np.full((len(item.boxes), 4), np.nan)
        rows, extents = matched_ink(found, item.boxes)
        ink[rows] = extents
        yield ink, item


def label_consistency(drawings, seed: int = 0, repeats: int = 20) -> dict:
    """The pairs' agreement (`pair_iou_at`: share of pairs with IoU ≥ t) and the mean-box
    detector's share of matched boxes per IoU threshold (`mean_box_recall_at`) with its mean
    over 0.5:0.95 (`mean_box_ar`)."""
    drawings = list(drawings)
    first, second = identical_symbols(drawings)
    if not len(first):
        return {"pairs": 0}
    pairs = np.diag(box_iou(first, second))
    offsets = (first - second) / np.sqrt(2)
    boxes = np.concatenate([item.boxes.reshape(-1, 4) for _, item in drawings])
    rng = np.random.default_rng(seed)
    mean_box = np.concatenate([
        np.diag(box_iou(boxes, boxes + offsets[rng.integers(0, len(offsets), len(boxes))]))
        for _ in range(repeats)])
    recall = {f"{t:.2f}": float(np.mean(mean_box >= t)) for t in IOU_THRESHOLDS}
    return {"pairs": int(len(first)), "pair_iou_median": float(np.median(pairs)),
            "pair_iou_at": {f"{t:.2f}": float(np.mean(pairs >= t)) for t in IOU_THRESHOLDS},
            "box_offset_sd_px": [float(v) for v in offsets.std(axis=0)],
            "mean_box_recall_at": recall, "mean_box_ar": float(np.mean(list(recall.values())))}
