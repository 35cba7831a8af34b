import csv

import numpy as np
import pytest

from ffclr.eval.metrics import (balanced_accuracy, classification_metrics, confusion, macro_f1,
                                majority_baseline, top_k_accuracy, write_metrics_csv)

NAMES = ["a", "b", "c", "d"]


def one_hot(predicted, n=4):
    proba = np.zeros((len(predicted), n))
    proba[np.arange(len(predicted)), predicted] = 1.0
    return proba


def test_hand_computed_case():
    labels = np.array([0, 0, 1, 2, 2, 2])
    predicted = np.array([0, 1, 1, 2, 2, 0])
    m = classification_metrics(labels, one_hot(predicted), NAMES, train_labels=np.array([0, 1, 1, 2]))
    assert m["top1"] == pytest.approx(4 / 6)
    assert m["confusion"] == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    rows = {r["class"]: r for r in m["per_class"]}
    assert (rows["a"]["precision"], rows["a"]["recall"], rows["a"]["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    assert (rows["b"]["precision"], rows["b"]["recall"], rows["b"]["f1"]) == pytest.approx((0.5, 1.0, 2 / 3))
    assert (rows["c"]["precision"], rows["c"]["recall"], rows["c"]["f1"]) == pytest.approx((1.0, 2 / 3, 0.8))
    assert rows["d"]["support"] == 0 and rows["c"]["support"] == 3
    assert m["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0.8) / 3)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1.0 + 2 / 3) / 3)
    assert m["n_test"] == 6 and m["n_train"] == 4
    assert [r["n_train"] for r in m["per_class"]] == [1, 2, 1, 0]
    assert [r["predicted"] for r in m["per_class"]] == [2, 2, 2, 0]
    assert m["macro_f1_classes"] == 3


def test_macro_f1_counts_present_or_predicted_classes_and_balanced_accuracy_present_ones():
    labels = np.array([0, 0, 1, 1])
    predicted = np.array([0, 3, 1, 1])
    # F1: class 0 = 2/3 (precision 1, recall 1/2), class 1 = 1, class 3 (predicted, absent) = 0;
    # classes 2 and 4 are neither present nor predicted and are left out.
    assert macro_f1(labels, predicted) == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert balanced_accuracy(labels, predicted) == pytest.approx((1 / 2 + 1) / 2)
    m = classification_metrics(labels, one_hot(predicted, 5), NAMES + ["e"])
    assert (m["macro_f1"], m["balanced_accuracy"]) == pytest.approx((5 / 9, 3 / 4))
    assert [r["f1"] for r in m["per_class"]] == pytest.approx([2 / 3, 1, 0, 0, 0])
    assert [r["precision"] for r in m["per_class"]] == pytest.approx([1, 1, 0, 0, 0])


def test_empty_test_split_scores_are_nan_and_rows_are_kept():
    m = classification_metrics(np.array([], dtype=int), np.zeros((0, 4)), NAMES, np.array([0, 1]))
    assert all(np.isnan(m[k]) for k in ("top1", "top5", "balanced_accuracy", "macro_f1"))
    assert [r["support"] for r in m["per_class"]] == [0, 0, 0, 0]
    assert m["confusion"] == [[0] * 4] * 4 and np.isnan(m["baseline"]["macro_f1"])


def test_top_k():
    proba = np.array([[0.5, 0.3, 0.2, 0.0], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    labels = np.array([1, 0, 3])
    assert top_k_accuracy(labels, proba, 1) == 0.0
    assert top_k_accuracy(labels, proba, 2) == pytest.approx(1 / 3)
    assert top_k_accuracy(labels, proba, 4) == 1.0
    assert top_k_accuracy(labels, proba, 5) == 1.0


def test_top_k_ties_go_to_the_lower_index_as_in_top1():
    proba = np.array([[0.4, 0.2, 0.2, 0.2]] * 3)
    labels = np.array([1, 1, 3])
    assert top_k_accuracy(labels, proba, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(labels, proba, 3) == pytest.approx(2 / 3)
    assert top_k_accuracy(np.array([1, 1, 2]), proba[:, :3], 2) == pytest.approx(2 / 3)
    assert classification_metrics(np.array([1]), np.array([[0, 0.5, 0.5, 0]]), NAMES)["top1"] == 1.0


def test_top_k_with_one_or_two_columns():
    assert top_k_accuracy(np.array([0, 0]), np.ones((2, 1)), 5) == 1.0
    two = np.array([[0.7, 0.3], [0.5, 0.5], [0.2, 0.8]])
    assert top_k_accuracy(np.array([1, 0, 0]), two, 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(np.array([1, 0, 0]), two, 2) == 1.0


def test_unseen_class_and_majority_baseline():
    train = np.array([0, 0, 0, 1])
    labels = np.array([0, 1, 2, 2])
    m = classification_metrics(labels, one_hot(np.array([0, 1, 0, 0]), 3), NAMES[:3], train)
    assert m["unseen_in_train"] == ["c"]
    base = majority_baseline(train, labels, NAMES[:3])
    assert base["class"] == "a" and base["top1"] == pytest.approx(0.25)
    assert m["baseline"] == base
    assert base["balanced_accuracy"] == pytest.approx(1 / 3)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        classification_metrics(np.array([0, 1]), np.ones((2, 3)), NAMES)


def test_confusion_counts():
    assert confusion(np.array([0, 1, 1]), np.array([1, 1, 1]), 2).tolist() == [[0, 1], [0, 2]]


def test_csv_has_per_class_and_overall_rows(tmp_path):
    labels = np.array([0, 1, 2, 2])
    m = classification_metrics(labels, one_hot(np.array([0, 1, 2, 0])), NAMES, np.array([0, 1, 2]))
    path = write_metrics_csv(m, tmp_path / "m.csv")
    rows = list(csv.DictReader(path.open()))
    assert [r["class"] for r in rows[:4]] == NAMES
    overall = {r["class"]: float(r["f1"]) for r in rows[4:]}
    assert overall["overall:top1"] == pytest.approx(0.75)
    assert overall["overall:macro_f1"] == pytest.approx(m["macro_f1"], abs=1e-4)
    assert "majority_baseline:top1" in overall
