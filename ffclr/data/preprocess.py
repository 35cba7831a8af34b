"""Crop → network input, identical for the training cache and for inference.

A symbol crop is padded to a square with its own border colour (the dark CAD background), so
its aspect ratio survives, then resized to `image_size`. Pixels are kept as uint8 until the
batch is on the device; `to_model_input` scales and normalises there.
"""
from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from ffclr.errors import FfclrError

DEFAULT_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
DEFAULT_STD: tuple[float, float, float] = (0.5, 0.5, 0.5)
SEED_MEAN: tuple[float, float, float] = (0.0, 0.0, 0.0)
"""sthalles/SimCLR fed `ToTensor()` output without normalisation."""
SEED_STD: tuple[float, float, float] = (1.0, 1.0, 1.0)
SEED_IMAGE_SIZE = 96
"""The image size the fork pretrained its ff_devices checkpoints at."""


def load_image_rgb(path_or_pil: str | PathLike | Image.Image) -> Image.Image:
    """The image as RGB; a file that is not a readable image raises FfclrError naming it."""
    if isinstance(path_or_pil, Image.Image):
        return path_or_pil.convert("RGB")
    path = Path(path_or_pil)
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except FileNotFoundError:
        raise FfclrError(f"{path}: no such image file") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise FfclrError(f"{path}: not a readable image ({exc.__class__.__name__})") from None


def border_colour(pixels: np.ndarray) -> tuple[int, ...]:
    """Median colour of the outermost pixel ring: the drawing's background around a symbol."""
    ring = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return tuple(int(v) for v in np.median(ring, axis=0))


def square_crop_array(image: Image.Image, image_size: int) -> np.ndarray:
    """uint8 (S, S, 3): the crop padded to a square with its border colour, then resized."""
    image = image.convert("RGB")
    width, height = image.size
    side = max(width, height)
    if width != height:
        canvas = Image.new("RGB", (side, side), border_colour(np.asarray(image)))
        canvas.paste(image, ((side - width) // 2, (side - height) // 2))
        image = canvas
    if side != image_size:
        image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8).copy()


def to_model_input(batch, mean: Sequence[float] = DEFAULT_MEAN,
                   std: Sequence[float] = DEFAULT_STD):
    """Float (N, 3, S, S) normalised input from uint8 pixels, (N, 3, S, S) tensor or (N, S, S, 3)."""
    import torch

    if isinstance(batch, np.ndarray):
        batch = torch.from_numpy(np.ascontiguousarray(batch))
    if batch.ndim == 3:
        batch = batch.unsqueeze(0)
    if batch.shape[1] != 3 and batch.shape[-1] == 3:
        batch = batch.permute(0, 3, 1, 2)
    x = batch.float()
    if batch.dtype == torch.uint8:
        x = x / 255.0
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return ((x - mean_t) / std_t).contiguous()
