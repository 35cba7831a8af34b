"""Explore tab: UMAP of a checkpoint's embeddings, click a crop, see it in its schematic and
among its neighbours, relabel it (saved at once, undoable), walk the most suspicious crops."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np

from ffclr.data.cropset import load_dataset_split
from ffclr.errors import FfclrError
from ffclr.eval.embedding import embed_crop_set
from ffclr.eval.explore import label_issues, outlier_scores, suspicion_order
from ffclr.eval.neighbours import cosine_neighbours
from ffclr.workspace import Workspace
from ui.common import (Context, checkpoint_and_dataset_updates, checkpoint_choices,
                       dataset_choices, file_url, guard, md_code, md_text, ok_md, open_store,
                       split_choices)
from ui.plot import scatter_component, scatter_spec
from ui.sources import crop_in_context

N_NEIGHBOURS = 8
TABLE_ROWS = 50
TABLE_COLUMNS = ["rank", "crop", "split", "label", "suggested", "label quality",
                 "outlier distance", "flagged"]


@dataclass
class ExploreMap:
    """Everything the tab shows for one (checkpoint, dataset, split); labels come from the store."""
    key: str
    dataset: str
    crop_ids: list[int]
    paths: list[Path]
    splits: list[str]
    class_names: list[str]
    coords: np.ndarray
    features: np.ndarray
    outlier_distance: np.ndarray
    quality: np.ndarray
    suggested: np.ndarray
    flagged: np.ndarray
    order: np.ndarray
    """Row indices, most suspicious first."""

    def row(self, crop_id: int) -> int:
        try:
            return self.crop_ids.index(int(crop_id))
        except ValueError:
            raise FfclrError(f"crop #{crop_id} is not on this map") from None


MAPS_KEPT = 4
_MAPS: OrderedDict[str, ExploreMap] = OrderedDict()
"""The most recently used maps; embeddings and layouts stay cached on disk, so a dropped map
is computed again quickly."""


def get_map(key: str | None) -> ExploreMap:
    if not key:
        raise FfclrError("compute the map first (pick a checkpoint and a dataset)")
    if key not in _MAPS:
        raise FfclrError(f"this map is no longer in memory (the app keeps the {MAPS_KEPT} most "
                         "recent): press Compute map again")
    _MAPS.move_to_end(key)
    return _MAPS[key]


def _keep_map(emap: ExploreMap) -> ExploreMap:
    _MAPS[emap.key] = emap
    _MAPS.move_to_end(emap.key)
    while len(_MAPS) > MAPS_KEPT:
        _MAPS.popitem(last=False)
    return emap


def compute_map(workspace: Workspace, checkpoint: str | None, dataset: str | None,
                split: str | None = None, progress=None) -> ExploreMap:
    """Embed the crops, lay them out with UMAP and score them (all cached by ffclr)."""
    if not checkpoint:
        raise FfclrError("pick a checkpoint (pretrain one in the Pretrain tab)")
    if not dataset:
        raise FfclrError("pick a dataset (import one in the Data tab)")
    crop_set = load_dataset_split(dataset, split or None, workspace)
    if progress:
        progress(0, 3, "embedding crops")
    embeddings = embed_crop_set(crop_set, checkpoint, workspace, progress=progress)
    key = f"{embeddings.key}:{dataset}:{split or 'all'}"
    if key in _MAPS:
        return get_map(key)
    if progress:
        progress(1, 3, "UMAP layout")
    coords = embeddings.umap(workspace)
    if progress:
        progress(2, 3, "outlier and label-issue scores")
    features = embeddings.features
    distance, _ood = outlier_scores(features)
    issues = label_issues(features, crop_set.labels, len(crop_set.class_names))
    with open_store(workspace) as store:
        splits = {c["id"]: c["split"] for c in store.crops(store.dataset(dataset)["id"])}
    return _keep_map(ExploreMap(
        key=key, dataset=dataset, crop_ids=[int(c) for c in crop_set.crop_ids],
        paths=list(crop_set.paths), splits=[splits.get(c, "") for c in crop_set.crop_ids],
        class_names=list(crop_set.class_names), coords=coords, features=features,
        outlier_distance=distance, quality=issues.quality, suggested=issues.suggested,
        flagged=issues.is_issue, order=suspicion_order(issues, distance)))


def current_labels(workspace: Workspace, emap: ExploreMap) -> list[int]:
    """Effective labels now (after edits), in the map's order."""
    with open_store(workspace) as store:
        labels = {c["id"]: c["label"] for c in store.crops(store.dataset(emap.dataset)["id"])}
    return [labels[c] for c in emap.crop_ids]


