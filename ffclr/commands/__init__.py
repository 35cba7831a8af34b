"""CLI subcommands: each module defines `register(subparsers)` and sets `func` on its parser.

`func(args) -> int | None` does the work; `FfclrError` becomes a one-line message.
"""
