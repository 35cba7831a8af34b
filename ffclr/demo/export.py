"""The synthetic demo export: generated fire-alarm schematics written as a Roboflow COCO export.

The app's built-in data and the tests' fixture, since the real export cannot ship with the
project. Layout on disk is what Roboflow writes: `train/`, `valid/`, `test/`, each with JPEG
images and `_annotations.coco.json`, whose category 0 is the unused placeholder root category.
The same seed gives byte-identical files.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import numbers
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ffclr.demo.scene import draw_schematic
from ffclr.demo.symbols import SYMBOL_CLASSES
from ffclr.errors import FfclrError

Progress = Callable[[int, int, str], None]

SPLIT_SHARES = (("train", 0.7), ("valid", 0.2), ("test", 0.1))
ANNOTATION_FILE = "_annotations.coco.json"
PLACEHOLDER = "fire-alarm-symbols"
MARKER = "README.dataset.txt"
CREATED = "2024-01-01T00:00:00+00:00"
JPEG_QUALITY = 90
PARALLEL_CHUNK = 64


def split_sizes(images: int) -> dict[str, int]:
    """About 70/20/10 images for train/valid/test; train gets the rounding remainder."""
    valid, test = round(images * 0.2), round(images * 0.1)
    return {"train": images - valid - test, "valid": valid, "test": test}


def categories() -> list[dict]:
    root = {"id": 0, "name": PLACEHOLDER, "supercategory": "none"}
    return [root] + [{"id": i, "name": cls.name, "supercategory": PLACEHOLDER}
                     for i, cls in enumerate(SYMBOL_CLASSES, start=1)]


def _prepare_folder(out: Path) -> None:
    """Refuses a non-empty folder that is not an earlier demo export; clears an earlier one."""
    if out.exists() and not out.is_dir():
        raise FfclrError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise FfclrError(f"{out}: folder is not empty and holds no demo export; "
                             "give a new or empty folder")
        for split, _ in SPLIT_SHARES:
            for path in (out / split).glob("*_png.rf.*.jpg"):
                path.unlink()
            (out / split / ANNOTATION_FILE).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _forced_classes(seed: int, train_images: int) -> list[list[int]]:
    """Every class dealt once over the train images, so each one appears in train."""
    order = np.random.default_rng(seed).permutation(len(SYMBOL_CLASSES))
    return [[int(c) for c in order[i::train_images]] for i in range(train_images)]


def _file_name(seed: int, split: str, index: int) -> str:
    digest = hashlib.md5(f"{seed}/{split}/{index}".encode()).hexdigest()
    return f"schematic-{split}-{index:04d}_png.rf.{digest}.jpg"


def _draw_one(job: tuple[Path, int, int, int, str, list[int]]) -> tuple[str, int, int, list]:
    """Draw and save one schematic: (file name, width, height, [(class index, bbox)])."""
    folder, seed, split_no, index, split, forced = job
    schematic = draw_schematic(np.random.default_rng([seed, split_no, index]), forced)
    name = _file_name(seed, split, index)
    schematic.image.save(folder / name, "JPEG", quality=JPEG_QUALITY)
    return (name, schematic.image.width, schematic.image.height,
            [(s.class_index, s.bbox) for s in schematic.symbols])


def _drawn(jobs: list, workers: int) -> Iterator[tuple[str, int, int, list]]:
    """`_draw_one` of each job, in order; in `workers` processes when more than one (each
    drawing has its own random generator, so the files are the same either way)."""
    if workers <= 1 or len(jobs) < 2 * PARALLEL_CHUNK:
        yield from map(_draw_one, jobs)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield from pool.map(_draw_one, jobs, chunksize=PARALLEL_CHUNK)


def _write_split(out: Path, split_no: int, split: str, count: int, seed: int,
                 forced: list[list[int]], tick: Callable[[str], None], workers: int) -> Counter:
    folder = out / split
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    jobs = [(folder, seed, split_no, index, split, forced[index] if index < len(forced) else [])
            for index in range(count)]
    for index, (name, width, height, symbols) in enumerate(_drawn(jobs, workers)):
        images.append({"id": index, "license": 1, "file_name": name,
                       "height": height, "width": width, "date_captured": CREATED})
        for class_index, (x, y, w, h) in symbols:
            annotations.append({"id": len(annotations), "image_id": index,
                                "category_id": class_index + 1, "bbox": [x, y, w, h],
                                "area": w * h, "segmentation": [], "iscrowd": 0})
        tick(f"{split}/{name}")
    coco = {
        "info": {"year": CREATED[:4], "version": "1", "contributor": "ffclr",
                 "description": f"Synthetic fire-alarm schematics generated by ffclr (seed {seed})",
                 "url": "", "date_created": CREATED},
        "licenses": [{"id": 1, "url": "https://creativecommons.org/publicdomain/zero/1.0/",
                      "name": "CC0 1.0"}],
        "categories": categories(),
        "images": images,
        "annotations": annotations,
    }
    (folder / ANNOTATION_FILE).write_text(json.dumps(coco), encoding="utf-8")
    return Counter(SYMBOL_CLASSES[a["category_id"] - 1].name for a in annotations)


def write_demo_export(out: str | Path, images: int = 60, seed: int = 0,
                      progress: Progress | None = None, workers: int = 1) -> dict:
    """Writes `images` generated schematics (about 5 symbols each) as a Roboflow COCO export,
    drawn in `workers` processes (the same files for any number).

    Returns a summary: {"out", "seed", "images", "boxes", "classes": {name: boxes},
    "splits": {split: {"images", "boxes", "classes": {name: boxes}}}}; classes with no box
    are listed with 0.
    """
    if not isinstance(images, numbers.Integral) or isinstance(images, bool) or images < 1:
        raise FfclrError(f"images: must be a whole number >= 1, got {images!r}")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise FfclrError(f"seed: must be a whole number >= 0, got {seed!r}")
    images, seed, out = int(images), int(seed), Path(out)
    _prepare_folder(out)
    (out / MARKER).write_text(
        f"Synthetic demo export written by ffclr (python -m ffclr demo-export, seed {seed}, "
        f"{images} images).\nProcedurally drawn fire-alarm schematics; COCO format as Roboflow "
        "exports it. Category 0 is the placeholder root category.\n", encoding="utf-8")
    sizes = split_sizes(images)
    done = 0

    def tick(message: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, images, message)

    forced = _forced_classes(seed, sizes["train"])
    names = [cls.name for cls in SYMBOL_CLASSES]
    splits, total = {}, Counter()
    for split_no, (split, _) in enumerate(SPLIT_SHARES):
        if sizes[split] == 0:
            continue
        counts = _write_split(out, split_no, split, sizes[split], seed,
                              forced if split == "train" else [], tick, workers)
        total += counts
        splits[split] = {"images": sizes[split], "boxes": sum(counts.values()),
                         "classes": {name: counts[name] for name in names}}
    return {"out": str(out), "seed": seed, "images": images, "boxes": sum(total.values()),
            "classes": {name: total[name] for name in names}, "splits": splits}
