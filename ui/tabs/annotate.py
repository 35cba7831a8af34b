"""Annotate tab: label new drawings. Add drawings to a dataset, let the detector pre-box every
symbol, fix its mistakes in the box editor (`ui.annotator`; every edit saved at once as an
append-only annotation edit, undoable), accept the confident boxes in one action, finish the
drawing (its boxes become crops of the dataset), and take the next drawing from the queue of
what the model is least sure of (or in random order). Refit the detector and the probe from the
new labels (`ui.tabs.annotate_refit`); export the dataset with the new drawings.

The functions above the layout take data and return data (tested directly); the handlers below
only move their results into components.
"""
from __future__ import annotations

import math
import shutil
from uuid import uuid4
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ffclr import annotate
from ffclr.annotate.drawings import DRAWINGS_FOLDER
from ffclr.annotate.queue import label_queue
from ffclr.data.coco_export import export_coco
from ffclr.data.export_source import SPLITS
from ffclr.data.safe_paths import safe_name
from ffclr.errors import FfclrError
from ffclr.workspace import Workspace
from ui import schematics
from ui.tabs import annotate_refit
from ui.annotator import (DrawingView, annotator_component, editor_spec, read_box_id, read_edit,
                          score_text)
from ui.common import (Context, checkpoint_choices, dataset_choices, error_md, file_url, guard,
                       imported_dataset, md_text, ok_md, open_store, result_folder, warn)

ORDERS = [("Least sure first", "uncertainty"), ("Random", "random")]
QUEUE_COLUMNS = ["#", "drawing", "file", "split", "boxes (accepted)", "why here"]
QUEUE_WIDTHS = ["5%", "9%", "24%", "8%", "12%", "42%"]
DEFAULT_THRESHOLD = 0.5
KEYS_HELP = ("Keys: **a** accept the boxes above the threshold · **Delete** (**Backspace**) or "
             "**x** delete the "
             "selected box · **n** next drawing in the queue · **u** or **Ctrl+Z** undo. "
             "Drag a box to move it, its edge to resize it, click it to select it; drag on the "
             "drawing to draw a new one; scroll to zoom, the toolbar's pan tool to move around.")

ANNOTATE_KEYS_JS = """
<script>
document.addEventListener('keydown', (event) => {
  const target = event.target;
  if (target && (target.tagName === 'INPUT' || target.tagName === 'TEXTAREA' ||
                 target.tagName === 'SELECT' || target.isContentEditable)) return;
  if (event.altKey) return;
  const undo = (event.ctrlKey || event.metaKey) && !event.shiftKey && event.key === 'z';
  if ((event.ctrlKey || event.metaKey) && !undo) return;
  const buttons = {'a': 'annotate-accept', 'x': 'annotate-delete', 'Delete': 'annotate-delete',
                   'Backspace': 'annotate-delete', 'n': 'annotate-next', 'u': 'annotate-undo'};
  const id = undo ? 'annotate-undo' : buttons[event.key];
  if (!id) return;
  const button = document.getElementById(id);
  if (button && button.offsetParent !== null) { button.click(); event.preventDefault(); }
});
</script>
"""


@dataclass
class Shown:
    """What the editor and its side panel show for one drawing."""
    spec: str
    info: str
    box: str
    class_choices: list[tuple[str, int]]
    class_value: int | None
    selected: int | None
    """The selected box, None when it is gone (deleted or undone)."""
    split: str


def count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def drawings_root(workspace: Workspace) -> Path:
    """The folder holding every dataset's added drawings (served to the editor)."""
    return workspace.root / DRAWINGS_FOLDER


def class_choices(workspace: Workspace, dataset: str | None) -> list[tuple[str, int]]:
    if not dataset:
        return []
    with open_store(workspace) as store:
        row = imported_dataset(store, dataset)
        return [(c["name"], int(c["class_index"])) for c in store.classes(row["id"])]


def _drawing_row(workspace: Workspace, drawing_id: int | None) -> dict:
    if drawing_id is None:
        raise FfclrError("open a drawing first (click one in the queue, or press Next)")
    with open_store(workspace) as store:
        row = store.drawing(int(drawing_id))
    if row is None:
        raise FfclrError(f"no drawing with id {drawing_id}")
    return row


