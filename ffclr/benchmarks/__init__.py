"""Benchmarks for `python -m ffclr bench NAME`: each module has `NAME`, `HELP`,
`add_arguments(parser)` and `run(args) -> int | None`."""

from pathlib import Path

REAL_EXPORT = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "ff_devices"
"""The real export beside the repository (`../shared/datasets/ff_devices`), the benchmarks' default."""
