"""The images of a dataset's own export, found by their bytes: a drawing added for labelling
that is one of them must not land in another split (a test image labelled into train)."""
from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ffclr.data.cropset import IMAGE_SUFFIXES
from ffclr.data.export_source import SPLITS, split_folders


@dataclass
class ExportImages:
    """The export's images by byte size; each read and hashed only when a drawing of the same
    size is added."""

    by_size: dict[int, list[tuple[str, str, Callable[[], bytes]]]] = field(default_factory=dict)
    """Size → (split, file name inside the split, how to read its bytes)."""

    def split_of(self, data: bytes) -> tuple[str, str] | None:
        """(split, file name) of the export image with exactly these bytes, or None."""
        sha = None
        for split, name, read in self.by_size.get(len(data), []):
            sha = sha or hashlib.sha256(data).digest()
            try:
                if hashlib.sha256(read()).digest() == sha:
                    return split, name
            except (OSError, zipfile.BadZipFile, RuntimeError, ValueError):
                continue
        return None

    def add(self, split: str, name: str, size: int, read: Callable[[], bytes]) -> None:
        self.by_size.setdefault(size, []).append((split, name, read))


def export_images(source: str | None) -> ExportImages:
    """The images of the export at `source` (a folder or .zip; none when it is gone)."""
    found = ExportImages()
    path = Path(source) if source else None
    if path is None or not path.exists():
        return found
    if path.is_dir():
        for split, folder in split_folders(path)[1].items():
            for image in sorted(folder.rglob("*")):
                if image.suffix.lower() in IMAGE_SUFFIXES and image.is_file():
                    found.add(split, image.relative_to(folder).as_posix(), image.stat().st_size,
                              image.read_bytes)
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
        for info in infos:
            parts = info.filename.split("/")
            at = next((i for i, part in enumerate(parts[:2]) if part in SPLITS), None)
            image = Path(info.filename).suffix.lower() in IMAGE_SUFFIXES
            if at is None or info.is_dir() or not image:
                continue
            found.add(parts[at], "/".join(parts[at + 1:]), info.file_size,
                      lambda member=info.filename: _member_bytes(path, member))
    return found


def _member_bytes(archive: Path, member: str) -> bytes:
    with zipfile.ZipFile(archive) as opened:
        return opened.read(member)
