"""Benchmarks for `python -m ffclr bench NAME`: each module has `NAME`, `HELP`,
`add_arguments(parser)` and `run(args) -> int | None`."""