def map_figure(workspace: Workspace, emap: ExploreMap, selected: int | None = None) -> str:
    labels = current_labels(workspace, emap)
    thumbs = {cid: (file_url(path), f"#{cid} {emap.class_names[label]}")
              for cid, path, label in zip(emap.crop_ids, emap.paths, labels)}
    flagged = {emap.crop_ids[i] for i in np.flatnonzero(emap.flagged)}
    return scatter_spec(emap.coords, emap.crop_ids, labels, emap.class_names, thumbs, flagged,
                        selected, title=f"{emap.dataset}: {len(emap.crop_ids)} crops "
                        f"({len(flagged)} flagged as likely label errors, outlined)")


def suspicious_rows(workspace: Workspace, emap: ExploreMap, top: int = TABLE_ROWS) -> list[list]:
    labels = current_labels(workspace, emap)
    rows = []
    for rank, i in enumerate(emap.order[:top], start=1):
        rows.append([rank, emap.crop_ids[i], emap.splits[i], emap.class_names[labels[i]],
                     emap.class_names[int(emap.suggested[i])], round(float(emap.quality[i]), 3),
                     round(float(emap.outlier_distance[i]), 3), "yes" if emap.flagged[i] else ""])
    return rows


def crop_details(workspace: Workspace, emap: ExploreMap, crop_id: int) -> dict:
    """The crop, its box in the source schematic, its nearest neighbours, label and scores."""
    i = emap.row(crop_id)
    with open_store(workspace) as store:
        crop = store.crop(int(crop_id))
        dataset = store.dataset_by_id(crop["dataset_id"])
        edits = store.label_edits(int(crop_id))
    labels = current_labels(workspace, emap)
    nearest, similarities = cosine_neighbours(emap.features[i:i + 1], emap.features,
                                              N_NEIGHBOURS + 1)
    others = [(j, sim) for j, sim in zip(nearest[0], similarities[0]) if j != i][:N_NEIGHBOURS]
    neighbours = [(str(emap.paths[j]), f"#{emap.crop_ids[j]} {emap.class_names[labels[j]]} "
                   f"· {sim:.2f}") for j, sim in others]
    label = int(crop["label"])
    context = crop_in_context(dataset, crop)
    return {"crop_id": int(crop_id), "crop_path": str(emap.paths[i]), "label": label,
            "context": context, "neighbours": neighbours,
            "info": crop_info(emap, i, crop, len(edits), dataset if context is None else None)}


def crop_info(emap: ExploreMap, i: int, crop: dict, n_edits: int,
              missing_source: dict | None) -> str:
    """The info panel's Markdown for row `i`; `missing_source` is the dataset whose export
    could not be read, if so. Every name from data goes through `md_text`."""
    def name(class_index) -> str:
        return md_text(emap.class_names[int(class_index)])

    where = "" if missing_source is None else (
        f" The source schematic is not available (export "
        f"{md_code(missing_source.get('source'))} moved?).")
    flagged = " · **flagged as a likely label error**" if emap.flagged[i] else ""
    return (f"**Crop #{int(crop['id'])}** · split {md_text(crop['split'])} · label "
            f"**{name(crop['label'])}** (imported as {name(crop['imported_class_index'])}) · "
            f"suggested {name(emap.suggested[i])} · label quality {emap.quality[i]:.3f} · "
            f"outlier distance {emap.outlier_distance[i]:.3f}{flagged}\n\n"
            f"Source {md_code(crop['source_image'])}, box {md_text(crop['bbox'])}; "
            f"{n_edits} label edit(s)." + where)


def relabel(workspace: Workspace, crop_id: int | None, class_index: int | None) -> str | None:
    """Save the new label; None when the crop already has it (the dropdown fires `input` again
    on blur, which must not replace the "Saved" message)."""
    if crop_id is None:
        raise FfclrError("click a crop on the map first")
    if class_index is None:
        raise FfclrError("pick the new class")
    with open_store(workspace) as store:
        crop = store.crop(int(crop_id))
        if crop is None:
            raise FfclrError(f"no crop #{crop_id}")
        if int(crop["label"]) == int(class_index):
            return None
        try:
            store.relabel(int(crop_id), int(class_index), note="app")
        except KeyError as exc:
            raise FfclrError(str(exc.args[0])) from None
        names = {c["class_index"]: c["name"] for c in store.classes(crop["dataset_id"])}
    return (f"Saved: crop #{crop_id} {md_text(names[int(crop['label'])])} → "
            f"{md_text(names[int(class_index)])}. "
            "Undo with the button or the `u` key.")


