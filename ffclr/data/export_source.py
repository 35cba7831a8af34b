"""A Roboflow export (folder or .zip) as a local folder holding its `train/valid/test` splits.

A zip is extracted member by member into a temporary folder; entries that are absolute, climb
out (`..`) or are links are refused (not written, and named), so nothing lands outside it. In an
export folder, links that resolve outside the export are not followed (`ExportFolder.contains`).
An annotation file is read only up to `max_annotation_bytes()` (`$FFCLR_MAX_ANNOTATION_BYTES`);
a zip is refused past `zip_limits()` (total bytes, entries, one entry's compression ratio), and
extraction folders a killed process left behind are removed at the next extraction.
"""
from __future__ import annotations

import hashlib
import json
import os
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
MAX_ANNOTATION_BYTES_ENV = "FFCLR_MAX_ANNOTATION_BYTES"
DEFAULT_MAX_ANNOTATION_BYTES = 256 * 2**20
MAX_EXTRACT_MB_ENV, DEFAULT_MAX_EXTRACT_MB = "FFCLR_MAX_EXTRACT_MB", 20 * 1024
MAX_ZIP_ENTRIES_ENV, DEFAULT_MAX_ZIP_ENTRIES = "FFCLR_MAX_ZIP_ENTRIES", 200_000
MAX_ZIP_RATIO_ENV, DEFAULT_MAX_ZIP_RATIO = "FFCLR_MAX_ZIP_RATIO", 200
EXTRACT_PREFIX = "ffclr-export-"


def max_annotation_bytes() -> int:
    """The largest annotation file read: `$FFCLR_MAX_ANNOTATION_BYTES`, default 256 MiB."""
    return _setting(MAX_ANNOTATION_BYTES_ENV, DEFAULT_MAX_ANNOTATION_BYTES)


