"""Import speed: the real export imported into a temporary workspace, crops per second."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ffclr.benchmarks import REAL_EXPORT
from ffclr.errors import FfclrError

NAME = "import"
HELP = "import speed (crops/s) on a Roboflow COCO export, into a temporary workspace"


def add_arguments(parser) -> None:
    parser.add_argument("--export", type=Path, default=REAL_EXPORT,
                        help="export folder or .zip (default: ../shared/datasets/ff_devices "
                             "from the repository root)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="imports timed, each into a fresh workspace; the best counts "
                             "(default: 3)")


def run(args) -> int:
    from ffclr.data.coco_import import import_export
    from ffclr.workspace import Workspace

    if not args.export.exists():
        raise FfclrError(f"{args.export}: no such export (give --export PATH)")
    timings = []
    for _ in range(max(1, args.repeat)):
        with tempfile.TemporaryDirectory(prefix="ffclr-bench-import-") as tmp:
            start = time.perf_counter()
            result = import_export(args.export, "bench", Workspace(Path(tmp)))
            timings.append(time.perf_counter() - start)
    best = min(timings)
    images = sum(s.images for s in result.splits.values())
    print(f"export: {args.export}")
    print(f"{result.crops} crops from {images} images; best of {len(timings)}: {best:.2f} s "
          f"= {result.crops / best:.0f} crops/s (all runs: "
          + ", ".join(f"{t:.2f} s" for t in timings) + ")")
    return 0
