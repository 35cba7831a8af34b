"""The decoded pixels of crops at one image size: the one decoder, and a cache per dataset.

`decode_images` turns files or PIL images into uint8 (N, S, S, 3) with the preprocessing every
stage feeds the encoder (`ffclr.data.preprocess`). `crop_pixels` gives a crop set's pixels. The
crops of an imported dataset are read from `<workspace>/cache/crops/<dataset id>/<S>.npy`, one
memory-mapped array with a row for every crop of the dataset (all splits), beside
`<S>.index.npz`: each row's crop id, the fingerprint of its file when it was decoded (path,
size, mtime_ns), and whether it was readable (an unreadable crop's row holds zeros and is never
served). A request whose crops are all there and unchanged decodes nothing; otherwise the cache is
rebuilt for the whole dataset, decoding only new and changed crops, written aside and swapped in.
Other crop sets (ImageFolder trees, uploads) are decoded directly.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ffclr.data.cropset import CropSet, load_dataset_split
from ffclr.data.npz_files import READ_ERRORS
from ffclr.data.preprocess import load_image_rgb, square_crop_array
from ffclr.errors import FfclrError
from ffclr.workspace import Workspace

Progress = Callable[[int, int, str], None]
CROPS_FOLDER = "crops"
MAX_WORKERS = 8
CHUNK = 1024
"""Crops decoded and written per step of a cache build (bounds its memory)."""
STALE_TMP_SECONDS = 6 * 3600
"""A build's file left this long unchanged is a killed build's, removed by the next build."""


def _decode_one(image, image_size: int) -> np.ndarray | str:
    """The crop's pixels, or the one-line reason it could not be read."""
    try:
        return square_crop_array(load_image_rgb(image), image_size)
    except FfclrError as exc:
        return str(exc)


def _decode_many(images: Sequence, image_size: int, workers: int) -> list[np.ndarray | str]:
    workers = max(1, min(workers, MAX_WORKERS, len(images)))
    if workers == 1:
        return [_decode_one(image, image_size) for image in images]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda image: _decode_one(image, image_size), images))


def decode_images(images: Sequence, image_size: int, workers: int = 4
                  ) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """Paths or PIL images, square-cropped: (n, S, S, 3) uint8 of the readable ones, their
    indices, and the reason each unreadable one was skipped, by index."""
    results = _decode_many(images, image_size, workers)
    kept = [i for i, r in enumerate(results) if not isinstance(r, str)]
    errors = {i: r for i, r in enumerate(results) if isinstance(r, str)}
    if not kept:
        return np.zeros((0, image_size, image_size, 3), np.uint8), kept, errors
    return np.stack([results[i] for i in kept]), kept, errors


def warn_skipped(errors: dict[int, str]) -> None:
    for index in sorted(errors):
        print(f"warning: skipped {errors[index]}", file=sys.stderr)


def decode_crops(paths: Sequence, image_size: int, workers: int = 4
                 ) -> tuple[np.ndarray, list[int]]:
    """`decode_images` with a one-line warning for each unreadable crop."""
    pixels, kept, errors = decode_images(paths, image_size, workers)
    warn_skipped(errors)
    return pixels, kept


@dataclass
class CropPixels:
    """The readable crops of a request, in its order: row i is the request's crop `kept[i]`."""
    source: np.ndarray
    """The cache's memmap, or the decoded pixels themselves."""
    rows: np.ndarray | None
    """Row of `source` for each kept crop (None: `source` holds exactly them, in order)."""
    kept: list[int]
    errors: dict[int, str]
    """Why each unreadable crop of the request was skipped, by its index in the request."""
    cached: bool = False

    def __len__(self) -> int:
        return len(self.kept)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """uint8 (n, S, S, 3) of kept crops start..stop, in memory."""
        if self.rows is None:
            return np.asarray(self.source[start:stop])
        return np.asarray(self.source[self.rows[start:stop]])


def from_store(crops: CropSet) -> bool:
    """Whether the crops are an imported dataset's (and so can be cached)."""
    return bool(crops.dataset) and bool(crops.crop_ids) and None not in crops.crop_ids


def crop_pixels(crops: CropSet, image_size: int, workspace: Workspace | None = None,
                workers: int = 4, progress: Progress | None = None) -> CropPixels:
    """The crops' pixels: from the dataset's cache when `workspace` is given and the crops are
    an imported dataset's (building it first if any is missing or changed), else decoded."""
    if workspace is not None and from_store(crops):
        cache = _cache_for(workspace, crops.dataset, image_size)
        if cache is not None:
            found = cache.lookup(crops)
            if found is None:
                try:
                    cache.build(crops.dataset, workspace, workers, progress)
                except OSError as exc:
                    print(f"warning: crop cache {cache.folder} not written "
                          f"({exc.strerror or exc}); decoding directly", file=sys.stderr)
                else:
                    found = cache.lookup(crops)
            if found is not None:
                return found
    pixels, kept, errors = decode_images(crops.paths, image_size, workers)
    return CropPixels(pixels, None, kept, errors)