def drawing_info(row: dict, boxes: list) -> str:
    accepted = sum(b.accepted for b in boxes)
    status = "annotated (its boxes are crops of the dataset)" if row["status"] == "annotated" \
        else "not finished yet"
    return (f"**{md_text(row['file_name'])}** · drawing #{int(row['id'])} · split "
            f"{md_text(row['split'])} · {int(row['width'])}×{int(row['height'])} px · "
            f"{count(len(boxes), 'box', 'boxes')}, {accepted} accepted · {status}")


def box_info(box, threshold: float) -> str:
    if box is None:
        return ("No box selected: click one to select it; a box you draw gets the class in the "
                "dropdown.")
    if box.score is None:
        source = "drawn by a person"
    else:
        source = f"model score {score_text(box.score)}" + (
            "" if box.accepted else
            f" · not accepted yet ({'at or above' if box.score >= threshold else 'below'} the "
            f"threshold {threshold:.2f})")
    x, y, w, h = box.bbox
    return (f"Box #{int(box.id)}: **{md_text(box.class_name)}** · {source} · "
            f"x {x:.0f}, y {y:.0f}, {w:.0f}×{h:.0f} px")


def show(workspace: Workspace, drawing_id: int, selected: int | None, threshold: float,
         class_value: int | None = None) -> Shown:
    """The editor's figure and the side panel for a drawing, `selected` highlighted; the class
    dropdown shows the selected box's class, else `class_value` (the class for new boxes)."""
    row = _drawing_row(workspace, drawing_id)
    boxes = annotate.boxes(workspace, int(drawing_id))
    with open_store(workspace) as store:
        dataset = store.dataset_by_id(row["dataset_id"])
        revision = len(store.annotation_edits(int(drawing_id)))
    choices = class_choices(workspace, dataset["name"])
    box = next((b for b in boxes if b.id == selected), None)
    view = DrawingView(int(row["id"]), file_url(annotate.drawing_path(workspace, row)),
                       int(row["width"]), int(row["height"]))
    if box is not None:
        class_value = box.class_index
    elif class_value not in [index for _, index in choices]:
        class_value = choices[0][1] if choices else None
    spec = editor_spec(view, boxes, box.id if box else None, threshold, revision, uuid4().hex)
    return Shown(spec, drawing_info(row, boxes), box_info(box, threshold), choices, class_value,
                 box.id if box else None, row["split"])


def open_drawing(workspace: Workspace, drawing_id: int, detector: str | None,
                 threshold: float) -> str:
    """Pre-annotate a drawing nobody has touched yet (when a detector is picked); returns the
    message for the status line."""
    row = _drawing_row(workspace, drawing_id)
    with open_store(workspace) as store:
        untouched = not store.annotation_edits(int(drawing_id))
    if not untouched or row["status"] == "annotated":
        return f"Drawing {md_text(row['file_name'])}."
    if not detector:
        return (f"Drawing {md_text(row['file_name'])} has no boxes yet: pick a detector to "
                "pre-annotate it, or draw the boxes.")
    return preannotate(workspace, drawing_id, detector, threshold)


def preannotate(workspace: Workspace, drawing_id: int, detector: str | None,
                threshold: float) -> str:
    boxes = annotate.preannotate(workspace, int(drawing_id), schematics.load(detector))
    return proposal_message(boxes, threshold)


def proposal_message(boxes: list, threshold: float) -> str:
    """What the labeller does next with the model's pending proposals among `boxes`."""
    model = [b for b in boxes if b.who == "model" and not b.accepted]
    above = sum(b.score >= threshold for b in model)
    proposed = f"The detector proposes {count(len(model), 'box', 'boxes')}"
    if not model:
        return proposed + ": draw the symbols it missed."
    if not above:
        return (f"{proposed}, none at or above the threshold {threshold:.2f}: lower the "
                "threshold to accept some with **a**, or fix them one by one.")
    return (f"{proposed}, {above} at or above the threshold {threshold:.2f}: press **a** to "
            "accept those, fix the rest.")