def undo(workspace: Workspace, crop_id: int | None) -> str:
    if crop_id is None:
        raise FfclrError("click a crop on the map first")
    with open_store(workspace) as store:
        if store.undo_relabel(int(crop_id)) is None:
            raise FfclrError(f"crop #{crop_id} has no label edit to undo")
        crop = store.crop(int(crop_id))
        names = {c["class_index"]: c["name"] for c in store.classes(crop["dataset_id"])}
    return f"Undone: crop #{crop_id} is {md_text(names[int(crop['label'])])} again."


def step_suspicious(emap: ExploreMap, crop_id: int | None, step: int) -> int:
    """The next (step=1) or previous (step=-1) crop in suspicion order."""
    order = [emap.crop_ids[i] for i in emap.order]
    if crop_id is None or int(crop_id) not in order:
        return order[0] if step > 0 else order[-1]
    return order[(order.index(int(crop_id)) + step) % len(order)]


# layout


def _progress_callback(progress):
    return lambda done, total, message: progress((done, total) if total else None, desc=message)


def build(ctx: Context, tab: gr.Tab) -> None:
    ws, c = ctx.workspace, ctx.components
    gr.Markdown("Click a point to inspect a crop; relabel it with the dropdown (saved at once). "
                "Keys: **n**/**p** next/previous suspicious crop, **u** undo.")
    _build_controls(ws, c)
    c["explore_status"] = gr.Markdown(elem_id="explore-status")
    key = gr.State(None)
    selected = gr.State(None)
    _build_inspector(c)
    c["explore_table"] = gr.Dataframe(headers=TABLE_COLUMNS, label="Most suspicious crops "
                                      "(click a row)", interactive=False, max_height=320,
                                      elem_id="explore-table")
    details_outputs = [selected, c["explore_crop"], c["explore_context"], c["explore_info"],
                       c["explore_label"], c["explore_neighbours"], c["explore_plot"]]
    _wire_compute(ws, c, key)
    _wire_navigation(ws, c, key, selected, details_outputs)
    _wire_relabel(ws, c, key, selected)
    _wire_refresh(ws, c, tab)


def _build_controls(ws: Workspace, c: dict) -> None:
    """Checkpoint, dataset and split pickers with the Compute button."""
    datasets = dataset_choices(ws)
    with gr.Row():
        c["explore_checkpoint"] = gr.Dropdown(label="Checkpoint", choices=checkpoint_choices(ws),
                                              scale=3, elem_id="explore-checkpoint")
        c["explore_dataset"] = gr.Dropdown(label="Dataset", choices=datasets,
                                           value=datasets[0] if datasets else None, scale=1)
        c["explore_split"] = gr.Dropdown(label="Split", choices=["", *split_choices(
            ws, datasets[0] if datasets else None)], value="", scale=1)
        c["explore_compute"] = gr.Button("Compute map", variant="primary", scale=1,
                                         elem_id="explore-compute")


def _build_inspector(c: dict) -> None:
    """The map beside the selected crop: its images, scores, label, stepping and neighbours."""
    with gr.Row():
        with gr.Column(scale=3):
            c["explore_plot"] = scatter_component(elem_id="explore-plot")
        with gr.Column(scale=2):
            with gr.Row():
                c["explore_crop"] = gr.Image(label="Crop", type="filepath", height=160,
                                             interactive=False)
                c["explore_context"] = gr.Image(label="In its schematic", type="pil", height=160,
                                                interactive=False)
            c["explore_info"] = gr.Markdown(elem_id="explore-info")
            c["explore_label"] = gr.Dropdown(label="Label (changing it saves at once)",
                                             choices=[], elem_id="explore-label")
            with gr.Row():
                c["explore_prev"] = gr.Button("◀ previous suspicious (p)", elem_id="explore-prev")
                c["explore_next"] = gr.Button("next suspicious (n) ▶", elem_id="explore-next")
                c["explore_undo"] = gr.Button("Undo (u)", elem_id="explore-undo")
            c["explore_neighbours"] = gr.Gallery(label="Nearest neighbours", columns=4, height=220,
                                                 object_fit="contain")


