"""Backbone features of crops, computed once per (checkpoint, crop set) and cached.

Features are taken before the projection head, in batches, with the model in eval mode under
`torch.inference_mode`, from exactly the preprocessing the encoder was trained with
(`ffclr.data.preprocess`); an imported dataset's crops are read, batch by batch, from its pixel
cache (`ffclr.data.crop_pixels`), other crops decoded batch by batch. The cache file
`<workspace>/cache/embeddings/<owner>-<key>.npz` is keyed by the checkpoint (path, size, mtime),
the crop files (paths, sizes, mtimes) and the precision (`ffclr.model.embed.inference_dtype`:
bf16 on a CPU that runs it natively): any change there gives a new key, and the new file
replaces the older ones of the same checkpoint and crop set (`ffclr.derived_files`). Labels are
not part of it, so relabelling reuses the features. Some splits of a dataset whose splits are
all cached together are read from that file.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISLNK
from typing import Callable, Sequence

import numpy as np

from ffclr.data.crop_pixels import crop_pixels, decode_images, from_store
from ffclr.data.cropset import CropSet
from ffclr.data.npz_files import READ_ERRORS
from ffclr.derived_files import Owner, write_aside
from ffclr.errors import FfclrError
from ffclr.workspace import Workspace

Progress = Callable[[int, int, str], None]
BATCH_SIZE = 256
EMBEDDINGS_FOLDER = "embeddings"
FROZEN_MIN_CROPS = 1024
"""Crops from which the encoder runs as a frozen copy (`embed_uint8(frozen=True)`): making the
copy takes about the time it saves on 500 crops."""


@dataclass
class Embeddings:
    features: np.ndarray
    """(N, feature_dim) float32, in the crop set's order."""
    crop_set: CropSet
    key: str
    checkpoint: Path
    cache_file: Path | None = None
    cached: bool = False

    def umap(self, workspace: Workspace) -> np.ndarray:
        """The 2-D UMAP layout of these features, cached beside them."""
        from ffclr.eval.explore import umap_2d

        path = embeddings_owner(workspace, self.checkpoint, self.crop_set).path(
            self.key, ".umap.npy")
        try:
            layout = np.load(path, allow_pickle=False)
            if layout.shape == (len(self.features), 2):
                return layout
        except READ_ERRORS:
            pass
        layout = umap_2d(self.features)
        write_aside(path, lambda tmp: np.save(tmp, layout))
        return layout


def _stat_key(path: Path, folders: dict[Path, Path]) -> str:
    """"<resolved path>|<size>|<mtime>" of a file; `folders` remembers each folder resolved,
    so a crop costs one system call unless it is a symbolic link."""
    stat = os.lstat(path)
    if S_ISLNK(stat.st_mode):
        resolved, stat = path.resolve(), path.stat()
    else:
        folder = folders.get(path.parent)
        if folder is None:
            folder = folders[path.parent] = path.parent.resolve()
        resolved = folder / path.name
    return f"{resolved}|{stat.st_size}|{stat.st_mtime_ns}"


def cache_key(checkpoint: str | os.PathLike, crop_set: CropSet, dtype=None) -> str:
    """The features' key; `dtype` is the torch dtype they are computed in (None: full
    precision, whose keys are those of caches written before the precision was in the key)."""
    folders: dict[Path, Path] = {}
    digest = hashlib.sha256(_stat_key(Path(checkpoint), folders).encode())
    if dtype is not None:
        digest.update(f"|{dtype}".encode())
    for path in crop_set.paths:
        try:
            digest.update(_stat_key(Path(path), folders).encode())
        except FileNotFoundError:
            raise FfclrError(f"{path}: crop file missing (re-import the dataset?)") from None
    return digest.hexdigest()[:24]


def images_to_batch(images: Sequence, image_size: int, workers: int = 4) -> np.ndarray:
    """uint8 (N, S, S, 3) from paths or PIL images, with the training preprocessing; an
    unreadable one raises FfclrError naming it."""
    pixels, _kept, errors = decode_images(images, image_size, workers)
    if errors:
        raise FfclrError(errors[min(errors)])
    return pixels


def _embed_batches(count: int, read: Callable[[int, int], np.ndarray], encoder, batch_size: int,
                   progress: Progress | None) -> np.ndarray:
    """Features of `count` crops whose pixels `read(start, stop)` gives one batch at a time,
    in `embedding_dtype(encoder)`."""
    from ffclr.model.embed import embed_uint8

    dtype = embedding_dtype(encoder)
    chunks = []
    for start in range(0, count, batch_size):
        pixels = read(start, start + batch_size)
        chunks.append(embed_uint8(encoder.model, pixels, mean=encoder.mean, std=encoder.std,
                                  batch_size=batch_size, dtype=dtype,
                                  frozen=count >= FROZEN_MIN_CROPS).numpy())
        if progress:
            progress(min(start + batch_size, count), count, "embedding crops")
    if not chunks:
        return np.zeros((0, encoder.feature_dim), dtype=np.float32)
    return np.concatenate(chunks)


def embedding_dtype(encoder=None):
    """The dtype features are computed in: `inference_dtype` of the encoder's device (a
    checkpoint's encoder is loaded on the CPU)."""
    import torch

    from ffclr.model.embed import inference_dtype

    device = (next(encoder.model.parameters()).device if encoder is not None
              else torch.device("cpu"))
    return inference_dtype(device)


