"""Box arithmetic (xyxy float arrays): IoU, per-class non-maximum suppression, and the margin
model that turns a symbol's ink extent into a box drawn the way the annotators draw them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes `a` (N, 4) and `b` (M, 4), xyxy."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def xywh_to_xyxy(boxes) -> np.ndarray:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.clip(boxes, 0, [width, height, width, height])


def batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float
                ) -> np.ndarray:
    """Indices kept by class-wise NMS (torchvision), best score first."""
    import torch
    from torchvision.ops import batched_nms as nms

    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    keep = nms(torch.as_tensor(boxes, dtype=torch.float32), torch.as_tensor(scores, dtype=torch.float32),
               torch.as_tensor(classes, dtype=torch.int64), iou)
    return keep.numpy()


@dataclass
class MarginModel:
    """Per side (left, top, right, bottom): margin = a + b × extent along that axis.

    `coef` is (n_groups, 4, 2); group 0 is class-agnostic, group k + 1 is class k (a copy of
    the agnostic one where a class had too few examples).
    """

    coef: np.ndarray

    @staticmethod
    def _design(core: np.ndarray) -> np.ndarray:
        size = core[:, 2:] - core[:, :2]
        ext = np.concatenate([size, size], axis=1)
        return ext

    @classmethod
    def fit(cls, core: np.ndarray, target: np.ndarray, labels: np.ndarray, n_classes: int,
            min_examples: int = 8, shrink: float = 8.0) -> "MarginModel":
        """Least squares of the target's margins around the ink extent; per-class fits are
        shrunk towards the agnostic one by `shrink` pseudo-examples."""
        coef = np.zeros((n_classes + 1, 4, 2))
        ext = cls._design(core)
        margins = np.concatenate([core[:, :2] - target[:, :2], target[:, 2:] - core[:, 2:]], 1)

        def solve(rows, prior=None):
            out = np.zeros((4, 2))
            for side in range(4):
                x = np.stack([np.ones(len(rows)), ext[rows, side]], 1)
                y = margins[rows, side]
                reg = np.diag([1e-3, 1e-3])
                rhs = x.T @ y
                if prior is not None:
                    reg = reg + shrink * np.diag([1.0, 30.0 ** 2])
                    rhs = rhs + shrink * np.diag([1.0, 30.0 ** 2]) @ prior[side]
                out[side] = np.linalg.solve(x.T @ x + reg, rhs)
            return out

        every = np.arange(len(core))
        coef[0] = solve(every) if len(every) else 0.0
        for k in range(n_classes):
            rows = np.flatnonzero(labels == k)
            coef[k + 1] = solve(rows, coef[0]) if len(rows) >= min_examples else coef[0]
        return cls(coef)

    def apply(self, core: np.ndarray, classes: np.ndarray | None = None) -> np.ndarray:
        """Boxes around ink extents `core`; `classes` None uses the agnostic margins."""
        core = np.asarray(core, np.float64).reshape(-1, 4)
        group = np.zeros(len(core), np.int64) if classes is None else np.asarray(classes) + 1
        coef = self.coef[group]
        margin = coef[:, :, 0] + coef[:, :, 1] * self._design(core)
        return np.concatenate([core[:, :2] - margin[:, :2], core[:, 2:] + margin[:, 2:]], 1)


def match_detections(boxes: np.ndarray, classes: np.ndarray, truth_boxes: np.ndarray,
                     truth_classes: np.ndarray, iou_min: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching as in COCO evaluation: detections (xyxy, in the order given, normally by
    descending score) each take the unmatched labelled box of their class with the highest IoU,
    if that IoU is at least `iou_min`.

    Returns `(hit, matched)`: per detection, whether it matched; per labelled box, whether a
    detection matched it.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    truth_boxes = np.asarray(truth_boxes, np.float64).reshape(-1, 4)
    classes, truth_classes = np.asarray(classes), np.asarray(truth_classes)
    hit = np.zeros(len(boxes), bool)
    matched = np.zeros(len(truth_boxes), bool)
    if len(boxes) == 0 or len(truth_boxes) == 0:
        return hit, matched
    iou = box_iou(boxes, truth_boxes)
    iou[classes[:, None] != truth_classes[None, :]] = 0.0
    for row in range(len(boxes)):
        candidates = np.where(matched, 0.0, iou[row])
        best = int(candidates.argmax())
        if candidates[best] >= iou_min:
            hit[row] = matched[best] = True
    return hit, matched
