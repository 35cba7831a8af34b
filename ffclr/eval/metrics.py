"""Classification metrics over a dataset's full class list, computed by scikit-learn.

Every function takes class indices into the dataset's `class_names` and passes
`labels=range(len(class_names))` to scikit-learn where it lists classes, so a class absent from
the training split, or from the test split, keeps its row: its support is 0 or its recall is 0,
never a shifted index or a crash.

One convention for the averages, used by every score ffclr reports (test metrics, the probe's
choice of C, few-shot, the benchmarks):
- macro-F1 averages F1 over the classes present in the test split or predicted: a wrong guess of
  an absent class counts as an F1 of 0, a class neither present nor predicted is left out
  (scikit-learn's `f1_score(average="macro")` without `labels`);
- balanced accuracy averages recall over the classes present in the test split
  (`balanced_accuracy_score`).
On an empty test split every score is NaN.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ffclr.data.csv_files import write_csv


def macro_f1(labels: np.ndarray, predicted: np.ndarray) -> float:
    """F1 averaged over the classes present in `labels` or `predicted` (see the module docstring)."""
    from sklearn.metrics import f1_score

    if len(labels) == 0:
        return float("nan")
    return float(f1_score(labels, predicted, average="macro", zero_division=0))


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Recall averaged over the classes present in `labels`; predicting an absent class lowers
    the recall of the true class and adds no term of its own."""
    from sklearn.metrics import balanced_accuracy_score

    if len(labels) == 0:
        return float("nan")
    with _expected_label_warnings_ignored():
        return float(balanced_accuracy_score(labels, predicted))


def accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Fraction of rows predicted right."""
    from sklearn.metrics import accuracy_score

    if len(labels) == 0:
        return float("nan")
    return float(accuracy_score(labels, predicted))


def top_k_accuracy(labels: np.ndarray, proba: np.ndarray, k: int) -> float:
    """Fraction of rows whose true class is among the `k` highest scores (ties: lower index
    wins, as `np.argmax` does for top-1).

    scikit-learn's `top_k_accuracy_score` breaks ties toward the higher index, so it is given
    the columns in reverse order. With `k` at least the number of classes every row is a hit;
    `k == 1` is plain accuracy (scikit-learn reads a 2-column score as binary and refuses it).
    """
    from sklearn.metrics import top_k_accuracy_score

    labels = np.asarray(labels)
    n_classes = proba.shape[1]
    if len(labels) == 0:
        return float("nan")
    if k >= n_classes:
        return 1.0
    if k == 1:
        return accuracy(labels, np.argmax(proba, axis=1))
    return float(top_k_accuracy_score(n_classes - 1 - labels, proba[:, ::-1], k=k,
                                      labels=np.arange(n_classes)))


def confusion(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """`(n_classes, n_classes)` counts: row = true class, column = predicted class (zeros on an
    empty split, which scikit-learn refuses)."""
    from sklearn.metrics import confusion_matrix

    if len(labels) == 0:
        return np.zeros((n_classes, n_classes), dtype=np.int64)
    with _expected_label_warnings_ignored():
        return confusion_matrix(labels, predicted, labels=np.arange(n_classes))


def per_class(labels: np.ndarray, predicted: np.ndarray, class_names: list[str],
              train_counts: np.ndarray | None = None) -> list[dict]:
    """Precision, recall, F1, support and how often predicted, for every class of `class_names`
    (0 where undefined, and all 0 on an empty split, which scikit-learn refuses)."""
    from sklearn.metrics import precision_recall_fscore_support

    if len(labels) == 0:
        precision = recall = f1 = support = np.zeros(len(class_names))
    else:
        precision, recall, f1, support = precision_recall_fscore_support(
            labels, predicted, labels=np.arange(len(class_names)), zero_division=0)
    guessed = np.bincount(np.asarray(predicted, np.int64), minlength=len(class_names))
    rows = []
    for index, name in enumerate(class_names):
        row = {"class_index": index, "class": name, "precision": float(precision[index]),
               "recall": float(recall[index]), "f1": float(f1[index]),
               "support": int(support[index]), "predicted": int(guessed[index])}
        if train_counts is not None:
            row["n_train"] = int(train_counts[index])
        rows.append(row)
    return rows


def classification_metrics(labels: np.ndarray, proba: np.ndarray, class_names: list[str],
                           train_labels: np.ndarray | None = None) -> dict:
    """All metrics of a probe on a test split.

    `proba` is `(N, len(class_names))`; the prediction is its argmax. Balanced accuracy and
    macro-F1 follow the module's convention; classes seen in the test split but never in
    training are listed under `unseen_in_train`, and the majority-class baseline (the training
    split's most frequent class) is reported beside the scores.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = len(class_names)
    if proba.shape != (len(labels), n_classes):
        raise ValueError(f"probabilities of shape {proba.shape}, expected {(len(labels), n_classes)}")
    predicted = np.argmax(proba, axis=1)
    train_counts = (np.bincount(train_labels, minlength=n_classes)
                    if train_labels is not None else None)
    rows = per_class(labels, predicted, class_names, train_counts)
    result = {
        "top1": accuracy(labels, predicted),
        "top5": top_k_accuracy(labels, proba, 5),
        **_averages(labels, predicted),
        "n_train": int(len(train_labels)) if train_labels is not None else None,
        "n_test": int(len(labels)),
        "macro_f1_classes": int(len(set(labels.tolist()) | set(predicted.tolist()))),
        "per_class": rows,
        "confusion": confusion(labels, predicted, n_classes).tolist(),
        "class_names": list(class_names),
    }
    if train_counts is not None:
        result["unseen_in_train"] = [r["class"] for r in rows
                                     if r["support"] > 0 and train_counts[r["class_index"]] == 0]
        result["baseline"] = majority_baseline(train_labels, labels, class_names)
    return result


def majority_baseline(train_labels: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict:
    """Always answer the training split's most frequent class."""
    majority = int(np.argmax(np.bincount(train_labels, minlength=len(class_names))))
    predicted = np.full(len(labels), majority)
    return {"method": "majority class", "class": class_names[majority],
            "top1": accuracy(labels, predicted),
            **_averages(labels, predicted)}


@contextmanager
def _expected_label_warnings_ignored():
    """Silence scikit-learn's warnings about classes predicted but absent, or a single class:
    both are cases this module means to score."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")
        yield


def _averages(labels: np.ndarray, predicted: np.ndarray) -> dict:
    return {"balanced_accuracy": balanced_accuracy(labels, predicted),
            "macro_f1": macro_f1(labels, predicted)}


OVERALL_KEYS = ("top1", "top5", "balanced_accuracy", "macro_f1")


def write_metrics_csv(metrics: dict, path: str | Path) -> Path:
    """The per-class table, then one row per overall score (its value in the `f1` column)."""
    columns = ["class_index", "class", "precision", "recall", "f1", "support", "predicted",
               "n_train"]
    rows = [{k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()}
            for row in metrics["per_class"]]
    rows += [{"class": f"overall:{key}", "f1": f"{metrics[key]:.4f}",
              "support": metrics["n_test"], "n_train": metrics.get("n_train")}
             for key in OVERALL_KEYS]
    baseline = metrics.get("baseline")
    if baseline:
        rows += [{"class": f"majority_baseline:{key}", "f1": f"{baseline[key]:.4f}",
                  "support": metrics["n_test"], "n_train": metrics.get("n_train")}
                 for key in ("top1", "macro_f1")]
    return write_csv(path, columns, rows)
