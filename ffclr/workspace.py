"""Where ffclr keeps its files: datasets, checkpoints, TensorBoard runs and the SQLite store."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ffclr.errors import FfclrError

WORKSPACE_ENV = "FFCLR_WORKSPACE"
DB_FILENAME = "ffclr.sqlite"
CHECKPOINT_SUFFIXES = (".pth", ".pth.tar")


def is_checkpoint_file(path: Path) -> bool:
    """A checkpoint's name: `.pth` or `.pth.tar`, not hidden (a checkpoint being written is)."""
    return path.name.endswith(CHECKPOINT_SUFFIXES) and not path.name.startswith(".")


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def runs(self) -> Path:
        """TensorBoard event files, one folder per run."""
        return self.root / "runs"

    @property
    def cache(self) -> Path:
        """Derived data (embeddings, UMAP) that can always be recomputed."""
        return self.root / "cache"

    @property
    def db_path(self) -> Path:
        return self.root / DB_FILENAME

    def dataset_dir(self, name: str) -> Path:
        return self.datasets / f"{name}_individual"

    def open_store(self):
        from store import Store
        from store.errors import StoreError

        self.root.mkdir(parents=True, exist_ok=True)
        try:
            return Store(self.db_path)
        except StoreError as exc:
            raise FfclrError(str(exc)) from None


def resolve_workspace(path: str | os.PathLike | None = None) -> Workspace:
    """`--workspace` if given, else `$FFCLR_WORKSPACE`, else the current directory."""
    chosen = path or os.environ.get(WORKSPACE_ENV) or os.getcwd()
    return Workspace(Path(chosen).expanduser().resolve())
