"""The training set of a pretraining run as one uint8 tensor (N, 3, S, S) held in memory."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ffclr.data.crop_pixels import CHUNK, crop_pixels, warn_skipped
from ffclr.data.crop_pixels import decode_crops  # noqa: F401 - imported from here by callers
from ffclr.data.cropset import CropSet, load_crop_set
from ffclr.errors import FfclrError
from ffclr.train.config import TORCHVISION_DATASETS
from ffclr.workspace import Workspace


@dataclass
class TrainingData:
    images: torch.Tensor
    """uint8 (N, 3, S, S)."""
    labels: torch.Tensor
    """Class index per image (folder/store labels; used by the labelled mode and kNN only)."""
    class_names: list[str]
    source: str
    dataset: str | None = None


def default_data_dir(workspace: Workspace) -> Path:
    """The train split (or the whole) of the most recently imported dataset of the workspace."""
    if workspace.db_path.exists():
        with workspace.open_store() as store:
            datasets = sorted(store.datasets(), key=lambda d: d["updated_at"])
        if datasets:
            root = Path(datasets[-1]["root"])
            return root / "train" if (root / "train").is_dir() else root
    raise FfclrError(f"no -data folder given and no imported dataset in {workspace.root} "
                     "(import one with `python -m ffclr import EXPORT --name NAME`)")


def from_crop_set(crops: CropSet, image_size: int, workers: int, source: str,
                  workspace: Workspace | None = None) -> TrainingData:
    """The readable crops in memory; an imported dataset's come from its pixel cache in
    `workspace` (see `ffclr.data.crop_pixels`), others are decoded."""
    pixels = crop_pixels(crops, image_size, workspace, workers)
    warn_skipped(pixels.errors)
    if not len(pixels):
        raise FfclrError(f"{source}: none of the {len(crops)} crops could be read")
    images = torch.empty((len(pixels), 3, image_size, image_size), dtype=torch.uint8)
    for start in range(0, len(pixels), CHUNK):
        images[start:start + CHUNK] = torch.from_numpy(
            pixels.read(start, start + CHUNK)).permute(0, 3, 1, 2)
    return TrainingData(images=images, labels=torch.from_numpy(crops.labels[pixels.kept]),
                        class_names=list(crops.class_names), source=source,
                        dataset=crops.dataset)


def one_per_class(data: TrainingData) -> TrainingData:
    """The seed's one-shot support set: the first crop of every class present."""
    first: dict[int, int] = {}
    for i, label in enumerate(data.labels.tolist()):
        first.setdefault(label, i)
    rows = torch.tensor(sorted(first.values()))
    return TrainingData(data.images[rows], data.labels[rows], data.class_names, data.source,
                        data.dataset)


def _torchvision(name: str, root: str, image_size: int) -> TrainingData:
    import torch.nn.functional as F
    from torchvision import datasets

    try:
        if name == "cifar10":
            ds = datasets.CIFAR10(root, train=True, download=True)
            images, labels = torch.from_numpy(ds.data).permute(0, 3, 1, 2), ds.targets
            classes = list(ds.classes)
        else:
            ds = datasets.STL10(root, split="unlabeled", download=True)
            images, labels = torch.from_numpy(ds.data), [0] * len(ds.data)
            classes = list(ds.classes)
    except Exception as exc:  # noqa: BLE001 - offline / partial downloads raise many types
        raise FfclrError(f"{name}: not found under {root} and could not be downloaded "
                         f"({type(exc).__name__}: {str(exc)[:120]})") from None
    if images.shape[-1] != image_size:
        chunks = [F.interpolate(c.float(), size=(image_size, image_size), mode="bilinear",
                                antialias=True, align_corners=False).round().clamp(0, 255)
                  .to(torch.uint8) for c in images.split(4096)]
        images = torch.cat(chunks)
    return TrainingData(images.contiguous(), torch.tensor(labels), classes, f"{name}:{root}")


def load_training_data(data: str | None, dataset_name: str, mode: str, image_size: int,
                       workers: int, workspace: Workspace) -> TrainingData:
    if dataset_name in TORCHVISION_DATASETS:
        return _torchvision(dataset_name, data or "./datasets", image_size)
    folder = Path(data) if data else default_data_dir(workspace)
    loaded = from_crop_set(load_crop_set(folder, workspace), image_size, workers, str(folder),
                           workspace)
    return one_per_class(loaded) if mode == "one_shot" else loaded


def knn_split_dir(data_dir: str | None, knn_data: str | None) -> Path | None:
    """Labelled queries for the kNN monitor: `knn_data`, else the `valid` split beside `data`."""
    if knn_data:
        return Path(knn_data)
    if data_dir:
        sibling = Path(data_dir).resolve().parent / "valid"
        if sibling.is_dir() and sibling != Path(data_dir).resolve():
            return sibling
    return None