def _cache_for(workspace: Workspace, dataset: str, image_size: int) -> PixelCache | None:
    with workspace.open_store() as store:
        row = store.dataset(dataset)
    if row is None:
        return None
    return PixelCache(workspace.cache / CROPS_FOLDER / str(row["id"]), image_size)


def _stat(path: str) -> tuple[int, int]:
    try:
        stat = os.stat(path)
    except OSError:
        return -1, -1
    return stat.st_size, stat.st_mtime_ns


def _file_id(stat: os.stat_result) -> tuple[int, int, int]:
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _pack(texts: list[str]) -> np.ndarray:
    return np.frombuffer("\0".join(texts).encode("utf-8", "surrogateescape"), dtype=np.uint8)


def _unpack(blob: np.ndarray, count: int) -> list[str]:
    if count == 0:
        return []
    return blob.tobytes().decode("utf-8", "surrogateescape").split("\0")


@dataclass
class _Index:
    crop_ids: np.ndarray
    paths: list[str]
    sizes: np.ndarray
    mtimes: np.ndarray
    readable: np.ndarray
    errors: dict[int, str]
    """Why each unreadable row was, by row."""
    pixel_file: tuple[int, int, int] = (-1, -1, -1)
    """(inode, size, mtime_ns) of the `.npy` written with this index."""

    def save(self, file) -> None:
        error_rows = sorted(self.errors)
        np.savez(file, crop_ids=self.crop_ids, paths=_pack(self.paths), sizes=self.sizes,
                 mtimes=self.mtimes, readable=self.readable,
                 error_rows=np.array(error_rows, dtype=np.int64),
                 errors=_pack([self.errors[r] for r in error_rows]),
                 pixel_file=np.array(self.pixel_file, dtype=np.int64))

    @classmethod
    def load(cls, path: Path) -> _Index:
        with np.load(path, allow_pickle=False) as data:
            crop_ids = data["crop_ids"].astype(np.int64)
            error_rows = data["error_rows"].tolist()
            index = cls(crop_ids, _unpack(data["paths"], len(crop_ids)), data["sizes"],
                        data["mtimes"], data["readable"].astype(bool),
                        dict(zip(error_rows, _unpack(data["errors"], len(error_rows)))),
                        tuple(data["pixel_file"].tolist()))
        n = len(crop_ids)
        if not (len(index.paths) == len(index.sizes) == len(index.mtimes) == len(index.readable)
                == n) or len(index.errors) != len(error_rows):
            raise ValueError(f"{path}: inconsistent index")
        return index

    def fresh_rows(self, crop_ids: Sequence[int], paths: Sequence[str],
                   stats: Sequence[tuple[int, int]]) -> np.ndarray:
        """This index's row of each crop whose file is unchanged since it was decoded, else -1."""
        row_of = dict(zip(self.crop_ids.tolist(), range(len(self.crop_ids))))
        sizes, mtimes = self.sizes.tolist(), self.mtimes.tolist()
        rows = np.full(len(crop_ids), -1, dtype=np.int64)
        for i, (crop_id, path, (size, mtime)) in enumerate(zip(crop_ids, paths, stats)):
            row = row_of.get(crop_id)
            if (row is not None and sizes[row] == size and mtimes[row] == mtime
                    and self.paths[row] == path):
                rows[i] = row
        return rows


