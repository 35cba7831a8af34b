"""Whole-drawing detection on the synthetic demo export, with a tiny random encoder."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ffclr.errors import FfclrError


def _truth(export, split):
    from ffclr.detection.training import read_labelled_split

    return read_labelled_split(export, split)


def _match(detections, item, iou_min=0.5):
    """(hit per detection, matched per labelled box) of one drawing, as COCO evaluation matches."""
    from ffclr.detection.boxes import match_detections, xywh_to_xyxy

    return match_detections(xywh_to_xyxy([d.bbox for d in detections]),
                            np.array([d.class_index for d in detections], np.int64),
                            item.boxes, item.classes, iou_min)


def test_match_takes_detections_in_order_each_the_best_free_box_of_its_class():
    from ffclr.detection.boxes import match_detections

    truth = np.array([[0, 0, 10, 10], [4, 0, 14, 10]], float)
    between = [3, 0, 13, 10]  # IoU 0.54 with the first box, 0.82 with the second
    hit, matched = match_detections(np.array([between, [0, 0, 10, 10]], float), [0, 0],
                                    truth, [0, 0])
    assert hit.tolist() == [True, True] and matched.tolist() == [True, True]
    hit, matched = match_detections(np.array([[1, 1, 11, 11], [0, 0, 10, 10]], float), [0, 0],
                                    truth[:1], [0])
    assert hit.tolist() == [True, False] and matched.tolist() == [True]
    hit, matched = match_detections(truth, [1, 0], truth, [0, 0])
    assert hit.tolist() == [False, True] and matched.tolist() == [False, True]


def test_match_threshold_is_inclusive_and_empty_inputs_match_nothing():
    from ffclr.detection.boxes import match_detections

    half = np.array([[0, 0, 10, 5]], float)  # IoU exactly 0.5 with the labelled box
    truth = np.array([[0, 0, 10, 10]], float)
    assert match_detections(half, [2], truth, [2], 0.5)[0].tolist() == [True]
    assert match_detections(half, [2], truth, [2], 0.5 + 1e-9)[0].tolist() == [False]
    none = np.zeros((0, 4))
    hit, matched = match_detections(none, [], truth, [2])
    assert hit.shape == (0,) and matched.tolist() == [False]
    hit, matched = match_detections(half, [2], none, [])
    assert hit.tolist() == [False] and matched.shape == (0,)
    hit, matched = match_detections(none, [], none, [])
    assert hit.shape == matched.shape == (0,)


def test_finds_the_known_symbols_of_a_schematic(detector, demo_export):
    """The mechanism end to end (proposals, margins, probe, NMS) on the drawings it was fitted
    on: nearly every symbol is boxed by some detection, and most are found with their class at
    score 0.5 (a random 16 px encoder's probe misses some: how well detection generalises is
    measured by `python -m ffclr bench detect` on real data). Found is read at a fixed score:
    the threshold chosen on held-out folds of these few drawings, where such an encoder reaches
    an F1 near 0.3, moves by tenths with any change of the proposals."""
    from ffclr.detection import detect_image
    from ffclr.detection.boxes import box_iou, xywh_to_xyxy

    train = _truth(demo_export, "train")
    found, boxed, total, false = 0, 0, 0, 0
    for item in train.images:
        every = detect_image(detector, item.path, min_score=0.0)
        matched = _match([d for d in every if d.score >= 0.5], item)[1]
        found += matched.sum()
        total += len(matched)
        false += (~_match([d for d in every if d.score >= detector.score_threshold], item)[0]).sum()
        boxed += (box_iou(item.boxes, xywh_to_xyxy([d.bbox for d in every])).max(axis=1)
                  >= 0.5).sum()
    assert total >= 5
    assert boxed / total >= 0.85, (boxed, total)
    assert found / total >= 0.7, (found, total)
    assert false <= 0.5 * total, (false, total)


def test_artifact_is_one_file_that_reloads_to_the_same_detections(detector_file, detector,
                                                                  demo_export, tmp_path):
    from ffclr.detection import detect_image, load_detector

    copy = tmp_path / "moved.npz"
    copy.write_bytes(detector_file.read_bytes())
    item = _truth(demo_export, "valid").images[0]
    again = load_detector(copy)
    assert [d.as_dict() for d in detect_image(again, item.path)] == \
        [d.as_dict() for d in detect_image(detector, item.path)]
    assert np.array_equal(again.size_prior.log_size, detector.size_prior.log_size)
    assert np.array_equal(again.size_prior.spread, detector.size_prior.spread)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(FfclrError, match="not a detector"):
        load_detector(tmp_path / "other.npz")


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK"])
def test_grayscale_rgba_and_cmyk_drawings_work(detector, demo_export, tmp_path, mode):
    """RGBA and CMYK files give the RGB drawing's detections; a grey file gives those of its
    grey pixels as RGB (colour is lost, so fewer symbols are found, but some still are)."""
    from ffclr.detection import detect_image

    item = _truth(demo_export, "train").images[0]
    original = Image.open(item.path).convert("RGB")
    reference = original.convert("L").convert("RGB") if mode == "L" else original
    reference.save(tmp_path / "drawing.png")
    expected = detect_image(detector, tmp_path / "drawing.png")
    path = tmp_path / ("drawing.tif" if mode == "CMYK" else f"drawing-{mode}.png")
    original.convert(mode).save(path)
    assert Image.open(path).mode == mode
    detections = detect_image(detector, path)
    assert detections and [d.as_dict() for d in detections] == [d.as_dict() for d in expected]
    matched = _match(detections, item)[1]
    assert matched.any() if mode == "L" else matched.mean() >= 0.5, (mode, matched)


def test_non_image_and_oversized_image_are_refused(detector, tmp_path):
    from ffclr.detection import detect_image

    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(FfclrError, match="notes.png: not a readable image"):
        detect_image(detector, text)
    big = tmp_path / "big.png"
    Image.new("RGB", (400, 300)).save(big)
    with pytest.raises(FfclrError, match=r"big.png: image is 400×300 = 120,000 pixels, over the limit"):
        detect_image(detector, big, max_pixels=100_000)


def test_cli_writes_coco_that_pycocotools_and_the_importer_read(detector_file, demo_export,
                                                                tmp_path, workspace, capsys):
    from pycocotools.coco import COCO

    from ffclr.cli import main
    from ffclr.data.coco_import import import_export

    valid = _truth(demo_export, "valid")
    export = tmp_path / "reviewed" / "train"
    export.mkdir(parents=True)
    for item in valid.images:
        (export / item.path.name).write_bytes(item.path.read_bytes())
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    out = export / "_annotations.coco.json"
    code = main(["detect", "--detector", str(detector_file), *[str(export / i.path.name)
                 for i in valid.images], str(bad), "--out", str(out), "--viz",
                 str(tmp_path / "viz")])
    err = capsys.readouterr().err
    assert code == 1 and "broken.jpg: not a readable image" in err
    coco = json.loads(out.read_text())
    assert [i["file_name"] for i in coco["images"]] == [i.path.name for i in valid.images]
    assert {c["name"] for c in coco["categories"]} == set(valid.class_names)
    assert coco["annotations"] and all(a["iscrowd"] == 0 and 0 < a["score"] <= 1
                                       and a["area"] > 0 for a in coco["annotations"])
    index = COCO(str(out))
    assert len(index.getAnnIds()) == len(coco["annotations"])
    results = index.loadRes(coco["annotations"])
    assert len(results.anns) == len(coco["annotations"])
    assert len(list((tmp_path / "viz").glob("*.png"))) == len(valid.images)
    imported = import_export(tmp_path / "reviewed", "reviewed", workspace)
    assert imported.crops == len(coco["annotations"])


def test_a_detector_is_found_by_the_name_it_was_saved_under(detector, demo_export, tmp_path):
    from ffclr.cli import main
    from ffclr.detection import load_detector, save_detector

    written = save_detector(detector, tmp_path / "mine")
    assert written == tmp_path / "mine.npz"
    drawing = _truth(demo_export, "valid").images[0].path
    out = tmp_path / "dets.json"
    assert main(["detect", str(drawing), "--detector", str(tmp_path / "mine"),
                 "--out", str(out)]) == 0
    assert json.loads(out.read_text())["images"]
    with pytest.raises(FfclrError, match="other: no such detector file"):
        load_detector(tmp_path / "other")


def test_accept_threshold_is_the_deepest_cut_that_keeps_the_precision():
    from ffclr.detection.training import _precise_threshold

    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    hits = np.array([1, 1, 0, 1, 1, 0], bool)
    threshold, info = _precise_threshold(scores, hits, n_truth=5, precision_min=0.8)
    assert threshold == 0.5 and info["accept_precision"] == 0.8 and info["accept_recall"] == 0.8
    assert _precise_threshold(scores, hits, 5, 0.95)[0] == 0.8
    assert _precise_threshold(scores, ~hits, 5, 0.95) == (None, {"accept_precision": None,
                                                                 "accept_recall": 0.0})


def test_accept_threshold_never_falls_under_the_threshold_of_the_boxes_shown():
    from ffclr.detection.training import _thresholds

    scores, hits = np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 1, 1, 0], bool)
    shown, accept, info = _thresholds(scores, hits, n_truth=10, precision_min=0.7)
    assert shown == accept == 0.7
    assert info["accept_precision"] == 1.0 and info["accept_recall"] == 0.3
    shown, accept, info = _thresholds(scores, hits, n_truth=10, precision_min=0.99)
    assert (shown, accept) == (0.7, 0.7)
    scores, hits = np.array([0.9, 0.8, 0.7, 0.6, 0.5]), np.array([1, 0, 1, 1, 1], bool)
    shown, accept, info = _thresholds(scores, hits, n_truth=4, precision_min=0.9)
    assert (shown, accept) == (0.5, 0.9) and info["accept_recall"] == 0.25


def test_accept_threshold_and_size_prior_travel_with_the_artifact(detector, tmp_path):
    from dataclasses import replace

    from ffclr.detection import load_detector, save_detector

    for value in (0.625, None):
        written = save_detector(replace(detector, accept_threshold=value), tmp_path / "d.npz")
        assert load_detector(written).accept_threshold == value
    older = save_detector(replace(detector, size_prior=None), tmp_path / "before-sizes.npz")
    assert load_detector(older).size_prior is None
    assert detector.accept_threshold is None or detector.score_threshold > 0


def test_bench_detect_reports_errors_sizes_and_the_accept_threshold(detector, demo_export,
                                                                    monkeypatch):
    import ffclr.detection
    from ffclr.benchmarks import detect as bench

    monkeypatch.setattr(ffclr.detection, "fit_detector", lambda *a, **k: detector)
    result = bench.evaluate_checkpoint(Path("tiny.pth.tar"), demo_export, 3, None, (1.5,))
    errors = result["errors_at_threshold"]
    shown = sum(len([d for d in ffclr.detection.detect_image(detector, item.path)])
                for item in _truth(demo_export, "valid").images[:3])
    assert sum(errors[k] for k in ("hit", "classification", "localisation", "both",
                                   "duplicate", "background")) == shown
    assert errors["hit"] + errors["missed"] <= errors["boxes"] == result["valid_boxes"]
    assert sum(v["boxes"] for v in result["by_size"].values()) == result["valid_boxes"]
    accept = result["accept"]
    assert accept["threshold"] == detector.accept_threshold and accept["target_precision"] == 0.95
    lines = "\n".join(bench.report_lines(result))
    assert "shown boxes at the threshold: hit" in lines and "by box side" in lines
    assert "labels' consistency" in lines and result["label_consistency"]["pairs"] >= 0
    larger = result["resolutions"]["1.5"]
    assert set(larger) == {"as_configured", "one_pass"}
    assert all(0 <= v["mAP50"] <= 1 and v["seconds_per_schematic"] > 0 for v in larger.values())
    assert "drawings resampled 1.5x: as configured mAP@50" in lines
    assert larger["as_configured"]["mAP50"] != result["mAP50"]


def test_fitting_holds_one_drawing_at_a_time_and_skips_unreadable_ones(tiny_checkpoint,
                                                                        demo_export, monkeypatch):
    import weakref

    import ffclr.detection.training as training

    alive, most = [0], [0]
    real_read, real_features = training.read_drawing, training.probe_features

    def read(path):
        image, info = real_read(path)
        alive[0] += 1
        weakref.finalize(image, lambda: alive.__setitem__(0, alive[0] - 1))
        return image, info

    def features(detector, image, boxes):
        most[0] = max(most[0], alive[0])
        return real_features(detector, image, boxes)

    monkeypatch.setattr(training, "read_drawing", read)
    monkeypatch.setattr(training, "probe_features", features)
    data = training.read_labelled_split(demo_export, "train")
    broken = data.images[0].path.with_name("broken.jpg")
    broken.write_bytes(b"not a jpeg")
    try:
        data.images.append(training.LabelledImage(broken, data.images[0].boxes,
                                                  data.images[0].classes))
        drawings = training.StreamedDrawings(data, training.DetectorConfig())
        assert len(drawings) == len(data.images) - 1 >= 6
        detector = training.fit_labelled(tiny_checkpoint, data)
    finally:
        broken.unlink()
    assert 1 <= most[0] <= 2
    assert detector.info["images"] == len(data.images) - 1


@pytest.mark.parametrize("native_bf16", [False, True])
def test_detection_features_use_bf16_only_where_the_cpu_runs_it_natively(
        detector, monkeypatch, native_bf16):
    """Without native bf16, oneDNN emulates it several times slower than full precision."""
    import ffclr.model.embed as embed
    from ffclr.detection.detector import encoder_features

    pixels = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    monkeypatch.setattr(embed, "cpu_bf16_supported", lambda: native_bf16)
    found = encoder_features(detector.encoder, pixels)
    encoder = detector.encoder
    full = embed.embed_uint8(encoder.model, pixels, mean=encoder.mean, std=encoder.std).numpy()
    if native_bf16:
        assert not np.allclose(found, full, atol=1e-4)
        assert np.linalg.norm(found - full) < 0.02 * np.linalg.norm(full)
    else:
        np.testing.assert_allclose(found, full, atol=1e-4)


def _with_meta(source: Path, out: Path, edit) -> Path:
    """A copy of the detector file at `source` whose settings `edit` changed."""
    import zipfile

    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(str(np.load(io.BytesIO(members["meta.npy"]), allow_pickle=False)))
    edit(meta)
    buffer = io.BytesIO()
    np.save(buffer, np.array(json.dumps(meta)))
    members["meta.npy"] = buffer.getvalue()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out


@pytest.mark.parametrize("edit, named", [
    (lambda m: m["config"].update(max_candidates="200"), "config.max_candidates"),
    (lambda m: m["config"]["proposals"].update(grow_radii=-1), "config.proposals.grow_radii"),
    (lambda m: m["config"]["proposals"].update(tile=20), "proposals' sides and tile"),
    (lambda m: m["config"].update(rescale_beyond=2 ** 70), "config.rescale_beyond"),
    (lambda m: m["encoder"].update(mean=[0.5, None, 0.5]), "encoder.mean"),
    (lambda m: m.update(category_ids=[]), "category_ids"),
])
def test_a_detector_file_with_settings_out_of_type_or_range_is_refused_by_name(
        detector_file, tmp_path, edit, named):
    from ffclr.detection import load_detector

    tampered = _with_meta(Path(detector_file), tmp_path / "tampered.npz", edit)
    with pytest.raises(FfclrError, match="not a detector saved by ffclr") as refused:
        load_detector(tampered)
    assert named in str(refused.value) and "\n" not in str(refused.value)
