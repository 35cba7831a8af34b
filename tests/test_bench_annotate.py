"""`python -m ffclr bench annotate`: the simulated labeller's action counts, the learning curve's
bookkeeping, and a run on the demo export."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ffclr.benchmarks import annotate as bench

TRUTH = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10],
                  [80, 0, 90, 10]], float)
TRUTH_CLASSES = np.array([0, 1, 2, 3, 4])


def test_each_kind_of_mistake_costs_what_the_issue_says():
    boxes = np.array([
        [0, 0, 10, 10],      # right box, right class: free
        [21, 0, 31, 10],     # IoU 0.82, wrong class: change the class
        [40, 0, 50, 13],     # IoU 0.77, right class: free
        [62, 0, 72, 12],     # IoU 0.55, right class: adjust
        [200, 0, 210, 10],   # nothing there: delete
    ], float)
    classes = np.array([0, 9, 2, 3, 1])
    row = bench.drawing_actions(boxes, classes, TRUTH, TRUTH_CLASSES)
    assert {k: row[k] for k in ("correct", "adjust", "wrong_class", "adjust_and_class", "false",
                                "missed")} == {"correct": 2, "adjust": 1, "wrong_class": 1,
                                               "adjust_and_class": 0, "false": 1, "missed": 1}
    assert row["actions_scratch"] == 10.0
    assert row["actions_assisted"] == 1 + 1 + 1 + 1 + 2  # accept, adjust, class, delete, missed
    both = bench.drawing_actions(np.array([[62, 0, 72, 12]], float), np.array([0]),
                                 TRUTH[3:4], TRUTH_CLASSES[3:4])
    assert (both["adjust_and_class"], both["actions_assisted"]) == (1, 1 + 2)


def test_nothing_proposed_costs_labelling_from_scratch_plus_the_accept():
    row = bench.drawing_actions(np.zeros((0, 4)), np.zeros(0, int), TRUTH, TRUTH_CLASSES)
    assert row["missed"] == 5 and row["actions_assisted"] == 1 + 10
    empty = bench.drawing_actions(TRUTH[:1], TRUTH_CLASSES[:1], np.zeros((0, 4)), np.zeros(0))
    assert (empty["false"], empty["actions_assisted"], empty["actions_scratch"]) == (1, 2.0, 0.0)


def test_curve_points_and_the_fraction_that_reaches_random_final():
    assert bench.curve_points(100, 10, 6) == [10, 25, 40, 55, 70, 85, 100]
    assert bench.curve_points(9, 20, 2) == [8, 9]
    with pytest.raises(Exception, match="at least 2 drawings"):
        bench.curve_points(1, 1, 2)
    points = [10, 40, 70, 100]
    assert bench.reach_fraction(points, np.array([0.5, 0.8, 0.9, 0.9]), 0.8) == 0.4
    assert bench.reach_fraction(points, np.array([0.5, 0.6, 0.7, 0.75]), 0.8) is None


class _FakeCurve:
    """Refits that remember which drawings they learnt from; mAP = share of drawings 0-4 seen."""

    def __init__(self, n: int):
        self.fit_data = type("Split", (), {"images": list(range(n))})()
        self.fits = []

    def fit(self, rows, seed):
        self.fits.append(sorted(int(r) for r in rows))
        return tuple(self.fits[-1])

    def score(self, detector) -> float:
        return sum(r < 5 for r in detector) / 5


def test_one_seed_labels_every_drawing_once_in_each_order(monkeypatch):
    curve = _FakeCurve(20)
    monkeypatch.setattr(bench, "queue_next",
                        lambda curve, detector, labelled, pool, n: sorted(pool)[:n])
    points = bench.curve_points(20, 4, 4)
    scores = bench.one_seed(curve, seed=0, points=points)
    assert len(scores["queue"]) == len(scores["random"]) == len(points)
    assert scores["queue"][0] == scores["random"][0] and scores["queue"][-1] == \
        scores["random"][-1] == 1.0
    assert scores["queue"][1] >= scores["random"][1]
    assert curve.fits[0] == sorted(curve.fits[0]) and len(curve.fits[0]) == 4
    assert len(curve.fits) == 1 + 2 * (len(points) - 2) + 1  # the final fit is shared
    assert all(len(f) == len(set(f)) for f in curve.fits)


def test_bench_annotate_on_the_demo_export(demo_export, detector_file,  # noqa: F811
                                           tiny_checkpoint, tmp_path):  # noqa: F811
    from ffclr.cli import main
    from ffclr.detection.training import read_labelled_split

    out = tmp_path / "annotate.json"
    assert main(["bench", "annotate", "--export", str(demo_export), "--checkpoint",
                 str(tiny_checkpoint), "--detector", str(detector_file), "--split", "valid",
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    valid = read_labelled_split(demo_export, "valid").images
    assert [r["file_name"] for r in result["per_drawing"]] == [i.path.name for i in valid]
    assert result["actions_scratch"] == 2 * sum(len(i.boxes) for i in valid)
    assert result["actions_assisted"] == sum(r["actions_assisted"] for r in result["per_drawing"])
    assert result["ratio"] == pytest.approx(result["actions_assisted"] / result["actions_scratch"])
    for row in result["per_drawing"]:
        assert row["correct"] + row["adjust"] + row["wrong_class"] + row["adjust_and_class"] + \
            row["missed"] == row["symbols"]
    assert 0.0 <= result["map50"] <= 1.0
    assert list(result["ratio_by_threshold"]) == [f"{t:.2f}" for t in bench.THRESHOLDS]
    assert all(r >= 0 for r in result["ratio_by_threshold"].values())
