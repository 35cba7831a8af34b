"""Box refinement learned from the annotators' boxes: where each side of a detection should move.

A detection's box is its ink extent plus margins, pulled towards its class's size; the ink it
grew from may hold a stub of wire or miss a stroke, and the annotators frame a symbol in their
own way. The refiner reads the ink around the box (a window twice its size, resampled to a
`grid` × `grid` ink density) with the box's class and log size, and predicts each side's move
in units of the box's width or height by ridge regression, fitted on the training drawings'
detections that find a labelled box of their class (as R-CNN regresses its boxes from its
features).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ffclr.data.ink import background_colour, ink_mask
from ffclr.detection.sizes import log_sizes

SUPERSAMPLE = 4
"""The window is resampled at this many samples per grid cell, then averaged per cell."""


@dataclass(frozen=True)
class RefinerConfig:
    grid: int = 32
    context: float = 0.5
    """The window reaches this share of the box's width (height) past each side."""
    alpha: float = 100.0
    """Ridge penalty (chosen by 5-fold cross-validation over training drawings)."""
    min_iou: float = 0.5
    """Candidates learn from the labelled box they overlap at least this much."""


def drawing_ink(image: Image.Image, threshold: int) -> "DrawingInk":
    return DrawingInk(image, background_colour(np.asarray(image)), threshold)


@dataclass
class DrawingInk:
    """A drawing's ink, read window by window (memory bounded by a window, not the drawing)."""

    image: Image.Image
    background: np.ndarray
    threshold: int

    def windows(self, boxes: np.ndarray, config: RefinerConfig) -> np.ndarray:
        """(N, grid²) float32 ink density of the window around each xyxy box."""
        grid, fine = config.grid, config.grid * SUPERSAMPLE
        width, height = self.image.size
        out = np.zeros((len(boxes), grid * grid), np.float32)
        for row, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, np.float64).reshape(-1, 4)):
            reach_x, reach_y = config.context * (x1 - x0), config.context * (y1 - y0)
            window = (x0 - reach_x, y0 - reach_y, x1 + reach_x, y1 + reach_y)
            left, top = max(0, int(np.floor(window[0]))), max(0, int(np.floor(window[1])))
            right = min(width, int(np.ceil(window[2])))
            bottom = min(height, int(np.ceil(window[3])))
            if right <= left or bottom <= top:
                continue
            rgb = np.asarray(self.image.crop((left, top, right, bottom)))
            ink = Image.fromarray(ink_mask(rgb, self.background, self.threshold)
                                  .astype(np.uint8) * 255)
            extent = (window[0] - left, window[1] - top, window[2] - left, window[3] - top)
            fine_ink = ink.transform((fine, fine), Image.Transform.EXTENT, extent,
                                     Image.Resampling.BILINEAR, fillcolor=0)
            cells = np.asarray(fine_ink, np.float32).reshape(grid, SUPERSAMPLE, grid, SUPERSAMPLE)
            out[row] = cells.mean(axis=(1, 3)).ravel() / 255.0
        return out


def design(windows: np.ndarray, boxes: np.ndarray, classes: np.ndarray, n_classes: int
           ) -> np.ndarray:
    """The regression's inputs: ink windows, the class one-hot, log width and log height."""
    one_hot = np.eye(n_classes)[np.asarray(classes, np.int64)]
    return np.concatenate([windows, one_hot, log_sizes(boxes)], axis=1)


def side_moves(boxes: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(N, 4) how far each side must move to reach `truth`, in box widths / heights."""
    size = boxes[:, 2:] - boxes[:, :2]
    return (truth - boxes) / np.maximum(np.concatenate([size, size], axis=1), 1e-9)


@dataclass
class BoxRefiner:
    coef: np.ndarray
    """(n_inputs, 4) ridge weights for the moves of left, top, right, bottom."""
    intercept: np.ndarray
    """(4,)."""
    config: RefinerConfig

    @classmethod
    def fit(cls, inputs: np.ndarray, moves: np.ndarray, config: RefinerConfig
            ) -> "BoxRefiner":
        """Ridge regression with an unpenalised intercept (closed form)."""
        mean_x, mean_y = inputs.mean(axis=0), moves.mean(axis=0)
        x = inputs - mean_x
        gram = x.T @ x + config.alpha * np.eye(x.shape[1])
        coef = np.linalg.solve(gram, x.T @ (moves - mean_y))
        return cls(coef, mean_y - mean_x @ coef, config)

    @property
    def n_classes(self) -> int:
        """The classes its weights were fitted for (after the grid's cells, before the sizes)."""
        return self.coef.shape[0] - self.config.grid ** 2 - 2

    def apply(self, ink: DrawingInk, boxes: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """The boxes with each side moved as predicted; a side never crosses its opposite."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return boxes
        inputs = design(ink.windows(boxes, self.config), boxes, classes, self.n_classes)
        size = boxes[:, 2:] - boxes[:, :2]
        moved = boxes + (inputs @ self.coef + self.intercept) * np.concatenate([size, size], 1)
        centre = (moved[:, :2] + moved[:, 2:]) / 2
        low = np.minimum(moved[:, :2], centre - 0.5)
        return np.concatenate([low, np.maximum(moved[:, 2:], low + 1.0)], axis=1)