def read_annotation_json(path: Path, label: str):
    """The parsed JSON of an annotation file, or a one-line FfclrError naming it (`label`):
    missing, over the size cap, not UTF-8, malformed or nested too deeply to parse."""
    if not path.is_file():
        raise FfclrError(f"{label}: missing annotation file")
    cap = max_annotation_bytes()
    try:
        with open(path, "rb") as file:
            data = file.read(cap + 1)
    except OSError as exc:
        raise FfclrError(f"{label}: cannot read ({exc.strerror or exc})") from None
    if len(data) > cap:
        raise FfclrError(f"{label}: larger than the {cap}-byte cap on annotation files "
                         f"(set ${MAX_ANNOTATION_BYTES_ENV} to raise it)")
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise FfclrError(f"{label}: malformed JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError as exc:
        raise FfclrError(f"{label}: cannot read ({exc})") from None
    except RecursionError:
        raise FfclrError(f"{label}: JSON nested too deeply to read") from None


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

    def contains(self, path: Path) -> bool:
        """Whether `path`, links followed, lies inside the export."""
        root, resolved = self.root.resolve(), path.resolve()
        return resolved == root or root in resolved.parents

    def files(self, folder: Path) -> list[Path]:
        """The regular files under `folder` (a split), sorted by their bytes; links to files
        outside the export and linked folders are left out."""
        found = []
        for directory, _, names in os.walk(folder):
            for name in names:
                path = Path(directory) / name
                if path.is_file() and (not path.is_symlink() or self.contains(path)):
                    found.append(path)
        return sorted(found, key=lambda p: os.fsencode(p.relative_to(folder)))

    def label(self, path: Path) -> str:
        """How to name a file of the export in messages: as the user knows it."""
        if self.source.is_dir():
            return str(path)
        return f"{self.source}:{path.relative_to(self.extracted_to).as_posix()}"


def source_fingerprint(export: ExportFolder) -> str:
    """Hash of the splits' files (names and bytes), links out of the export left out."""
    digest = hashlib.sha256(b"ffclr-export 1\n")
    for split, folder in sorted(export.splits.items()):
        for path in export.files(folder):
            digest.update(split.encode() + b"/" + os.fsencode(path.relative_to(folder)) + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _split_dirs(folder: Path) -> dict[str, Path]:
    return {s: folder / s for s in SPLITS if (folder / s).is_dir()}


def split_folders(folder: Path) -> tuple[Path, dict[str, Path]]:
    """(the folder holding the splits, split → its folder) of the export in `folder`, directly
    or inside its one top folder; no splits when it holds none."""
    splits = _split_dirs(folder)
    if not splits:
        tops = [p for p in folder.iterdir() if p.is_dir() and p.name not in _IGNORED_TOP]
        if len(tops) == 1:
            folder, splits = tops[0], _split_dirs(tops[0])
    return folder, splits


def _locate(folder: Path, source: Path, refused: list[str]) -> ExportFolder:
    """The export in `folder`, directly or inside its one top folder."""
    base = folder
    folder, splits = split_folders(folder)
    if not splits:
        raise FfclrError(f"{source}: not a Roboflow COCO export (no {'/'.join(SPLITS)} folder "
                         f"with {ANNOTATIONS})")
    return ExportFolder(root=folder, splits=splits, source=source, refused_entries=refused,
                        extracted_to=None if source.is_dir() else base)


def _is_link(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _setting(env: str, default: int) -> int:
    """A positive whole number from `$env`, else `default`."""
    text = os.environ.get(env, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) <= 0:
        raise FfclrError(f"${env}={text!r}: give a positive whole number")
    return int(text)


def zip_limits() -> dict[str, int]:
    """What a zip may hold: total bytes extracted, entries, and the uncompressed/compressed
    ratio of any one entry (a decompression bomb's is in the hundreds or more)."""
    return {"bytes": _setting(MAX_EXTRACT_MB_ENV, DEFAULT_MAX_EXTRACT_MB) * 2**20,
            "entries": _setting(MAX_ZIP_ENTRIES_ENV, DEFAULT_MAX_ZIP_ENTRIES),
            "ratio": _setting(MAX_ZIP_RATIO_ENV, DEFAULT_MAX_ZIP_RATIO)}


def check_zip_sizes(archive: Path, infos: list[zipfile.ZipInfo], target: Path) -> None:
    """FfclrError, naming the archive and the limit, when extracting would pass a limit."""
    limits = zip_limits()
    if len(infos) > limits["entries"]:
        raise FfclrError(f"{archive}: {len(infos)} entries, over the limit of "
                         f"{limits['entries']} (${MAX_ZIP_ENTRIES_ENV})")
    needed = sum(i.file_size for i in infos)
    if needed > limits["bytes"]:
        raise FfclrError(f"{archive}: extracting needs {needed / 2**20:.0f} MB, over the limit "
                         f"of {limits['bytes'] // 2**20} MB (${MAX_EXTRACT_MB_ENV})")
    for info in infos:
        if info.file_size > 2**20 and info.file_size > limits["ratio"] * max(info.compress_size, 1):
            raise FfclrError(f"{archive}: entry {info.filename!r} expands {info.file_size} bytes "
                             f"from {info.compress_size}, over the ratio limit of "
                             f"{limits['ratio']} (${MAX_ZIP_RATIO_ENV}); a zip bomb?")
    free = shutil.disk_usage(target).free
    if needed > free:
        raise FfclrError(f"{archive}: extracting needs {needed / 2**30:.1f} GiB, only "
                         f"{free / 2**30:.1f} GiB free in {target.parent}")


def extract_zip(archive: Path, target: Path) -> list[str]:
    """Extract the safe regular files of `archive` into `target`; returns the refused entries.

    Sizes are checked first (`check_zip_sizes`); an entry never writes more than it declared.
    """
    refused = []
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            check_zip_sizes(archive, infos, target)
            for info in infos:
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


def remove_stale_extractions(folder: Path | None = None) -> list[Path]:
    """Remove extraction folders left in the temporary folder by a process that is gone."""
    removed = []
    for path in Path(folder or tempfile.gettempdir()).glob(f"{EXTRACT_PREFIX}*"):
        pid = path.name[len(EXTRACT_PREFIX):].split("-")[0]
        if path.is_dir() and pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (a stale folder named by it can go when not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


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
    remove_stale_extractions()
    with tempfile.TemporaryDirectory(prefix=f"{EXTRACT_PREFIX}{os.getpid()}-") as tmp:
        refused = extract_zip(source, Path(tmp))
        yield _locate(Path(tmp), source, refused)