def apply_edit(workspace: Workspace, drawing_id: int | None, data, class_index: int | None
               ) -> tuple[int, str]:
    """A move or a new box from the editor, saved at once; (the box now selected, message)."""
    row = _drawing_row(workspace, drawing_id)
    edit = read_edit(data, int(row["width"]), int(row["height"]))
    if edit.kind == "add":
        if class_index is None:
            raise FfclrError("pick the class for new boxes in the dropdown first")
        box = annotate.add_box(workspace, int(row["id"]), list(edit.bbox), int(class_index))
        return box.id, f"Added box #{box.id} ({md_text(box.class_name)}): type to change its class."
    _check_box_in(workspace, edit.box_id, row["id"])
    before = next(b.bbox for b in annotate.boxes(workspace, int(row["id"]))
                  if b.id == edit.box_id)
    box = annotate.move_box(workspace, edit.box_id, list(edit.bbox))
    verb = "Moved" if tuple(before[2:]) == tuple(box.bbox[2:]) else "Resized"
    return box.id, f"{verb} box #{box.id} ({md_text(box.class_name)})."


def _check_box_in(workspace: Workspace, box_id: int, drawing_id: int) -> None:
    with open_store(workspace) as store:
        if store.box_drawing_id(int(box_id)) != int(drawing_id):
            raise FfclrError(f"box #{box_id} is not on this drawing")


def select_box(workspace: Workspace, drawing_id: int | None, data) -> int:
    row = _drawing_row(workspace, drawing_id)
    box_id = read_box_id(data.get("box_id") if isinstance(data, dict) else None)
    _check_box_in(workspace, box_id, row["id"])
    return box_id


def change_class(workspace: Workspace, drawing_id: int | None, selected: int | None,
                 class_index: int | None) -> str | None:
    """Re-class the selected box; None when no box is selected or it has that class already
    (the dropdown then only sets the class of boxes drawn next)."""
    if drawing_id is None or selected is None or class_index is None:
        return None
    _check_box_in(workspace, selected, drawing_id)
    box = next((b for b in annotate.boxes(workspace, int(drawing_id)) if b.id == selected), None)
    if box is None or box.class_index == int(class_index):
        return None
    box = annotate.set_class(workspace, int(selected), int(class_index))
    return f"Box #{box.id} is now {md_text(box.class_name)}."


def delete_selected(workspace: Workspace, drawing_id: int | None, selected: int | None) -> str:
    _drawing_row(workspace, drawing_id)
    if selected is None:
        raise FfclrError("select a box first (click it)")
    _check_box_in(workspace, selected, drawing_id)
    annotate.delete_box(workspace, int(selected))
    return f"Deleted box #{int(selected)}. Undo with **u**."


def accept(workspace: Workspace, drawing_id: int | None, threshold: float) -> str:
    _drawing_row(workspace, drawing_id)
    n = annotate.accept_above(workspace, int(drawing_id), float(threshold))
    return f"Accepted {count(n, 'box', 'boxes')} scoring at least {float(threshold):.2f}."


def undo(workspace: Workspace, drawing_id: int | None) -> str:
    _drawing_row(workspace, drawing_id)
    what = annotate.undo(workspace, int(drawing_id))
    if what is None:
        raise FfclrError("nothing to undo on this drawing")
    return f"Undone: {md_text(what)}."


def change_split(workspace: Workspace, drawing_id: int | None, split: str) -> str | None:
    """Move the drawing to another split (its crops follow at the next Done); None when it is
    there already."""
    row = _drawing_row(workspace, drawing_id)
    if row["split"] == split:
        return None
    annotate.set_split(workspace, int(drawing_id), split)
    then = " Press Done to move its crops." if row["status"] == "annotated" else ""
    return f"{md_text(row['file_name'])} goes to split {md_text(split)}.{then}"


def finish(workspace: Workspace, drawing_id: int | None) -> str:
    row = _drawing_row(workspace, drawing_id)
    n = annotate.finish_drawing(workspace, int(drawing_id))
    return (f"Saved {md_text(row['file_name'])}: {count(n, 'symbol', 'symbols')} in the crops of "
            f"split {md_text(row['split'])} (Explore, Probe and the detector see them).")


def remove(workspace: Workspace, drawing_id: int | None, confirmed: bool) -> str:
    """Take the open drawing out of its dataset (its boxes, edits, crops and copied image)."""
    _drawing_row(workspace, drawing_id)
    if not confirmed:
        raise FfclrError("tick 'yes, remove it' to confirm")
    removed = annotate.remove_drawing(workspace, int(drawing_id))
    return (f"Removed {md_text(removed['file_name'])} with its boxes and "
            f"{count(removed['crops'], 'crop', 'crops')}.")


