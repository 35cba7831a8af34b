"""`python -m ffclr import EXPORT --name NAME`: a Roboflow COCO export → crops + store rows."""
from __future__ import annotations

from pathlib import Path

from ffclr.cli import add_command, workspace_from


def register(subparsers) -> None:
    parser = add_command(subparsers, "import",
                         "import a Roboflow COCO export (folder or .zip): crop every annotated "
                         "symbol into datasets/<NAME>_individual/<split>/<class>/")
    parser.add_argument("export", metavar="EXPORT", type=Path,
                        help="folder or .zip with train/, valid/, test/ (any subset), each "
                             "holding images and _annotations.coco.json")
    parser.add_argument("--name", required=True,
                        help="dataset name (letters, digits, '.', '_', '-')")
    parser.add_argument("--padding", type=float, default=0.05,
                        help="margin around each box, as a fraction of the box size on each "
                             "side, clipped to the image (default: 0.05)")
    parser.add_argument("--update", action="store_true",
                        help="when dataset NAME exists and this export differs from it, apply "
                             "the changes (without --update the import says what would change "
                             "and changes nothing)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from tqdm import tqdm

    from ffclr.data.coco_import import import_export

    bar = None

    def progress(done: int, total: int, message: str) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="image", desc="importing", dynamic_ncols=True)
        bar.set_postfix_str(message[-40:], refresh=False)
        bar.update(done - bar.n)

    try:
        result = import_export(args.export, args.name, workspace_from(args),
                               padding=args.padding, progress=progress, update=args.update)
    finally:
        if bar is not None:
            bar.close()
    for line in result.lines():
        print(line)
    return 0
