"""One synthetic fire-alarm schematic: symbols on coloured wiring, plus unannotated distractors.

The layout follows the real drawings: horizontal bands separated by dashed lines, a bus wire
through each band with symbols on it, some symbols hanging below on vertical drops, count
labels ("x2"), inline wire labels ("K1"), junction dots, slash ticks and free text. Symbol
boxes are tight, inside the image and never overlap each other or any distractor ink.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from ffclr.demo.symbols import SYMBOL_CLASSES, font, render_symbol

Rect = tuple[int, int, int, int]  # x, y, width, height
Colour = tuple[int, int, int]

BACKGROUNDS: tuple[Colour, ...] = ((33, 40, 48), (26, 29, 35), (12, 12, 14))
SYMBOL_COLOURS: tuple[Colour, ...] = (
    (0, 255, 0), (255, 0, 255), (255, 255, 255), (0, 200, 255), (255, 255, 0), (255, 50, 50))
SYMBOL_COLOUR_P = (0.3, 0.2, 0.2, 0.12, 0.1, 0.08)
WIRE_COLOURS: tuple[Colour, ...] = ((230, 20, 60), (215, 40, 170), (0, 170, 255), (0, 210, 0))
COUNT_COLOUR: Colour = (235, 235, 0)
SEPARATOR_COLOUR: Colour = (190, 190, 190)
EDGE = 3


@dataclass(frozen=True)
class PlacedSymbol:
    class_index: int
    bbox: Rect


@dataclass
class Schematic:
    image: Image.Image
    symbols: list[PlacedSymbol]


class ClassPicker:
    """Yields class indices: first the `forced` ones (so rare classes appear), then by weight."""

    def __init__(self, rng: np.random.Generator, forced: list[int]):
        self.rng = rng
        self.queue = list(forced)
        weights = np.array([c.weight for c in SYMBOL_CLASSES], dtype=float)
        self.p = weights / weights.sum()

    def peek(self) -> int:
        if not self.queue:
            self.queue.append(int(self.rng.choice(len(SYMBOL_CLASSES), p=self.p)))
        return self.queue[0]

    def take(self) -> int:
        class_index = self.peek()
        self.queue.pop(0)
        return class_index


def overlaps(a: Rect, b: Rect, margin: int) -> bool:
    return (a[0] < b[0] + b[2] + margin and b[0] < a[0] + a[2] + margin
            and a[1] < b[1] + b[3] + margin and b[1] < a[1] + a[3] + margin)


@dataclass
class _Scene:
    rng: np.random.Generator
    picker: ClassPicker
    image: Image.Image
    symbols: list[PlacedSymbol] = field(default_factory=list)
    ink: list[Rect] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.draw = ImageDraw.Draw(self.image)

    @property
    def width(self) -> int:
        return self.image.width

    def is_free(self, rect: Rect, margin: int = 3) -> bool:
        if rect[0] < EDGE or rect[1] < EDGE or rect[0] + rect[2] > self.width - EDGE \
                or rect[1] + rect[3] > self.image.height - EDGE:
            return False
        if any(overlaps(rect, s.bbox, margin) for s in self.symbols):
            return False
        return not any(overlaps(rect, r, 1) for r in self.ink)

    def line(self, start: tuple[int, int], end: tuple[int, int], colour: Colour,
             width: int = 1) -> None:
        self.draw.line([start, end], fill=colour, width=width)
        x0, x1 = sorted((start[0], end[0]))
        y0, y1 = sorted((start[1], end[1]))
        self.ink.append((x0 - width // 2, y0 - width // 2, x1 - x0 + width, y1 - y0 + width))

    def text(self, xy: tuple[int, int], text: str, colour: Colour, size: int,
             anchor: str = "la") -> Rect | None:
        """Draws `text` where it touches nothing already drawn; returns its rect, or None."""
        left, top, right, bottom = self.draw.textbbox(xy, text, font=font(size), anchor=anchor)
        rect = (left, top, right - left, bottom - top)
        if not self.is_free(rect, margin=2):
            return None
        self.draw.text(xy, text, fill=colour, font=font(size), anchor=anchor)
        self.ink.append(rect)
        return rect

    def symbol_mask(self) -> tuple[int, Image.Image]:
        rng = self.rng
        class_index = self.picker.peek()
        long_side = int(np.clip(rng.normal(32, 6), 20, 45))
        stroke = int(rng.choice([1, 2, 3], p=[0.5, 0.38, 0.12]))
        quarter_turns = int(rng.choice([0, 1, 3], p=[0.82, 0.09, 0.09]))
        return class_index, render_symbol(SYMBOL_CLASSES[class_index], long_side, stroke,
                                          quarter_turns)

    def place(self, class_index: int, mask: Image.Image, x: int, y: int) -> PlacedSymbol | None:
        rect = (x, y, mask.width, mask.height)
        if not self.is_free(rect, margin=4):
            return None
        self.picker.take()
        colour = SYMBOL_COLOURS[int(self.rng.choice(len(SYMBOL_COLOURS), p=SYMBOL_COLOUR_P))]
        self.image.paste(colour, (x, y, x + mask.width, y + mask.height), mask)
        placed = PlacedSymbol(class_index, rect)
        self.symbols.append(placed)
        return placed

    def separator(self, y: int) -> None:
        x = int(self.rng.integers(0, 30))
        while x < self.width:
            dash = int(self.rng.integers(40, 160))
            self.line((x, y), (min(x + dash, self.width - 1), y), SEPARATOR_COLOUR)
            x += dash + int(self.rng.integers(6, 14))

    def band(self, top: int, bottom: int) -> None:
        rng = self.rng
        bus_y = top + max(26, int((bottom - top) * rng.uniform(0.28, 0.38)))
        wire = WIRE_COLOURS[int(rng.integers(len(WIRE_COLOURS)))]
        wire_width = int(rng.choice([1, 2], p=[0.75, 0.25]))
        start = int(rng.integers(EDGE, 40))
        x, left_end = start + int(rng.integers(8, 50)), start
        row: list[PlacedSymbol] = []
        for _ in range(40):
            class_index, mask = self.symbol_mask()
            if x + mask.width > self.width - EDGE:
                break
            placed = self.place(class_index, mask, x, bus_y - mask.height // 2)
            if placed is not None:
                self.wire_segment(left_end, x - 1, bus_y, wire, wire_width)
                row.append(placed)
                left_end = x + mask.width
            x += mask.width + int(rng.integers(24, 130))
        if row and rng.random() < 0.6:
            self.wire_segment(left_end, self.width - int(rng.integers(EDGE, 60)), bus_y, wire,
                              wire_width)
        for placed in row:
            if rng.random() < 0.25:
                self.drop(placed, bottom, wire)
            if rng.random() < 0.5:
                self.count_label(placed)
        if rng.random() < 0.5:
            self.free_label(top, bottom)

    def wire_segment(self, x0: int, x1: int, y: int, colour: Colour, width: int) -> None:
        """A horizontal wire, sometimes broken by an inline label or marked by a dot or ticks."""
        rng = self.rng
        if x1 - x0 < 2:
            return
        if x1 - x0 > 70 and rng.random() < 0.3:
            label = f"{'KWN'[int(rng.integers(3))]}{int(rng.integers(1, 10))}"
            centre = int(rng.integers(x0 + 30, x1 - 30))
            rect = self.text((centre, y), label, colour, int(rng.integers(12, 17)), anchor="mm")
            if rect is not None:
                self.line((x0, y), (rect[0] - 3, y), colour, width)
                self.line((rect[0] + rect[2] + 3, y), (x1, y), colour, width)
                return
        self.line((x0, y), (x1, y), colour, width)
        if x1 - x0 > 30 and rng.random() < 0.2:
            cx = int(rng.integers(x0 + 10, x1 - 10))
            r = int(rng.integers(2, 4))
            self.draw.ellipse((cx - r, y - r, cx + r, y + r), fill=COUNT_COLOUR)
            self.ink.append((cx - r, y - r, 2 * r + 1, 2 * r + 1))
        elif x1 - x0 > 30 and rng.random() < 0.12:
            cx = int(rng.integers(x0 + 10, x1 - 10))
            for dx in (-2, 2):
                self.line((cx + dx - 3, y + 5), (cx + dx + 3, y - 5), colour)

    def drop(self, parent: PlacedSymbol, bottom: int, wire: Colour) -> None:
        """A symbol hanging below `parent` on a short vertical wire."""
        px, py, pw, ph = parent.bbox
        centre, length = px + pw // 2, int(self.rng.integers(10, 24))
        class_index, mask = self.symbol_mask()
        top = py + ph + length
        if top + mask.height > bottom - EDGE:
            return
        wire_rect = (centre, py + ph + 1, 1, length - 2)
        if not self.is_free(wire_rect, margin=1):
            return
        placed = self.place(class_index, mask, centre - mask.width // 2, top)
        if placed is not None:
            self.line((centre, py + ph), (centre, top - 1), wire)
            if self.rng.random() < 0.5:
                self.count_label(placed, below=True)

    def count_label(self, placed: PlacedSymbol, below: bool = False) -> None:
        x, y, w, h = placed.bbox
        label = f"x{int(self.rng.choice([1, 1, 1, 2, 2, 4, 6, 8, 12]))}"
        size = int(self.rng.integers(11, 16))
        if below:
            self.text((x + w // 2, y + h + 3), label, COUNT_COLOUR, size, anchor="mt")
        else:
            self.text((x + w + 2, y - 1), label, COUNT_COLOUR, size, anchor="lb")

    def free_label(self, top: int, bottom: int) -> None:
        """Unannotated text with an underline leader, like the cable references on real sheets."""
        rng = self.rng
        label = rng.choice([f"B{rng.integers(1, 4)}-{rng.integers(1, 3)}/BJ{rng.integers(1, 4)}."
                            f"{rng.integers(1, 6)}", f"WDC-{rng.integers(1, 20)}",
                            f"{rng.integers(1, 30)}F", "ZR-BV-2x1.5", "NH-RVS-2x1.5"])
        colour = SYMBOL_COLOURS[int(rng.choice([2, 4, 3]))]
        for _ in range(6):
            x = int(rng.integers(EDGE + 10, max(EDGE + 11, self.width - 120)))
            y = int(rng.integers(top + (bottom - top) // 2, max(top + (bottom - top) // 2 + 1,
                                                                 bottom - 20)))
            rect = self.text((x, y), str(label), colour, int(rng.integers(11, 15)))
            if rect is not None:
                under = rect[1] + rect[3] + 2
                if self.is_free((rect[0] - 2, under, rect[2] + 24, 1), margin=2):
                    self.line((rect[0] - 2, under), (rect[0] + rect[2] + 22, under), colour)
                return


def draw_schematic(rng: np.random.Generator, forced_classes: list[int]) -> Schematic:
    """A random schematic; `forced_classes` are placed first (when they fit)."""
    width, height = int(rng.integers(240, 321)), int(rng.integers(168, 225))
    base = np.array(BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))])
    background = tuple(int(v) for v in np.clip(base + rng.integers(-4, 5, size=3), 0, 255))
    scene = _Scene(rng, ClassPicker(rng, forced_classes), Image.new("RGB", (width, height),
                                                                     background))
    pitch = int(rng.integers(80, 106))
    edges = list(range(int(rng.integers(EDGE, 20)), height - EDGE - 70, pitch)) + [height - EDGE]
    for y in edges[1:-1]:
        if rng.random() < 0.75:
            scene.separator(y)
    for top, bottom in zip(edges, edges[1:]):
        scene.band(top, bottom)
    return Schematic(scene.image, scene.symbols)
