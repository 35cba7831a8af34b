"""The second detection pass for drawings at another scale than the training drawings."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ffclr.detection.detector import Detection
from ffclr.detection.rescale import merged_passes, rescale_factor, resampled, scaled_back


def _detection(x, y, w, h, class_index, score):
    return Detection(bbox=(x, y, w, h), class_index=class_index, class_name=f"c{class_index}",
                     category_id=class_index + 1, score=score)


def test_only_a_drawing_read_beyond_the_bound_is_resampled_and_by_a_bounded_factor():
    assert rescale_factor(np.log(1.1), 1.16) is None
    assert rescale_factor(-np.log(1.1), 1.16) is None
    assert rescale_factor(np.log(1.5), None) is None
    assert rescale_factor(np.log(1.5), 1.16) == pytest.approx(1 / 1.5)
    assert rescale_factor(np.log(0.8), 1.16) == pytest.approx(1.25)
    assert rescale_factor(np.log(10.0), 1.16) == 0.5
    assert rescale_factor(np.log(0.1), 1.16) == 2.0


def test_resampling_keeps_the_aspect_and_refuses_to_pass_the_pixel_limit():
    image = Image.new("RGB", (400, 300), "white")
    assert resampled(image, 0.5).size == (200, 150)
    assert resampled(image, 2.0, max_pixels=400 * 300 * 4).size == (800, 600)
    assert resampled(image, 2.0, max_pixels=400 * 300 * 4 - 1) is None


def test_boxes_found_on_the_resampled_drawing_come_back_in_its_own_pixels():
    found = [_detection(10, 20, 30, 40, 0, 0.9), _detection(190, 140, 20, 20, 1, 0.5),
             _detection(205, 100, 10, 10, 1, 0.4)]
    back, rows = scaled_back(found, 0.5, (400, 300))
    assert rows.tolist() == [0, 1]
    assert [d.bbox for d in back] == [(20, 40, 60, 80), (380, 280, 20, 20)]
    assert [d.score for d in back] == [0.9, 0.5]
    assert back[0].class_name == "c0"


def test_the_second_pass_adds_boxes_only_where_the_first_shows_none():
    first = [_detection(0, 0, 30, 30, 0, 0.9), _detection(100, 100, 30, 30, 1, 0.05)]
    second = [_detection(2, 2, 30, 30, 1, 0.95),
              _detection(101, 101, 30, 30, 1, 0.6),
              _detection(300, 0, 20, 20, 2, 0.3)]
    assert merged_passes(first, second, shown_threshold=0.1, nms_iou=0.5).tolist() == [0, 3, 4]
    assert merged_passes(first, [], 0.1, 0.5).tolist() == [0, 1]
    assert merged_passes([], second, 0.1, 0.5).tolist() == [0, 1, 2]


def test_a_detector_saved_before_the_second_pass_detects_in_one_pass(detector_file, tmp_path):
    from ffclr.detection import load_detector

    assert load_detector(detector_file).config.rescale_beyond == 1.16
    with np.load(detector_file, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(str(arrays["meta"]))
    del meta["config"]["rescale_beyond"]
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "older.npz", **arrays)
    assert load_detector(tmp_path / "older.npz").config.rescale_beyond is None



def _found(detector, images, items):
    """Labelled boxes found with their class (IoU ≥ 0.5) at the detector's threshold."""
    from ffclr.detection.boxes import match_detections, xywh_to_xyxy
    from ffclr.detection.detector import detect_rgb

    total = 0
    for image, item in zip(images, items):
        found = detect_rgb(detector, image)
        total += match_detections(xywh_to_xyxy([d.bbox for d in found]),
                                  np.array([d.class_index for d in found], np.int64),
                                  item.boxes, item.classes)[1].sum()
    return int(total)


def test_a_drawing_exported_larger_is_detected_again_at_the_training_scale(detector,
                                                                           demo_export):
    """The demo drawings at 1.5 times their size: the one pass loses symbols that the second,
    at the scale the size prior reads, finds; a drawing read at the training scale is left as
    one pass found it."""
    from dataclasses import replace

    from ffclr.detection.detector import _detect_once, detect_rgb
    from ffclr.detection.images import read_drawing
    from ffclr.detection.training import read_labelled_split

    one_pass = replace(detector, config=replace(detector.config, rescale_beyond=None))
    items = read_labelled_split(demo_export, "train").images
    drawings = [read_drawing(item.path)[0] for item in items]
    larger = [d.resize((round(d.width * 1.5), round(d.height * 1.5)), Image.LANCZOS)
              for d in drawings]
    scaled = [replace(item, boxes=item.boxes * 1.5) for item in items]
    assert _found(detector, larger, scaled) >= _found(one_pass, larger, scaled) + 3
    within = [d for d in drawings if abs(_detect_once(detector, d).log_scale) <= np.log(1.16)]
    assert within
    for drawing in within:
        assert detect_rgb(detector, drawing) == detect_rgb(one_pass, drawing)
