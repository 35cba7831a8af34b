"""Data tab: import a Roboflow COCO export (zip or folder), load the demo data, browse crops."""
from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from ffclr.data.coco_import import import_export
from ffclr.data.export_source import process_alive
from ffclr.data.safe_paths import check_name
from ffclr.demo.export import write_demo_export
from ffclr.errors import FfclrError
from ffclr.workspace import Workspace
from ui.common import (GALLERY_COLUMNS, Context, check_zip_upload, dataset_choices, error_md,
                       guard, imported_dataset, md_code, md_text, ok_md, open_store,
                       split_choices)

DEMO_NAME = "demo"
DEMO_IMAGES = 60
GALLERY_LIMIT = 60
"""Crops on one page of the Data tab's gallery."""
ALL_SPLITS = "all splits"

Progress = Callable[[int, int, str], None] | None


def demo_export_dir(workspace: Workspace) -> Path:
    """The synthetic export is kept in the workspace, so its schematics stay viewable."""
    return workspace.root / "exports" / DEMO_NAME


def ordered_splits(splits) -> list[str]:
    order = {"train": 0, "valid": 1, "test": 2}
    return sorted(set(splits), key=lambda s: (order.get(s, 3), s))


def load_demo_data(workspace: Workspace, progress: Progress = None) -> Any:
    """Generate the synthetic export in the workspace and import it as dataset `demo`."""
    out = demo_export_dir(workspace)
    if not (out / "train").is_dir():
        if progress:
            progress(0, 1, "drawing the synthetic schematics")
        write_demo_export(out, images=DEMO_IMAGES, seed=0)
    return import_export(out, DEMO_NAME, workspace, progress=progress)


def import_dataset(workspace: Workspace, upload: str | None, folder: str | None, name: str,
                   padding: float = 0.05, progress: Progress = None,
                   replace: bool = False) -> Any:
    """Import an uploaded export zip, or an export folder on this machine, as dataset `name`.

    An existing dataset is changed only with `replace`; an upload is kept as
    `exports/<name>.zip` only once its import succeeded.
    """
    name = check_name((name or "").strip())
    folder = (folder or "").strip()
    if upload and folder:
        raise FfclrError("give either an uploaded .zip or a folder path, not both")
    if upload:
        check_zip_upload(upload)
        return _import_upload(workspace, Path(upload), name, float(padding), progress, replace)
    if folder:
        source = Path(folder).expanduser()
        if not source.exists():
            raise FfclrError(f"{folder}: no such file or folder")
        if source.is_file():
            check_zip_upload(source)
    else:
        raise FfclrError("drop an export .zip or type the export's folder path first")
    return import_export(source, name, workspace, padding=float(padding), progress=progress,
                         update=replace)


def _import_upload(workspace: Workspace, upload: Path, name: str, padding: float,
                   progress: Progress, replace: bool) -> Any:
    """Import a copy of the upload kept aside; it replaces `exports/<name>.zip` on success."""
    kept = workspace.root / "exports" / f"{name}.zip"
    kept.parent.mkdir(parents=True, exist_ok=True)
    for stale in kept.parent.glob(".*.zip.incoming-*"):
        pid = stale.name.rsplit("-", 2)[-2]
        if not (pid.isdigit() and process_alive(int(pid))):
            stale.unlink(missing_ok=True)
    incoming = kept.parent / f".{name}.zip.incoming-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copyfile(upload, incoming)
        result = import_export(incoming, name, workspace, padding=padding, progress=progress,
                               update=replace, recorded_source=kept)
        os.replace(incoming, kept)
    finally:
        incoming.unlink(missing_ok=True)
    return result


def import_summary_markdown(result: Any) -> str:
    """The importer's summary (per split images, crops, each skip reason) as Markdown."""
    lines = result.lines()
    head = f"**Dataset {md_text(result.name)}**: {result.crops} crops"
    return head + "\n\n" + "\n".join(f"- {md_text(line.strip())}" for line in lines)


