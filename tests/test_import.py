"""The Roboflow COCO import: layout, store rows, class index, zip, bad input, re-import."""
from __future__ import annotations

import copy
import hashlib
import io
import json
import shutil
import stat
import tempfile
import uuid
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ffclr.data import coco_import
from ffclr.cli import main
from ffclr.data.coco_import import crop_box, import_export
from ffclr.data.cropset import load_crop_set
from ffclr.errors import FfclrError

CATEGORIES = [
    {"id": 0, "name": "symbols", "supercategory": "none"},
    {"id": 1, "name": "smoke-detector", "supercategory": "symbols"},
    {"id": 2, "name": "speaker", "supercategory": "symbols"},
    {"id": 3, "name": "valve", "supercategory": "symbols"},
]
# split → images (file name, size) with boxes (annotation id, category id, bbox)
LAYOUT = {
    "train": [("a.png", (64, 48), [(1, 1, [4, 4, 10, 8]), (2, 2, [20, 10, 12, 12])]),
              ("b.png", (64, 48), [(3, 1, [30, 20, 8, 8]), (4, 3, [40, 30, 10, 10])])],
    "valid": [("c.png", (64, 48), [(1, 2, [5, 5, 12, 10]), (2, 1, [30, 20, 9, 7])])],
}


def pixels(size, seed) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def write_export(root: Path, layout=LAYOUT, categories=CATEGORIES) -> Path:
    """A tiny Roboflow-style export: random RGB PNGs and `_annotations.coco.json` per split."""
    for split, images in layout.items():
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        data = {"info": {}, "categories": copy.deepcopy(categories), "images": [],
                "annotations": []}
        for image_id, (file_name, size, boxes) in enumerate(images):
            seed = zlib.crc32(f"{split}/{file_name}".encode())
            Image.fromarray(pixels(size, seed)).save(folder / file_name)
            data["images"].append({"id": image_id, "file_name": file_name, "width": size[0],
                                   "height": size[1]})
            for ann_id, cat_id, bbox in boxes:
                data["annotations"].append({"id": ann_id, "image_id": image_id,
                                            "category_id": cat_id, "bbox": bbox,
                                            "area": bbox[2] * bbox[3], "iscrowd": 0})
        (folder / "_annotations.coco.json").write_text(json.dumps(data))
    return root


def edit_annotations(root: Path, split: str, edit) -> None:
    path = root / split / "_annotations.coco.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def add_image(root: Path, split: str, file_name: str, image: Image.Image | None, boxes,
              save_kwargs=None) -> None:
    """Add an image entry (and file, unless `image` is None) with boxes (ann id, cat, bbox)."""
    if image is not None:
        image.save(root / split / file_name, **(save_kwargs or {}))
    size = image.size if image is not None else (64, 48)

    def edit(data):
        image_id = max(i["id"] for i in data["images"]) + 1
        data["images"].append({"id": image_id, "file_name": file_name, "width": size[0],
                               "height": size[1]})
        for ann_id, cat_id, bbox in boxes:
            data["annotations"].append({"id": ann_id, "image_id": image_id,
                                        "category_id": cat_id, "bbox": bbox})
    edit_annotations(root, split, edit)


def store_rows(workspace, name):
    with workspace.open_store() as store:
        dataset = store.dataset(name)
        return dataset, store.classes(dataset["id"]), store.crops(dataset["id"])


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def export(tmp_path) -> Path:
    return write_export(tmp_path / "export")


