"""How large each class's symbols are: a size prior on the detector's boxes.

A symbol class is drawn at one size on a drawing set, give or take the drawing's scale. Each
class's box size (log width, log height) is fitted on the training boxes; a detection's score is
multiplied by how likely its box's size is for its class, a Gaussian in log size with the spread
of the training boxes around their class's mean. This ranks the box that frames the whole symbol
above the ones that frame half of it or the symbol with a stub of wire (all of which the probe
scores alike), and drops boxes of a size no symbol of their class has.

Drawings are not all at the training drawings' scale, so the prior is centred on each drawing's
own scale: the weighted median of the size deviations of its confident detections.

A box's size (ink extent plus margins) is itself a noisy reading of the annotators' box, so it
is also pulled towards its class's size at the drawing's scale, around its centre, by a share
per axis fitted on the training boxes (`shrink`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


def log_sizes(boxes: np.ndarray) -> np.ndarray:
    """(N, 2) log width, log height of xyxy boxes (sides under a pixel count as one)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.log(np.maximum(boxes[:, 2:] - boxes[:, :2], 1.0))


@dataclass
class SizePrior:
    log_size: np.ndarray
    """(n_classes, 2): each class's mean log width and log height (the median over all boxes
    for a class with fewer than `min_examples`)."""
    spread: np.ndarray
    """(2,): standard deviation of the boxes' log sizes around their class's mean."""
    shrink: np.ndarray = field(default_factory=lambda: np.zeros(2))
    """(2,) in [0, 1]: how far a box's log width and log height move towards its class's."""

    @classmethod
    def fit(cls, boxes: np.ndarray, classes: np.ndarray, n_classes: int, min_examples: int = 3
            ) -> "SizePrior":
        sizes = log_sizes(boxes)
        classes = np.asarray(classes, np.int64)
        overall = np.median(sizes, axis=0) if len(sizes) else np.zeros(2)
        log_size = np.tile(overall, (n_classes, 1))
        counts = np.bincount(classes, minlength=n_classes)
        for k in np.flatnonzero(counts >= min_examples):
            log_size[k] = sizes[classes == k].mean(axis=0)
        spread = (sizes - log_size[classes]).std(axis=0) if len(sizes) > 1 else np.ones(2)
        return cls(log_size, np.maximum(spread, 0.05))

    def fit_shrink(self, boxes: np.ndarray, truth: np.ndarray, classes: np.ndarray,
                   drawing: np.ndarray) -> "SizePrior":
        """This prior with `shrink` fitted by least squares: the share of the way from each box's
        log size to its class's (at its drawing's scale, read from the boxes of the drawing) that
        brings it closest to the labelled box `truth` it was made for."""
        deviation = self.deviation(boxes, classes)
        scale = np.zeros(len(boxes))
        for d in np.unique(drawing):
            rows = drawing == d
            scale[rows] = self.drawing_scale(deviation[rows], np.ones(rows.sum()), 0.0)
        towards = -deviation + scale[:, None]
        needed = log_sizes(truth) - log_sizes(boxes)
        shrink = (towards * needed).sum(axis=0) / np.maximum((towards ** 2).sum(axis=0), 1e-9)
        return replace(self, shrink=np.clip(shrink, 0.0, 1.0))

    def deviation(self, boxes: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """(N, 2) log size of each box minus its class's mean."""
        return log_sizes(boxes) - self.log_size[np.asarray(classes, np.int64)]

    @staticmethod
    def drawing_scale(deviation: np.ndarray, scores: np.ndarray, min_score: float) -> float:
        """The drawing's log scale against the training drawings: the score-weighted median of
        the mean deviation of detections scoring at least `min_score` (0 when there are none)."""
        confident = np.flatnonzero(np.asarray(scores) >= min_score)
        if not len(confident):
            return 0.0
        mean = deviation[confident].mean(axis=1)
        order = np.argsort(mean)
        weight = np.cumsum(np.asarray(scores, np.float64)[confident][order])
        return float(mean[order][np.searchsorted(weight, weight[-1] / 2)])

    def likelihood(self, boxes: np.ndarray, classes: np.ndarray, scale: float) -> np.ndarray:
        """(N,) in (0, 1]: exp(−z²/2) summed over both sides, z the box's log size deviation
        from its class's mean at the drawing's log `scale`, in units of the spread."""
        z = (self.deviation(boxes, classes) - scale) / self.spread
        return np.exp(-0.5 * (z ** 2).sum(axis=1))

    def towards_class_size(self, boxes: np.ndarray, classes: np.ndarray, scale: float
                           ) -> np.ndarray:
        """The boxes resized around their centres, `shrink` of the way to their class's size at
        the drawing's log `scale`."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if not np.any(self.shrink):
            return boxes
        size = np.exp(log_sizes(boxes) - self.shrink * (self.deviation(boxes, classes) - scale))
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        return np.concatenate([centre - size / 2, centre + size / 2], axis=1)

    def rescore(self, boxes: np.ndarray, classes: np.ndarray, scores: np.ndarray,
                min_score: float) -> tuple[np.ndarray, np.ndarray]:
        """(boxes moved towards their class's size, scores × the size likelihood) of one
        drawing's detections, its scale read from those scoring at least `min_score`."""
        scale = self.drawing_scale(self.deviation(boxes, classes), scores, min_score)
        return (self.towards_class_size(boxes, classes, scale),
                scores * self.likelihood(boxes, classes, scale))