def add_drawings(workspace: Workspace, dataset: str | None, files: list[str] | None,
                 folder: str | None, split: str) -> str:
    if not dataset:
        raise FfclrError("pick the dataset the drawings belong to (import one in the Data tab)")
    sources = [*(files or []), *([folder.strip()] if folder and folder.strip() else [])]
    if not sources:
        raise FfclrError("drop drawings (images or a .zip) or type a folder path first")
    result = annotate.add_drawings(workspace, dataset, sources, split)
    message = (f"Added {count(len(result.added), 'drawing', 'drawings')} to {md_text(dataset)} "
               f"(split {md_text(split)}).")
    if result.skipped:
        shown = "; ".join(md_text(line) for line in result.skipped[:5])
        more = f" and {len(result.skipped) - 5} more" if len(result.skipped) > 5 else ""
        message += f" Skipped {len(result.skipped)}: {shown}{more}."
    return message


def queue_items(workspace: Workspace, dataset: str | None, detector: str | None,
                checkpoint: str | None, order: str, progress=None) -> list[dict]:
    """The drawings not yet annotated in the order to label them, with the reason."""
    if not dataset:
        raise FfclrError("pick a dataset")
    if order != "random" and not detector:
        raise FfclrError("the least-sure-first order needs a detector: pick one (fit one in the "
                         "Classify tab), or choose Random")
    items = label_queue(workspace, dataset, detector or "", checkpoint or None, order,
                        progress=progress)
    rows = {d["id"]: d for d in annotate.drawings(workspace, dataset)}
    return [{"id": int(item.drawing_id), "reason": item.reason, **{
        k: rows[item.drawing_id][k] for k in ("file_name", "split", "n_boxes", "n_accepted")}}
        for item in items if item.drawing_id in rows]


def queue_table(items: list[dict]) -> list[list]:
    return [[rank, item["id"], item["file_name"], item["split"],
             f"{item['n_boxes']} ({item['n_accepted']})", item["reason"]]
            for rank, item in enumerate(items, start=1)]


def next_in_queue(workspace: Workspace, items: list[dict], current: int | None) -> int:
    """The drawing after `current` in the queue that is still not annotated (the first when
    `current` is not in it)."""
    if not items:
        raise FfclrError("the queue is empty: add drawings, then build the queue")
    ids = [item["id"] for item in items]
    start = ids.index(current) + 1 if current in ids else 0
    with open_store(workspace) as store:
        for drawing_id in ids[start:] + ids[:start]:
            row = store.drawing(drawing_id)
            if row is not None and row["status"] != "annotated" and drawing_id != current:
                return drawing_id
    raise FfclrError("every drawing in the queue is annotated: add more drawings")


def export_zip(workspace: Workspace, dataset: str | None) -> Path:
    """The dataset written as a Roboflow-style COCO export with the annotated drawings, zipped."""
    if not dataset:
        raise FfclrError("pick a dataset")
    with result_folder(workspace, "annotate-exports") as folder:
        export_coco(folder / "export", dataset, workspace)
        archive = shutil.make_archive(str(folder / f"{safe_name(dataset)}-coco"), "zip",
                                      folder / "export")
        shutil.rmtree(folder / "export", ignore_errors=True)
    return Path(archive)


def detector_threshold(detector: str | None) -> float:
    """The accept-all threshold of the detector (its boxes at or above it reached 95% precision
    on its training drawings), else its F1 threshold for a detector that has none; cut to the
    slider's two decimals, so no box at the detector's threshold falls under the slider's."""
    if not detector:
        return DEFAULT_THRESHOLD
    loaded = schematics.load(detector)
    chosen = loaded.accept_threshold
    return math.floor(100 * float(loaded.score_threshold if chosen is None else chosen)) / 100


# layout


def build(ctx: Context, tab: gr.Tab) -> None:
    ws, c = ctx.workspace, ctx.components
    gr.Markdown("Label new drawings: the detector pre-boxes every symbol, you fix its mistakes "
                "(every edit is saved at once), **Done** makes the boxes crops of the dataset and "
                "opens the next drawing the model is least sure of.\n\n" + KEYS_HELP)
    _build_pickers(ws, c)
    c["annotate_status"] = gr.Markdown(elem_id="annotate-status")
    _build_add(c)
    _build_queue(c)
    _build_editor(c)
    annotate_refit.build(c)
    _build_export(c)
    state = {"drawing": gr.State(None), "selected": gr.State(None), "queue": gr.State([])}
    _wire_editing(ws, c, state)
    _wire_drawings(ws, c, state)
    annotate_refit.wire(ws, c)
    _wire_refresh(ws, c, tab, state)


