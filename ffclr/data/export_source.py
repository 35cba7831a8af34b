"""A Roboflow export (folder or .zip) as a local folder holding its `train/valid/test` splits.

A zip is extracted member by member into a temporary folder; entries that are absolute, climb
out (`..`) or are links are refused (not written, and named), so nothing lands outside it.
"""
from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ffclr.errors import FfclrError
from ffclr.data.safe_paths import inside, relative_parts

SPLITS = ("train", "valid", "test")
ANNOTATIONS = "_annotations.coco.json"
_IGNORED_TOP = {"__MACOSX"}


@dataclass
class ExportFolder:
    root: Path
    """The folder holding the split folders."""
    splits: dict[str, Path]
    """Split name → its folder, for each of train/valid/test present."""
    source: Path
    """What the user gave: the folder or the zip file."""
    refused_entries: list[str] = field(default_factory=list)
    """Zip entries not extracted because they were unsafe."""
    extracted_to: Path | None = None
    """The temporary folder a zip was extracted into."""

    def label(self, path: Path) -> str:
        """How to name a file of the export in messages: as the user knows it."""
        if self.source.is_dir():
            return str(path)
        return f"{self.source}:{path.relative_to(self.extracted_to).as_posix()}"


def _split_dirs(folder: Path) -> dict[str, Path]:
    return {s: folder / s for s in SPLITS if (folder / s).is_dir()}


def _locate(folder: Path, source: Path, refused: list[str]) -> ExportFolder:
    """The export in `folder`, directly or inside its one top folder."""
    base = folder
    splits = _split_dirs(folder)
    if not splits:
        tops = [p for p in folder.iterdir() if p.is_dir() and p.name not in _IGNORED_TOP]
        if len(tops) == 1:
            folder, splits = tops[0], _split_dirs(tops[0])
    if not splits:
        raise FfclrError(f"{source}: not a Roboflow COCO export (no {'/'.join(SPLITS)} folder "
                         f"with {ANNOTATIONS})")
    return ExportFolder(root=folder, splits=splits, source=source, refused_entries=refused,
                        extracted_to=None if source.is_dir() else base)


def _is_link(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def extract_zip(archive: Path, target: Path) -> list[str]:
    """Extract the safe regular files of `archive` into `target`; returns the refused entries."""
    refused = []
    try:
        with zipfile.ZipFile(archive) as zf:
            needed = sum(i.file_size for i in zf.infolist())
            free = shutil.disk_usage(target).free
            if needed > free:
                raise FfclrError(f"{archive}: extracting needs {needed / 2**30:.1f} GiB, only "
                                 f"{free / 2**30:.1f} GiB free in {target.parent}")
            for info in zf.infolist():
                if info.is_dir():
                    continue
                parts = relative_parts(info.filename)
                if parts is None or _is_link(info):
                    refused.append(info.filename)
                    continue
                destination = target.joinpath(*parts)
                inside(target, destination)
                destination.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as member, open(destination, "wb") as out:
                    shutil.copyfileobj(member, out, 1 << 20)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as exc:
        raise FfclrError(f"{archive}: not a readable zip file ({exc})") from None
    except OSError as exc:
        raise FfclrError(f"{archive}: cannot extract ({exc.strerror or exc})") from None
    return refused


@contextmanager
def open_export(source: Path) -> Iterator[ExportFolder]:
    """The export at `source` (folder or .zip); a zip's temporary folder is removed afterwards."""
    source = Path(source).expanduser()
    if source.is_dir():
        yield _locate(source, source, [])
        return
    if not source.is_file():
        raise FfclrError(f"{source}: no such export (a folder or a .zip)")
    if not zipfile.is_zipfile(source):
        raise FfclrError(f"{source}: neither a folder nor a zip file")
    with tempfile.TemporaryDirectory(prefix="ffclr-export-") as tmp:
        refused = extract_zip(source, Path(tmp))
        yield _locate(Path(tmp), source, refused)
