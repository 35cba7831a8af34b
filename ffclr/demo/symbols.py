"""The symbol classes of the synthetic demo export and how each one is drawn.

A class is data: a name, a relative frequency, a width/height ratio and a few primitive parts in
unit coordinates (0..1 across the symbol's box). `render_symbol` turns a class into a tight
8-bit mask at a given size, stroke width and rotation; the scene paints the mask in a colour.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

Box = tuple[float, float, float, float]

SUPERSAMPLE = 3


@dataclass(frozen=True)
class Part:
    """One primitive: `kind` is rect, ellipse, disc, line, poly, fill_poly, arc or text."""

    kind: str
    points: tuple[float, ...]
    text: str = ""
    angles: tuple[int, int] = (0, 360)


@dataclass(frozen=True)
class SymbolClass:
    name: str
    weight: float
    aspect: float
    parts: tuple[Part, ...]


FRAME = Part("rect", (0, 0, 1, 1))
CIRCLE = Part("ellipse", (0, 0, 1, 1))
BOW_TIE = Part("poly", (0, 0.45, 0, 1, 1, 0.45, 1, 1, 0, 0.45))


def boxed_label(name: str, weight: float, aspect: float, text: str) -> SymbolClass:
    return SymbolClass(name, weight, aspect, (FRAME, Part("text", (0.16, 0.2, 0.84, 0.8), text)))


def circled(name: str, weight: float, *inner: Part) -> SymbolClass:
    return SymbolClass(name, weight, 1.0, (CIRCLE, *inner))


SYMBOL_CLASSES: tuple[SymbolClass, ...] = (
    boxed_label("power-cord-24v", 36, 1.15, "D"),
    boxed_label("io-module", 10, 2.0, "I/O"),
    SymbolClass("smoke-detector", 9, 1.0, (
        FRAME, Part("poly", (0.7, 0.22, 0.3, 0.22, 0.7, 0.78, 0.3, 0.78)))),
    SymbolClass("manual-call-point", 6, 1.0, (
        FRAME, Part("line", (0.5, 0.2, 0.5, 0.72)), Part("line", (0.25, 0.72, 0.75, 0.72)),
        Part("disc", (0.42, 0.52, 0.58, 0.68)))),
    boxed_label("short-circuit-isolator", 6, 1.0, "SI"),
    SymbolClass("input-module", 5, 2.3, (FRAME, Part("line", (0.5, 0.25, 0.5, 0.75)))),
    boxed_label("relay-k1", 4, 1.4, "K1"),
    circled("indicator-lamp", 4, Part("line", (0.15, 0.15, 0.85, 0.85)),
            Part("line", (0.15, 0.85, 0.85, 0.15))),
    SymbolClass("sounder", 3.5, 1.3, (
        Part("arc", (0.1, 0.0, 0.9, 1.5), angles=(180, 360)), Part("line", (0, 0.75, 1, 0.75)),
        Part("line", (0.1, 0.75, 0.1, 1.0)), Part("line", (0.9, 0.75, 0.9, 1.0)))),
    SymbolClass("signal-valve", 3, 1.1, (
        BOW_TIE, Part("line", (0.5, 0.2, 0.5, 0.72)), Part("ellipse", (0.36, 0.0, 0.64, 0.26)))),
    boxed_label("pressure-switch", 3, 0.9, "P"),
    SymbolClass("flow-switch", 2.5, 2.2, (
        Part("line", (0.0, 0.5, 0.7, 0.5)), Part("fill_poly", (0.62, 0.15, 1.0, 0.5, 0.62, 0.85)),
        Part("line", (0.0, 0.1, 0.0, 0.9)))),
    boxed_label("mpy-control-module", 2, 1.8, "Mpy"),
    SymbolClass("fire-damper", 2, 1.7, (FRAME, Part("line", (0, 1, 1, 0)))),
    circled("level-switch", 1.5, Part("text", (0.22, 0.22, 0.78, 0.78), "L")),
    circled("heat-detector", 1.5, Part("line", (0.5, 0.12, 0.5, 0.88)),
            Part("line", (0.12, 0.5, 0.88, 0.5))),
    boxed_label("shutter-door-controller", 1.2, 1.3, "SD"),
    SymbolClass("solenoid-valve", 1, 1.1, (
        BOW_TIE, Part("line", (0.5, 0.25, 0.5, 0.72)), Part("rect", (0.3, 0.0, 0.7, 0.25)))),
    circled("sprinkler-head", 0.8),
    SymbolClass("smoke-exhaust-fan", 1, 1.0, (
        CIRCLE, Part("arc", (0.25, 0.2, 0.75, 0.8), angles=(200, 340)),
        Part("arc", (0.25, 0.2, 0.75, 0.8), angles=(20, 160)))),
)


@lru_cache(maxsize=256)
def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def fitted_font(text: str, width: float, height: float) -> ImageFont.FreeTypeFont:
    """The largest built-in font size whose rendering of `text` fits width x height pixels."""
    size = max(4, int(height * 1.3))
    while size > 4:
        left, top, right, bottom = font(size).getbbox(text)
        if right - left <= width and bottom - top <= height:
            break
        size -= 1
    return font(size)


def _draw_part(draw: ImageDraw.ImageDraw, part: Part, size: tuple[int, int], stroke: int) -> None:
    inset = stroke / 2
    sx, sy = size[0] - 1 - 2 * inset, size[1] - 1 - 2 * inset
    xy = [inset + v * (sx if i % 2 == 0 else sy) for i, v in enumerate(part.points)]
    if part.kind == "rect":
        draw.rectangle(xy, outline=255, width=stroke)
    elif part.kind == "ellipse":
        draw.ellipse(xy, outline=255, width=stroke)
    elif part.kind == "disc":
        draw.ellipse(xy, fill=255)
    elif part.kind == "line":
        draw.line(xy, fill=255, width=stroke)
    elif part.kind == "poly":
        draw.line(xy, fill=255, width=stroke, joint="curve")
    elif part.kind == "fill_poly":
        draw.polygon(xy, fill=255)
    elif part.kind == "arc":
        draw.arc(xy, *part.angles, fill=255, width=stroke)
    elif part.kind == "text":
        chosen = fitted_font(part.text, xy[2] - xy[0], xy[3] - xy[1])
        draw.text(((xy[0] + xy[2]) / 2, (xy[1] + xy[3]) / 2), part.text, fill=255, font=chosen,
                  anchor="mm")
    else:
        raise ValueError(f"unknown part kind {part.kind!r}")


def symbol_size(cls: SymbolClass, long_side: int) -> tuple[int, int]:
    """Width and height of the symbol's box for a given longer side (shorter side >= 10 px)."""
    if cls.aspect >= 1:
        return long_side, max(10, round(long_side / cls.aspect))
    return max(10, round(long_side * cls.aspect)), long_side


def render_symbol(cls: SymbolClass, long_side: int, stroke: int, quarter_turns: int) -> Image.Image:
    """An 'L' mask of the symbol (255 = ink), cropped tight, rotated by 90° steps.

    The stroke is thinned on small symbols so that their inner marks stay legible.
    """
    width, height = symbol_size(cls, long_side)
    stroke = max(1, min(stroke, min(width, height) // 8))
    big = (width * SUPERSAMPLE, height * SUPERSAMPLE)
    mask = Image.new("L", big, 0)
    draw = ImageDraw.Draw(mask)
    for part in cls.parts:
        _draw_part(draw, part, big, stroke * SUPERSAMPLE)
    mask = mask.resize((width, height), Image.Resampling.BOX)
    mask = mask.point(lambda v: 0 if v < 40 else min(255, v * 2))
    if quarter_turns % 4:
        mask = mask.rotate(90 * quarter_turns, expand=True)
    return mask.crop(mask.getbbox())