def _build_pickers(ws: Workspace, c: dict) -> None:
    datasets = dataset_choices(ws)
    detectors = schematics.detector_choices(ws)
    with gr.Row():
        c["annotate_dataset"] = gr.Dropdown(label="Dataset", choices=datasets,
                                            value=datasets[0] if datasets else None, scale=1,
                                            elem_id="annotate-dataset")
        c["annotate_detector"] = gr.Dropdown(
            label="Detector (pre-annotates; fit one in the Classify tab)", choices=detectors,
            value=detectors[0][1] if detectors else None, scale=2, elem_id="annotate-detector")
        c["annotate_checkpoint"] = gr.Dropdown(
            label="Checkpoint (optional): the queue's kNN check; the refit's encoder (else the "
            "detector's)",
            choices=[("", ""), *checkpoint_choices(ws)], value="", scale=2,
            elem_id="annotate-checkpoint")


def _build_add(c: dict) -> None:
    with gr.Accordion("Add drawings", open=True, elem_id="annotate-add-panel"):
        with gr.Row():
            c["annotate_files"] = gr.File(label="Drawings: images or a .zip (an export's images "
                                          "without annotations are taken too)",
                                          file_count="multiple", file_types=["image", ".zip"],
                                          scale=2, elem_id="annotate-files")
            with gr.Column(scale=1):
                c["annotate_folder"] = gr.Textbox(label="…or a folder on this machine",
                                                  elem_id="annotate-folder")
                c["annotate_split"] = gr.Radio(list(SPLITS), value="train",
                                               label="Split of the new drawings",
                                               elem_id="annotate-split")
                c["annotate_add"] = gr.Button("Add drawings", elem_id="annotate-add")


def _build_editor(c: dict) -> None:
    with gr.Row():
        with gr.Column(scale=4):
            c["annotate_editor"] = annotator_component(elem_id="annotate-editor")
        with gr.Column(scale=1, min_width=260):
            c["annotate_info"] = gr.Markdown(elem_id="annotate-info")
            c["annotate_drawing_split"] = gr.Radio(list(SPLITS), value=None,
                                                   label="Split of this drawing",
                                                   elem_id="annotate-drawing-split")
            c["annotate_box"] = gr.Markdown(elem_id="annotate-box")
            c["annotate_class"] = gr.Dropdown(label="Class (of the selected box, or of the next "
                                              "box you draw): type its first letters",
                                              choices=[], filterable=True,
                                              elem_id="annotate-class")
            c["annotate_threshold"] = gr.Slider(0, 1, value=DEFAULT_THRESHOLD, step=0.01,
                                                label="Confidence threshold (starts where "
                                                      "the detector reached 95% precision)",
                                                elem_id="annotate-threshold")
            c["annotate_accept"] = gr.Button("Accept boxes above threshold (a)",
                                             variant="primary", elem_id="annotate-accept")
            with gr.Row():
                c["annotate_delete"] = gr.Button("Delete box (x)", elem_id="annotate-delete")
                c["annotate_undo"] = gr.Button("Undo (u)", elem_id="annotate-undo")
            c["annotate_preannotate"] = gr.Button("Pre-annotate again",
                                                  elem_id="annotate-preannotate")
            c["annotate_finish"] = gr.Button("Done: save as crops, open the next",
                                             variant="primary", elem_id="annotate-finish")
            c["annotate_next"] = gr.Button("Next drawing (n)", elem_id="annotate-next")
            with gr.Row():
                c["annotate_remove_confirm"] = gr.Checkbox(label="yes, remove it", value=False,
                                                           elem_id="annotate-remove-confirm")
                c["annotate_remove"] = gr.Button("Remove this drawing", variant="stop",
                                                 elem_id="annotate-remove")


def _build_queue(c: dict) -> None:
    with gr.Row():
        c["annotate_order"] = gr.Radio(ORDERS, value="uncertainty", label="Queue order",
                                       scale=2, elem_id="annotate-order")
        c["annotate_queue_build"] = gr.Button("Rebuild the queue", scale=1,
                                              elem_id="annotate-queue-build")
    c["annotate_queue"] = gr.Dataframe(headers=QUEUE_COLUMNS, label="What to label next "
                                       "(click a row to open it)", interactive=False,
                                       max_height=320, wrap=True, column_widths=QUEUE_WIDTHS,
                                       elem_classes="ffclr-wrap", elem_id="annotate-queue")


