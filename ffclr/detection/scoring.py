"""Scoring proposals: a cheap raw-pixel objectness filter, then the probe on encoder features.

The filter is a logistic regression on 16 × 16 pixels of each crop (plus its box size), symbol
vs background; it only decides which proposals are worth a forward pass. The probe is
`ffclr.eval.probe`'s multinomial logistic regression over the dataset's classes plus one more,
`background`, learned from proposals that overlap no symbol.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ffclr.detection.crops import crop_pixels
from ffclr.detection.sizes import log_sizes

BACKGROUND = "background"
FILTER_SIZE = 16


def pixel_features(image: Image.Image, boxes: np.ndarray) -> np.ndarray:
    """(N, 16·16·3 + 2) float32: the crop's pixels in [0, 1] and log width, log height."""
    pixels = crop_pixels(image, boxes, FILTER_SIZE).reshape(len(boxes), -1) / 255.0
    return np.concatenate([pixels, log_sizes(boxes)], axis=1).astype(np.float32)


@dataclass
class LinearScorer:
    """Multinomial logistic regression (classes, background last) on standardised features,
    read as objectness: `logit` = log P(any symbol) − log P(background); `threshold` is on it.

    Per-class templates separate the varied symbols from background far better than one
    symbol-vs-background boundary.
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    """(n_rows, d): one row per class seen in training, background last (one row if binary)."""
    intercept: np.ndarray
    threshold: float = -np.inf

    def logit(self, x: np.ndarray) -> np.ndarray:
        z = ((np.asarray(x, np.float64) - self.mean) / self.scale) @ self.coef.T + self.intercept
        if z.shape[1] == 1:
            return z[:, 0]
        symbols = z[:, :-1]
        top = symbols.max(axis=1)
        return top + np.log(np.exp(symbols - top[:, None]).sum(axis=1)) - z[:, -1]

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, c: float = 0.1) -> "LinearScorer":
        """`y`: class index per row, the background being the largest index."""
        import warnings

        from sklearn.linear_model import LogisticRegression

        x = np.asarray(x, np.float64)
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = LogisticRegression(C=c, max_iter=300, class_weight="balanced").fit(
                (x - mean) / scale, y)
        if len(model.classes_) == 2:
            return cls(mean, scale, -model.coef_, -model.intercept_)
        return cls(mean, scale, model.coef_, model.intercept_)


def fit_background_probe(features: np.ndarray, labels: np.ndarray, class_names: list[str],
                         c: float = 1.0):
    """An `ffclr.eval.probe.Probe` over `class_names + ["background"]` (the last index).

    `ffclr.eval.probe.fit_probe` chooses C by 5-fold cross-validation over six values, 31 fits:
    minutes on ~9,000 rows here, so C is fixed (DetectorConfig.probe_c, 1.0) and one fit is made.
    """
    from ffclr.eval.probe import Probe, fit_logistic, fit_standardiser

    names = [*class_names, BACKGROUND]
    features = np.asarray(features, np.float64)
    mean, scale = fit_standardiser(features)
    coef, intercept = fit_logistic((features - mean) / scale, labels, len(names), c)
    trained = np.bincount(labels, minlength=len(names)) > 0
    intercept = np.where(trained, intercept, 0.0)
    return Probe(class_names=names, mean=mean, scale=scale, coef=coef, intercept=intercept,
                 trained=trained, method="lbfgs", info={"C": c, "background": True})
