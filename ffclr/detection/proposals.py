"""Class-agnostic proposals: the ink extents of stroke groups in a CAD drawing.

A drawing is strokes on a flat background. The background colour is the image's most common
colour; a pixel is ink when it differs from it. Symbols hang on long straight wires, so ink runs
longer than a symbol are cut away before grouping ink into connected components; this is done
at a few cut lengths, a few grouping distances (letters of a label, dashed strokes), for all ink
and for each main colour layer (CAD layers have their own colours, so a white frame splits from
the red wire it touches). Each group's ink extent is a proposal: boxes `(x0, y0, x1, y1)`.
Large drawings are cut into overlapping tiles, so memory stays bounded by the tile size.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ffclr.data.ink import INK_THRESHOLD, background_colour, ink_mask
from ffclr.detection.boxes import batched_nms


@dataclass(frozen=True)
class ProposalConfig:
    ink_threshold: int = INK_THRESHOLD
    """Max channel difference from the background colour above which a pixel is ink."""
    cut_lengths: tuple[int, ...] = (24, 48, 160)
    """Ink runs at least this long (horizontal or vertical) are wires, cut before grouping."""
    grow_radii: tuple[int, ...] = (0, 2, 4)
    """Ink closer than about twice this is grouped into one component."""
    layer_min_pixels: int = 60
    """A colour layer needs this much ink (per tile) to be grouped on its own: a drawing's only
    symbol in its colour can be its whole layer."""
    max_layers: int = 12
    min_side: float = 4.0
    max_side: float = 160.0
    """Ink extents outside [min_side, max_side] are not symbols."""
    dedupe_iou: float = 0.9
    tile: int = 2048
    """Tile side for large drawings; tiles overlap by 2 × max_side."""


def colour_layers(rgb: np.ndarray, ink: np.ndarray, min_pixels: int, max_layers: int
                  ) -> list[np.ndarray]:
    """Ink split by hue (12 sectors) with greys as one more layer, largest layers first.

    Hue, not RGB bins: a stroke's faint anti-aliased or JPEG-blurred edge has its hue.
    """
    ys, xs = np.nonzero(ink)
    px = rgb[ys, xs].astype(np.float32)
    high, low = px.max(axis=1), px.min(axis=1)
    chroma = high - low
    r, g, b = px[:, 0], px[:, 1], px[:, 2]
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(high == r, (g - b) / safe % 6, np.where(high == g, (b - r) / safe + 2,
                                                          (r - g) / safe + 4))
    key = np.where(chroma < 0.25 * np.maximum(high, 1), 12, (hue * 2).astype(np.int64) % 12)
    counts = np.bincount(key, minlength=13)
    layers = []
    for k in np.argsort(-counts)[:max_layers]:
        if counts[k] < min_pixels:
            break
        mask = np.zeros_like(ink)
        mask[ys[key == k], xs[key == k]] = True
        layers.append(mask)
    return layers


def _runs_at_least(mask: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Pixels of `mask` inside a straight run of at least `length` pixels along `axis`."""
    full = ndimage.uniform_filter1d(mask.astype(np.float32), length, axis=axis,
                                    mode="constant") > 1 - 0.5 / length
    return ndimage.uniform_filter1d(full.astype(np.float32), length, axis=axis,
                                    mode="constant") > 0.5 / length


def cut_wires(mask: np.ndarray, length: int) -> np.ndarray:
    return mask & ~(_runs_at_least(mask, length, 1) | _runs_at_least(mask, length, 0))


def component_boxes(mask: np.ndarray, grow: int = 0) -> np.ndarray:
    """Ink extent of each connected component, ink within about 2 × `grow` px joined."""
    grouped = ndimage.maximum_filter(mask, size=2 * grow + 1) if grow else mask
    labels, count = ndimage.label(grouped, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return np.zeros((0, 4), np.float32)
    if grow:
        labels = np.where(mask, labels, 0)
    slices = [s for s in ndimage.find_objects(labels) if s is not None]
    return np.array([[s[1].start, s[0].start, s[1].stop, s[0].stop] for s in slices],
                    np.float32).reshape(-1, 4)


def dedupe_indices(boxes: np.ndarray, iou: float) -> np.ndarray:
    """Indices of the boxes left after dropping each box that overlaps an earlier kept one by
    more than `iou` (exact duplicates always go). NMS with the earlier box as the better one:
    torchvision's kernel never holds the N × N overlaps, so a drawing of noise with tens of
    thousands of ink specks stays within memory."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    _, first = np.unique(boxes, axis=0, return_index=True)
    first = np.sort(first)
    earlier_first = np.arange(len(first), 0, -1, dtype=np.float32)
    kept = batched_nms(boxes[first], earlier_first, np.zeros(len(first), np.int64), iou)
    return first[np.sort(kept)]


def dedupe(boxes: np.ndarray, iou: float) -> np.ndarray:
    return boxes[dedupe_indices(boxes, iou)]


def tile_proposals(rgb: np.ndarray, background: np.ndarray, config: ProposalConfig) -> np.ndarray:
    ink = ink_mask(rgb, background, config.ink_threshold)
    masks = [ink, *colour_layers(rgb, ink, config.layer_min_pixels, config.max_layers)]
    found = [np.zeros((0, 4), np.float32)]
    pad = max(config.grow_radii, default=0) + 1
    for mask in masks:
        ys, xs = np.nonzero(mask)
        if not len(ys):
            continue
        top, left = max(0, ys.min() - pad), max(0, xs.min() - pad)
        inked = mask[top: ys.max() + pad + 1, left: xs.max() + pad + 1]
        for length in config.cut_lengths:
            cut = cut_wires(inked, length)
            for grow in config.grow_radii:
                found.append(component_boxes(cut, grow) + [left, top, left, top])
    boxes = np.concatenate(found)
    sides = boxes[:, 2:] - boxes[:, :2]
    ok = (sides.min(axis=1) >= config.min_side) & (sides.max(axis=1) <= config.max_side)
    return boxes[ok]


def tiles(width: int, height: int, tile: int, overlap: int):
    """(x0, y0, x1, y1) of overlapping tiles and the core (x0, y0, x1, y1) each one owns."""
    step = max(tile - overlap, 1)
    xs = list(range(0, max(width - overlap, 1), step))
    ys = list(range(0, max(height - overlap, 1), step))
    for y in ys:
        for x in xs:
            outer = (x, y, min(x + tile, width), min(y + tile, height))
            core = (x if x == 0 else x + overlap // 2, y if y == 0 else y + overlap // 2,
                    outer[2] if outer[2] == width else outer[2] - overlap // 2,
                    outer[3] if outer[3] == height else outer[3] - overlap // 2)
            yield outer, core


def stroke_proposals(rgb: np.ndarray, config: ProposalConfig = ProposalConfig()) -> np.ndarray:
    """Ink extents (N, 4) float32 of candidate symbols in an RGB uint8 (H, W, 3) drawing."""
    height, width = rgb.shape[:2]
    background = background_colour(rgb)
    found = []
    for (x0, y0, x1, y1), (cx0, cy0, cx1, cy1) in tiles(width, height, config.tile,
                                                         int(2 * config.max_side)):
        boxes = tile_proposals(rgb[y0:y1, x0:x1], background, config) + [x0, y0, x0, y0]
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        own = (centre[:, 0] >= cx0) & (centre[:, 0] < cx1) & (centre[:, 1] >= cy0) & (centre[:, 1] < cy1)
        found.append(boxes[own])
    boxes = np.concatenate(found) if found else np.zeros((0, 4), np.float32)
    return dedupe(boxes, config.dedupe_iou).astype(np.float32)
