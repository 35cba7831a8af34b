"""Backbone features of a batch of uint8 crops: the one embedding routine of ffclr.

The training monitor, evaluation, classification and detection all call `embed_uint8`; they
differ only in the device and dtype they ask for (the monitor in the training precision, the
others in `inference_dtype`: bf16 where the CPU runs it natively, else full precision).
An encoder that is no longer trained runs on the CPU as a frozen TorchScript copy
(`frozen=True`): batch norms folded into the convolutions and weights prepacked for oneDNN (cast
to bf16 for a bf16 copy), the same features within the dtype's rounding in much less time.
"""
from __future__ import annotations

import copy
import threading
import warnings
import weakref
from contextlib import nullcontext
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ffclr.data.preprocess import DEFAULT_MEAN, DEFAULT_STD, to_model_input

BATCH_SIZE = 256

_frozen_copies: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_frozen_lock = threading.Lock()


def cpu_bf16_supported() -> bool:
    """Whether this CPU runs bf16 natively (AVX-512 BF16 or AMX); without it oneDNN emulates
    bf16, several times slower than full precision."""
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def inference_dtype(device: torch.device | str) -> torch.dtype | None:
    """The dtype an encoder that is not trained runs in on `device`: bf16 on a CPU that runs it
    natively (features within bf16 rounding of full precision, about 1.5 times as many crops a
    second), else None: full precision."""
    return torch.bfloat16 if torch.device(device).type == "cpu" and cpu_bf16_supported() else None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to `dtype` on `device`, or nothing when `dtype` is None (full precision)."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def frozen_cpu_copy(backbone: nn.Module, image_size: int,
                    dtype: torch.dtype | None = None) -> nn.Module:
    """`backbone` traced on a channels-last batch of `image_size` crops, frozen and optimised
    for CPU inference, with its weights in `dtype` (None: as they are); it takes its input in
    that dtype. Made once per backbone and dtype and kept while the backbone lives. Its weights
    are the backbone's at the first call, so only for an encoder that is not trained any more.
    Where TorchScript cannot trace the backbone faithfully (or this torch has none), the
    backbone itself.

    TorchScript is deprecated in favour of `torch.compile`; here `torch.compile` with freezing
    ran slower and compiles for tens of seconds on a cold start (docs/measurements.md, Scale).
    """
    with _frozen_lock:
        copies = _frozen_copies.setdefault(backbone, {})
        frozen = copies.get(dtype)
        if frozen is None:
            frozen = copies[dtype] = _freeze(backbone, image_size, dtype)
        return frozen


def _freeze(backbone: nn.Module, image_size: int, dtype: torch.dtype | None) -> nn.Module:
    """A trace records one run: a backbone whose Python depends on its input would be frozen
    wrong, so the copy is checked against the backbone in full precision on another batch, of
    another size (to float rounding, or for bf16 to 2% of the features' norm)."""
    was_training = backbone.training
    generator = torch.Generator().manual_seed(0)
    example, check = (torch.randn((rows, 3, image_size, image_size), generator=generator)
                      .contiguous(memory_format=torch.channels_last) for rows in (2, 3))
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            backbone.eval()
            source = backbone
            if dtype is not None:
                source = copy.deepcopy(backbone).requires_grad_(False).to(dtype)
                example = example.to(dtype)
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(
                torch.jit.trace(source, example, check_trace=False)))
            found = frozen(check if dtype is None else check.to(dtype)).float()
            expected = backbone(check).float()
            if dtype is None:
                same = torch.allclose(found, expected, rtol=1e-3, atol=1e-4)
            else:
                same = bool(torch.linalg.norm(found - expected)
                            <= 0.02 * torch.linalg.norm(expected))
    except (AttributeError, RuntimeError, TypeError, torch.jit.Error):
        return backbone
    finally:
        backbone.train(was_training)
    return frozen if same else backbone


def embed_uint8(backbone: nn.Module, images: torch.Tensor | np.ndarray, *,
                mean: Sequence[float] = DEFAULT_MEAN, std: Sequence[float] = DEFAULT_STD,
                device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                batch_size: int = BATCH_SIZE, normalise: bool = False,
                channels_last: bool = True, frozen: bool = False,
                progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """(N, feature_dim) float32 CPU features of uint8 (N, S, S, 3) crops.

    `backbone` maps a normalised float batch to features; it runs in eval mode (its previous
    mode is restored), without gradients, under autocast to `dtype` when given. `normalise`
    L2-normalises each row. `channels_last` feeds the batch in that memory format, which
    oneDNN's CPU convolutions run faster (features equal to the other layout's within float
    rounding). `frozen` says the backbone's weights will not change: on the CPU in full
    precision it then runs `frozen_cpu_copy(backbone)` (features equal within float rounding).
    `progress(done, total)` is called after each batch.
    """
    images = torch.as_tensor(images)
    device = torch.device(device) if device is not None else next(backbone.parameters()).device
    model, input_dtype = backbone, None
    if (frozen and channels_last and device.type == "cpu" and dtype in (None, torch.bfloat16)
            and len(images)):
        model = frozen_cpu_copy(backbone, int(images.shape[1]), dtype)
        if model is not backbone:
            input_dtype, dtype = dtype, None
    was_training = backbone.training
    backbone.eval()
    chunks = []
    try:
        with torch.inference_mode(), autocast(device, dtype):
            for start in range(0, len(images), batch_size):
                x = to_model_input(images[start:start + batch_size].to(device), mean, std)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                if input_dtype is not None:
                    x = x.to(input_dtype)
                features = model(x).float()
                if normalise:
                    features = nn.functional.normalize(features, dim=1)
                chunks.append(features.cpu())
                if progress:
                    progress(min(start + batch_size, len(images)), len(images))
    finally:
        backbone.train(was_training)
    if not chunks:
        return torch.zeros((0, _feature_dim(backbone)), dtype=torch.float32)
    return torch.cat(chunks)


def _feature_dim(backbone: nn.Module) -> int:
    model = getattr(backbone, "model", backbone)
    return int(getattr(model, "feature_dim", 0))
