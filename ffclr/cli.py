"""`python -m ffclr`: one entry point, a subcommand per job (see `ffclr/commands`)."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback
from pathlib import Path

from ffclr import __version__, commands
from ffclr.errors import FfclrError


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--workspace", metavar="DIR", default=argparse.SUPPRESS,
                        help="where datasets/, checkpoints/, runs/ and the store live "
                             "(default: $FFCLR_WORKSPACE or the current directory)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show full tracebacks on errors")
    return common


COMMON = _common_options()


def add_command(subparsers, name: str, help: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand parser that also takes `--workspace` and `--debug`."""
    return subparsers.add_parser(name, help=help, description=help, parents=[COMMON], **kwargs)


def program_name() -> str:
    """`ffclr` as the installed command, `python -m ffclr` as a module."""
    return "python -m ffclr" if Path(sys.argv[0]).name == "__main__.py" else "ffclr"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program_name(),
        description="Contrastive learning for the symbols on fire-protection schematics.",
        parents=[COMMON],
    )
    parser.add_argument("--version", action="version", version=f"ffclr {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{module_info.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except FfclrError as exc:
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, not a traceback
        if getattr(args, "debug", False):
            traceback.print_exc()
        else:
            print(f"error: unexpected {type(exc).__name__}: {exc} (rerun with --debug for details)",
                  file=sys.stderr)
        return 1
    return int(result or 0)


def workspace_from(args: argparse.Namespace):
    from ffclr.workspace import resolve_workspace

    return resolve_workspace(getattr(args, "workspace", None))
