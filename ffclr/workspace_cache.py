"""The workspace's `cache/`: what each part holds, and pruning what can never be read again.

Everything under `cache/` can be computed again. Newer files replace older ones of the same
source as they are written; `prune` removes what outlived its source: embeddings and layouts of
a checkpoint, dataset or crop folder that is gone, the Annotate queue's evidence of a detector
file that is gone or was rewritten, and the decoded crops of a dataset no longer in the store.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ffclr.data.crop_pixels import CROPS_FOLDER
from ffclr.workspace import Workspace


@dataclass
class CacheUsage:
    folder: str
    files: int
    bytes: int


@dataclass
class PruneReport:
    files: int = 0
    bytes: int = 0
    folders: list[str] = field(default_factory=list)


def usage(workspace: Workspace) -> list[CacheUsage]:
    """Files and bytes under each folder of `cache/`, largest first."""
    root = workspace.cache
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
        found.append(CacheUsage(folder.name, len(files), sum(_size(p) for p in files)))
    return sorted(found, key=lambda u: -u.bytes)


def prune(workspace: Workspace, unowned: bool = True) -> PruneReport:
    """Remove the cache files whose source is gone and, with `unowned`, those that name no
    source (written before files named theirs; embeddings among them are adopted by their
    next use otherwise); what was removed."""
    from ffclr.annotate.evidence_cache import EVIDENCE_FOLDER, evidence_alive
    from ffclr.derived_files import prune_orphans
    from ffclr.eval.embedding import EMBEDDINGS_FOLDER, embeddings_alive

    report = PruneReport()
    cache = workspace.cache
    if not cache.is_dir():
        return report
    for folder, alive in ((EMBEDDINGS_FOLDER, embeddings_alive(workspace)),
                          (EVIDENCE_FOLDER, evidence_alive)):
        sizes = {p: _size(p) for p in (cache / folder).glob("*")} if (cache / folder).is_dir() \
            else {}
        removed = prune_orphans(cache / folder, alive, unowned)
        report.files += len(removed)
        report.bytes += sum(sizes.get(p, 0) for p in removed)
    for stale in _orphan_crop_folders(workspace):
        files = [p for p in stale.rglob("*") if p.is_file()]
        report.files += len(files)
        report.bytes += sum(_size(p) for p in files)
        report.folders.append(str(stale.relative_to(workspace.root)))
        shutil.rmtree(stale, ignore_errors=True)
    return report


def _orphan_crop_folders(workspace: Workspace) -> list[Path]:
    """`cache/crops/<dataset id>/` of ids no dataset of the store has."""
    folder = workspace.cache / CROPS_FOLDER
    if not folder.is_dir() or not workspace.db_path.exists():
        return []
    with workspace.open_store() as store:
        ids = {str(d["id"]) for d in store.datasets()}
    return [p for p in sorted(folder.iterdir())
            if p.is_dir() and not p.is_symlink() and p.name not in ids]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
