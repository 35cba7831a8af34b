"""Weighted kNN on L2-normalised features (cosine similarity), as in Wu et al. 2018's monitor.

Each of the `k` nearest training crops votes for its class with weight exp(similarity / T).
`k` is chosen on the training split alone, by leave-one-out: every training crop is classified
by the others.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ffclr.eval.neighbours import cosine_neighbours, l2_normalise

K_GRID = (1, 3, 5, 10, 20, 50)
TEMPERATURE = 0.07


def vote(nearest: np.ndarray, similarities: np.ndarray, labels: np.ndarray, n_classes: int,
          temperature: float) -> np.ndarray:
    """Class probabilities of each row from its neighbours' labels, weighted by similarity."""
    weights = np.exp((similarities - 1.0) / temperature)
    votes = np.zeros((len(nearest), n_classes))
    rows = np.repeat(np.arange(len(nearest)), nearest.shape[1])
    np.add.at(votes, (rows, labels[nearest].ravel()), weights.ravel())
    return votes / np.maximum(votes.sum(axis=1, keepdims=True), 1e-300)


@dataclass
class KnnClassifier:
    features: np.ndarray
    """L2-normalised training features."""
    labels: np.ndarray
    n_classes: int
    k: int
    temperature: float = TEMPERATURE

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, n_classes: int,
            k: int | None = None, temperature: float = TEMPERATURE) -> "KnnClassifier":
        features = l2_normalise(features)
        labels = np.asarray(labels, dtype=np.int64)
        if k is None:
            k = choose_k(features, labels, n_classes, temperature)[0]
        return cls(features, labels, n_classes, k, temperature)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        nearest, similarities = self.neighbours(features, self.k)
        return vote(nearest, similarities, self.labels, self.n_classes, self.temperature)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.predict_proba(features).argmax(axis=1)

    def neighbours(self, features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and cosine similarities of the `k` nearest training crops, nearest first."""
        return cosine_neighbours(features, self.features, k)


def leave_one_out_accuracy(features: np.ndarray, labels: np.ndarray, n_classes: int, k: int,
                           temperature: float = TEMPERATURE) -> float:
    """Accuracy of the weighted kNN when every row is classified by the others."""
    labels = np.asarray(labels, dtype=np.int64)
    nearest, similarities = cosine_neighbours(features, features, k, leave_one_out=True)
    return float(np.mean(vote(nearest, similarities, labels, n_classes,
                              temperature).argmax(1) == labels))


def choose_k(features: np.ndarray, labels: np.ndarray, n_classes: int,
             temperature: float = TEMPERATURE, grid: tuple[int, ...] = K_GRID) -> tuple[int, dict]:
    """The `k` with the best leave-one-out accuracy on these rows (ties: smaller k).

    The neighbours are searched once, for the largest `k` of the grid; each smaller `k` votes
    with the first `k` of them.
    """
    labels = np.asarray(labels, dtype=np.int64)
    usable = [k for k in grid if k < len(labels)] or [1]
    nearest, similarities = cosine_neighbours(features, features, max(usable), leave_one_out=True)
    scores = {k: float(np.mean(vote(nearest[:, :k], similarities[:, :k], labels, n_classes,
                                     temperature).argmax(1) == labels)) for k in usable}
    best = max(usable, key=lambda k: (scores[k], -k))
    return best, scores
