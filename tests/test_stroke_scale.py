"""Whole schematics told from symbol images by the stroke widths across them."""
import json

import numpy as np
import pytest
from PIL import Image

from ffclr.data.stroke_scale import (MIN_SCHEMATIC_STROKES, SCHEMATIC_STROKES, densest_window,
                                     schematic_threshold, strokes_across)


def ring(side: int, stroke: int, canvas: int | None = None) -> np.ndarray:
    """A dark ring `stroke` px thick around a `side` px square, on a white canvas."""
    canvas = canvas or side
    rgb = np.full((canvas, canvas, 3), 255, np.uint8)
    o = (canvas - side) // 2
    rgb[o:o + side, o:o + side] = 0
    rgb[o + stroke:o + side - stroke, o + stroke:o + side - stroke] = 255
    return rgb


def test_strokes_across_is_the_side_over_the_stroke_width_at_any_scale():
    small, large = strokes_across(ring(40, 2, 48)), strokes_across(ring(400, 20, 480))
    assert small == large == 24.0
    assert strokes_across(np.full((50, 50, 3), 255, np.uint8)) == 0.0


def test_the_bar_is_twice_the_symbol_crops_within_bounds():
    assert schematic_threshold(None) == schematic_threshold(np.array([])) == SCHEMATIC_STROKES
    assert schematic_threshold(np.full(50, 30.0)) == 60.0
    assert schematic_threshold(np.full(50, 10.0)) == MIN_SCHEMATIC_STROKES
    assert schematic_threshold(np.full(50, 70.0)) == SCHEMATIC_STROKES


def test_the_stroke_width_is_read_where_the_ink_is():
    mask = np.zeros((3000, 2000), bool)
    mask[2100:2200, 1100:1150] = True
    window = densest_window(mask, 1024)
    assert window.shape == (952, 976) and window.sum() == mask.sum()


def test_drawings_and_symbol_crops_of_the_real_export_at_any_enlargement(real_export):
    rng = np.random.default_rng(0)
    for split in ("train", "valid"):
        coco = json.loads((real_export / split / "_annotations.coco.json").read_text())
        images = {i["id"]: i for i in coco["images"]}
        crops = {1: [], 4: []}
        for index in rng.choice(len(coco["annotations"]), 40, replace=False):
            box = coco["annotations"][index]
            x, y, w, h = box["bbox"]
            with Image.open(real_export / split / images[box["image_id"]]["file_name"]) as drawing:
                crop = drawing.convert("RGB").crop((int(x - 0.05 * w), int(y - 0.05 * h),
                                                    int(x + 1.05 * w) + 1, int(y + 1.05 * h) + 1))
            for factor, across in crops.items():
                across.append(strokes_across(np.asarray(
                    crop.resize((crop.width * factor, crop.height * factor), Image.BICUBIC))))
        drawings = []
        for image in coco["images"][:12]:
            with Image.open(real_export / split / image["file_name"]) as drawing:
                drawings.append(strokes_across(np.asarray(drawing.convert("RGB"))))
        for threshold in (SCHEMATIC_STROKES, schematic_threshold(np.array(crops[1]))):
            assert min(drawings) >= threshold
            assert max(crops[1] + crops[4]) < threshold
