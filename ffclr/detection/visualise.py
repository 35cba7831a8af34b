"""Detections drawn on the drawing: one colour per class, `class · score` above each box."""
from __future__ import annotations

import colorsys

from PIL import Image, ImageDraw, ImageFont


def class_colour(class_index: int) -> tuple[int, int, int]:
    hue = (class_index * 0.618034) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_detections(image: Image.Image, detections, scale: float | None = None) -> Image.Image:
    """A copy of `image` (RGB) with the boxes, upscaled so ~30 px symbols stay legible."""
    image = image.convert("RGB")
    if scale is None:
        scale = 2.0 if max(image.size) <= 1600 else 1.0
    if scale != 1.0:
        image = image.resize((round(image.width * scale), round(image.height * scale)),
                             Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for det in sorted(detections, key=lambda d: d.score):
        x, y, w, h = (v * scale for v in det.bbox)
        colour = class_colour(det.class_index)
        draw.rectangle([x, y, x + w, y + h], outline=colour, width=2)
        label = f"{det.class_name} · {det.score:.2f}"
        left, top, right, bottom = draw.textbbox((x, y), label, font=font)
        ty = y - (bottom - top) - 3 if y - (bottom - top) - 3 >= 0 else y + h + 1
        draw.rectangle([x, ty, x + (right - left) + 4, ty + (bottom - top) + 3], fill=colour)
        draw.text((x + 2, ty + 1 - (top - y)), label, fill=(0, 0, 0), font=font)
    return image
