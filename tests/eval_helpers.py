"""Tiny inputs for the evaluation tests: an untrained checkpoint and ImageFolder trees of crops."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220),
           "yellow": (230, 220, 30)}


def write_checkpoint(path: Path, image_size: int = 16, seed: int = 0) -> Path:
    import torch

    from ffclr.model.checkpoint import save_checkpoint
    from ffclr.model.networks import SimCLRModel

    torch.manual_seed(seed)
    model = SimCLRModel("resnet18", out_dim=16, small_stem=True)
    return save_checkpoint(path, {"epoch": 0, "arch": "resnet18", "state_dict": model.state_dict(),
                                  "image_size": image_size, "mean": [0.5] * 3, "std": [0.5] * 3,
                                  "config": {"out_dim": 16}})


def symbol(colour: tuple[int, int, int], rng: np.random.Generator, size: int = 14) -> Image.Image:
    """A dark square with a coloured ring of random thickness and offset, like a CAD symbol."""
    pixels = np.full((size, size, 3), 20, dtype=np.uint8)
    t = int(rng.integers(1, 3))
    o = int(rng.integers(1, 3))
    pixels[o:size - o, o:o + t] = colour
    pixels[o:size - o, size - o - t:size - o] = colour
    pixels[o:o + t, o:size - o] = colour
    pixels[size - o - t:size - o, o:size - o] = colour
    noise = rng.integers(-10, 10, pixels.shape)
    return Image.fromarray(np.clip(pixels.astype(int) + noise, 0, 255).astype(np.uint8))


def write_folder(root: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """`root/<class>/<i>.png` with `counts[class]` crops per class."""
    rng = np.random.default_rng(seed)
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            symbol(COLOURS[name], rng).save(root / name / f"{name}_{i}.png")
    return root


def clusters(n_per_class: list[int], dim: int = 8, spread: float = 0.3, seed: int = 0):
    """Well-separated Gaussian clusters: (features, labels)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(n_per_class), dim)) * 3
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
    return centres[labels] + spread * rng.normal(size=(len(labels), dim)), labels