def _build_export(c: dict) -> None:
    with gr.Row():
        c["annotate_export"] = gr.Button("Export the dataset with the new drawings (COCO .zip)",
                                         elem_id="annotate-export")
        c["annotate_download"] = gr.DownloadButton("Download the export", visible=False,
                                                   elem_id="annotate-download")


# wiring


def _view_outputs(c: dict) -> list:
    return [c["annotate_editor"], c["annotate_info"], c["annotate_box"], c["annotate_class"],
            c["annotate_drawing_split"]]


def _view(shown: Shown) -> tuple:
    return (shown.selected, shown.spec, shown.info, shown.box,
            gr.update(choices=shown.class_choices, value=shown.class_value), shown.split)


UNCHANGED = object()
"""What an editing step returns when there is nothing to save or show."""


def _wire_editing(ws: Workspace, c: dict, state: dict) -> None:
    """Edits in the editor, selection, class, split, delete, accept, undo: each saved at once.
    Each step takes (drawing id, selected box, threshold, class, split, event payload) and
    returns (message, box to select) or UNCHANGED. Edits run one at a time, so the browser gets
    their redraws in the order it sent them."""
    drawing, selected = state["drawing"], state["selected"]
    outputs = [c["annotate_status"], selected, *_view_outputs(c)]
    inputs = [drawing, selected, c["annotate_threshold"], c["annotate_class"],
              c["annotate_drawing_split"]]

    def edited(d, b, t, k, split, data):
        box_id, message = apply_edit(ws, d, data, k)
        return message, box_id

    def selected_box(d, b, t, k, split, data):
        return None, select_box(ws, d, data)

    def reclassed(d, b, t, k, split, data):
        message = change_class(ws, d, b, k)
        return UNCHANGED if message is None else (message, b)

    def moved_split(d, b, t, k, split, data):
        message = change_split(ws, d, split)
        return UNCHANGED if message is None else (message, b)

    steps = {"edit": (c["annotate_editor"].edit, edited),
             "select": (c["annotate_editor"].select, selected_box),
             "class": (c["annotate_class"].input, reclassed),
             "split": (c["annotate_drawing_split"].input, moved_split),
             "delete": (c["annotate_delete"].click, lambda d, b, t, k, s, _: (
                 delete_selected(ws, d, b), None)),
             "accept": (c["annotate_accept"].click, lambda d, b, t, k, s, _: (
                 accept(ws, d, t), b)),
             "undo": (c["annotate_undo"].click, lambda d, b, t, k, s, _: (undo(ws, d), b)),
             "threshold": (c["annotate_threshold"].change, lambda d, b, t, k, s, _: (
                 UNCHANGED if d is None else (None, b)))}
    for name, (listener, step) in steps.items():
        listener(_editing_handler(ws, step, len(outputs)), inputs, outputs,
                 show_progress="hidden", api_name=f"annotate_{name}",
                 concurrency_limit=1, concurrency_id="annotate-edit")


def _editing_handler(ws: Workspace, step, n_outputs: int):
    """Run one editing step and redraw; a refused edit (FfclrError) redraws the drawing as
    stored, since the browser may already show the refused change."""
    @guard(n_outputs)
    def handler(drawing_id, box_id, threshold, class_value, split, evt: gr.EventData):
        data = getattr(evt, "_data", None)
        try:
            result = step(drawing_id, box_id, threshold, class_value, split, data)
        except FfclrError as exc:
            if drawing_id is None:
                raise
            warn(str(exc))
            shown = show(ws, drawing_id, box_id, threshold, class_value)
            return (error_md(str(exc)), *_view(shown))
        if result is UNCHANGED:
            return tuple(gr.skip() for _ in range(n_outputs))
        message, box_id = result
        shown = show(ws, drawing_id, box_id, threshold, class_value)
        return (ok_md(message) if message else gr.skip(), *_view(shown))
    return handler


