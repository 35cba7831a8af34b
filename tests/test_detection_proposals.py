"""Stroke proposals, margins, NMS and clipping to the drawing on hand-drawn arrays (no model)."""
from __future__ import annotations

import tracemalloc

import numpy as np
from PIL import Image, ImageDraw

from ffclr.detection.boxes import MarginModel, batched_nms, box_iou
from ffclr.detection.crops import padded_boxes
from ffclr.detection.detector import Detector, detections_from_scores
from ffclr.detection.proposals import ProposalConfig, dedupe_indices, stroke_proposals

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


def test_a_symbol_that_is_its_colours_only_ink_is_proposed_apart_from_what_it_touches():
    """A small cyan symbol hangs from a white frame by a short white wire: only its own colour
    layer (under 200 px of ink) separates it."""
    rgb, _ = _drawing()
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    draw.line([(218, 280), (218, 290)], fill=(230, 230, 230))
    valve = (212, 291, 225, 315)
    draw.rectangle([valve[0], valve[1], valve[2] - 1, valve[3] - 1], outline=(100, 215, 215))
    draw.ellipse([214, 297, 222, 305], outline=(100, 215, 215))
    rgb = np.asarray(image)
    cyan = (np.abs(rgb.astype(int) - (100, 215, 215)).max(axis=2) < 30).sum()
    assert 60 <= cyan < 200
    target = np.array([valve], float)
    assert box_iou(target, stroke_proposals(rgb)).max() > 0.95
    assert box_iou(target, stroke_proposals(rgb, ProposalConfig(layer_min_pixels=200))).max() < 0.9


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


def _constant_margins(per_class: list[float]) -> MarginModel:
    """Margins of `per_class[k]` pixels on every side for class k (agnostic: the first)."""
    coef = np.zeros((len(per_class) + 1, 4, 2))
    coef[:, :, 0] = np.array([per_class[0], *per_class])[:, None]
    return MarginModel(coef)


def test_detections_are_clipped_to_the_drawing_and_empty_ones_dropped():
    detector = Detector(encoder=None, probe=None, class_names=["bell", "horn"],
                        category_ids=[11, 12], margins=_constant_margins([5.0, 2.0]),
                        pixel_filter=None, score_threshold=0.5)
    cores = np.array([[2, 3, 20, 20],      # margins reach past the top-left corner
                      [90, 70, 98, 78],    # ... past the bottom-right corner
                      [110, 10, 120, 20],  # right of the drawing: nothing left once clipped
                      [40, 30, 50, 40],    # inside
                      [60, 10, 70, 20]], float)
    proba = np.array([[0.70, 0.10, 0.20], [0.50, 0.10, 0.40], [0.10, 0.80, 0.10],
                      [0.05, 0.30, 0.65],  # background most likely: a horn at 0.30 all the same
                      [0.01, 0.005, 0.985]])  # under min_score
    detections = detections_from_scores(detector, Image.new("RGB", (100, 80), "white"), cores,
                                        proba, min_score=0.02)
    assert [(d.bbox, d.class_name, d.category_id, d.score) for d in detections] == [
        ((0.0, 0.0, 25.0, 25.0), "bell", 11, 0.7),
        ((85.0, 65.0, 15.0, 15.0), "bell", 11, 0.5),
        ((38.0, 28.0, 14.0, 14.0), "horn", 12, 0.3)]


def test_crops_at_or_past_the_edge_stay_inside_and_non_empty():
    boxes = np.array([[-5, -5, 3, 3], [98, 78, 120, 90], [150, 10, 160, 20]], float)
    crops = padded_boxes(boxes, 100, 80)
    assert crops.tolist() == [[0, 0, 4, 4], [96, 77, 100, 80], [99, 9, 100, 21]]


def test_deduplication_keeps_the_earlier_box_and_never_holds_all_overlaps():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10.5], [20, 0, 30, 10],
                      [0, 0, 10, 12]], np.float32)
    assert dedupe_indices(boxes, 0.9).tolist() == [0, 3, 4]
    rng = np.random.default_rng(1)
    corners = rng.uniform(0, 2000, (5000, 2))
    specks = np.concatenate([corners, corners + rng.uniform(5, 40, (5000, 2))], 1)
    tracemalloc.start()
    try:
        kept = dedupe_indices(specks.astype(np.float32), 0.5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    overlaps = box_iou(specks[kept], specks[kept])
    np.fill_diagonal(overlaps, 0)
    assert overlaps.max() <= 0.5 and len(kept) > 4000
    assert peak < 50 * 2**20  # the 5,000 × 5,000 overlaps alone would be 200 MB
