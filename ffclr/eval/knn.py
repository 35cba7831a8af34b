"""Weighted kNN on L2-normalised features (cosine similarity), as in Wu et al. 2018's monitor.

Each of the `k` nearest training crops votes for its class with weight exp(similarity / T).
`k` is chosen on the training split alone, by leave-one-out: every training crop is classified
by the others.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

K_GRID = (1, 3, 5, 10, 20, 50)
TEMPERATURE = 0.07


def l2_normalise(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def _vote(similarity: np.ndarray, labels: np.ndarray, n_classes: int, k: int,
          temperature: float) -> np.ndarray:
    k = min(k, similarity.shape[1])
    nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    sims = np.take_along_axis(similarity, nearest, axis=1)
    weights = np.exp((sims - 1.0) / temperature)
    votes = np.zeros((len(similarity), n_classes))
    np.add.at(votes, (np.repeat(np.arange(len(similarity)), k), labels[nearest].ravel()),
              weights.ravel())
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

    def predict_proba(self, features: np.ndarray, batch: int = 4096) -> np.ndarray:
        queries = l2_normalise(features)
        return np.concatenate([
            _vote(queries[i:i + batch] @ self.features.T, self.labels, self.n_classes, self.k,
                  self.temperature) for i in range(0, len(queries), batch)
        ]) if len(queries) else np.zeros((0, self.n_classes))

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.predict_proba(features).argmax(axis=1)

    def neighbours(self, features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and cosine similarities of the `k` nearest training crops, nearest first."""
        similarity = l2_normalise(features) @ self.features.T
        k = min(k, similarity.shape[1])
        order = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
        return order, np.take_along_axis(similarity, order, axis=1)


def choose_k(features: np.ndarray, labels: np.ndarray, n_classes: int,
             temperature: float = TEMPERATURE, grid: tuple[int, ...] = K_GRID) -> tuple[int, dict]:
    """The `k` with the best leave-one-out accuracy on these rows (ties: smaller k)."""
    features = l2_normalise(features)
    similarity = features @ features.T
    np.fill_diagonal(similarity, -np.inf)
    usable = [k for k in grid if k < len(labels)] or [1]
    scores = {k: float(np.mean(_vote(similarity, labels, n_classes, k, temperature).argmax(1)
                               == labels)) for k in usable}
    best = max(usable, key=lambda k: (scores[k], -k))
    return best, scores
