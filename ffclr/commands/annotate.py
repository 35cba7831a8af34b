"""`python -m ffclr annotate ...`: label new drawings headless. Add drawings to a dataset,
pre-annotate them with a detector, accept, fix or draw boxes, undo, and finish a drawing (its
boxes become crops of the dataset at once); `export-coco` then writes them with the export."""
from __future__ import annotations

from ffclr.cli import add_command, workspace_from


def register(subparsers) -> None:
    parser = add_command(subparsers, "annotate", "label new drawings: add, pre-annotate, edit "
                         "boxes, finish (each change saved at once, undoable)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = add_command(actions, "add", "add images, folders, zips or an export's unlabelled "
                      "images to a dataset as drawings to label")
    add.add_argument("dataset", metavar="DATASET")
    add.add_argument("sources", nargs="+", metavar="SOURCE")
    add.add_argument("--split", default="train", choices=("train", "valid", "test"),
                     help="the split they join once labelled (default train; an export's "
                          "images keep theirs)")
    add.set_defaults(func=run_add)
    listing = add_command(actions, "list", "the dataset's drawings, or one drawing's boxes")
    listing.add_argument("dataset", metavar="DATASET")
    listing.add_argument("--drawing", type=int, metavar="ID", help="list this drawing's boxes")
    listing.set_defaults(func=run_list)
    pre = add_command(actions, "preannotate", "box and classify every symbol with a detector")
    pre.add_argument("drawings", nargs="+", type=int, metavar="DRAWING_ID")
    pre.add_argument("--detector", required=True, metavar="DETECTOR",
                     help="a file written by `ffclr detector fit`")
    pre.add_argument("--min-score", type=float, metavar="S",
                     help="propose boxes scoring at least S (default: the detector's threshold)")
    pre.set_defaults(func=run_preannotate)
    _register_edits(actions)
    finish = add_command(actions, "finish", "make the drawings' boxes crops of the dataset now")
    finish.add_argument("drawings", nargs="+", type=int, metavar="DRAWING_ID")
    finish.set_defaults(func=run_finish)
    remove = add_command(actions, "remove", "take drawings out of their dataset: their boxes, "
                         "edits, the crops they gave and their copied image")
    remove.add_argument("drawings", nargs="+", type=int, metavar="DRAWING_ID")
    remove.set_defaults(func=run_remove)


def _register_edits(actions) -> None:
    accept = add_command(actions, "accept", "accept the model's boxes scoring at least S")
    accept.add_argument("drawing", type=int, metavar="DRAWING_ID")
    accept.add_argument("--min-score", type=float, default=0.0, metavar="S")
    accept.set_defaults(func=run_accept)
    box = add_command(actions, "box", "draw a box: X Y WIDTH HEIGHT in drawing pixels")
    box.add_argument("drawing", type=int, metavar="DRAWING_ID")
    box.add_argument("bbox", nargs=4, type=float, metavar=("X", "Y", "W", "H"))
    box.add_argument("--class", dest="cls", required=True, metavar="CLASS", help="name or index")
    box.set_defaults(func=run_box)
    move = add_command(actions, "move", "move or resize a box")
    move.add_argument("box", type=int, metavar="BOX_ID")
    move.add_argument("bbox", nargs=4, type=float, metavar=("X", "Y", "W", "H"))
    move.set_defaults(func=run_move)
    relabel = add_command(actions, "set-class", "change a box's class")
    relabel.add_argument("box", type=int, metavar="BOX_ID")
    relabel.add_argument("cls", metavar="CLASS", help="name or index")
    relabel.set_defaults(func=run_set_class)
    delete = add_command(actions, "delete", "delete a box")
    delete.add_argument("box", type=int, metavar="BOX_ID")
    delete.set_defaults(func=run_delete)
    undo = add_command(actions, "undo", "undo the latest edit of a drawing (an accept: all of it)")
    undo.add_argument("drawing", type=int, metavar="DRAWING_ID")
    undo.set_defaults(func=run_undo)


def _box_line(box) -> str:
    score = f"{box.score:.3f}" if box.score is not None else "-"
    x, y, w, h = box.bbox
    state = "accepted" if box.accepted else "proposed"
    return (f"  box {box.id}: {box.class_name} at {x:g},{y:g} {w:g}×{h:g} score {score} "
            f"({box.who}, {state})")


