"""Proposal boxes → network input, cut the way the importer cuts training crops.

The importer pads each box by a fraction of its size (`ffclr.data.coco_import.crop_box`); the crop
is then padded to a square and resized exactly as in training (`ffclr.data.preprocess`).
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from ffclr.data.preprocess import square_crop_array

CROP_PADDING = 0.05
"""`ffclr.data.coco_import.import_export`'s default padding: detection crops match training crops."""


def padded_boxes(boxes: np.ndarray, width: int, height: int, padding: float = CROP_PADDING
                 ) -> np.ndarray:
    """Integer (left, top, right, bottom) crop boxes, padded and clipped to the image."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    pad = padding * (boxes[:, 2:] - boxes[:, :2])
    out = np.concatenate([np.floor(boxes[:, :2] - pad), np.ceil(boxes[:, 2:] + pad)], 1)
    out = np.clip(out, 0, [width, height, width, height]).astype(np.int64)
    out[:, 2:] = np.maximum(out[:, 2:], out[:, :2] + 1)
    return np.minimum(out, [width - 1, height - 1, width, height])


def crop_pixels(image: Image.Image, boxes: np.ndarray, size: int,
                padding: float = CROP_PADDING) -> np.ndarray:
    """uint8 (N, size, size, 3) crops of `boxes` with the training preprocessing."""
    if len(boxes) == 0:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([square_crop_array(image.crop(tuple(int(v) for v in box)), size)
                     for box in padded_boxes(boxes, *image.size, padding)])