class PixelCache:
    """`<S>.npy` and `<S>.index.npz` in the dataset's cache folder."""

    def __init__(self, folder: Path, image_size: int):
        self.folder, self.image_size = folder, image_size
        self.pixel_path = folder / f"{image_size}.npy"
        self.index_path = folder / f"{image_size}.index.npz"

    def open(self) -> tuple[_Index, np.ndarray] | None:
        """The index and the memmap written with it; None when missing, damaged or mismatched
        (the index is swapped in after the pixels, so it is read first)."""
        shape = (self.image_size, self.image_size, 3)
        try:
            index = _Index.load(self.index_path)
            before = os.stat(self.pixel_path)
            pixels = np.load(self.pixel_path, mmap_mode="r", allow_pickle=False)
            after = os.stat(self.pixel_path)
        except READ_ERRORS:
            return None
        if not (_file_id(before) == _file_id(after) == index.pixel_file
                and pixels.dtype == np.uint8 and pixels.shape == (len(index.crop_ids), *shape)):
            return None
        return index, pixels

    def lookup(self, crops: CropSet) -> CropPixels | None:
        """The crops from the cache, or None unless every one is there and unchanged."""
        opened = self.open()
        if opened is None:
            return None
        index, pixels = opened
        paths = [os.fspath(p) for p in crops.paths]
        rows = index.fresh_rows(crops.crop_ids, paths, [_stat(p) for p in paths])
        if (rows < 0).any():
            return None
        readable = index.readable[rows]
        errors = {i: index.errors[int(r)] for i, r in enumerate(rows) if not readable[i]}
        return CropPixels(pixels, rows[readable], np.flatnonzero(readable).tolist(), errors,
                          cached=True)

    def build(self, dataset: str, workspace: Workspace, workers: int = 4,
              progress: Progress | None = None) -> None:
        """Cache every crop of the dataset, reusing the rows still fresh; written aside, then
        swapped in. Nothing is written when every row is already fresh."""
        everything = load_dataset_split(dataset, None, workspace)
        crop_ids = [int(c) for c in everything.crop_ids]
        paths = [os.fspath(p) for p in everything.paths]
        stats = [_stat(p) for p in paths]
        opened = self.open()
        old_index, old_pixels = opened if opened else (None, None)
        reuse = (old_index.fresh_rows(crop_ids, paths, stats) if old_index is not None
                 else np.full(len(paths), -1, dtype=np.int64))
        if (old_index is not None and (reuse >= 0).all()
                and np.array_equal(reuse, np.arange(len(old_index.crop_ids)))):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self._remove_stale_tmp()
        tag = f".{self.image_size}.{os.getpid()}.{threading.get_ident()}.tmp"
        pixel_tmp = self.folder / f"{tag}.npy"
        index_tmp = self.folder / f"{tag}.index.npz"
        try:
            readable, errors, pixel_file = self._write_pixels(
                pixel_tmp, paths, reuse, old_index, old_pixels, workers, progress)
            index = _Index(np.array(crop_ids, dtype=np.int64), paths,
                           np.array([s[0] for s in stats], dtype=np.int64),
                           np.array([s[1] for s in stats], dtype=np.int64),
                           readable, errors, pixel_file)
            with open(index_tmp, "wb") as f:
                index.save(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(pixel_tmp, self.pixel_path)
            os.replace(index_tmp, self.index_path)
        finally:
            for tmp in (pixel_tmp, index_tmp):
                tmp.unlink(missing_ok=True)

    def _write_pixels(self, path: Path, paths: list[str], reuse: np.ndarray,
                      old_index: _Index | None, old_pixels: np.ndarray | None, workers: int,
                      progress: Progress | None
                      ) -> tuple[np.ndarray, dict[int, str], tuple[int, int, int]]:
        """Write the `.npy` chunk by chunk: fresh rows copied, the others decoded."""
        size, n = self.image_size, len(paths)
        readable = np.zeros(n, dtype=bool)
        errors: dict[int, str] = {}
        with open(path, "wb") as f:
            np.lib.format.write_array_header_1_0(f, {
                "descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                "fortran_order": False, "shape": (n, size, size, 3)})
            for start in range(0, n, CHUNK):
                stop = min(start + CHUNK, n)
                chunk = np.zeros((stop - start, size, size, 3), dtype=np.uint8)
                old_rows = reuse[start:stop]
                fresh = np.flatnonzero(old_rows >= 0)
                if len(fresh):
                    chunk[fresh] = old_pixels[old_rows[fresh]]
                    readable[start + fresh] = old_index.readable[old_rows[fresh]]
                    for j in fresh[~readable[start + fresh]]:
                        errors[start + int(j)] = old_index.errors[int(old_rows[j])]
                stale = np.flatnonzero(old_rows < 0)
                results = _decode_many([paths[start + j] for j in stale], size, workers)
                for j, result in zip(stale.tolist(), results):
                    if isinstance(result, str):
                        errors[start + j] = result
                    else:
                        chunk[j] = result
                        readable[start + j] = True
                f.write(chunk.tobytes())
                if progress:
                    progress(stop, n, "caching crop pixels")
            f.flush()
            os.fsync(f.fileno())
            pixel_file = _file_id(os.fstat(f.fileno()))
        return readable, errors, pixel_file

    def _remove_stale_tmp(self) -> None:
        cutoff = time.time() - STALE_TMP_SECONDS
        for tmp in self.folder.glob(f".{self.image_size}.*.tmp*"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
            except OSError:
                pass
