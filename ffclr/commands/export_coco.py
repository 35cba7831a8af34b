"""`python -m ffclr export-coco OUT`: the imported export written back with corrected labels."""
from __future__ import annotations

from pathlib import Path

from ffclr.cli import add_command, workspace_from


def register(subparsers) -> None:
    parser = add_command(subparsers, "export-coco",
                         "write an imported dataset back as a COCO export (same images and "
                         "categories, category_ids after relabelling)")
    parser.add_argument("out", type=Path, metavar="OUT", help="new (or empty) folder")
    parser.add_argument("--dataset", metavar="NAME",
                        help="imported dataset (default: the only one in the workspace)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ffclr.data.coco_export import export_coco
    from ffclr.errors import FfclrError

    workspace = workspace_from(args)
    name = args.dataset
    if name is None:
        with workspace.open_store() as store:
            names = [d["name"] for d in store.datasets()]
        if len(names) != 1:
            raise FfclrError("say which dataset: --dataset NAME"
                             + (f" (imported: {', '.join(names)})" if names else " (none imported)"))
        name = names[0]
    result = export_coco(args.out, name, workspace)
    splits = ", ".join(f"{split} {n} annotations" for split, n in result.splits.items())
    print(f"wrote {result.out}: {splits}, {result.images} images; {result.changed} "
          f"category_ids corrected" + (f"; {result.drawings} drawings labelled in ffclr added"
                                       if result.drawings else ""))
    for reason, count in result.skipped.items():
        print(f"  not copied: {count} images, {reason}")
    return 0
