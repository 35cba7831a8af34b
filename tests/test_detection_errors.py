"""The TIDE-style error breakdown and the size buckets of detection scoring, on hand-made boxes."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ffclr.detection.detector import Detection
from ffclr.detection.evaluation import error_breakdown, labelled_scores
from ffclr.detection.training import LabelledImage


def _found(x, y, w, h, cls, score):
    return Detection(bbox=(x, y, w, h), class_index=cls, class_name=str(cls), category_id=cls + 1,
                     score=score)


def _drawing():
    boxes = np.array([[0, 0, 30, 30], [100, 0, 130, 30], [200, 0, 230, 30], [300, 0, 330, 30],
                      [400, 0, 430, 30], [0, 100, 60, 160]], np.float64)
    return LabelledImage(path=Path("d.png"), boxes=boxes, classes=np.array([0, 0, 1, 1, 0, 1]))


def test_each_shown_box_is_one_hit_or_one_kind_of_error():
    found = [_found(0, 0, 30, 30, 0, 0.9),       # hit
             _found(1, 0, 30, 30, 0, 0.8),       # duplicate of the first box
             _found(100, 0, 30, 30, 1, 0.7),     # right place, wrong class
             _found(200, 0, 60, 60, 1, 0.6),     # right class, IoU 0.25
             _found(300, 0, 60, 60, 0, 0.6),     # wrong class, IoU 0.25
             _found(600, 600, 30, 30, 0, 0.5),   # nothing there
             _found(400, 0, 30, 30, 0, 0.1)]     # a hit, but below the threshold
    counts = error_breakdown([_drawing()], [found], min_score=0.3)
    assert {k: v for k, v in counts.items() if k not in ("min_score", "boxes")} == {
        "hit": 1, "duplicate": 1, "classification": 1, "localisation": 1, "both": 1,
        "background": 1, "missed": 2}
    assert counts["boxes"] == 6
    assert error_breakdown([_drawing()], [found], min_score=0.0)["missed"] == 1


def test_scores_by_box_side_split_the_boxes_into_buckets():
    item = _drawing()
    perfect = [_found(x0, y0, x1 - x0, y1 - y0, int(c), 0.9)
               for (x0, y0, x1, y1), c in zip(item.boxes.tolist(), item.classes)]
    scores = labelled_scores([item], [perfect[:5]], ["a", "b"], [1, 2])
    assert {k: v["boxes"] for k, v in scores["by_size"].items()} == {
        "small": 0, "medium": 5, "large": 1}
    assert scores["by_size"]["medium"]["AR100"] == 1.0
    assert scores["by_size"]["large"]["AR100"] == 0.0
