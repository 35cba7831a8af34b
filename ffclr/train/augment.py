"""Batched augmentations of line-drawing crops, on tensors, on the training device.

Views come from an in-memory uint8 cache (N, 3, S, S): one `grid_sample` does rotation, scale
and translation for the whole batch, max/min pooling thickens or thins strokes, a 3×3 matrix per
sample rotates hue, a grouped convolution blurs. Random parameters are drawn per view on the CPU
from an explicit `torch.Generator`, so a step's views depend only on its seed, whatever the
device or the number of processes (each rank takes its slice of the global batch's parameters).

Presets:
- `default`, for small CAD symbols: upright or turned a quarter clockwise, plus ±8°; scale
  0.85–1.2, shift ±8%, stroke width ±1 px, free hue rotation (colours are CAD layers, not
  identity), brightness / contrast / saturation, grayscale, light blur. Those two orientations
  are the ones text takes on these drawings (a vertical wire's label reads top to bottom): many
  symbols differ only by their text (wire labels K6 / K8 / K9, letters in boxes), and a network
  taught that a half turn changes nothing reads a 6 as a 9. No mirror flips: text and asymmetric
  marks inside symbols do not appear mirrored on drawings.
- `upright`: no quarter turns (the best linear probe in the comparison in docs/measurements.md, Evaluation,
  but nearest-class-mean few-shot drops, since a wire's horizontal and vertical crops then look
  unrelated).
- `rotate`: any multiple of 90°, for symbol sets without text placed at any orientation (the
  default before that comparison).
- `seed`, the fork's schematic recipe: 90/180/270° rotation, colour jitter (0.8, 0.8, 0.8, 0.2)
  with p = 0.4, grayscale p = 0.2, Gaussian blur (kernel 10% of the side, σ 0.1–2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentRecipe:
    rotations: tuple[int, ...]
    """Quarter turns to choose from uniformly."""
    rotate_jitter_deg: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    translate: float = 0.0
    stroke_p: float = 0.0
    """Probability of thickening (half of it) or thinning (the other half) strokes by 1 px."""
    jitter_p: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue_deg: float = 0.0
    gray_p: float = 0.0
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel_fraction: float = 0.1


_CAD = AugmentRecipe(rotations=(0, 3), rotate_jitter_deg=8.0, scale=(0.85, 1.2), translate=0.08,
                     stroke_p=0.5, jitter_p=0.8, brightness=0.4, contrast=0.4, saturation=0.5,
                     hue_deg=180.0, gray_p=0.2, blur_p=0.3, blur_sigma=(0.1, 0.8))

PRESETS: dict[str, AugmentRecipe] = {
    "default": _CAD,
    "upright": replace(_CAD, rotations=(0,)),
    "rotate": replace(_CAD, rotations=(0, 1, 2, 3)),
    "seed": AugmentRecipe(rotations=(1, 2, 3), jitter_p=0.4, brightness=0.8, contrast=0.8,
                          saturation=0.8, hue_deg=0.2 * 360, gray_p=0.2, blur_p=1.0,
                          blur_sigma=(0.1, 2.0)),
}

_GRAY = (0.299, 0.587, 0.114)


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def sample_params(n: int, recipe: AugmentRecipe, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Random parameters for `n` views (CPU tensors); same generator state → same views."""
    quarter = torch.tensor(recipe.rotations)[torch.randint(len(recipe.rotations), (n,),
                                                           generator=gen)]
    angle = quarter * 90.0 + _uniform(n, -recipe.rotate_jitter_deg, recipe.rotate_jitter_deg, gen)
    u = torch.rand(n, generator=gen)
    stroke = torch.where(u < recipe.stroke_p / 2, 1, torch.where(u < recipe.stroke_p, -1, 0))
    jitter = torch.rand(n, generator=gen) < recipe.jitter_p
    b, c, s = recipe.brightness, recipe.contrast, recipe.saturation
    return {
        "angle": angle,
        "scale": _uniform(n, *recipe.scale, gen),
        "shift": _uniform(2 * n, -recipe.translate, recipe.translate, gen).view(n, 2),
        "stroke": stroke,
        "brightness": torch.where(jitter, _uniform(n, 1 - b, 1 + b, gen), 1.0),
        "contrast": torch.where(jitter, _uniform(n, max(0.0, 1 - c), 1 + c, gen), 1.0),
        "saturation": torch.where(jitter, _uniform(n, max(0.0, 1 - s), 1 + s, gen), 1.0),
        "hue": torch.where(jitter, _uniform(n, -recipe.hue_deg, recipe.hue_deg, gen), 0.0),
        "gray": torch.rand(n, generator=gen) < recipe.gray_p,
        "sigma": torch.where(torch.rand(n, generator=gen) < recipe.blur_p,
                             _uniform(n, *recipe.blur_sigma, gen), 0.0),
    }


def slice_params(params: dict[str, torch.Tensor], start: int, stop: int) -> dict[str, torch.Tensor]:
    return {k: v[start:stop] for k, v in params.items()}


