from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from ffclr.demo.export import PLACEHOLDER, write_demo_export
from ffclr.errors import FfclrError

SPLITS = ("train", "valid", "test")


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo") / "export"
    return out, write_demo_export(out, images=30, seed=7)


def load(out: Path, split: str) -> COCO:
    return COCO(str(out / split / "_annotations.coco.json"))


def pixels(out: Path, split: str, image: dict) -> np.ndarray:
    with Image.open(out / split / image["file_name"]) as img:
        assert img.mode == "RGB"
        assert img.size == (image["width"], image["height"])
        return np.asarray(img, dtype=np.int16)


def ink(rgb: np.ndarray) -> np.ndarray:
    """Pixels clearly off the image's background colour (its median)."""
    background = np.median(rgb.reshape(-1, 3), axis=0)
    return np.abs(rgb - background).max(axis=-1) > 60


def test_roboflow_layout_and_categories(export):
    out, summary = export
    assert (out / "README.dataset.txt").is_file()
    for split in SPLITS:
        coco = load(out, split)
        data = coco.dataset
        assert set(data) == {"info", "licenses", "categories", "images", "annotations"}
        root, *classes = data["categories"]
        assert root == {"id": 0, "name": PLACEHOLDER, "supercategory": "none"}
        assert [c["id"] for c in classes] == list(range(1, len(classes) + 1))
        assert {c["supercategory"] for c in classes} == {PLACEHOLDER}
        assert len({c["name"] for c in classes}) == len(classes)
        for image in data["images"]:
            assert (out / split / image["file_name"]).is_file()
            assert Path(image["file_name"]).suffix == ".jpg"
        for ann in data["annotations"]:
            assert set(ann) == {"id", "image_id", "category_id", "bbox", "area", "segmentation",
                                "iscrowd"}
            assert ann["segmentation"] == [] and ann["iscrowd"] == 0
        assert summary["splits"][split]["images"] == len(data["images"])
        assert summary["splits"][split]["boxes"] == len(data["annotations"])
    assert [summary["splits"][s]["images"] for s in SPLITS] == [21, 6, 3]


def test_boxes_inside_positive_no_placeholder_no_overlap(export):
    out, _ = export
    for split in SPLITS:
        coco = load(out, split)
        for image in coco.dataset["images"]:
            anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
            for ann in anns:
                x, y, w, h = ann["bbox"]
                assert ann["category_id"] != 0
                assert w > 0 and h > 0 and ann["area"] == w * h
                assert x >= 0 and y >= 0
                assert x + w <= image["width"] and y + h <= image["height"]
            for a, b in itertools.combinations([ann["bbox"] for ann in anns], 2):
                apart = (a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0]
                         or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1])
                assert apart, (split, image["file_name"], a, b)


