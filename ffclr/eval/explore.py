"""What to look at first: a 2-D UMAP of the embeddings, outliers and likely label errors.

- outlier: mean cosine distance of a crop to its `k` nearest other crops, and cleanlab's
  `OutOfDistribution` score of that distance (in [0, 1], low = atypical);
- label issue: cleanlab's `find_label_issues` on out-of-sample probabilities, each crop's
  coming from a cross-validated logistic-regression probe that never saw it; the label-quality
  score is cleanlab's self-confidence (probability of the given label, low = suspicious) and the
  suggested label is the probe's top class.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ffclr.eval.neighbours import cosine_neighbours, l2_normalise

NEIGHBOURS = 10


def umap_2d(features: np.ndarray, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """(N, 2) UMAP layout with cosine metric (fixed seed, so the same embeddings give one map)."""
    features = np.asarray(features, dtype=np.float32)
    if len(features) < 4:
        return np.zeros((len(features), 2), dtype=np.float32)
    import umap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(features) - 1),
                            metric="cosine", random_state=seed, init="spectral"
                            if len(features) > n_neighbors + 2 else "random")
        return reducer.fit_transform(features).astype(np.float32)


def outlier_scores(features: np.ndarray, k: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """(mean cosine distance to the k nearest other crops, OOD score in [0, 1]).

    The OOD score is cleanlab's `OutOfDistribution` feature score, exp(-distance / median
    distance), applied to the same neighbours: cleanlab would search them all again.
    """
    from cleanlab.internal.outlier import transform_distances_to_scores

    features = l2_normalise(features)
    k = max(1, min(k, len(features) - 1))
    similarities = cosine_neighbours(features, features, k, leave_one_out=True)[1]
    distances = np.clip(1.0 - similarities, 0.0, 2.0).mean(axis=1)
    scale = max(float(np.median(distances)), 100 * np.finfo(np.float64).eps)
    ood = transform_distances_to_scores(distances.astype(np.float64), 1, scaling_factor=scale)
    return distances.astype(np.float32), np.asarray(ood, dtype=np.float32)


@dataclass
class LabelIssues:
    is_issue: np.ndarray
    quality: np.ndarray
    """Self-confidence: out-of-sample probability of the given label (low = suspicious)."""
    suggested: np.ndarray
    proba: np.ndarray


def label_issues(features: np.ndarray, labels: np.ndarray, n_classes: int,
                 c: float | None = None) -> LabelIssues:
    """Likely mislabelled crops from cross-validated probe probabilities (cleanlab); `c`: the
    probe's C when known (else chosen by the same cross-validation)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    from ffclr.eval.probe import CV_ROWS, out_of_fold_proba, select_c

    labels = np.asarray(labels, dtype=np.int64)
    proba = None
    if c is None:
        c, _, proba = select_c(features, labels, n_classes)
    if proba is None:
        proba = out_of_fold_proba(features, labels, n_classes, (c,), fit_rows=CV_ROWS)[c]
    proba = np.clip(proba, 1e-12, 1.0)
    proba /= proba.sum(axis=1, keepdims=True)
    present = np.unique(labels)
    remap = np.full(n_classes, -1)
    remap[present] = np.arange(len(present))
    compact = proba[:, present] / proba[:, present].sum(axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if len(present) > 1:
            issues = find_label_issues(remap[labels], compact, filter_by="prune_by_noise_rate")
        else:
            issues = np.zeros(len(labels), dtype=bool)
        quality = get_label_quality_scores(remap[labels], compact, method="self_confidence")
    return LabelIssues(is_issue=np.asarray(issues, dtype=bool), quality=quality.astype(np.float32),
                       suggested=present[compact.argmax(axis=1)], proba=proba)


def suspicion_order(issues: LabelIssues, outlier_distance: np.ndarray) -> np.ndarray:
    """Row order for review: flagged label issues first (lowest quality first), then the rest by
    label quality, outlier distance breaking ties."""
    return np.lexsort((-outlier_distance, issues.quality, ~issues.is_issue))


def review_table(features: np.ndarray, crop_set, k: int = NEIGHBOURS) -> list[dict]:
    """Every crop of `crop_set` with its scores, most suspicious first."""
    names = crop_set.class_names
    distance, ood = outlier_scores(features, k)
    issues = label_issues(features, crop_set.labels, len(names))
    rows = []
    for i in suspicion_order(issues, distance):
        rows.append({"crop_id": crop_set.crop_ids[i] if crop_set.crop_ids else None,
                     "path": str(crop_set.paths[i]), "label": names[crop_set.labels[i]],
                     "suggested": names[issues.suggested[i]],
                     "label_issue": bool(issues.is_issue[i]),
                     "label_quality": float(issues.quality[i]),
                     "outlier_distance": float(distance[i]), "ood_score": float(ood[i])})
    return rows
