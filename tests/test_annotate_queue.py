"""What to label next (ffclr.annotate.queue) and refits from the new labels (ffclr.annotate.refit,
in the background worker's queue)."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pytest

from ffclr import annotate
from ffclr.annotate.queue import (DrawingEvidence, examine, label_queue, random_order, rank,
                                  uncertainty)
from ffclr.detection.detector import Detection
from ffclr.errors import FfclrError

THRESHOLD = 0.5


def _evidence(scores, margins=None, embedding=(1.0, 0.0), classes=None, knn=None):
    scores = list(scores)
    classes = classes or [0] * len(scores)
    found = [Detection((10.0 * i, 0.0, 8.0, 8.0), k, f"c{k}", k + 1, s)
             for i, (s, k) in enumerate(zip(scores, classes))]
    return DrawingEvidence(found, np.array(margins if margins is not None else [0.9] * len(scores)),
                           np.array(embedding, np.float32),
                           None if knn is None else np.array(knn, np.int64))


def test_boxes_near_the_threshold_come_first_with_the_reason_said():
    sure = _evidence([0.99, 0.97, 0.02, 0.03])
    unsure = _evidence([0.52, 0.45, 0.9], embedding=(0.0, 1.0))
    items = rank({"sure": sure, "unsure": unsure}, THRESHOLD)
    assert [i.drawing_id for i in items] == ["unsure", "sure"]
    assert items[0].score > items[1].score
    assert items[0].reason == "2 boxes near the detection threshold (0.50)."
    assert items[1].reason == "The detector is sure of its 2 boxes."


def test_close_classes_and_knn_disagreement_count_as_uncertain():
    doubt = _evidence([0.9, 0.95], margins=[0.1, 0.8])
    found = uncertainty(doubt, THRESHOLD)
    assert (found.near, found.between, found.disagree, found.shown) == (0, 1, 0, 2)
    assert found.value == pytest.approx(0.8)
    disagree = _evidence([0.9, 0.95, 0.3], classes=[0, 1, 2], knn=[0, 3, -1])
    found = uncertainty(disagree, THRESHOLD)
    assert (found.disagree, found.value) == (1, pytest.approx(1.0 + 1 / 3))
    items = rank({"d": disagree}, THRESHOLD)
    assert items[0].reason == "Probe and kNN disagree on 1 box."


def test_a_drawing_like_one_already_taken_or_labelled_waits():
    twin_a = _evidence([0.5, 0.5], embedding=(1.0, 0.0))
    twin_b = _evidence([0.5, 0.5], embedding=(0.99, 0.01))
    other = _evidence([0.5, 0.6], embedding=(0.0, 1.0))
    order = [i.drawing_id for i in rank({"a": twin_a, "b": twin_b, "o": other}, THRESHOLD)]
    assert order == ["a", "o", "b"]
    labelled_like_a = [np.array([1.0, 0.0])]
    items = rank({"a": twin_a, "o": other}, THRESHOLD, labelled_like_a)
    assert [i.drawing_id for i in items] == ["o", "a"]
    assert items[1].reason.endswith("much like a drawing labelled or queued before it.")


def test_random_order_is_a_seeded_shuffle():
    keys = list(range(20))
    first = [i.drawing_id for i in random_order(keys, seed=3)]
    assert sorted(first) == keys and first != keys
    assert first == [i.drawing_id for i in random_order(keys, seed=3)]
    assert first != [i.drawing_id for i in random_order(keys, seed=4)]
    assert random_order(keys, 3)[0].reason == "Random order (seed 3)."


def test_examine_sees_what_detection_sees(detector, demo_export):  # noqa: F811
    from ffclr.detection import detect_image
    from ffclr.detection.images import read_drawing
    from ffclr.detection.training import read_labelled_split

    item = read_labelled_split(demo_export, "valid").images[0]
    evidence = examine(detector, read_drawing(item.path)[0])
    expected = detect_image(detector, item.path, min_score=0.0)
    assert [(d.bbox, d.class_index, d.score) for d in evidence.detections] == \
        [(d.bbox, d.class_index, d.score) for d in expected]
    assert len(evidence.class_margins) == len(expected)
    assert np.all((evidence.class_margins >= 0) & (evidence.class_margins <= 1))
    assert evidence.embedding.shape == (detector.encoder.feature_dim,)
    assert 0 < np.linalg.norm(evidence.embedding) <= 1 + 1e-5


@pytest.fixture
def with_drawings(workspace, demo_export, tmp_path):
    from ffclr.data.coco_import import import_export
    from ffclr.demo.scene import draw_schematic

    import_export(demo_export, "demo", workspace)
    paths = []
    for seed in (11, 12, 13):
        paths.append(tmp_path / f"new{seed}.png")
        draw_schematic(np.random.default_rng(seed), []).image.save(paths[-1])
    added = annotate.add_drawings(workspace, "demo", paths, split="train")
    return workspace, [d["id"] for d in added.added]


def test_queue_holds_the_drawings_not_yet_annotated(with_drawings, detector_file,  # noqa: F811
                                                    tiny_checkpoint):  # noqa: F811
    workspace, ids = with_drawings
    items = label_queue(workspace, "demo", detector_file, checkpoint=tiny_checkpoint)
    assert sorted(i.drawing_id for i in items) == sorted(ids)
    assert all(i.reason.endswith(".") and len(i.reason) < 200 for i in items)
    assert [i.score for i in items] == sorted((i.score for i in items), reverse=True)
    box = annotate.add_box(workspace, ids[0], (5, 5, 20, 20), 0)
    assert box.who == "person"
    annotate.finish_drawing(workspace, ids[0])
    again = label_queue(workspace, "demo", detector_file)
    assert sorted(i.drawing_id for i in again) == sorted(ids[1:])
    shuffled = label_queue(workspace, "demo", detector_file, order="random", seed=1)
    assert sorted(i.drawing_id for i in shuffled) == sorted(ids[1:])
    with pytest.raises(FfclrError, match="order 'smart'"):
        label_queue(workspace, "demo", detector_file, order="smart")


def test_a_rebuilt_queue_detects_only_what_the_detector_has_not_seen(with_drawings,
                                                                      detector_file,  # noqa: F811
                                                                      monkeypatch, tmp_path):
    import shutil

    from ffclr.annotate import queue

    workspace, ids = with_drawings
    examined = []
    real = queue.examine
    monkeypatch.setattr(queue, "examine", lambda *a, **k: examined.append(1) or real(*a, **k))
    first = label_queue(workspace, "demo", detector_file)
    assert len(examined) == len(ids)
    kept = sorted((workspace.cache / "queue-evidence").glob("*.npz"))
    assert len(kept) == len(ids)
    again = label_queue(workspace, "demo", detector_file)
    assert len(examined) == len(ids)
    assert [(i.drawing_id, i.score, i.reason) for i in again] == \
        [(i.drawing_id, i.score, i.reason) for i in first]

    kept[0].write_bytes(b"not a cache")  # a damaged entry is detected again
    label_queue(workspace, "demo", detector_file)
    assert len(examined) == len(ids) + 1
    other = tmp_path / "other.npz"  # another detector file: its own entries
    shutil.copy(detector_file, other)
    label_queue(workspace, "demo", other)
    assert len(examined) == 2 * len(ids) + 1


def test_annotated_drawings_are_embedded_once_per_set_of_boxes(with_drawings,
                                                                detector_file,  # noqa: F811
                                                                monkeypatch):
    from ffclr.annotate import queue

    workspace, ids = with_drawings
    embedded = []
    real = queue.labelled_embedding
    monkeypatch.setattr(queue, "labelled_embedding",
                        lambda *a, **k: embedded.append(1) or real(*a, **k))
    box = annotate.add_box(workspace, ids[0], (5, 5, 20, 20), 0)
    annotate.finish_drawing(workspace, ids[0])
    first = label_queue(workspace, "demo", detector_file)
    again = label_queue(workspace, "demo", detector_file)
    assert len(embedded) == 1
    assert [(i.drawing_id, i.score) for i in again] == [(i.drawing_id, i.score) for i in first]
    annotate.move_box(workspace, box.id, (8, 8, 20, 20))
    label_queue(workspace, "demo", detector_file)
    assert len(embedded) == 2
    points = list((workspace.cache / "queue-evidence").glob("*-labelled-*.npy"))
    assert len(points) == 1, "the point of the earlier boxes is replaced"


def _wait(condition, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.5)
    return None


def test_refit_waits_behind_pretraining_and_records_old_and_new(with_drawings, demo_export,
                                                                 detector_file,  # noqa: F811
                                                                 tiny_checkpoint):  # noqa: F811
    from ffclr.annotate.refit import RefitConfig, start_refit
    from ffclr.detection.training import read_labelled_split
    from ffclr.train import jobs

    workspace, ids = with_drawings
    for drawing_id in ids[:2]:
        annotate.preannotate(workspace, drawing_id, detector_file)
        annotate.accept_above(workspace, drawing_id, 0.0)
        annotate.finish_drawing(workspace, drawing_id)
    before = hashlib.sha256(Path(detector_file).read_bytes()).hexdigest()
    with workspace.open_store() as store:
        pretraining = store.create_run("pretrain", {}, status="running")
        store.update_run(pretraining, pid=os.getpid())
    run_id = start_refit(workspace, RefitConfig("demo", str(tiny_checkpoint),
                                                detector=str(detector_file)))
    time.sleep(3)
    assert jobs.status(workspace, run_id)["status"] == "queued"
    with workspace.open_store() as store:
        store.finish_run(pretraining, "finished")
    run = _wait(lambda: (r := jobs.status(workspace, run_id))["status"] not in
                ("queued", "running") and r, 900)
    assert run and run["status"] == "finished", jobs.worker_log(workspace, run_id).read_text()
    summary = run["summary"]
    export_train = read_labelled_split(demo_export, "train").images
    assert summary["drawings"] == len(export_train) + 2
    assert Path(summary["detector"]).is_file()
    assert Path(summary["detector"]).parent == workspace.root / "detectors"
    for key in ("detector_new", "detector_old"):
        assert 0.0 <= summary[key]["mAP50"] <= 1.0 and summary[key]["drawings"] > 0
    assert summary["probe_old"] is None and 0.0 < summary["probe_new"]["top1"] <= 1.0
    assert hashlib.sha256(Path(detector_file).read_bytes()).hexdigest() == before


def test_refit_refuses_bad_settings_in_one_line(with_drawings, tiny_checkpoint):  # noqa: F811
    from ffclr.annotate.refit import RefitConfig, start_refit

    workspace, _ = with_drawings
    with pytest.raises(FfclrError, match="no imported dataset named 'nope'"):
        start_refit(workspace, RefitConfig("nope", str(tiny_checkpoint)))
    with pytest.raises(FfclrError, match="gone.pth.tar: no such checkpoint"):
        start_refit(workspace, RefitConfig("demo", "gone.pth.tar"))
    with pytest.raises(FfclrError, match="both are 'train'"):
        start_refit(workspace, RefitConfig("demo", str(tiny_checkpoint), eval_split="train"))
    with workspace.open_store() as store:
        assert store.runs(kind="refit") == []


def test_a_queued_refit_keeps_absolute_paths_and_can_be_cancelled(with_drawings, monkeypatch,
                                                                  tiny_checkpoint):  # noqa: F811
    from ffclr.annotate.refit import RefitConfig, start_refit
    from ffclr.train import jobs

    workspace, _ = with_drawings
    monkeypatch.chdir(tiny_checkpoint.parent)
    with workspace.open_store() as store:
        pretraining = store.create_run("pretrain", {}, status="running")
        store.update_run(pretraining, pid=os.getpid())
    run_id = start_refit(workspace, RefitConfig("demo", tiny_checkpoint.name))
    queued = jobs.status(workspace, run_id)
    assert queued["kind"] == "refit" and queued["status"] == "queued"
    assert queued["config"]["checkpoint"] == str(tiny_checkpoint.resolve())
    jobs.cancel(workspace, run_id)
    run = _wait(lambda: (r := jobs.status(workspace, run_id))["status"] != "queued" and r, 120)
    assert run and run["status"] == "cancelled"
    with workspace.open_store() as store:
        store.finish_run(pretraining, "finished")
