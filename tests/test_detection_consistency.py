"""The labels' own consistency: pairs of identical symbols in one drawing, aligned on their ink,
and the share of boxes a detector drawing the mean box would match (hand-made boxes, no model)."""
import numpy as np

from ffclr.detection.consistency import identical_symbols, label_consistency
from ffclr.detection.training import LabelledImage


def _drawing():
    ink = np.array([[10, 10, 30, 30], [100, 10, 120, 30], [10, 100, 30, 120],
                    [200, 200, 240, 240], [300, 300, 320, 320]], float)
    margins = np.array([[5, 5, 5, 5], [5, 5, 5, 5], [5, 5, 9, 5], [5, 5, 5, 5], [5, 5, 5, 5]])
    boxes = np.concatenate([ink[:, :2] - margins[:, :2], ink[:, 2:] + margins[:, 2:]], 1)
    ink[4] = np.nan  # a box no stroke group matched
    return ink, LabelledImage(None, boxes, np.array([0, 0, 0, 1, 0]))


def test_identical_symbols_are_paired_by_class_and_ink_size_and_aligned_on_their_ink():
    first, second = identical_symbols([_drawing()])
    assert len(first) == 3
    assert np.allclose(first - second, [[0, 0, 0, 0], [0, 0, -4, 0], [0, 0, -4, 0]])


def test_consistency_reads_the_pairs_agreement_and_the_mean_box_ceiling():
    found = label_consistency([_drawing()])
    assert found["pairs"] == 3
    assert np.isclose(found["pair_iou_at"]["0.90"], 1 / 3)
    assert found["pair_iou_at"]["0.85"] == 1.0
    assert np.isclose(found["pair_iou_median"], 30 * 30 / (34 * 30))
    recall = found["mean_box_recall_at"]
    assert recall["0.90"] == 1.0 and 0.15 < recall["0.95"] < 0.55
    assert np.isclose(found["mean_box_ar"], np.mean(list(recall.values())))
    assert label_consistency([(np.full((1, 4), np.nan), LabelledImage(
        None, np.array([[0, 0, 5, 5]], float), np.array([0])))]) == {"pairs": 0}