def _show(ws: Workspace, map_key: str | None, crop_id: int) -> tuple:
    """Values of the details outputs for one crop."""
    emap = get_map(map_key)
    d = crop_details(ws, emap, crop_id)
    choices = [(name, i) for i, name in enumerate(emap.class_names)]
    return (d["crop_id"], d["crop_path"], d["context"], d["info"],
            gr.update(choices=choices, value=d["label"]), d["neighbours"],
            map_figure(ws, emap, d["crop_id"]))


def _wire_compute(ws: Workspace, c: dict, key: gr.State) -> None:
    @guard(4)
    def on_compute(checkpoint, dataset, split, progress=gr.Progress()):
        emap = compute_map(ws, checkpoint, dataset, split, _progress_callback(progress))
        return (ok_md(f"Map of {len(emap.crop_ids)} crops of **{md_text(dataset)}**."), emap.key,
                map_figure(ws, emap), suspicious_rows(ws, emap))

    c["explore_compute"].click(on_compute, [c["explore_checkpoint"], c["explore_dataset"],
                                            c["explore_split"]],
                               [c["explore_status"], key, c["explore_plot"], c["explore_table"]],
                               api_name="explore_compute")


def _wire_navigation(ws: Workspace, c: dict, key: gr.State, selected: gr.State,
                     details_outputs: list) -> None:
    """Clicking a point or a table row, and stepping through the suspicious crops."""
    outputs = [c["explore_status"], *details_outputs]

    @guard(len(outputs))
    def on_point(map_key, evt: gr.EventData):
        return ("", *_show(ws, map_key, int(evt._data["point_id"])))

    @guard(len(outputs))
    def on_row(map_key, evt: gr.SelectData):
        return ("", *_show(ws, map_key, int(evt.row_value[1])))

    def stepper(step):
        @guard(len(outputs))
        def on_step(map_key, crop_id):
            emap = get_map(map_key)
            return ("", *_show(ws, map_key, step_suspicious(emap, crop_id, step)))
        return on_step

    c["explore_plot"].select(on_point, key, outputs, show_progress="hidden")
    c["explore_table"].select(on_row, key, outputs, show_progress="hidden")
    c["explore_next"].click(stepper(1), [key, selected], outputs, show_progress="hidden")
    c["explore_prev"].click(stepper(-1), [key, selected], outputs, show_progress="hidden")


def _wire_relabel(ws: Workspace, c: dict, key: gr.State, selected: gr.State) -> None:
    """Relabelling with the dropdown, and undoing it."""
    @guard(4)
    def on_relabel(map_key, crop_id, class_index):
        message = relabel(ws, crop_id, class_index)
        if message is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        emap = get_map(map_key)
        d = crop_details(ws, emap, crop_id)
        return ok_md(message), map_figure(ws, emap, crop_id), suspicious_rows(ws, emap), d["info"]

    c["explore_label"].input(on_relabel, [key, selected, c["explore_label"]],
                             [c["explore_status"], c["explore_plot"], c["explore_table"],
                              c["explore_info"]], api_name="explore_relabel")

    @guard(5)
    def on_undo(map_key, crop_id):
        message = undo(ws, crop_id)
        emap = get_map(map_key)
        d = crop_details(ws, emap, crop_id)
        return (ok_md(message), map_figure(ws, emap, crop_id), suspicious_rows(ws, emap),
                d["info"], gr.update(value=d["label"]))

    c["explore_undo"].click(on_undo, [key, selected],
                            [c["explore_status"], c["explore_plot"], c["explore_table"],
                             c["explore_info"], c["explore_label"]], show_progress="hidden")


def _wire_refresh(ws: Workspace, c: dict, tab: gr.Tab) -> None:
    """New checkpoints and datasets when the tab opens; the split list follows the dataset."""
    def refresh(checkpoint, dataset):
        checkpoints, datasets, dataset = checkpoint_and_dataset_updates(ws, checkpoint, dataset)
        return checkpoints, datasets, gr.update(choices=["", *split_choices(ws, dataset)])

    tab.select(refresh, [c["explore_checkpoint"], c["explore_dataset"]],
               [c["explore_checkpoint"], c["explore_dataset"], c["explore_split"]],
               show_progress="hidden")
    c["explore_dataset"].change(lambda d: gr.update(choices=["", *split_choices(ws, d)], value=""),
                                c["explore_dataset"], c["explore_split"], show_progress="hidden")
