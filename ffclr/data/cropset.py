"""`CropSet`: the crops under a folder with their labels, indexed the same way in every split.

A folder inside an imported dataset (`datasets/<name>_individual[/<split>]`) takes its crops,
classes and effective labels (after relabelling) from the store, so a class has one index in
train, valid and test. Any other ImageFolder-style folder (`<dir>/<class>/<image>`) is read from
disk with classes in sorted folder order, as torchvision would.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ffclr.errors import FfclrError
from ffclr.workspace import Workspace

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass
class CropSet:
    paths: list[Path]
    labels: np.ndarray
    """Class index per crop (effective label after edits)."""
    class_names: list[str]
    """All classes of the dataset, not only those present here."""
    crop_ids: list[int | None] = field(default_factory=list)
    dataset: str | None = None
    splits: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def present_classes(self) -> list[int]:
        return sorted(set(self.labels.tolist()))


def _dataset_for(path: Path, workspace: Workspace) -> tuple[dict, str | None] | None:
    if not workspace.db_path.exists():
        return None
    with workspace.open_store() as store:
        for dataset in store.datasets():
            root = Path(dataset["root"]).resolve()
            if path == root:
                return dataset, None
            if path.parent == root:
                return dataset, path.name
    return None


def load_crop_set(data: str | Path, workspace: Workspace) -> CropSet:
    """The crops under `data` (a dataset folder, one split of it, or an ImageFolder tree)."""
    path = Path(data).expanduser().resolve()
    if not path.is_dir():
        raise FfclrError(f"{data}: no such folder of crops")
    found = _dataset_for(path, workspace)
    if found:
        return _from_store(*found, workspace=workspace)
    return _from_folders(path)


def load_dataset_split(name: str, split: str | None, workspace: Workspace) -> CropSet:
    """The crops of an imported dataset by name (all splits when `split` is None)."""
    with workspace.open_store() as store:
        dataset = store.dataset(name)
    if dataset is None:
        raise FfclrError(f"no imported dataset named {name!r} in {workspace.root}")
    return _from_store(dataset, split, workspace)


def _from_store(dataset: dict, split: str | None, workspace: Workspace) -> CropSet:
    root = Path(dataset["root"])
    with workspace.open_store() as store:
        classes = store.classes(dataset["id"])
        rows = store.crops(dataset["id"], split)
        splits = [split] if split else store.splits(dataset["id"])
    if not rows:
        where = f"split {split!r} of " if split else ""
        raise FfclrError(f"{where}dataset {dataset['name']!r} has no crops")
    return CropSet(
        paths=[root / r["path"] for r in rows],
        labels=np.array([r["label"] for r in rows], dtype=np.int64),
        class_names=[c["name"] for c in classes],
        crop_ids=[r["id"] for r in rows],
        dataset=dataset["name"],
        splits=splits,
    )


def _from_folders(path: Path) -> CropSet:
    class_dirs = sorted(p for p in path.iterdir() if p.is_dir())
    paths, labels = [], []
    for index, class_dir in enumerate(class_dirs):
        for image in sorted(class_dir.rglob("*")):
            if image.suffix.lower() in IMAGE_SUFFIXES and image.is_file():
                paths.append(image)
                labels.append(index)
    if not paths:
        raise FfclrError(f"{path}: no images found in class folders (<dir>/<class>/<image>)")
    return CropSet(paths=paths, labels=np.array(labels, dtype=np.int64),
                   class_names=[d.name for d in class_dirs], crop_ids=[None] * len(paths),
                   splits=[path.name])