def dataset_overview(workspace: Workspace, name: str | None) -> tuple[str, list[list]]:
    """Markdown summary and a class × split table of crop counts (effective labels)."""
    if not name:
        return "No dataset imported yet.", []
    with open_store(workspace) as store:
        dataset = imported_dataset(store, name)
        classes = store.classes(dataset["id"])
        counted = store.label_counts(dataset["id"])
        edits = store.label_edit_count(dataset["id"])
    splits = ordered_splits(r["split"] for r in counted)
    counts = {(r["label"], r["split"]): r["crops"] for r in counted}
    rows = []
    for cls in classes:
        per_split = [counts.get((cls["class_index"], s), 0) for s in splits]
        rows.append([cls["class_index"], cls["name"], *per_split, sum(per_split)])
    summary = (f"**{md_text(name)}**: {sum(counts.values())} crops, {len(classes)} classes, "
               f"splits {md_text(', '.join(splits)) or 'none'}; {edits} label edits. "
               f"Source: {md_code(dataset.get('source') or '?')}; crops in "
               f"{md_code(dataset['root'])}.")
    return summary, rows


def overview_headers(workspace: Workspace, name: str | None) -> list[str]:
    splits: list[str] = []
    if name:
        with open_store(workspace) as store:
            dataset = store.dataset(name)
            if dataset:
                splits = ordered_splits(store.splits(dataset["id"]))
    return ["index", "class", *splits, "total"]


def overview_widths(headers: list[str]) -> list[str]:
    """Column widths of the class × split table: a narrow index, the class name (wrapped)
    given half, the counts sharing the rest, so a long class name never pushes them out."""
    counts = len(headers) - 2
    return ["12%", "42%", *[f"{46 / counts:.1f}%"] * counts] if counts > 0 else []


def class_choices(workspace: Workspace, name: str | None) -> list[tuple[str, int]]:
    if not name:
        return []
    with open_store(workspace) as store:
        dataset = store.dataset(name)
        if dataset is None:
            return []
        return [(c["name"], c["class_index"]) for c in store.classes(dataset["id"])]


@dataclass(frozen=True)
class GalleryPage:
    """One page of a class's crops: (image path, caption) items, the line above them, the page
    shown (from 1, kept within the pages) and how many pages there are."""
    items: list[tuple[str, str]]
    note: str
    page: int = 1
    pages: int = 1


def class_gallery(workspace: Workspace, name: str | None, class_index: int | None,
                  split: str | None = None, limit: int | None = None) -> list[tuple[str, str]]:
    """(image path, caption) of up to `limit` crops whose effective label is `class_index`."""
    return gallery_page(workspace, name, class_index, split, limit=limit).items


def gallery_view(workspace: Workspace, name: str | None, class_index: int | None,
                 split: str | None = None, limit: int | None = None, page: Any = 1
                 ) -> tuple[list[tuple[str, str]], str]:
    """The items and line of `gallery_page`."""
    shown = gallery_page(workspace, name, class_index, split, page, limit)
    return shown.items, shown.note


