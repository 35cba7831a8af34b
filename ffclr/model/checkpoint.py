"""Checkpoints: ours and the seed's (`epoch`, `arch`, `state_dict`, `optimizer`).

Ours add `image_size`, `mean`, `std`, `class_names`, `config` and resume state. Everything is
loaded with `torch.load(weights_only=True)`: a checkpoint can never run code.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ffclr.errors import FfclrError
from ffclr.model.networks import ARCHS, FeatureExtractor, SimCLRModel
from ffclr.data.preprocess import SEED_IMAGE_SIZE, SEED_MEAN, SEED_STD


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write atomically and durably: a hidden temporary file, flushed to disk, then renamed over
    `path` (and the folder flushed), so a crash or a kill at any point leaves either the old file
    or the new one, and no half-written file under a checkpoint's name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_folder(path.parent)
    return path


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def load_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FfclrError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        reason = ("holds objects other than tensors and plain values, refused for safety"
                  if "Unsupported global" in str(exc) else "corrupt or not a PyTorch file")
        raise FfclrError(f"{path}: not a readable checkpoint ({reason})") from None
    if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict):
        raise FfclrError(f"{path}: not a SimCLR checkpoint (no 'state_dict')")
    return state


def model_state_dict(state: dict) -> dict[str, torch.Tensor]:
    """The model weights with any DataParallel/DDP `module.` prefix removed."""
    return {k.removeprefix("module."): v for k, v in state["state_dict"].items()}


def build_model(state: dict, path: str | os.PathLike = "checkpoint") -> SimCLRModel:
    """A `SimCLRModel` shaped after the checkpoint's weights, with them loaded."""
    weights = model_state_dict(state)
    arch = state.get("arch", "resnet18")
    if arch not in ARCHS or "backbone.conv1.weight" not in weights \
            or "backbone.fc.2.weight" not in weights:
        raise FfclrError(f"{path}: not a ResNet SimCLR checkpoint (arch {arch!r})")
    model = SimCLRModel(arch, out_dim=weights["backbone.fc.2.weight"].shape[0],
                        small_stem=weights["backbone.conv1.weight"].shape[-1] == 3)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise FfclrError(f"{path}: weights do not fit {arch} "
                         f"({str(exc).splitlines()[0][:200]})") from None
    return model


@dataclass
class Encoder:
    """A frozen encoder: `model` maps a normalised float batch (N, 3, S, S) to (N, feature_dim)."""

    model: nn.Module
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    arch: str
    feature_dim: int
    class_names: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    path: Path | None = None


def load_encoder(path: str | os.PathLike, device: str | torch.device = "cpu") -> Encoder:
    """The backbone of a checkpoint (ours or the seed's) in eval mode, with its preprocessing."""
    state = load_checkpoint(path)
    model = build_model(state, path)
    extractor = FeatureExtractor(model).to(device).eval()
    return Encoder(
        model=extractor,
        image_size=int(state.get("image_size", SEED_IMAGE_SIZE)),
        mean=tuple(float(v) for v in state.get("mean", SEED_MEAN)),
        std=tuple(float(v) for v in state.get("std", SEED_STD)),
        arch=model.arch,
        feature_dim=model.feature_dim,
        class_names=list(state.get("class_names") or []),
        config=dict(state.get("config") or {}),
        path=Path(path),
    )
