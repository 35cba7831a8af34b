"""`python -m ffclr cache [--prune]`: what the workspace's cache holds; prune what outlived its
source."""
from __future__ import annotations

from ffclr.cli import add_command, workspace_from


def register(subparsers) -> None:
    parser = add_command(subparsers, "cache",
                         "show what <workspace>/cache/ holds (all of it can be computed again); "
                         "--prune removes what can never be read again")
    parser.add_argument("--prune", action="store_true",
                        help="remove embeddings and layouts of checkpoints, datasets or crop "
                             "folders that are gone, queue evidence of detector files that are "
                             "gone or rewritten, and decoded crops of datasets no longer imported")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ffclr.workspace_cache import prune, usage

    workspace = workspace_from(args)
    if args.prune:
        report = prune(workspace)
        print(f"pruned {report.files} files ({_mb(report.bytes)})"
              + (f", folders {', '.join(report.folders)}" if report.folders else ""))
    found = usage(workspace)
    if not found:
        print(f"{workspace.cache}: empty")
    for part in found:
        print(f"cache/{part.folder}/: {part.files} files, {_mb(part.bytes)}")
    return 0


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MB"