def _wire_drawings(ws: Workspace, c: dict, state: dict) -> None:
    """Opening drawings (queue row, next, done), pre-annotation, adding drawings, the queue
    and the export."""
    drawing, selected, queue = state["drawing"], state["selected"], state["queue"]
    opened = [c["annotate_status"], drawing, *[selected, *_view_outputs(c)]]
    look = [c["annotate_detector"], c["annotate_threshold"], c["annotate_class"]]

    def open_one(drawing_id: int, detector, threshold, class_value, before: str = "") -> tuple:
        message = open_drawing(ws, drawing_id, detector, threshold)
        shown = show(ws, drawing_id, None, threshold, class_value)
        return (ok_md(before + message), drawing_id, *_view(shown))

    @guard(len(opened))
    def on_row(items, detector, threshold, class_value, evt: gr.SelectData):
        return open_one(int(evt.row_value[1]), detector, threshold, class_value)

    @guard(len(opened))
    def on_next(items, current, detector, threshold, class_value):
        return open_one(next_in_queue(ws, items, current), detector, threshold, class_value)

    @guard(len(opened))
    def on_preannotate(current, detector, threshold, class_value):
        if not detector:
            raise FfclrError("pick a detector first (fit one in the Classify tab)")
        message = preannotate(ws, current, detector, threshold)
        return (ok_md(message), current, *_view(show(ws, current, None, threshold, class_value)))

    @guard(len(opened) + 2)
    def on_finish(items, current, detector, threshold, class_value):
        message = finish(ws, current)
        items = [item for item in items if item["id"] != current]
        try:
            following = next_in_queue(ws, items, current)
        except FfclrError:
            shown = show(ws, current, None, threshold, class_value)
            return (ok_md(f"{message} No drawing left to label in the queue."), current,
                    *_view(shown), items, queue_table(items))
        return (*open_one(following, detector, threshold, class_value, message + " "), items,
                queue_table(items))

    @guard(len(opened) + 3)
    def on_remove(items, current, confirmed, detector, threshold, class_value):
        message = remove(ws, current, confirmed)
        left = [item for item in items if item["id"] != current]
        try:
            following = next_in_queue(ws, items, current)
        except FfclrError:
            return (ok_md(message), None, None, "", "", "", gr.update(), None, left,
                    queue_table(left), False)
        return (*open_one(following, detector, threshold, class_value, message + " "), left,
                queue_table(left), False)

    c["annotate_remove"].click(on_remove, [queue, drawing, c["annotate_remove_confirm"], *look],
                               [*opened, queue, c["annotate_queue"],
                                c["annotate_remove_confirm"]], api_name="annotate_remove")
    c["annotate_queue"].select(on_row, [queue, *look], opened, show_progress="hidden")
    c["annotate_next"].click(on_next, [queue, drawing, *look], opened, api_name="annotate_next")
    c["annotate_preannotate"].click(on_preannotate, [drawing, *look], opened,
                                    api_name="annotate_preannotate")
    c["annotate_finish"].click(on_finish, [queue, drawing, *look],
                               [*opened, queue, c["annotate_queue"]], api_name="annotate_finish")
    _wire_queue(ws, c, queue)
    _wire_export(ws, c)


def _wire_queue(ws: Workspace, c: dict, queue: gr.State) -> None:
    """Adding drawings and building the queue (again when the order changes)."""
    pickers = [c["annotate_dataset"], c["annotate_detector"], c["annotate_checkpoint"],
               c["annotate_order"]]
    outputs = [c["annotate_status"], queue, c["annotate_queue"]]

    @guard(len(outputs))
    def on_queue(dataset, detector, checkpoint, order, progress=gr.Progress()):
        return _built_queue(ws, dataset, detector, checkpoint, order, progress)

    @guard(len(outputs) + 1)
    def on_add(dataset, detector, checkpoint, order, files, folder, split,
               progress=gr.Progress()):
        message = add_drawings(ws, dataset, files, folder, split)
        try:
            built = _built_queue(ws, dataset, detector, checkpoint, order, progress, message + " ")
        except FfclrError as exc:
            built = ok_md(message) + "\n\n" + error_md(str(exc)), gr.skip(), gr.skip()
        return (*built, None)

    c["annotate_queue_build"].click(on_queue, pickers, outputs, api_name="annotate_queue")
    c["annotate_order"].input(on_queue, pickers, outputs)
    c["annotate_add"].click(on_add, [*pickers, c["annotate_files"], c["annotate_folder"],
                                     c["annotate_split"]], [*outputs, c["annotate_files"]],
                            api_name="annotate_add")


