"""`python -m ffclr relabel CROP_ID NEW_CLASS`: record a label edit (append-only) in the store."""
from __future__ import annotations

from ffclr.cli import add_command, workspace_from


def register(subparsers) -> None:
    parser = add_command(subparsers, "relabel",
                         "give a crop a new class (by name or index); every evaluation uses the "
                         "latest edit, and the history is kept")
    parser.add_argument("crop_id", type=int, metavar="CROP_ID", help="as listed by explore")
    parser.add_argument("new_class", metavar="NEW_CLASS", help="class name or class index")
    parser.add_argument("--note", help="why (kept with the edit)")
    parser.set_defaults(func=run)


def resolve_class(value: str, classes: list[dict]) -> dict:
    from ffclr.errors import FfclrError

    for cls in classes:
        if cls["name"] == value or cls["folder"] == value:
            return cls
    if value.lstrip("-").isdigit():
        for cls in classes:
            if cls["class_index"] == int(value):
                return cls
    raise FfclrError(f"{value!r} is not a class of this dataset (names: "
                     + ", ".join(c["name"] for c in classes[:8]) + (", ..." if len(classes) > 8 else "")
                     + f"; indices 0-{len(classes) - 1})")


def run(args) -> int:
    from ffclr.errors import FfclrError

    with workspace_from(args).open_store() as store:
        crop = store.crop(args.crop_id)
        if crop is None:
            raise FfclrError(f"no crop with id {args.crop_id}")
        classes = store.classes(crop["dataset_id"])
        new = resolve_class(args.new_class, classes)
        names = {c["class_index"]: c["name"] for c in classes}
        if store.relabel(args.crop_id, new["class_index"], note=args.note) is None:
            print(f"crop {args.crop_id} is already {new['name']}: nothing recorded")
            return 0
    print(f"crop {args.crop_id} ({crop['path']}): {names.get(crop['label'])} → {new['name']}")
    return 0
