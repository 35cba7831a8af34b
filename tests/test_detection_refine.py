"""The box refiner: each side of a box moved towards where the annotators put it."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ffclr.detection.boxes import box_iou
from ffclr.detection.refine import (BoxRefiner, DrawingInk, RefinerConfig, design,
                                    drawing_ink, side_moves)

MARGIN = 3
CONFIG = RefinerConfig(grid=16, alpha=1.0)


def _drawing(seed: int, n: int = 12):
    """A drawing of square symbols, each with a wire leaving it on the right, and for each (the
    ink extent of symbol and wire stub, the annotators' box: the square plus MARGIN px)."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (640, 480), "white")
    pen = ImageDraw.Draw(image)
    ink_boxes, truth = [], []
    for row in range(n):
        x, y = 30 + (row % 4) * 150, 40 + (row // 4) * 150
        side, stub = int(rng.integers(18, 30)), int(rng.integers(4, 16))
        pen.rectangle([x, y, x + side, y + side], outline="black", width=2)
        pen.line([x + side, y + side // 2, x + side + stub, y + side // 2], fill="black", width=2)
        ink_boxes.append([x, y, x + side + stub + 1, y + side + 1])
        truth.append([x - MARGIN, y - MARGIN, x + side + 1 + MARGIN, y + side + 1 + MARGIN])
    return image, np.array(ink_boxes, float), np.array(truth, float)


def _paired_iou(a, b):
    return np.diagonal(box_iou(a, b))


def test_the_refiner_learns_the_annotators_box_from_the_ink_around_it():
    inputs, moves = [], []
    for seed in range(4):
        image, boxes, truth = _drawing(seed)
        ink = drawing_ink(image, 40)
        inputs.append(design(ink.windows(boxes, CONFIG), boxes, np.zeros(len(boxes), int), 2))
        moves.append(side_moves(boxes, truth))
    refiner = BoxRefiner.fit(np.concatenate(inputs), np.concatenate(moves), CONFIG)
    image, boxes, truth = _drawing(99)
    refined = refiner.apply(drawing_ink(image, 40), boxes, np.zeros(len(boxes), int))
    before, after = _paired_iou(boxes, truth), _paired_iou(refined, truth)
    assert before.mean() < 0.75
    assert after.mean() > 0.85 and np.all(after > before), (before, after)


def test_a_box_at_the_edge_reads_blank_paper_beyond_the_drawing():
    image = Image.new("RGB", (100, 100), "white")
    ImageDraw.Draw(image).rectangle([0, 0, 19, 19], fill="black")
    ink = DrawingInk(image, np.array([255.0, 255.0, 255.0]), 40)
    window = ink.windows(np.array([[0.0, 0.0, 20.0, 20.0]]), RefinerConfig(grid=4))
    cells = window.reshape(4, 4)
    assert cells[1:3, 1:3].min() > 0.9
    assert cells[0].max() < 0.1 and cells[:, 0].max() < 0.1 and cells[3].max() < 0.1
    assert ink.windows(np.array([[500.0, 500.0, 520.0, 520.0]]), RefinerConfig(grid=4)).sum() == 0


def test_refined_boxes_keep_a_positive_size_whatever_the_weights():
    image = Image.new("RGB", (50, 50), "white")
    shrinking = BoxRefiner(np.zeros((CONFIG.grid ** 2 + 3, 4)), np.array([2.0, 2.0, -2.0, -2.0]),
                           CONFIG)
    boxes = shrinking.apply(drawing_ink(image, 40), np.array([[10.0, 10.0, 30.0, 20.0]]), [0])
    assert np.all(boxes[:, 2:] > boxes[:, :2])
    assert shrinking.apply(drawing_ink(image, 40), np.zeros((0, 4)), []).shape == (0, 4)


def test_a_fitted_detector_refines_its_boxes_and_the_refiner_travels_with_it(detector,
                                                                              tmp_path):
    from dataclasses import replace

    from ffclr.detection import load_detector, save_detector

    assert detector.refiner is not None
    assert detector.refiner.coef.shape == (
        detector.refiner.config.grid ** 2 + len(detector.class_names) + 2, 4)
    again = load_detector(save_detector(detector, tmp_path / "d.npz"))
    assert np.array_equal(again.refiner.coef, detector.refiner.coef)
    assert np.array_equal(again.refiner.intercept, detector.refiner.intercept)
    assert again.config.refinement == detector.config.refinement
    older = load_detector(save_detector(replace(detector, refiner=None), tmp_path / "older.npz"))
    assert older.refiner is None
    off = replace(detector, config=replace(detector.config, refinement=None))
    assert load_detector(save_detector(off, tmp_path / "off.npz")).refiner is None


def test_weights_that_do_not_fit_the_grid_are_refused(detector, tmp_path):
    from dataclasses import replace

    from ffclr.detection import load_detector, save_detector
    from ffclr.errors import FfclrError

    broken = replace(detector.refiner, coef=detector.refiner.coef[:-5])
    path = save_detector(replace(detector, refiner=broken), tmp_path / "broken.npz")
    with pytest.raises(FfclrError, match="refiner weights"):
        load_detector(path)


def test_thresholds_are_chosen_on_drawings_the_probe_and_refiner_did_not_learn_from(detector):
    from ffclr.detection.training import _threshold_folds

    rng = np.random.default_rng(0)
    assert [fold.tolist() for fold in _threshold_folds(5, rng)] == [[0, 1, 2, 3, 4]]
    folds = _threshold_folds(10, rng)
    assert len(folds) == 4 and sorted(np.concatenate(folds).tolist()) == list(range(10))
    folds = _threshold_folds(102, rng)
    judged = np.concatenate(folds)
    assert len(judged) == 48 == len(set(judged.tolist())) and max(map(len, folds)) == 12
    assert detector.info["threshold_held_out"] is (detector.info["images"] >= 8)
    assert detector.info["threshold_images"] == min(detector.info["images"], 48)
