"""Reading a whole drawing: any Pillow mode to RGB, with a pixel cap checked before decoding."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ffclr.errors import FfclrError

MAX_PIXELS = 100_000_000
"""Largest drawing accepted (width × height), about 10,000 × 10,000: 300 MB as RGB."""
MIN_SIDE = 32
"""Smallest drawing side accepted: a drawing holds symbols of about 30 px."""


def _to_rgb(image: Image.Image) -> Image.Image:
    from ffclr.data.coco_import import to_rgb

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return to_rgb(image)


def check_size(size: tuple[int, int], label: str, max_pixels: int = MAX_PIXELS) -> None:
    width, height = size
    if min(width, height) < MIN_SIDE:
        raise FfclrError(f"{label}: image is {width}×{height} pixels, too small for a drawing "
                         f"(at least {MIN_SIDE} a side; a symbol alone is about 30)")
    if width * height > max_pixels:
        raise FfclrError(f"{label}: image is {width}×{height} = {width * height:,} pixels, over the "
                         f"limit of {max_pixels:,}; split the drawing or scale it down")


def read_drawing(source: str | os.PathLike | Image.Image, max_pixels: int = MAX_PIXELS
                 ) -> tuple[Image.Image, str]:
    """(RGB image, name) of a path or PIL image; a non-image or oversized one raises FfclrError.

    Transparent pixels are laid on white, as a viewer shows them.
    """
    if isinstance(source, Image.Image):
        label = Path(getattr(source, "filename", "") or "image").name
        check_size(source.size, label, max_pixels)
        return _to_rgb(source), label
    path = Path(source)
    if not path.is_file():
        raise FfclrError(f"{path}: no such image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                check_size(image.size, str(path), max_pixels)
                image.load()
                return _to_rgb(image), path.name
    except FfclrError:
        raise
    except Image.DecompressionBombError:
        raise FfclrError(f"{path}: image too large (over Pillow's decompression-bomb limit)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise FfclrError(f"{path}: not a readable image ({exc.__class__.__name__})") from None