def test_many_classes_imbalanced(export):
    out, summary = export
    counts = Counter(ann["category_id"] for split in SPLITS
                     for ann in load(out, split).dataset["annotations"])
    assert len(counts) >= 12
    ordered = sorted(counts.values(), reverse=True)
    assert ordered[0] >= 3 * ordered[len(ordered) // 2]
    assert ordered[-1] * 10 <= ordered[0]
    names = {c["id"]: c["name"] for c in load(out, "train").dataset["categories"]}
    assert {names[i]: n for i, n in counts.items()} == \
        {name: n for name, n in summary["classes"].items() if n}


def test_symbol_sizes_like_the_real_drawings(export):
    out, _ = export
    long_sides = [max(ann["bbox"][2:]) for split in SPLITS
                  for ann in load(out, split).dataset["annotations"]]
    assert 26 <= np.median(long_sides) <= 38
    assert min(long_sides) >= 10 and max(long_sides) <= 50


def test_dark_background_and_strokes_fill_tight_boxes(export):
    out, _ = export
    coco = load(out, "train")
    for image in coco.dataset["images"]:
        rgb = pixels(out, "train", image)
        assert np.median(rgb.mean(axis=-1)) < 60
        drawn = ink(rgb)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
            x, y, w, h = ann["bbox"]
            inside = drawn[y:y + h, x:x + w]
            assert inside.mean() > 0.05, (image["file_name"], ann["bbox"])
            for edge in (inside[:2], inside[-2:], inside[:, :2], inside[:, -2:]):
                assert edge.any(), ("box not tight", image["file_name"], ann["bbox"])


def test_unannotated_distractors_are_drawn(export):
    out, _ = export
    coco = load(out, "train")
    outside_fractions = []
    for image in coco.dataset["images"]:
        drawn = ink(pixels(out, "train", image))
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
            x, y, w, h = ann["bbox"]
            drawn[y:y + h, x:x + w] = False
        outside_fractions.append(drawn.mean())
    assert min(outside_fractions) > 0.002


def test_same_seed_same_files_other_seed_differs(tmp_path):
    first = write_demo_export(tmp_path / "a", images=5, seed=11)
    second = write_demo_export(tmp_path / "b", images=5, seed=11)
    write_demo_export(tmp_path / "c", images=5, seed=12)
    assert {k: v for k, v in first.items() if k != "out"} == \
        {k: v for k, v in second.items() if k != "out"}
    for split in ("train", "valid"):
        a = (tmp_path / "a" / split / "_annotations.coco.json").read_bytes()
        assert a == (tmp_path / "b" / split / "_annotations.coco.json").read_bytes()
        assert a != (tmp_path / "c" / split / "_annotations.coco.json").read_bytes()
        for image in json.loads(a)["images"]:
            assert np.array_equal(pixels(tmp_path / "a", split, image),
                                  pixels(tmp_path / "b", split, image))


def test_drawing_in_several_processes_writes_the_same_files(tmp_path, monkeypatch):
    import ffclr.demo.export as export

    monkeypatch.setattr(export, "PARALLEL_CHUNK", 4)
    one = write_demo_export(tmp_path / "one", images=12, seed=3, workers=1)
    two = write_demo_export(tmp_path / "two", images=12, seed=3, workers=2)
    assert {k: v for k, v in one.items() if k != "out"} == \
        {k: v for k, v in two.items() if k != "out"}
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*")
                   if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*")
                           if p.is_file())
    for relative in files:
        assert (tmp_path / "one" / relative).read_bytes() == \
            (tmp_path / "two" / relative).read_bytes(), relative


def test_default_size_gives_about_300_boxes(tmp_path):
    summary = write_demo_export(tmp_path / "demo")
    assert summary["images"] == 60
    assert 200 <= summary["boxes"] <= 400
    assert all(n > 0 for n in summary["classes"].values())


def test_rewrites_an_earlier_export_and_refuses_other_folders(tmp_path):
    out = tmp_path / "demo"
    write_demo_export(out, images=10, seed=1)
    summary = write_demo_export(out, images=3, seed=1)
    assert len(list(out.rglob("*.jpg"))) == 3
    assert sorted(p.parent.name for p in out.rglob("_annotations.coco.json")) == \
        sorted(summary["splits"])
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FfclrError, match="not empty"):
        write_demo_export(foreign, images=3)
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(FfclrError, match="images"):
        write_demo_export(tmp_path / "none", images=0)


def test_progress_reports_every_image(tmp_path):
    calls = []
    write_demo_export(tmp_path / "demo", images=4, progress=lambda *a: calls.append(a))
    assert [(done, total) for done, total, _ in calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(isinstance(message, str) and message for _, _, message in calls)


def test_cli_writes_export_and_reports_bad_arguments(tmp_path, capsys):
    from ffclr.cli import main

    out = tmp_path / "demo"
    assert main(["demo-export", str(out), "--images", "6", "--seed", "3"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert all((out / split / "_annotations.coco.json").is_file() for split in SPLITS)
    assert main(["demo-export", str(tmp_path / "bad"), "--images", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "images" in err and "Traceback" not in err