def embed_images(images: Sequence, encoder, batch_size: int = BATCH_SIZE,
                 progress: Progress | None = None) -> np.ndarray:
    """(N, feature_dim) float32 features of crops given as paths or PIL images, in
    `embedding_dtype(encoder)`; the images are decoded one batch at a time."""
    return _embed_batches(len(images), lambda start, stop: images_to_batch(
        images[start:stop], encoder.image_size), encoder, batch_size, progress)


def _embed_crops(crop_set: CropSet, encoder, workspace: Workspace, batch_size: int,
                 progress: Progress | None) -> np.ndarray:
    """An imported dataset's crops read from its pixel cache in batches; others decoded."""
    if not from_store(crop_set):
        return embed_images(crop_set.paths, encoder, batch_size, progress)
    pixels = crop_pixels(crop_set, encoder.image_size, workspace, progress=progress)
    if pixels.errors:
        raise FfclrError(pixels.errors[min(pixels.errors)])
    return _embed_batches(len(pixels), pixels.read, encoder, batch_size, progress)


def embed_crop_set(crop_set: CropSet, checkpoint: str | os.PathLike, workspace: Workspace,
                   encoder=None, batch_size: int = BATCH_SIZE,
                   progress: Progress | None = None) -> Embeddings:
    """Features of every crop of `crop_set` from the checkpoint's backbone, from cache if fresh."""
    dtype = embedding_dtype(encoder)
    key = cache_key(checkpoint, crop_set, dtype)
    owner = embeddings_owner(workspace, checkpoint, crop_set)
    path = owner.path(key, ".npz")
    _adopt_unowned(owner, key)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                features = data["features"]
            if len(features) == len(crop_set):
                return Embeddings(features, crop_set, key, Path(checkpoint), path, cached=True)
        except READ_ERRORS:
            pass
    whole = _from_whole_dataset(crop_set, checkpoint, workspace, dtype)
    if whole is not None:
        owner.claim()
        owner.supersede([path.with_suffix(".umap.npy")])
        return Embeddings(whole[0], crop_set, key, Path(checkpoint), whole[1], cached=True)
    if encoder is None:
        from ffclr.model.checkpoint import load_encoder

        encoder = load_encoder(checkpoint)
    features = _embed_crops(crop_set, encoder, workspace, batch_size, progress)
    owner.claim()
    write_aside(path, lambda tmp: np.savez(tmp, features=features,
                                            paths=np.array([str(p) for p in crop_set.paths])))
    owner.supersede([path, path.with_suffix(".umap.npy")])
    return Embeddings(features, crop_set, key, Path(checkpoint), path, cached=False)


def _from_whole_dataset(crop_set: CropSet, checkpoint: str | os.PathLike, workspace: Workspace,
                        dtype=None) -> tuple[np.ndarray, Path] | None:
    """(features, their file) of some splits of a dataset, taken from the fresh cached features
    of all its splits when there are some (no file is written for the splits)."""
    from ffclr.data.cropset import load_dataset_split

    if crop_set.dataset is None:
        return None
    try:
        whole = load_dataset_split(crop_set.dataset, None, workspace)
        owner = embeddings_owner(workspace, checkpoint, whole)
        if len(whole) <= len(crop_set) or not owner.files():
            return None
        path = owner.path(cache_key(checkpoint, whole, dtype), ".npz")
        with np.load(path, allow_pickle=False) as data:
            features, paths = data["features"], data["paths"]
    except (FfclrError, *READ_ERRORS):
        return None
    row_of = {str(p): row for row, p in enumerate(paths.tolist())}
    rows = [row_of.get(str(p)) for p in crop_set.paths]
    if len(features) != len(whole) or None in rows:
        return None
    return features[np.array(rows, np.int64)], path


def embeddings_owner(workspace: Workspace, checkpoint: str | os.PathLike, crop_set: CropSet
                     ) -> Owner:
    """The group of a checkpoint's features of one crop set (a dataset and its splits, or a
    folder of crops): features computed again after its crops changed replace the older ones."""
    source = {"checkpoint": str(Path(checkpoint).resolve()), "dataset": crop_set.dataset,
              "splits": sorted(set(crop_set.splits)),
              "root": None if crop_set.dataset else _common_folder(crop_set.paths)}
    return Owner(workspace.cache / EMBEDDINGS_FOLDER, source)


def _adopt_unowned(owner: Owner, key: str) -> None:
    """Features and layout cached under their bare key (before files named their source) are
    renamed into the owner's group rather than computed again."""
    for suffix in (".npz", ".umap.npy"):
        unowned = owner.folder / f"{key}{suffix}"
        if unowned.is_file() and not owner.path(key, suffix).exists():
            owner.claim()
            os.replace(unowned, owner.path(key, suffix))


def embeddings_alive(workspace: Workspace) -> Callable[[dict], bool]:
    """Whether a group's checkpoint and crops still exist (for `prune_orphans`)."""
    datasets = _dataset_names(workspace)

    def alive(source: dict) -> bool:
        checkpoint, dataset, root = (source.get("checkpoint"), source.get("dataset"),
                                     source.get("root"))
        if not isinstance(checkpoint, str) or not Path(checkpoint).is_file():
            return False
        if dataset is not None:
            return dataset in datasets
        return isinstance(root, str) and Path(root).is_dir()
    return alive


def _dataset_names(workspace: Workspace) -> set[str]:
    if not workspace.db_path.exists():
        return set()
    with workspace.open_store() as store:
        return {d["name"] for d in store.datasets()}


def _common_folder(paths: Sequence) -> str | None:
    folders = {str(Path(p).resolve().parent) for p in paths}
    return os.path.commonpath(sorted(folders)) if folders else None
