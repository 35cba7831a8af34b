"""Drawings at another scale than the training drawings: a second pass at their scale.

Wire cut lengths, grouping distances, margins and the refiner's window are in the training
drawings' pixels, so a drawing exported at another resolution loses symbols. Where the size prior
reads a drawing's confident detections as more than `beyond` times larger or smaller than their
classes' training boxes, the drawing is detected again, resampled to the training drawings' scale.
The first pass's shown boxes stay and the second only adds boxes where the first showed none: the
reading is also off for a drawing whose symbols are drawn larger rather than exported larger, and
the first pass finds those well.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ffclr.detection.boxes import batched_nms, box_iou, xywh_to_xyxy
from ffclr.detection.images import MAX_PIXELS

if TYPE_CHECKING:
    from ffclr.detection.detector import Detection

FACTOR_RANGE = (0.5, 2.0)
"""The resampling factor is clipped to this range."""


def rescale_factor(log_scale: float, beyond: float | None) -> float | None:
    """The factor that resamples a drawing at `log_scale` (the size prior's reading) to the
    training drawings' scale; None when it is within `beyond` times of it, or `beyond` is None."""
    if beyond is None or abs(log_scale) <= np.log(beyond):
        return None
    return float(np.clip(np.exp(-log_scale), *FACTOR_RANGE))


def resampled(image: Image.Image, factor: float, max_pixels: int = MAX_PIXELS
              ) -> Image.Image | None:
    """`image` resized by `factor` (Lanczos); None when that would exceed `max_pixels`."""
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    if size[0] * size[1] > max_pixels:
        return None
    return image.resize(size, Image.LANCZOS)


def scaled_back(detections: list[Detection], factor: float, size: tuple[int, int]
                ) -> tuple[list[Detection], np.ndarray]:
    """(the detections made on a drawing resampled by `factor` in the original drawing's pixels,
    `size` its width and height; the index of each) without those left empty by the clipping."""
    width, height = size
    found, rows = [], []
    for row, d in enumerate(detections):
        x0, y0 = min(d.bbox[0] / factor, width), min(d.bbox[1] / factor, height)
        x1 = min((d.bbox[0] + d.bbox[2]) / factor, width)
        y1 = min((d.bbox[1] + d.bbox[3]) / factor, height)
        if x1 > x0 and y1 > y0:
            found.append(replace(d, bbox=tuple(round(float(v), 2)
                                               for v in (x0, y0, x1 - x0, y1 - y0))))
            rows.append(row)
    return found, np.array(rows, np.int64)


def merged_passes(first: list[Detection], second: list[Detection], shown_threshold: float,
                  nms_iou: float, overlap: float = 0.3) -> np.ndarray:
    """Rows of `first + second` kept, best first: the first pass's detections and the second
    pass's that overlap no box the first shows (score ≥ `shown_threshold`) by IoU `overlap` or
    more, after class-wise NMS."""
    shown = xywh_to_xyxy([d.bbox for d in first if d.score >= shown_threshold])
    added = np.arange(len(second))
    if len(shown) and second:
        reach = box_iou(xywh_to_xyxy([d.bbox for d in second]), shown).max(axis=1)
        added = np.flatnonzero(reach < overlap)
    if not len(added):
        return np.arange(len(first))
    rows = np.concatenate([np.arange(len(first)), len(first) + added])
    both = first + second
    union = [both[r] for r in rows]
    keep = batched_nms(xywh_to_xyxy([d.bbox for d in union]).astype(np.float32),
                       np.array([d.score for d in union], np.float32),
                       np.array([d.class_index for d in union], np.int64), nms_iou)
    return rows[keep]
