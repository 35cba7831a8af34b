"""Which pixels of a CAD drawing are ink: those far from the background, its most common colour."""
from __future__ import annotations

import numpy as np

INK_THRESHOLD = 40
"""Max channel difference from the background colour above which a pixel is ink."""


def background_colour(rgb: np.ndarray) -> np.ndarray:
    """The most common colour (quantised to 8 levels a channel, then averaged)."""
    step = max(1, int(np.sqrt(rgb.shape[0] * rgb.shape[1] / 250_000)))
    sample = rgb[::step, ::step].reshape(-1, 3).astype(np.int32)
    keys = (sample[:, 0] // 8) * 1024 + (sample[:, 1] // 8) * 32 + sample[:, 2] // 8
    values, counts = np.unique(keys, return_counts=True)
    return sample[keys == values[np.argmax(counts)]].mean(axis=0)


def ink_mask(rgb: np.ndarray, background: np.ndarray, threshold: int) -> np.ndarray:
    diff = np.abs(rgb.astype(np.int16) - np.round(background).astype(np.int16))
    return diff.max(axis=2) > threshold
