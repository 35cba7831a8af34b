"""Cache files grouped by what they were derived from, so that none outlives its source.

A group's files are named `<owner>-<key><suffix>` in one folder, where `<owner>` hashes the
group's source description (a checkpoint and a dataset, a detector file's path, size and
modification time) and that description is kept beside them in `<owner>.owner.json`. A newer
file of the group can replace the older ones (`supersede`), and `orphans` finds the groups whose
source is gone, given a test of the description written by the module that owns the cache.
`write_aside` is how every derived file is written (caches, CSV and COCO files, detectors).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

OWNER_SUFFIX = ".owner.json"


@dataclass(frozen=True)
class Owner:
    folder: Path
    source: dict
    """JSON-serialisable description of the source; equal descriptions share the group."""

    @property
    def name(self) -> str:
        text = json.dumps(self.source, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def path(self, key: str, suffix: str) -> Path:
        return self.folder / f"{self.name}-{key}{suffix}"

    def claim(self) -> None:
        """Write the description beside the group's files (written aside, then renamed)."""
        target = self.folder / f"{self.name}{OWNER_SUFFIX}"
        if not target.is_file():
            write_aside(target, lambda tmp: tmp.write_text(json.dumps(self.source, sort_keys=True),
                                                           encoding="utf-8"))

    def files(self, prefix: str = "") -> list[Path]:
        """The group's files whose key starts with `prefix`."""
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob(f"{self.name}-{prefix}*"))

    def supersede(self, keep: list[Path], prefix: str = "") -> int:
        """Remove the group's files (with keys starting with `prefix`) other than `keep`;
        the number removed."""
        kept = {p.name for p in keep}
        removed = 0
        for path in self.files(prefix):
            if path.name not in kept:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def write_aside(path: Path, write: Callable[[Path], None]) -> None:
    """`write(tmp)` to a hidden file beside `path`, then renamed over it: a reader never sees
    half a file; on failure the hidden file is removed and the error raised."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def owner_groups(folder: Path) -> Iterator[tuple[str, dict | None]]:
    """(owner name, its description or None when unreadable) of each group in `folder`."""
    if not folder.is_dir():
        return
    for path in sorted(folder.glob(f"*{OWNER_SUFFIX}")):
        name = path.name[:-len(OWNER_SUFFIX)]
        try:
            source = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            source = None
        yield name, source if isinstance(source, dict) else None


def prune_orphans(folder: Path, alive: Callable[[dict], bool], unowned: bool = True
                  ) -> list[Path]:
    """Remove every file of `folder` whose group's source is gone (`alive` is False or the
    description is unreadable) and, with `unowned`, every file that belongs to no described
    group (written by an earlier version, or left by an interrupted write); the paths removed."""
    if not folder.is_dir():
        return []
    groups = dict(owner_groups(folder))
    live = {name for name, source in groups.items() if source is not None and alive(source)}
    removed = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.is_symlink():
            continue
        name = path.name[:-len(OWNER_SUFFIX)] if path.name.endswith(OWNER_SUFFIX) \
            else path.name.split("-", 1)[0]
        if name in live or _recent_temporary(path) or (not unowned and name not in groups):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _recent_temporary(path: Path, seconds: float = 3600.0) -> bool:
    """A hidden file being written now by another process is left alone."""
    import time

    try:
        return path.name.startswith(".") and time.time() - path.stat().st_mtime < seconds
    except OSError:
        return True