def _class_index(workspace, value: str, drawing_id: int | None = None, box_id: int | None = None
                 ) -> int:
    from ffclr.commands.relabel import resolve_class
    from ffclr.errors import FfclrError

    with workspace.open_store() as store:
        if drawing_id is None:
            drawing_id = store.box_drawing_id(box_id)
            if drawing_id is None:
                raise FfclrError(f"no box with id {box_id}")
        drawing = store.drawing(drawing_id)
        if drawing is None:
            raise FfclrError(f"no drawing with id {drawing_id}")
        return resolve_class(value, store.classes(drawing["dataset_id"]))["class_index"]


def run_add(args) -> int:
    from ffclr.annotate import add_drawings

    result = add_drawings(workspace_from(args), args.dataset, args.sources, args.split)
    for row in result.added:
        print(f"drawing {row['id']}: {row['file_name']} ({row['width']}×{row['height']}, "
              f"{row['split']})")
    for line in result.lines():
        print(line)
    return 0 if result.added or not result.skipped else 1


def run_list(args) -> int:
    from ffclr import annotate

    workspace = workspace_from(args)
    if args.drawing is not None:
        for box in annotate.boxes(workspace, args.drawing):
            print(_box_line(box))
        return 0
    rows = annotate.drawings(workspace, args.dataset)
    for row in rows:
        print(f"drawing {row['id']}: {row['file_name']} [{row['split']}, {row['status']}] "
              f"{row['n_boxes']} boxes, {row['n_accepted']} accepted")
    print(f"{len(rows)} drawings in {args.dataset}")
    return 0


def run_preannotate(args) -> int:
    from ffclr import annotate

    workspace = workspace_from(args)
    detector = annotate.editing.load_detector_once(args.detector)
    for drawing_id in args.drawings:
        found = annotate.preannotate(workspace, drawing_id, detector, args.min_score)
        print(f"drawing {drawing_id}: {len(found)} boxes")
        for box in found:
            print(_box_line(box))
    return 0


def run_accept(args) -> int:
    from ffclr import annotate

    count = annotate.accept_above(workspace_from(args), args.drawing, args.min_score)
    print(f"drawing {args.drawing}: accepted {count} boxes scoring at least {args.min_score:g}")
    return 0


def run_box(args) -> int:
    from ffclr import annotate

    workspace = workspace_from(args)
    box = annotate.add_box(workspace, args.drawing, args.bbox,
                           _class_index(workspace, args.cls, drawing_id=args.drawing))
    print(_box_line(box).strip())
    return 0


def run_move(args) -> int:
    from ffclr import annotate

    print(_box_line(annotate.move_box(workspace_from(args), args.box, args.bbox)).strip())
    return 0


def run_set_class(args) -> int:
    from ffclr import annotate

    workspace = workspace_from(args)
    box = annotate.set_class(workspace, args.box, _class_index(workspace, args.cls,
                                                               box_id=args.box))
    print(_box_line(box).strip())
    return 0


def run_delete(args) -> int:
    from ffclr import annotate

    annotate.delete_box(workspace_from(args), args.box)
    print(f"box {args.box} deleted")
    return 0


def run_undo(args) -> int:
    from ffclr import annotate

    what = annotate.undo(workspace_from(args), args.drawing)
    print(f"drawing {args.drawing}: " + (f"undid {what}" if what else "nothing left to undo"))
    return 0


def run_finish(args) -> int:
    from ffclr import annotate

    workspace = workspace_from(args)
    for drawing_id in args.drawings:
        count = annotate.finish_drawing(workspace, drawing_id)
        print(f"drawing {drawing_id}: annotated, {count} crops in the dataset")
    return 0


def run_remove(args) -> int:
    from ffclr import annotate

    workspace = workspace_from(args)
    for drawing_id in args.drawings:
        removed = annotate.remove_drawing(workspace, drawing_id)
        print(f"drawing {drawing_id} ({removed['file_name']}): removed with its "
              f"{removed['crops']} crops")
    return 0
