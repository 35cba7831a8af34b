"""`.npz` files ffclr writes (probes, detectors, embedding caches): where one saved under a name
lies, and what reading a damaged one raises."""
from __future__ import annotations

import zipfile
from pathlib import Path

READ_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile)
"""What `numpy.load` and indexing its result raise for a missing, truncated, empty or foreign
file: a cache is then recomputed, an artifact refused with a one-line message."""


def npz_path(path: str | Path) -> Path:
    """The file an `.npz` saved as `path` is in: numpy's `savez` adds `.npz` to a name without
    it, so a name the user gave without it still finds the file."""
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")