def gallery_page(workspace: Workspace, name: str | None, class_index: int | None,
                 split: str | None = None, page: Any = 1, limit: int | None = None
                 ) -> GalleryPage:
    """Page `page` (`limit` crops, `GALLERY_LIMIT` by default, in id order) of the crops whose
    effective label is `class_index` (of one split, if given), read from the store one page at
    a time; a page past the last shows the last. Its line says which crops of how many are
    shown or, when the split filter leaves none, which splits hold the class."""
    if not name or class_index is None:
        return GalleryPage([], "")
    label_index, limit = int(class_index), limit or GALLERY_LIMIT
    with open_store(workspace) as store:
        dataset = imported_dataset(store, name)
        counted = store.label_counts(dataset["id"], label_index)
        total = sum(r["crops"] for r in counted if not split or r["split"] == split)
        pages = max(1, -(-total // limit))
        page = min(max(_page_number(page), 1), pages)
        crops = store.class_crops(dataset["id"], label_index, split or None, limit,
                                  (page - 1) * limit) if total else []
        names = {c["class_index"]: c["name"] for c in store.classes(dataset["id"])}
    root = Path(dataset["root"])
    items = [(str(root / c["path"]), f"{c['split']} · #{c['id']}") for c in crops]
    label = md_text(names.get(label_index, label_index))
    where = f" in split {md_text(split)}" if split else ""
    if not total:
        held = ordered_splits(r["split"] for r in counted)
        return GalleryPage(items, f"No crops of class {label}{where}" + (
            f": it has crops in {md_text(', '.join(held))} (pick **{ALL_SPLITS}**)."
            if held else "."))
    if pages == 1:
        return GalleryPage(items, f"Showing {total:,} crops of class {label}{where}.")
    first, last = (page - 1) * limit + 1, (page - 1) * limit + len(items)
    which = f"crop {first:,}" if first == last else f"crops {first:,}–{last:,}"
    return GalleryPage(items, f"Showing {which} of {total:,} of class {label}{where} "
                              f"(page {page:,} of {pages:,}).", page, pages)


def _page_number(page: Any) -> int:
    try:
        return int(page)
    except (TypeError, ValueError, OverflowError):
        return 1


def split_filter(workspace: Workspace, name: str | None) -> dict:
    """The split filter for a dataset: all splits, then the dataset's own, set to all."""
    return gr.update(choices=[(ALL_SPLITS, "")] + [(s, s) for s in ordered_splits(
        split_choices(workspace, name))], value="")


# layout


def _progress_callback(progress: gr.Progress) -> Callable[[int, int, str], None]:
    def report(done: int, total: int, message: str) -> None:
        progress((done, total) if total else None, desc=message)
    return report


def build(ctx: Context, tab: gr.Tab) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            _import_column(ctx)
        with gr.Column(scale=2):
            _browse_column(ctx)
    _wire_import(ctx)
    _wire_browse(ctx, tab)


def _import_column(ctx: Context) -> None:
    """Load demo data (on an empty workspace), or an export's zip or folder to import."""
    c = ctx.components
    c["data_demo_button"] = gr.Button("Load demo data", variant="primary",
                                      visible=not dataset_choices(ctx.workspace),
                                      elem_id="load-demo")
    c["data_upload"] = gr.File(label="Roboflow COCO export (.zip)", file_types=[".zip"],
                               type="filepath", elem_id="data-upload")
    c["data_folder"] = gr.Textbox(label="…or the export's folder on this machine",
                                  placeholder="/path/to/export (with train/ valid/ test/)")
    with gr.Row():
        c["data_name"] = gr.Textbox(label="Dataset name", value="ff_devices")
        c["data_padding"] = gr.Slider(0, 0.5, value=0.05, step=0.01,
                                      label="Padding around each box")
    c["data_replace"] = gr.Checkbox(label="Replace the existing dataset of this name (without "
                                          "it, importing says what would change)", value=False,
                                    elem_id="data-replace")
    c["data_import"] = gr.Button("Import", elem_id="data-import")
    c["data_status"] = gr.Markdown("", elem_id="data-status")


def _browse_column(ctx: Context) -> None:
    """The picked dataset's summary, class × split table and a gallery of one class's crops."""
    c = ctx.components
    names = dataset_choices(ctx.workspace)
    c["data_dataset"] = gr.Dropdown(label="Dataset", choices=names,
                                    value=names[0] if names else None, elem_id="data-dataset")
    c["data_summary"] = gr.Markdown(elem_id="data-summary")
    c["data_table"] = gr.Dataframe(label="Crops per class and split", interactive=False,
                                   max_height=320, wrap=True, elem_classes="ffclr-wrap",
                                   elem_id="data-table")
    with gr.Row():
        c["data_class"] = gr.Dropdown(label="Class", choices=[], elem_id="data-class")
        c["data_split"] = gr.Dropdown(label="Split", choices=[(ALL_SPLITS, "")], value="",
                                      elem_id="data-split")
    c["data_gallery_note"] = gr.Markdown(elem_id="data-gallery-note")
    with gr.Row(equal_height=True):
        c["data_prev"] = gr.Button("◀ Previous", size="sm", visible=False, elem_id="data-prev")
        c["data_page"] = gr.Number(label="Page", value=1, precision=0, visible=False,
                                   elem_id="data-page")
        c["data_next"] = gr.Button("Next ▶", size="sm", visible=False, elem_id="data-next")
    c["data_gallery"] = gr.Gallery(label="Crops", columns=GALLERY_COLUMNS, height=300,
                                   object_fit="contain", elem_id="data-gallery")


def _wire_import(ctx: Context) -> None:
    ws, c = ctx.workspace, ctx.components

    @guard(4)
    def on_demo(progress=gr.Progress()):
        result = load_demo_data(ws, _progress_callback(progress))
        names = dataset_choices(ws)
        return (ok_md(import_summary_markdown(result)),
                gr.update(choices=names, value=DEMO_NAME), gr.update(visible=False), None)

    @guard(5)
    def on_import(upload, folder, name, padding, replace=False, progress=gr.Progress()):
        result = import_dataset(ws, upload, folder, name, padding, _progress_callback(progress),
                                replace=bool(replace))
        names = dataset_choices(ws)
        return (ok_md(import_summary_markdown(result)),
                gr.update(choices=names, value=name.strip()),
                gr.update(visible=not names), None, False)

    outputs = [c["data_status"], c["data_dataset"], c["data_demo_button"], c["data_upload"]]
    c["data_demo_button"].click(on_demo, None, outputs, api_name="load_demo")
    c["data_import"].click(on_import, [c["data_upload"], c["data_folder"], c["data_name"],
                                       c["data_padding"], c["data_replace"]],
                           [*outputs, c["data_replace"]], api_name="import_export")


def browse_view(workspace: Workspace, name: str | None) -> tuple:
    """Everything the browse column shows for a dataset: summary, table, class picker (its
    first class), split filter (reset to all splits), then the gallery's first page (see
    `gallery_outputs`)."""
    summary, rows = dataset_overview(workspace, name)
    classes = class_choices(workspace, name)
    first = classes[0][1] if classes else None
    headers = overview_headers(workspace, name)
    return (summary, gr.update(value=rows or None, headers=headers,
                               column_widths=overview_widths(headers)),
            gr.update(choices=classes, value=first), split_filter(workspace, name),
            *gallery_outputs(gallery_page(workspace, name, first)))


def gallery_outputs(shown: GalleryPage) -> tuple:
    """The gallery's line, the page buttons and number (shown when there is more than one
    page) and the gallery."""
    more = shown.pages > 1
    return (shown.note, gr.update(visible=more, interactive=shown.page > 1),
            gr.update(value=shown.page, label=f"Page (of {shown.pages:,})", visible=more),
            gr.update(visible=more, interactive=shown.page < shown.pages), shown.items)


def _gallery_components(c: dict) -> list:
    return [c["data_gallery_note"], c["data_prev"], c["data_page"], c["data_next"],
            c["data_gallery"]]


def _browse_outputs(c: dict) -> list:
    return [c["data_summary"], c["data_table"], c["data_class"], c["data_split"],
            *_gallery_components(c)]


def _wire_browse(ctx: Context, tab: gr.Tab) -> None:
    ws, c = ctx.workspace, ctx.components

    @guard(len(_browse_outputs(c)), status_at=None)
    def show_dataset(name):
        return browse_view(ws, name)

    @guard(5, status_at=None)
    def show_gallery(name, class_index, split, page=1):
        return gallery_outputs(gallery_page(ws, name, class_index, split or None, page))

    @guard(5, status_at=None)
    def previous_page(name, class_index, split, page):
        return show_gallery(name, class_index, split, _page_number(page) - 1)

    @guard(5, status_at=None)
    def next_page(name, class_index, split, page):
        return show_gallery(name, class_index, split, _page_number(page) + 1)

    def refresh_choices(current):
        names = dataset_choices(ws)
        value = current if current in names else (names[0] if names else None)
        return gr.update(choices=names, value=value), gr.update(visible=not names)

    c["data_dataset"].change(show_dataset, c["data_dataset"], _browse_outputs(c),
                             api_name="dataset_overview")
    gallery_inputs = [c["data_dataset"], c["data_class"], c["data_split"]]
    paged_inputs = [*gallery_inputs, c["data_page"]]
    shown = _gallery_components(c)
    c["data_class"].change(show_gallery, gallery_inputs, shown, show_progress="hidden")
    c["data_split"].change(show_gallery, gallery_inputs, shown, show_progress="hidden")
    c["data_page"].submit(show_gallery, paged_inputs, shown, show_progress="hidden")
    c["data_prev"].click(previous_page, paged_inputs, shown, show_progress="hidden")
    c["data_next"].click(next_page, paged_inputs, shown, show_progress="hidden")
    tab.select(refresh_choices, c["data_dataset"], [c["data_dataset"], c["data_demo_button"]],
               show_progress="hidden")


def wire(ctx: Context) -> None:
    c = ctx.components
    c["demo"].load(_initial(ctx), c["data_dataset"], _browse_outputs(c), show_progress="hidden")


def _initial(ctx: Context):
    def load(name):
        try:
            return browse_view(ctx.workspace, name)
        except Exception as exc:  # noqa: BLE001
            return (error_md(str(exc)), *[gr.skip()] * (len(_browse_outputs(ctx.components)) - 1))
    return load