def test_tiny_export_layout_rows_and_pixels(export, workspace):
    result = import_export(export, "tiny", workspace, padding=0.1)
    assert not result.unchanged
    assert {s: r.crops for s, r in result.splits.items()} == {"train": 4, "valid": 2}
    dataset, classes, crops = store_rows(workspace, "tiny")
    root = workspace.dataset_dir("tiny")
    assert Path(dataset["root"]) == root and result.dataset_id == dataset["id"]
    assert [(c["coco_id"], c["name"], c["folder"]) for c in classes] == [
        (1, "smoke-detector", "smoke-detector"), (2, "speaker", "speaker"), (3, "valve", "valve")]
    assert len(crops) == 6
    folder_of = {c["class_index"]: c["folder"] for c in classes}
    for crop in crops:
        path = root / crop["path"]
        assert not Path(crop["path"]).is_absolute()
        stem = Path(crop["source_image"]).stem
        assert crop["path"] == (f"{crop['split']}/{folder_of[crop['class_index']]}/"
                                f"{stem}_{crop['annotation_id']}.png")
        assert crop["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        source = np.asarray(Image.open(export / crop["split"] / crop["source_image"]))
        left, top, width, height = map(int, json.loads(crop["crop_bbox"]))
        with Image.open(path) as png:
            assert png.format == "PNG" and png.mode == "RGB"
            assert np.array_equal(np.asarray(png), source[top:top + height, left:left + width])
    first = next(c for c in crops if c["split"] == "train" and c["annotation_id"] == 1)
    # box [4, 4, 10, 8] padded by 10%: 1 px left/right, 0.8 px up/down (rounded outwards)
    assert json.loads(first["bbox"]) == [4, 4, 10, 8]
    assert json.loads(first["crop_bbox"]) == [3, 3, 12, 10]
    with workspace.open_store() as store:
        run = store.run(result.run_id)
    assert run["kind"] == "import" and run["status"] == "finished"
    assert run["dataset_id"] == dataset["id"]
    assert run["summary"]["splits"]["train"]["crops"] == 4


def test_padding_is_symmetric_and_clipped_to_the_image():
    assert crop_box([10, 20, 20, 40], (100, 100), 0.25) == (None, False, (5, 10, 35, 70))
    assert crop_box([10, 20, 20, 40], (100, 100), 0.0) == (None, False, (10, 20, 30, 60))
    # near the right/bottom edges: padding clipped there, full on the other sides
    assert crop_box([85, 70, 10, 20], (100, 100), 0.5) == (None, False, (80, 60, 100, 100))
    reason, clipped, box = crop_box([-5, 90, 20, 20], (100, 100), 0.0)
    assert (reason, clipped, box) == (None, True, (0, 90, 15, 100))
    assert crop_box([10, 10, 0, 5], (100, 100), 0.05)[0] == coco_import.ZERO_AREA
    assert crop_box([10, 10, 5, -1], (100, 100), 0.05)[0] == coco_import.ZERO_AREA
    assert crop_box([120, 10, 5, 5], (100, 100), 0.05)[0] == coco_import.OUTSIDE_IMAGE
    assert crop_box([10, 10, 5], (100, 100), 0.05)[0] == coco_import.MALFORMED_BOX
    assert crop_box([10, "a", 5, 5], (100, 100), 0.05)[0] == coco_import.MALFORMED_BOX
    assert crop_box([10, float("nan"), 5, 5], (100, 100), 0.05)[0] == coco_import.MALFORMED_BOX


def test_class_index_is_shared_and_placeholder_dropped_without_its_name(tmp_path, workspace):
    categories = [{"id": 0, "name": "my-root", "supercategory": "none"},
                  {"id": 5, "name": "zeta", "supercategory": "my-root"},
                  {"id": 7, "name": "alpha", "supercategory": "my-root"}]
    layout = {"train": [("a.png", (40, 40), [(1, 5, [2, 2, 9, 9]), (2, 7, [20, 20, 9, 9])])],
              "valid": [("b.png", (40, 40), [(1, 7, [2, 2, 9, 9])])],
              "test": [("c.png", (40, 40), [(1, 5, [2, 2, 9, 9])])]}
    export = write_export(tmp_path / "e", layout, categories)
    import_export(export, "x", workspace)
    _, classes, crops = store_rows(workspace, "x")
    assert [c["name"] for c in classes] == ["zeta", "alpha"]  # by COCO id, root dropped
    by_name = {}
    for crop in crops:
        by_name.setdefault(crop["path"].split("/")[1], set()).add(crop["class_index"])
    assert by_name == {"zeta": {0}, "alpha": {1}}


def test_demo_export_imports(demo_export, workspace):
    result = import_export(demo_export, "demo", workspace)
    _, classes, crops = store_rows(workspace, "demo")
    for split, summary in result.splits.items():
        data = json.loads((demo_export / split / "_annotations.coco.json").read_text())
        assert summary.error is None and summary.images == len(data["images"])
        assert summary.crops + sum(summary.skipped.values()) == len(data["annotations"])
        assert summary.crops == sum(c["split"] == split for c in crops) > 0
    supers = {c.get("supercategory") for c in data["categories"]}
    assert not supers & {c["name"] for c in classes}
    assert len(classes) >= 12


def test_real_export_counts_classes_and_crop_set(real_export, workspace):
    result = import_export(real_export, "ff", workspace)
    assert result.splits["train"].crops == 2606 and result.splits["valid"].crops == 755
    assert all(not s.skipped for s in result.splits.values())
    _, classes, crops = store_rows(workspace, "ff")
    assert len(classes) == 41 and "firefighting-deveces" not in {c["name"] for c in classes}
    index_of = {c["name"]: c["class_index"] for c in classes}
    root = workspace.dataset_dir("ff")
    for split in ("train", "valid"):
        data = json.loads((real_export / split / "_annotations.coco.json").read_text())
        names = {c["id"]: c["name"] for c in data["categories"]}
        used = {names[a["category_id"]] for a in data["annotations"]}
        assert {p.name for p in (root / split).iterdir()} == used
        split_crops = [c for c in crops if c["split"] == split]
        assert len(split_crops) == len(data["annotations"])
        for crop in split_crops:
            assert crop["class_index"] == index_of[crop["path"].split("/")[1]]
    assert "explosion-proof-smoke-detector" not in {p.name for p in (root / "train").iterdir()}
    crop_set = load_crop_set(root / "valid", workspace)
    assert crop_set.class_names == [c["name"] for c in classes]
    assert len(crop_set) == 755
    assert crop_set.labels.tolist() == [c["label"] for c in crops if c["split"] == "valid"]


def _zip(folder: Path, archive: Path, top: str | None) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                relative = path.relative_to(folder).as_posix()
                zf.write(path, f"{top}/{relative}" if top else relative)
        zf.writestr("README.roboflow.txt", "exported")  # Roboflow puts this at the top
    return archive


def _content(workspace, name):
    _, classes, crops = store_rows(workspace, name)
    return ([(c["name"], c["folder"]) for c in classes],
            sorted((c["split"], c["path"], c["sha256"], c["bbox"], c["crop_bbox"],
                    c["source_image"]) for c in crops))


def test_zip_import_equals_folder_import(export, tmp_path, workspace):
    import_export(export, "folder", workspace)
    flat = _zip(export, tmp_path / "flat.zip", None)
    nested = _zip(export, tmp_path / "nested.zip", "my-export-v6")
    for name, archive in (("flat", flat), ("nested", nested)):
        result = import_export(archive, name, workspace)
        assert not result.refused_entries
        assert _content(workspace, name) == _content(workspace, "folder")
        assert tree(workspace.dataset_dir(name)) == tree(workspace.dataset_dir("folder"))
    assert import_export(nested, "folder", workspace).unchanged  # same export, same fingerprint


def test_zip_slip_entries_are_refused_and_nothing_is_written_outside(export, tmp_path,
                                                                      workspace):
    marker = f"ffclr-evil-{uuid.uuid4().hex}"
    archive = _zip(export, tmp_path / "evil.zip", None)
    evil = [f"../{marker}.txt", f"/tmp/{marker}-abs.txt", f"train/../../{marker}-2.txt",
            f"..\\{marker}-3.txt", f"C:/{marker}-4.txt"]
    with zipfile.ZipFile(archive, "a") as zf:
        for name in evil:
            zf.writestr(zipfile.ZipInfo(name), "pwned")
        link = zipfile.ZipInfo("train/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    result = import_export(archive, "z", workspace)
    assert sorted(result.refused_entries) == sorted(evil + ["train/link.png"])
    assert result.crops == 6
    outside = [*Path(tempfile.gettempdir()).glob(f"{marker}*"), *Path("/tmp").glob(f"{marker}*"),
               *tmp_path.rglob(f"{marker}*")]
    assert outside == []


def test_file_names_climbing_out_are_refused(export, tmp_path, workspace):
    secret = tmp_path / "secret.png"
    Image.fromarray(pixels((64, 48), 1)).save(secret)
    shutil.copy(secret, export / "outside.png")
    add_image(export, "train", "../outside.png", None, [(10, 1, [1, 1, 5, 5])])
    add_image(export, "train", str(secret), None, [(11, 1, [1, 1, 5, 5])])
    add_image(export, "train", "..\\outside.png", None, [(12, 1, [1, 1, 5, 5])])
    result = import_export(export, "t", workspace)
    train = result.splits["train"]
    assert train.crops == 4
    assert train.skipped[coco_import.UNSAFE_FILE_NAME] == 3
    assert train.skipped_files[coco_import.UNSAFE_FILE_NAME] == [
        "../outside.png", str(secret), "..\\outside.png"]
    assert train.skipped[coco_import.BOX_ON_SKIPPED_IMAGE] == 3


def test_unsafe_category_names_become_safe_unique_folders(tmp_path, workspace):
    names = ["../../escape", "a/b", "..", "CON", "", "Valve", "valve", "/abs", "x\x00y"]
    categories = [{"id": i + 1, "name": n, "supercategory": "root"} for i, n in enumerate(names)]
    boxes = [(i + 1, i + 1, [2 + 4 * i, 2, 3, 3]) for i in range(len(names))]
    export = write_export(tmp_path / "e", {"train": [("a.png", (64, 48), boxes)]}, categories)
    import_export(export, "n", workspace)
    _, classes, crops = store_rows(workspace, "n")
    folders = [c["folder"] for c in classes]
    assert len({f.lower() for f in folders}) == len(names)
    for folder in folders:
        assert "/" not in folder and "\\" not in folder and "\x00" not in folder
        assert folder not in ("", ".", "..") and folder.upper() != "CON"
    root = workspace.dataset_dir("n").resolve()
    assert len(crops) == len(names)
    for crop in crops:
        assert (root / crop["path"]).resolve().parent.parent == root / "train"
    written = [p for p in workspace.root.rglob("*") if p.is_file()]
    assert all(p.resolve().is_relative_to(root) or p.name.startswith("ffclr.sqlite")
               for p in written)


def test_malformed_or_missing_annotation_file_skips_that_split(export, workspace, capsys):
    (export / "valid" / "_annotations.coco.json").write_text('{"images": [')
    result = import_export(export, "m", workspace)
    assert result.splits["train"].crops == 4
    error = result.splits["valid"].error
    assert "valid/_annotations.coco.json" in error and "malformed JSON" in error
    (export / "valid" / "_annotations.coco.json").unlink()
    assert main(["import", str(export), "--name", "m2"]) == 0
    out = capsys.readouterr().out
    assert "valid: not imported" in out and "missing annotation file" in out


@pytest.mark.parametrize("content", ['{"images": [', "[]", '{"images": [], "categories": []}',
                                     '{"images": [{"file_name": "a.png"}], "annotations": [], '
                                     '"categories": []}'])
def test_nothing_importable_is_a_one_line_error(export, workspace, capsys, content):
    for split in ("train", "valid"):
        (export / split / "_annotations.coco.json").write_text(content)
    with pytest.raises(FfclrError, match=r"train/_annotations\.coco\.json"):
        import_export(export, "bad", workspace)
    assert main(["import", str(export), "--name", "bad"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    with workspace.open_store() as store:
        assert store.dataset("bad") is None
        assert {r["status"] for r in store.runs(kind="import")} == {"failed"}


def test_no_split_folder_or_not_a_zip_is_an_error(tmp_path, workspace):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FfclrError, match="not a Roboflow COCO export"):
        import_export(tmp_path / "empty", "e", workspace)
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(FfclrError, match="junk.zip"):
        import_export(tmp_path / "junk.zip", "e", workspace)
    with pytest.raises(FfclrError, match="dataset name"):
        import_export(tmp_path / "empty", "../up", workspace)


def test_missing_and_unreadable_images_are_skipped_and_named(export, workspace):
    add_image(export, "train", "gone.png", None, [(10, 1, [1, 1, 5, 5])])
    (export / "train" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    add_image(export, "train", "broken.jpg", None, [(11, 1, [1, 1, 5, 5]), (12, 2, [9, 9, 5, 5])])
    truncated = io.BytesIO()
    Image.fromarray(pixels((64, 48), 3)).save(truncated, format="PNG")
    (export / "train" / "truncated.png").write_bytes(truncated.getvalue()[:200])
    add_image(export, "train", "truncated.png", None, [(13, 1, [1, 1, 5, 5])])
    result = import_export(export, "s", workspace)
    train = result.splits["train"]
    assert train.crops == 4 and train.images == 5
    assert train.skipped_files == {coco_import.MISSING_IMAGE: ["gone.png"],
                                   coco_import.UNREADABLE_IMAGE: ["broken.jpg", "truncated.png"]}
    assert train.skipped[coco_import.BOX_ON_SKIPPED_IMAGE] == 4
    text = "\n".join(result.lines())
    assert "gone.png" in text and "broken.jpg" in text


def test_non_rgb_images_are_converted(export, workspace):
    rgb = pixels((32, 32), 5)
    grey16 = np.full((32, 32), 65535, dtype=np.uint16)
    grey16[:, 16:] = 32896
    images = {"grey.png": Image.fromarray(rgb[..., 0], "L"),
              "palette.png": Image.fromarray(rgb).convert("P"),
              "alpha.png": Image.fromarray(np.dstack([rgb, np.full((32, 32), 128, np.uint8)])),
              "cmyk.jpg": Image.fromarray(rgb).convert("CMYK"),
              "deep.png": Image.fromarray(grey16)}
    for number, (file_name, image) in enumerate(images.items()):
        add_image(export, "train", file_name, image, [(100 + number, 1, [4, 4, 24, 24])])
    assert Image.open(export / "train" / "deep.png").mode.startswith("I")
    result = import_export(export, "c", workspace, padding=0.0)
    train = result.splits["train"]
    assert train.crops == 4 + len(images) and train.converted == len(images) and not train.skipped
    root = workspace.dataset_dir("c")
    for number in range(len(images)):
        with Image.open(next(root.glob(f"train/*/*_{100 + number}.png"))) as crop:
            assert crop.mode == "RGB" and crop.size == (24, 24)
    grey = np.asarray(Image.open(next(root.glob("train/*/grey_100.png"))))
    assert np.array_equal(grey[..., 1], rgb[4:28, 4:28, 0])
    deep = np.asarray(Image.open(next(root.glob("train/*/deep_104.png"))))
    assert deep[0, 0].tolist() == [255, 255, 255] and deep[0, -1].tolist() == [128, 128, 128]


def test_categories_with_unusable_ids_or_fields_are_left_out_not_fatal(export, workspace):
    def edit(data):
        data["categories"][1]["supercategory"] = {"not": "text"}
        data["categories"][2]["name"] = ["not", "text"]
        data["categories"].append({"id": 2 ** 70, "name": "too-big", "supercategory": "symbols"})
        data["annotations"].append({"id": 99, "image_id": 0, "category_id": 2 ** 70,
                                    "bbox": [1, 1, 5, 5]})
    for split in ("train", "valid"):
        edit_annotations(export, split, edit)
    result = import_export(export, "c", workspace)
    assert result.splits["train"].skipped == result.splits["valid"].skipped == {
        coco_import.UNKNOWN_CATEGORY: 1}
    _, classes, _ = store_rows(workspace, "c")
    assert [c["coco_id"] for c in classes] == [1, 2, 3]
    assert "too-big" not in {c["name"] for c in classes}


def test_bad_boxes_are_clipped_or_skipped_and_counted(export, workspace):
    add_image(export, "train", "boxes.png", Image.fromarray(pixels((50, 40), 7)), [
        (20, 1, [10, 10, 0, 5]),      # zero area
        (21, 1, [40, 30, 20, 20]),    # partly outside: clipped
        (22, 1, [-10, -10, 15, 15]),  # partly outside: clipped
        (23, 1, [60, 10, 5, 5]),      # wholly outside
        (24, 9, [5, 5, 5, 5]),        # unknown category
        (25, 1, "5 5 5 5"),           # malformed
        (26, 0, [5, 5, 5, 5]),        # the placeholder category is used: a class after all
    ])
    edit_annotations(export, "train", lambda d: d["annotations"].append(
        {"id": 27, "image_id": 999, "category_id": 1, "bbox": [1, 1, 2, 2]}))
    result = import_export(export, "b", workspace, padding=0.0)
    train = result.splits["train"]
    assert train.skipped == {coco_import.ZERO_AREA: 1, coco_import.OUTSIDE_IMAGE: 1,
                             coco_import.UNKNOWN_CATEGORY: 1, coco_import.MALFORMED_BOX: 1,
                             coco_import.UNKNOWN_IMAGE: 1}
    assert train.clipped == 2 and train.crops == 4 + 3
    _, classes, crops = store_rows(workspace, "b")
    boxes = {c["annotation_id"]: json.loads(c["crop_bbox"]) for c in crops if c["split"] == "train"}
    assert boxes[21] == [40, 30, 10, 10] and boxes[22] == [0, 0, 5, 5]
    original = next(c["bbox"] for c in crops if c["annotation_id"] == 21)
    assert json.loads(original) == [40, 30, 20, 20]
    assert "symbols" in {c["name"] for c in classes}


def test_decompression_bomb_guard_stays_on(export, workspace, monkeypatch):
    add_image(export, "train", "big.png", Image.fromarray(pixels((80, 50), 8)),
              [(30, 1, [1, 1, 5, 5])])
    add_image(export, "train", "bigger.png", Image.fromarray(pixels((120, 100), 9)),
              [(31, 1, [1, 1, 5, 5])])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 48)  # 4,000 px warns, 12,000 px fails
    result = import_export(export, "big", workspace)
    train = result.splits["train"]
    reason = coco_import.IMAGE_TOO_LARGE
    assert train.skipped_files[reason] == ["big.png", "bigger.png"]
    assert train.crops == 4 and Image.MAX_IMAGE_PIXELS == 64 * 48
    assert "decompression-bomb" in "\n".join(result.lines())


def test_reimport_is_a_no_op(export, workspace, capsys):
    first = import_export(export, "r", workspace)
    _, _, crops = store_rows(workspace, "r")
    files = tree(workspace.dataset_dir("r"))
    assert main(["import", str(export), "--name", "r"]) == 0
    assert "nothing changed" in capsys.readouterr().out
    second = import_export(export, "r", workspace)
    assert second.unchanged and second.run_id != first.run_id and second.crops == 6
    assert store_rows(workspace, "r")[2] == crops
    assert tree(workspace.dataset_dir("r")) == files
    with pytest.raises(coco_import.UpdateNeeded, match="train: 4 changed; valid: 2 changed"):
        import_export(export, "r", workspace, padding=0.2)
    assert not import_export(export, "r", workspace, padding=0.2, update=True).unchanged
    (workspace.dataset_dir("r") / crops[0]["path"]).unlink()
    repaired = import_export(export, "r", workspace, padding=0.2)
    assert not repaired.unchanged and (workspace.dataset_dir("r") / crops[0]["path"]).is_file()


def test_changed_export_updates_without_duplicates(export, workspace):
    import_export(export, "u", workspace)
    root = workspace.dataset_dir("u")
    _, _, before = store_rows(workspace, "u")
    ids = {(c["split"], c["annotation_id"]): c["id"] for c in before}
    kept = next(c for c in before if c["split"] == "train" and c["annotation_id"] == 3)
    with workspace.open_store() as store:
        store.relabel(kept["id"], 2)

    def edit(data):
        anns = {a["id"]: a for a in data["annotations"]}
        anns[1]["bbox"] = [5, 5, 10, 8]        # moved box
        anns[2]["category_id"] = 3             # relabelled in Roboflow: other class folder
        data["annotations"].remove(anns[4])    # deleted box
        data["annotations"].append({"id": 9, "image_id": 0, "category_id": 1,
                                    "bbox": [40, 30, 6, 6]})
    edit_annotations(export, "train", edit)
    shutil.rmtree(export / "valid")
    result = import_export(export, "u", workspace, update=True)
    assert result.splits["train"].changes == {"added": 1, "updated": 2, "unchanged": 1,
                                              "removed": 1}
    assert result.removed_splits == ["valid"]
    _, classes, after = store_rows(workspace, "u")
    assert sorted((c["split"], c["annotation_id"]) for c in after) == [
        ("train", 1), ("train", 2), ("train", 3), ("train", 9)]
    for crop in after:
        if (crop["split"], crop["annotation_id"]) in ids:
            assert crop["id"] == ids[(crop["split"], crop["annotation_id"])]
    assert next(c for c in after if c["id"] == kept["id"])["label"] == 2  # edit survives
    on_disk = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    assert on_disk == sorted(c["path"] for c in after)
    assert not (root / "valid").exists()
    assert next(c for c in after if c["annotation_id"] == 2)["path"].startswith("train/valve/")


def test_crop_set_of_an_imported_split_uses_store_labels(export, workspace):
    import_export(export, "cs", workspace)
    _, classes, crops = store_rows(workspace, "cs")
    with workspace.open_store() as store:
        store.relabel(crops[0]["id"], 2)
    crop_set = load_crop_set(workspace.dataset_dir("cs") / "train", workspace)
    train = [c for c in crops if c["split"] == "train"]
    assert crop_set.class_names == [c["name"] for c in classes]
    assert crop_set.paths == [workspace.dataset_dir("cs") / c["path"] for c in train]
    expected = [2 if c["id"] == crops[0]["id"] else c["class_index"] for c in train]
    assert crop_set.labels.tolist() == expected
    valid = load_crop_set(workspace.dataset_dir("cs") / "valid", workspace)
    assert valid.class_names == crop_set.class_names


def test_progress_reports_every_image(export, workspace):
    calls = []
    import_export(export, "p", workspace, progress=lambda *a: calls.append(a))
    assert [c[:2] for c in calls] == [(1, 3), (2, 3), (3, 3)]
    assert calls[0][2].startswith("train: ")


def test_no_crop_at_all_is_an_error_and_keeps_the_previous_import(export, workspace):
    import_export(export, "k", workspace)
    before = store_rows(workspace, "k")[2]
    for image in [*export.glob("*/*.png")]:
        image.unlink()
    with pytest.raises(FfclrError, match="nothing imported.*missing image: a.png, b.png"):
        import_export(export, "k", workspace)
    assert store_rows(workspace, "k")[2] == before
    assert all((workspace.dataset_dir("k") / c["path"]).is_file() for c in before)


def test_errors_in_a_zip_name_the_entry(export, tmp_path, workspace):
    (export / "valid" / "_annotations.coco.json").write_text("{oops")
    archive = _zip(export, tmp_path / "e.zip", "top")
    result = import_export(archive, "ze", workspace)
    assert result.splits["valid"].error.startswith(f"{archive}:top/valid/_annotations.coco.json: "
                                                   "malformed JSON")
    assert result.splits["train"].crops == 4
