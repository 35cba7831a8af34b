"""Preprocessing and batched augmentations on small hand-made images; the `pretrain` command's
choices (the registries) and defaults (`PretrainConfig`)."""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ffclr.train.augment import PRESETS, augment, colour_transform, hue_matrices, make_views, \
    sample_params
from ffclr.errors import FfclrError
from ffclr.data.preprocess import load_image_rgb, square_crop_array, to_model_input


def _identity(n: int) -> dict[str, torch.Tensor]:
    params = sample_params(n, PRESETS["default"], torch.Generator().manual_seed(0))
    params.update(angle=torch.zeros(n), scale=torch.ones(n), shift=torch.zeros(n, 2),
                  stroke=torch.zeros(n, dtype=torch.long), brightness=torch.ones(n),
                  contrast=torch.ones(n), saturation=torch.ones(n), hue=torch.zeros(n),
                  gray=torch.zeros(n, dtype=torch.bool), sigma=torch.zeros(n))
    return params


def _cross_image() -> torch.Tensor:
    x = torch.zeros(1, 3, 12, 12)
    x[:, 0, 2:10, 5] = 1.0
    x[:, 1, 3, 2:9] = 0.8
    return x


def test_identity_parameters_change_nothing():
    x = torch.rand(2, 3, 10, 10, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(augment(x, _identity(2), PRESETS["default"]), x, atol=1e-5)


def test_quarter_turn_is_an_exact_rotation():
    x = _cross_image()
    params = _identity(1)
    params["angle"] = torch.tensor([90.0])
    rotated = augment(x, params, PRESETS["default"])
    assert any(torch.allclose(rotated, torch.rot90(x, k, dims=(2, 3)), atol=1e-5)
               for k in (1, 3))


def test_presets_turn_symbols_only_by_their_quarter_turns():
    gen = torch.Generator().manual_seed(0)
    for preset, quarters in (("default", {0, 3}), ("upright", {0}), ("rotate", {0, 1, 2, 3})):
        angle = sample_params(2000, PRESETS[preset], gen)["angle"]
        nearest = torch.round(angle / 90.0)
        assert set((nearest % 4).int().tolist()) == quarters, preset
        jitter = angle - 90.0 * nearest
        assert jitter.abs().max() <= 8.0 and jitter.std() > 2.0, preset


def test_default_quarter_turn_is_clockwise_as_vertical_text_on_drawings():
    x = torch.zeros(1, 3, 9, 9)
    x[:, :, 0:3, 4] = 1.0
    params = _identity(1)
    params["angle"] = torch.tensor([90.0 * 3])
    turned = augment(x, params, PRESETS["default"])
    assert torch.allclose(turned, torch.rot90(x, -1, dims=(2, 3)), atol=1e-5)


def test_stroke_jitter_thickens_and_thins_bright_strokes():
    x = torch.zeros(2, 3, 12, 12)
    x[:, :, 3:9, 4:7] = 1.0
    params = _identity(2)
    params["stroke"] = torch.tensor([1, -1])
    out = augment(x, params, PRESETS["default"])
    assert out[0].sum() > x[0].sum() and out[1].sum() < x[1].sum() and out[1].sum() > 0
    light = 1 - x
    out = augment(light, params, PRESETS["default"])
    assert (out[0] < 0.5).sum() > (light[0] < 0.5).sum()


def test_colour_matrix_equals_the_steps_it_folds():
    params = sample_params(5, PRESETS["default"], torch.Generator().manual_seed(4))
    params["gray"] = torch.tensor([False, True, False, False, True])
    x = torch.rand(5, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    gray_w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    y = torch.einsum("nij,njhw->nihw", hue_matrices(params["hue"]), x)
    y = y * params["brightness"].view(5, 1, 1, 1)
    mean_grey = (y * gray_w).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    y = (y - mean_grey) * params["contrast"].view(5, 1, 1, 1) + mean_grey
    grey = (y * gray_w).sum(1, keepdim=True)
    y = (y - grey) * params["saturation"].view(5, 1, 1, 1) + grey
    y = torch.where(params["gray"].view(5, 1, 1, 1), (y * gray_w).sum(1, keepdim=True), y)
    a, b = colour_transform(params, x.mean((2, 3)))
    folded = (torch.bmm(a, x.reshape(5, 3, 16)) + b).view(5, 3, 4, 4)
    assert torch.allclose(folded, y, atol=1e-5)
    assert torch.allclose(hue_matrices(torch.tensor([120.0]))[0] @ torch.tensor([1.0, 0, 0]),
                          torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)


@pytest.mark.parametrize("preset", ["default", "seed"])
def test_views_are_seeded_varied_and_in_range(preset):
    images = (torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 255).to(torch.uint8)
    a = make_views(images, 3, PRESETS[preset], torch.Generator().manual_seed(1))
    b = make_views(images, 3, PRESETS[preset], torch.Generator().manual_seed(1))
    c = make_views(images, 3, PRESETS[preset], torch.Generator().manual_seed(2))
    assert a.shape == (12, 3, 16, 16) and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    assert not torch.allclose(a[0], a[1])


def test_square_crop_pads_with_the_border_colour_and_keeps_aspect():
    image = Image.new("RGB", (40, 20), (10, 20, 30))
    image.paste((250, 250, 250), (0, 8, 40, 12))
    pixels = square_crop_array(image, 20)
    assert pixels.shape == (20, 20, 3) and pixels.dtype == np.uint8
    assert tuple(pixels[1, 10]) == (10, 20, 30) and tuple(pixels[18, 10]) == (10, 20, 30)
    assert pixels[10, 10].min() > 200
    batch = to_model_input(np.stack([pixels]), (0.5,) * 3, (0.5,) * 3)
    assert batch.shape == (1, 3, 20, 20) and batch.min() >= -1 and batch.max() <= 1


def test_unreadable_image_is_a_clear_error(tmp_path):
    fake = tmp_path / "symbol.png"
    fake.write_bytes(b"not a png")
    with pytest.raises(FfclrError, match="symbol.png"):
        load_image_rgb(fake)
    assert load_image_rgb(Image.new("L", (3, 3))).mode == "RGB"


def _pretrain_parser() -> argparse.ArgumentParser:
    """The `pretrain` subcommand's parser, built by its own `register`."""
    from ffclr.commands import pretrain

    subparsers = argparse.ArgumentParser().add_subparsers()
    pretrain.register(subparsers)
    return subparsers.choices["pretrain"]


def _offered(parser: argparse.ArgumentParser, flag: str) -> list[str]:
    """The choices the help shows for `flag` (`--flag {a,b,c}`)."""
    match = re.search(rf"(?<!\S){flag} \{{([^}}]*)\}}", parser.format_help())
    assert match, parser.format_help()
    return match.group(1).split(",")


def test_cli_offers_every_preset():
    parser = _pretrain_parser()
    assert _offered(parser, "--augment") == list(PRESETS)
    assert all(parser.parse_args(["--augment", name]).augment == name for name in PRESETS)
    help_text = " ".join(parser.format_help().split())
    assert all(f"{name}: " in help_text for name in PRESETS)


def test_cli_choices_are_the_registries_and_its_defaults_the_config():
    from ffclr.commands.pretrain import config_from_args
    from ffclr.model.networks import ARCHS
    from ffclr.train.config import (ARCH_NAMES, AUGMENT_PRESETS, DATASET_MODES, OPTIMIZER_NAMES,
                                    PretrainConfig)
    from ffclr.train.optim import OPTIMIZERS

    assert ARCH_NAMES == tuple(ARCHS) and OPTIMIZER_NAMES == tuple(OPTIMIZERS)
    assert list(AUGMENT_PRESETS) == list(PRESETS)
    parser = _pretrain_parser()
    assert _offered(parser, "--arch") == list(ARCHS)
    assert _offered(parser, "--optimizer") == list(OPTIMIZERS)
    assert _offered(parser, "-dataset-name") == list(DATASET_MODES)
    assert config_from_args(parser.parse_args([])) == PretrainConfig()


def test_building_the_cli_does_not_import_torch():
    code = ("import sys; from ffclr.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], check=True)
    assert done.stdout.strip() == "[]"
