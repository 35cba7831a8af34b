"""Benchmarks for `python -m ffclr bench NAME`: each module has `NAME`, `HELP`,
`add_arguments(parser)` and `run(args) -> int | None`; modules without `NAME` are their
shared parts."""

from pathlib import Path

REAL_EXPORT = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "ff_devices"
"""The real export beside the repository (`../shared/datasets/ff_devices`), the benchmarks' default."""

DATASET = "ff_devices"
"""The dataset name the accuracy benchmarks import the export under."""


def import_train_valid(export: Path, prefix: str):
    """A fresh temporary workspace with `export` imported as `DATASET`: (workspace, train, valid)
    crop sets, indexed by the same class list."""
    import tempfile

    from ffclr.data.coco_import import import_export
    from ffclr.data.cropset import load_dataset_split
    from ffclr.errors import FfclrError
    from ffclr.workspace import Workspace

    if not (export / "train").is_dir() or not (export / "valid").is_dir():
        raise FfclrError(f"{export}: needs train/ and valid/ splits of the Roboflow export")
    workspace = Workspace(Path(tempfile.mkdtemp(prefix=prefix)))
    import_export(export, DATASET, workspace)
    return (workspace, load_dataset_split(DATASET, "train", workspace),
            load_dataset_split(DATASET, "valid", workspace))
