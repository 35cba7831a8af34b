"""The size prior: each class's box size learned from labelled boxes, centred on each drawing's
own scale, and what it does to the detections (no model)."""
import numpy as np
from PIL import Image

from ffclr.detection.boxes import MarginModel
from ffclr.detection.detector import Detector, detections_from_scores
from ffclr.detection.sizes import SizePrior, log_sizes


def _boxes(sides, x0=0.0) -> np.ndarray:
    return np.array([[x0 + 50 * i, 0, x0 + 50 * i + w, h] for i, (w, h) in enumerate(sides)],
                    float)


def test_fit_learns_each_class_size_and_the_spread_around_it():
    rng = np.random.default_rng(0)
    small = np.exp(np.log([20, 10]) + rng.normal(0, 0.1, (200, 2)))
    large = np.exp(np.log([40, 40]) + rng.normal(0, 0.1, (200, 2)))
    boxes = _boxes(np.concatenate([small, large, [[9, 9]]]))
    classes = np.r_[np.zeros(200), np.ones(200), [2]].astype(int)
    prior = SizePrior.fit(boxes, classes, n_classes=4)
    assert np.allclose(np.exp(prior.log_size[:2]), [[20, 10], [40, 40]], rtol=0.03)
    assert np.allclose(prior.spread, 0.1, atol=0.015)
    overall = np.median(log_sizes(boxes), axis=0)
    assert np.allclose(prior.log_size[2], overall) and np.allclose(prior.log_size[3], overall)


def test_a_box_of_its_class_size_keeps_its_score_and_other_sizes_lose_it():
    prior = SizePrior(np.log([[20.0, 10.0], [40.0, 40.0]]), np.array([0.1, 0.1]))
    boxes = _boxes([[20, 10], [40, 40], [10, 10], [20, 10]])
    likely = prior.likelihood(boxes, np.array([0, 1, 1, 1]), scale=0.0)
    assert np.allclose(likely[:2], 1.0)
    assert likely[2] < 1e-6 and likely[3] < 1e-3


def test_the_prior_follows_a_drawing_drawn_at_another_scale():
    prior = SizePrior(np.log([[20.0, 10.0], [40.0, 40.0]]), np.array([0.1, 0.1]))
    classes = np.array([0, 0, 1, 1, 1, 0])
    native = _boxes([[20, 10], [20, 10], [40, 40], [40, 40], [40, 40], [10, 5]])
    scores = np.array([0.95, 0.97, 0.99, 0.92, 0.96, 0.95])
    kept, at_native = prior.rescore(native, classes, scores, min_score=0.9)
    assert np.array_equal(kept, native)  # shrink 0: the boxes stay as they are
    twice = native * 2
    at_twice = prior.rescore(twice, classes, scores, min_score=0.9)[1] / scores
    at_native = at_native / scores
    assert np.allclose(at_twice, at_native)
    assert np.allclose(at_twice[:5], 1.0) and at_twice[5] < 1e-6
    assert np.isclose(SizePrior.drawing_scale(prior.deviation(twice, classes), scores, 0.9),
                      np.log(2))
    # no detection sure enough to read the scale from: the training drawings' scale
    nothing_confident = prior.rescore(twice, classes, scores * 0.5, min_score=0.9)[1] / (
        scores * 0.5)
    assert np.all(nothing_confident[:5] < 1e-6) and np.isclose(nothing_confident[5], 1.0)


def test_shrink_is_the_share_of_the_way_to_the_class_size_that_fits_the_labels_best():
    """Labelled sizes scatter around the class's size, and each box's size around its label's
    by as much: halfway between the box and the class is the best guess."""
    rng = np.random.default_rng(1)
    truth_log = np.log(30.0) + rng.normal(0, 0.1, (4000, 2))
    box_log = truth_log + rng.normal(0, 0.1, (4000, 2))
    truth, boxes = _boxes(np.exp(truth_log)), _boxes(np.exp(box_log))
    classes, drawing = np.zeros(4000, int), np.arange(4000) // 100
    prior = SizePrior.fit(truth, classes, n_classes=1).fit_shrink(boxes, truth, classes, drawing)
    assert np.allclose(prior.shrink, 0.5, atol=0.06)
    one = SizePrior(np.log([[30.0, 30.0]]), np.array([0.1, 0.1]), np.array([0.5, 0.0]))
    moved = one.towards_class_size(np.array([[100, 50, 140, 70]], float), np.array([0]), 0.0)
    assert np.allclose(moved, [[120 - np.sqrt(1200) / 2, 50, 120 + np.sqrt(1200) / 2, 70]])
    at_twice = one.towards_class_size(np.array([[100, 50, 140, 70]], float), np.array([0]),
                                      np.log(2))
    assert np.allclose(at_twice[0, 2] - at_twice[0, 0], np.sqrt(40 * 60))


def _detector(prior) -> Detector:
    coef = np.zeros((3, 4, 2))
    return Detector(encoder=None, probe=None, class_names=["bell", "horn"],
                    category_ids=[11, 12], margins=MarginModel(coef), pixel_filter=None,
                    score_threshold=0.5, size_prior=prior)


def test_the_whole_symbol_wins_over_half_of_it_and_a_symbol_with_its_wire():
    """Three stroke groups of one bell (the probe scores them alike): the whole bell, its left
    half, the bell with a stub of wire. Without the prior NMS keeps the one the probe happens to
    score highest; with it, the whole bell, and a lone box of no symbol's size is dropped."""
    prior = SizePrior(np.log([[30.0, 30.0], [60.0, 20.0]]), np.array([0.15, 0.15]))
    cores = np.array([[10, 10, 40, 40], [10, 10, 28, 40], [10, 10, 52, 40], [100, 100, 104, 104],
                      [200, 10, 230, 40]], float)
    proba = np.array([[0.90, 0.0, 0.10], [0.93, 0.0, 0.07], [0.92, 0.0, 0.08],
                      [0.95, 0.0, 0.05], [0.97, 0.0, 0.03]])
    blank = Image.new("RGB", (300, 300), "white")
    plain = detections_from_scores(_detector(None), blank, cores, proba, 0.02)
    assert {d.bbox for d in plain} == {(200.0, 10.0, 30.0, 30.0), (100.0, 100.0, 4.0, 4.0),
                                       (10.0, 10.0, 18.0, 30.0), (10.0, 10.0, 42.0, 30.0)}
    found = detections_from_scores(_detector(prior), blank, cores, proba, 0.02)
    assert [d.bbox for d in found] == [(200.0, 10.0, 30.0, 30.0), (10.0, 10.0, 30.0, 30.0)]
    assert found[1].score == 0.9
