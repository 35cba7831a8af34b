"""Stroke proposals, margins and NMS on hand-drawn arrays (no model)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from ffclr.detection.boxes import MarginModel, batched_nms, box_iou
from ffclr.detection.proposals import ProposalConfig, stroke_proposals

BACKGROUND = (33, 40, 48)


def _drawing(size=(600, 400)):
    """Three framed symbols on one red wire, a fourth off it; returns (rgb, their ink boxes)."""
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.line([(0, 100), (599, 100)], fill=(220, 30, 30), width=1)
    symbols = [(100, 86, 128, 114), (300, 84, 332, 116), (480, 88, 504, 112), (200, 250, 236, 280)]
    for x0, y0, x1, y1 in symbols:
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=(230, 230, 230))
        draw.line([(x0 + 6, y0 + 6), (x1 - 7, y1 - 7)], fill=(40, 220, 40), width=2)
    return np.asarray(image), np.array(symbols, float)


def test_symbols_on_a_wire_are_proposed_at_their_ink_extent():
    rgb, symbols = _drawing()
    proposals = stroke_proposals(rgb)
    best = box_iou(symbols, proposals).max(axis=1)
    assert (best > 0.95).all(), best


def test_tiles_find_what_one_pass_finds():
    rgb, symbols = _drawing((900, 700))
    whole = stroke_proposals(rgb, ProposalConfig(max_side=60, tile=4096))
    tiled = stroke_proposals(rgb, ProposalConfig(max_side=60, tile=256))
    assert (box_iou(symbols, tiled).max(axis=1) > 0.95).all()
    assert (box_iou(whole, tiled).max(axis=1) > 0.95).all()


def test_margins_learn_a_constant_and_a_proportional_padding():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 500, (200, 2))
    wh = rng.uniform(10, 80, (200, 2))
    core = np.concatenate([xy, xy + wh], axis=1)
    pad = 3 + 0.1 * np.concatenate([wh, wh], axis=1)
    target = np.concatenate([core[:, :2] - pad[:, :2], core[:, 2:] + pad[:, 2:]], axis=1)
    labels = rng.integers(0, 2, 200)
    model = MarginModel.fit(core, target, labels, n_classes=2)
    assert np.allclose(model.apply(core), target, atol=1e-3)
    assert np.allclose(model.apply(core, labels), target, atol=1e-2)


def test_nms_is_per_class():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10]], float)
    keep = batched_nms(boxes, np.array([0.9, 0.8, 0.7]), np.array([0, 0, 1]), 0.5)
    assert sorted(keep.tolist()) == [0, 2]