def _geometry(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    rad = p["angle"] * (math.pi / 180.0)
    cos, sin = torch.cos(rad) / p["scale"], torch.sin(rad) / p["scale"]
    theta = torch.stack([torch.stack([cos, -sin, p["shift"][:, 0]], 1),
                         torch.stack([sin, cos, p["shift"][:, 1]], 1)], 1)
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _strokes(x: torch.Tensor, stroke: torch.Tensor) -> torch.Tensor:
    """Thicken (+1) or thin (−1) bright strokes on a dark background (light ones are inverted)."""
    if not stroke.any():
        return x
    x = x.clone()
    for sign in (1, -1):
        rows = (stroke == sign).nonzero().squeeze(1).to(x.device)
        if len(rows) == 0:
            continue
        y = x[rows]
        border = torch.cat([y[..., 0, :], y[..., -1, :], y[..., :, 0], y[..., :, -1]], -1)
        light = (border.mean((1, 2)) > 0.5).view(-1, 1, 1, 1)
        thicken = torch.where(light, -sign, sign).to(y.dtype)
        x[rows] = _max3x3(y * thicken) * thicken
    return x


def _max3x3(x: torch.Tensor) -> torch.Tensor:
    """3×3 max filter as two separable passes (faster than `max_pool2d` on CPU)."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    rows = torch.maximum(torch.maximum(p[..., :-2, :], p[..., 1:-1, :]), p[..., 2:, :])
    return torch.maximum(torch.maximum(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])


def hue_matrices(degrees: torch.Tensor) -> torch.Tensor:
    """(n, 3, 3) rotations of RGB about the grey axis: a hue shift that keeps grey grey."""
    rad = degrees * (math.pi / 180.0)
    cos, sin = torch.cos(rad)[:, None, None], torch.sin(rad)[:, None, None]
    u = torch.full((3,), 1 / math.sqrt(3.0))
    cross = torch.tensor([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    return cos * torch.eye(3) + (1 - cos) * torch.outer(u, u) + sin * cross


def colour_transform(p: dict[str, torch.Tensor], mean_rgb: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Hue, brightness, contrast, saturation and grayscale folded into x ↦ A x + b per sample.

    Each step is linear in RGB (contrast blends towards the image's mean grey), so the chain
    is one (3, 3) matrix and one offset: a single batched matmul instead of five passes.
    """
    n = len(p["hue"])
    w = torch.tensor(_GRAY)
    ones_w = torch.outer(torch.ones(3), w)
    eye = torch.eye(3).expand(n, 3, 3)
    a = hue_matrices(p["hue"]) * p["brightness"].view(n, 1, 1)
    c = p["contrast"].view(n, 1, 1)
    grey_level = (w @ (a @ mean_rgb.unsqueeze(2))).view(n, 1, 1)
    s = p["saturation"].view(n, 1, 1)
    sat = s * eye + (1 - s) * ones_w
    gray = torch.where(p["gray"].view(n, 1, 1), ones_w.expand(n, 3, 3), eye)
    post = gray @ sat
    offset = post @ ((1 - c) * grey_level * torch.ones(n, 3, 1))
    return post @ (c * a), offset


def _colour(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    n, ch, h, w = x.shape
    a, b = colour_transform(p, x.mean((2, 3)).float().cpu())
    y = torch.baddbmm(b.to(x.device, x.dtype), a.to(x.device, x.dtype), x.reshape(n, ch, h * w))
    return y.view(n, ch, h, w)


def _blur(x: torch.Tensor, sigma: torch.Tensor, fraction: float) -> torch.Tensor:
    if not (sigma > 0).any():
        return x
    n, ch, h, w = x.shape
    size = max(3, int(fraction * h) | 1)
    offsets = torch.arange(size, dtype=torch.float32) - size // 2
    kernel = torch.exp(-offsets[None] ** 2 / (2 * sigma.clamp(min=1e-3)[:, None] ** 2))
    kernel = torch.where((sigma > 0)[:, None], kernel, (offsets == 0).float()[None])
    kernel = (kernel / kernel.sum(1, keepdim=True)).to(x.device, x.dtype)
    k = kernel.repeat_interleave(ch, 0)
    y = x.reshape(1, n * ch, h, w)
    y = F.pad(y, (size // 2,) * 4, mode="replicate")
    y = F.conv2d(y, k.view(n * ch, 1, size, 1), groups=n * ch)
    y = F.conv2d(y, k.view(n * ch, 1, 1, size), groups=n * ch)
    return y.view(n, ch, h, w)


def augment(images: torch.Tensor, params: dict[str, torch.Tensor],
            recipe: AugmentRecipe) -> torch.Tensor:
    """Float views in [0, 1] of uint8 (or [0, 1] float) images (n, 3, S, S), one per row."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    x = _geometry(x, params)
    x = _strokes(x, params["stroke"])
    x = _colour(x, params).clamp(0, 1)
    x = _blur(x, params["sigma"], recipe.blur_kernel_fraction)
    return x.clamp(0, 1)


def make_views(images: torch.Tensor, n_views: int, recipe: AugmentRecipe,
               gen: torch.Generator) -> torch.Tensor:
    """(n * n_views, 3, S, S) views, sample-major (row i * n_views + v)."""
    params = sample_params(len(images) * n_views, recipe, gen)
    return augment(images.repeat_interleave(n_views, 0), params, recipe)
