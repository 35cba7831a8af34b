"""Whole schematic or single symbol: how many stroke widths fit across the image.

A drawing's strokes are a pen wide whatever the drawing's size, and a symbol image is a few dozen
pens across however far it is enlarged, so the ratio tells one from the other at any resolution
(docs/measurements.md, "A whole schematic dropped among symbols").
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ffclr.data.ink import INK_THRESHOLD, background_colour, ink_mask

SCHEMATIC_STROKES = 100.0
"""An image this many stroke widths across its shorter side, or more, is a whole schematic. With
a sample of the dataset's symbol crops, the bar is `SCHEMATIC_FACTOR` times theirs (99th
percentile), kept between `MIN_SCHEMATIC_STROKES` (a symbol screenshot with a wide margin is no
schematic) and this."""
SCHEMATIC_FACTOR = 2.0
MIN_SCHEMATIC_STROKES = 50.0
WINDOW = 1024
"""The stroke width is read in the window of this side with the most ink (bounded memory)."""


def strokes_across(rgb: np.ndarray, ink_threshold: int = INK_THRESHOLD) -> float:
    """The image's shorter side over its typical stroke width; 0 for an image without ink.

    The width is twice the median distance to the background along the strokes' middles (the
    ink pixels whose distance is the largest of their 3 × 3 neighbourhood).
    """
    ink = densest_window(ink_mask(rgb, background_colour(rgb), ink_threshold), WINDOW)
    if not ink.any():
        return 0.0
    distance = ndimage.distance_transform_edt(np.pad(ink, 1))[1:-1, 1:-1]
    middle = ink & (distance >= ndimage.maximum_filter(distance, size=3))
    return min(rgb.shape[:2]) / (2.0 * float(np.median(distance[middle])))


def schematic_threshold(symbols_across: np.ndarray | None = None) -> float:
    """The strokes across (`strokes_across`) from which an image is a whole schematic, given
    those of a sample of the dataset's symbol crops."""
    if symbols_across is None or not len(symbols_across):
        return SCHEMATIC_STROKES
    relative = SCHEMATIC_FACTOR * float(np.percentile(symbols_across, 99))
    return float(np.clip(relative, MIN_SCHEMATIC_STROKES, SCHEMATIC_STROKES))


def densest_window(mask: np.ndarray, side: int) -> np.ndarray:
    """The `side` × `side` tile of `mask` (a grid of such tiles) with the most True pixels."""
    height, width = mask.shape
    if height <= side and width <= side:
        return mask
    tiles = [(y, x) for y in range(0, height, side) for x in range(0, width, side)]
    y, x = max(tiles, key=lambda t: int(mask[t[0]:t[0] + side, t[1]:t[1] + side].sum()))
    return mask[y:y + side, x:x + side]
