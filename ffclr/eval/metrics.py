"""Classification metrics over a dataset's full class list.

Every function takes class indices into the dataset's `class_names`, so a class absent from
the training split, or from the test split, keeps its row: its support is 0 or its recall is 0,
never a shifted index or a crash.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def top_k_accuracy(labels: np.ndarray, proba: np.ndarray, k: int) -> float:
    """Fraction of rows whose true class is among the `k` highest scores (ties: lower index wins)."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return float("nan")
    k = min(k, proba.shape[1])
    top = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    return float(np.mean((top == labels[:, None]).any(axis=1)))


def confusion(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """`(n_classes, n_classes)` counts: row = true class, column = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predicted)), 1)
    return matrix


def per_class(matrix: np.ndarray, class_names: list[str],
              train_counts: np.ndarray | None = None) -> list[dict]:
    """Precision, recall, F1 and support per class from a confusion matrix (0 where undefined)."""
    true_positive = np.diag(matrix).astype(float)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    rows = []
    for index, name in enumerate(class_names):
        precision = true_positive[index] / predicted[index] if predicted[index] else 0.0
        recall = true_positive[index] / support[index] if support[index] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        row = {"class_index": index, "class": name, "precision": float(precision),
               "recall": float(recall), "f1": float(f1), "support": int(support[index])}
        if train_counts is not None:
            row["n_train"] = int(train_counts[index])
        rows.append(row)
    return rows


def classification_metrics(labels: np.ndarray, proba: np.ndarray, class_names: list[str],
                           train_labels: np.ndarray | None = None) -> dict:
    """All metrics of a probe on a test split.

    `proba` is `(N, len(class_names))`. As in scikit-learn, balanced accuracy averages recall
    over the classes present in the test split and macro-F1 averages F1 over the classes present
    or predicted (a wrong guess of an absent class counts as an F1 of 0); classes seen in the test
    split but never in training are listed under `unseen_in_train`, and the majority-class
    baseline (the training split's most frequent class) is reported beside the scores.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = len(class_names)
    if proba.shape != (len(labels), n_classes):
        raise ValueError(f"probabilities of shape {proba.shape}, expected {(len(labels), n_classes)}")
    predicted = np.argmax(proba, axis=1)
    matrix = confusion(labels, predicted, n_classes)
    train_counts = (np.bincount(train_labels, minlength=n_classes)
                    if train_labels is not None else None)
    rows = per_class(matrix, class_names, train_counts)
    present = [r for r in rows if r["support"] > 0]
    result = {
        "top1": float(np.mean(predicted == labels)) if len(labels) else float("nan"),
        "top5": top_k_accuracy(labels, proba, 5),
        **_macro_averages(rows, matrix),
        "n_train": int(len(train_labels)) if train_labels is not None else None,
        "n_test": int(len(labels)),
        "per_class": rows,
        "confusion": matrix.tolist(),
        "class_names": list(class_names),
    }
    if train_counts is not None:
        result["unseen_in_train"] = [r["class"] for r in present if train_counts[r["class_index"]] == 0]
        result["baseline"] = majority_baseline(train_labels, labels, class_names)
    return result


def majority_baseline(train_labels: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict:
    """Always answer the training split's most frequent class."""
    n_classes = len(class_names)
    majority = int(np.argmax(np.bincount(train_labels, minlength=n_classes)))
    proba = np.zeros((len(labels), n_classes))
    proba[:, majority] = 1.0
    matrix = confusion(labels, np.full(len(labels), majority), n_classes)
    return {"method": "majority class", "class": class_names[majority],
            "top1": float(np.mean(np.asarray(labels) == majority)) if len(labels) else float("nan"),
            **_macro_averages(per_class(matrix, class_names), matrix)}


def _macro_averages(rows: list[dict], matrix: np.ndarray) -> dict:
    present = [r for r in rows if r["support"] > 0]
    scored = [r for r, n_predicted in zip(rows, matrix.sum(axis=0))
              if r["support"] > 0 or n_predicted > 0]
    return {"balanced_accuracy": float(np.mean([r["recall"] for r in present])) if present else float("nan"),
            "macro_f1": float(np.mean([r["f1"] for r in scored])) if scored else float("nan")}


OVERALL_KEYS = ("top1", "top5", "balanced_accuracy", "macro_f1")


def write_metrics_csv(metrics: dict, path: str | Path) -> Path:
    """The per-class table, then one row per overall score (its value in the `f1` column)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = ["class_index", "class", "precision", "recall", "f1", "support", "n_train"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in metrics["per_class"]:
            writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()})
        for key in OVERALL_KEYS:
            writer.writerow({"class": f"overall:{key}", "f1": f"{metrics[key]:.4f}",
                             "support": metrics["n_test"], "n_train": metrics.get("n_train")})
        baseline = metrics.get("baseline")
        if baseline:
            for key in ("top1", "macro_f1"):
                writer.writerow({"class": f"majority_baseline:{key}", "f1": f"{baseline[key]:.4f}",
                                 "support": metrics["n_test"], "n_train": metrics.get("n_train")})
    return path