def _built_queue(ws: Workspace, dataset, detector, checkpoint, order, progress,
                 before: str = "") -> tuple:
    """(status, queue items, queue table) of the drawings left to label; without a detector,
    in random order, and the status says why."""
    unsure_without_detector = order != "random" and not detector
    if unsure_without_detector:
        order = "random"
    items = queue_items(ws, dataset, detector, checkpoint, order, _progress(progress))
    message = (f"{count(len(items), 'drawing', 'drawings')} to label in {md_text(dataset)}"
               + (", least sure first." if order != "random" else ", in random order."))
    if unsure_without_detector:
        message += (" Least sure first needs a detector (fit one in the Classify tab); until "
                    "then the queue is in random order and drawings open without boxes.")
    return ok_md(before + message), items, queue_table(items)


def opening_queue(workspace: Workspace, dataset, detector, checkpoint, order, items: list[dict],
                  progress) -> tuple | None:
    """(status, queue items, queue table) to show when the tab opens or the dataset changes,
    None when `queue_needed` says there is nothing to build; a queue that cannot be built says
    why, with an empty queue."""
    if not queue_needed(workspace, dataset, items):
        return None
    try:
        return _built_queue(workspace, dataset, detector, checkpoint, order, progress)
    except FfclrError as exc:
        return error_md(str(exc)), [], []


def queue_needed(workspace: Workspace, dataset: str | None, items: list[dict]) -> bool:
    """Whether opening the tab should build the queue: it is empty (a new page or browser) and
    the dataset has drawings left to label."""
    if items or not dataset or dataset not in dataset_choices(workspace):
        return False
    return any(d["status"] != "annotated" for d in annotate.drawings(workspace, dataset))


def _progress(progress):
    if progress is None:
        return None
    return lambda done, total, message: progress((done, total) if total else None, desc=message)


def _wire_export(ws: Workspace, c: dict) -> None:
    @guard(2)
    def on_export(dataset):
        path = export_zip(ws, dataset)
        return (ok_md(f"Exported {md_text(dataset)} with its annotated drawings: download "
                      f"{md_text(path.name)}."), gr.update(value=str(path), visible=True))

    c["annotate_export"].click(on_export, c["annotate_dataset"],
                               [c["annotate_status"], c["annotate_download"]],
                               api_name="annotate_export")


def _wire_refresh(ws: Workspace, c: dict, tab: gr.Tab, state: dict) -> None:
    """Fresh choices when the tab opens; another dataset clears the editor and the queue; another
    detector sets the threshold to its own."""
    def refresh(dataset, detector, checkpoint):
        names = dataset_choices(ws)
        detectors = [path for _, path in schematics.detector_choices(ws)]
        checkpoints = checkpoint_choices(ws)
        return (gr.update(choices=names, value=dataset if dataset in names
                          else (names[0] if names else None)),
                gr.update(choices=schematics.detector_choices(ws), value=detector
                          if detector in detectors else (detectors[0] if detectors else None)),
                gr.update(choices=[("", ""), *checkpoints], value=checkpoint
                          if checkpoint in [p for _, p in checkpoints] else ""))

    pickers = [c["annotate_dataset"], c["annotate_detector"], c["annotate_checkpoint"]]
    queue_outputs = [c["annotate_status"], state["queue"], c["annotate_queue"]]

    @guard(6, status_at=3)
    def on_tab(dataset, detector, checkpoint, order, items, progress=gr.Progress()):
        updates = refresh(dataset, detector, checkpoint)
        dataset, detector, checkpoint = (update["value"] for update in updates)
        built = opening_queue(ws, dataset, detector, checkpoint, order, items, progress)
        return (*updates, *(built or (gr.skip(), gr.skip(), gr.skip())))

    tab.select(on_tab, [*pickers, c["annotate_order"], state["queue"]],
               [*pickers, *queue_outputs], show_progress="hidden")

    def on_dataset(dataset, detector, checkpoint, order, progress=gr.Progress()):
        built = opening_queue(ws, dataset, detector, checkpoint, order, [], progress)
        return (None, None, "", "", "", gr.update(choices=class_choices(ws, dataset), value=None),
                None, *(built or (gr.skip(), [], [])))

    c["annotate_dataset"].change(
        guard(10, status_at=7)(on_dataset), [*pickers, c["annotate_order"]],
        [state["drawing"], state["selected"], *_view_outputs(c), *queue_outputs],
        show_progress="hidden")
    for event in (c["annotate_detector"].change, c["demo"].load):
        event(guard(1, status_at=None)(detector_threshold), c["annotate_detector"],
              c["annotate_threshold"], show_progress="hidden")

