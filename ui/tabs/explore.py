"""Explore tab: UMAP of a checkpoint's embeddings, click a crop, see it in its schematic and
among its neighbours, relabel it (saved at once, undoable), walk the most suspicious crops;
colour the map by label, prediction, split, label-issue score, drawing or tag; lasso a group
to relabel, tag or export it; find the crops nearest to a crop or to a dropped image."""
from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import gradio as gr
import numpy as np

from ffclr.data.cropset import load_dataset_split
from ffclr.derived_files import write_aside
from ffclr.errors import FfclrError
from ffclr.eval.embedding import embed_crop_set
from ffclr.eval.explore import label_issues, outlier_scores, suspicion_order
from ffclr.eval.neighbours import cosine_neighbours, l2_normalise
from ffclr.workspace import Workspace
from ui.common import (Context, checkpoint_and_dataset_updates, checkpoint_choices,
                       dataset_choices, file_url, guard, md_code, md_text, ok_md, open_store,
                       split_choices)
from ui.plot import scatter_component, scatter_spec
from ui.sources import crop_in_context
from ui.tabs import explore_tools as tools

N_NEIGHBOURS = 8
LAST_MAP_FILE = "explore-last-map.json"
"""Under the workspace's cache: what the last map was computed from."""
TABLE_ROWS = 50
TABLE_COLUMNS = ["rank", "crop", "split", "label", "suggested", "label quality",
                 "outlier distance", "flagged"]


@dataclass
class ExploreMap:
    """Everything the tab shows for one (checkpoint, dataset, split); labels come from the store."""
    key: str
    dataset: str
    checkpoint: str
    crop_ids: list[int]
    paths: list[Path]
    splits: list[str]
    sources: list[str]
    """The drawing (export image) each crop was cut from."""
    class_names: list[str]
    coords: np.ndarray
    features: np.ndarray
    """L2-normalised float32 rows (the map only compares them by cosine)."""
    outlier_distance: np.ndarray
    quality: np.ndarray
    suggested: np.ndarray
    flagged: np.ndarray
    order: np.ndarray
    """Row indices, most suspicious first."""

    @cached_property
    def _rows(self) -> dict[int, int]:
        return {crop_id: i for i, crop_id in enumerate(self.crop_ids)}

    def row(self, crop_id: int) -> int:
        try:
            return self._rows[int(crop_id)]
        except KeyError:
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
        crops = {c["id"]: c for c in store.crops(store.dataset(dataset)["id"])}
    return _keep_map(ExploreMap(
        key=key, dataset=dataset, checkpoint=str(checkpoint),
        crop_ids=[int(c) for c in crop_set.crop_ids], paths=list(crop_set.paths),
        splits=[crops[c]["split"] if c in crops else "" for c in crop_set.crop_ids],
        sources=[crops[c]["source_image"] if c in crops else "" for c in crop_set.crop_ids],
        class_names=list(crop_set.class_names), coords=coords,
        features=l2_normalise(features),
        outlier_distance=distance, quality=issues.quality, suggested=issues.suggested,
        flagged=issues.is_issue, order=suspicion_order(issues, distance)))


def current_labels(workspace: Workspace, emap: ExploreMap) -> list[int]:
    """Effective labels now (after edits), in the map's order."""
    return tools.map_labels(workspace, emap.dataset, emap.crop_ids)


def map_figure(workspace: Workspace, emap: ExploreMap, selected: int | None = None,
               colour_by: str | None = None, selection: list[int] | None = None) -> str:
    """The map's figure: coloured by `colour_by` (one of `tools.COLOUR_BY`), the clicked crop
    ringed, the lassoed `selection` highlighted."""
    labels = current_labels(workspace, emap)
    colours = tools.colouring(workspace, emap, colour_by, labels)
    flagged = {emap.crop_ids[i] for i in np.flatnonzero(emap.flagged)}
    return scatter_spec(emap.coords, emap.crop_ids, colours, flagged, selected,
                        title=f"{emap.dataset}: {len(emap.crop_ids)} crops "
                        f"({len(flagged)} flagged as likely label errors, outlined)",
                        selection=set(selection or []), revision=emap.key,
                        hover={"map": emap.key, "colour_by": colour_by or "label"})


def hover_info(workspace: Workspace, request: dict) -> list[str] | None:
    """[thumbnail URL, caption in plain text] of the hovered crop (`request`: the figure's
    `hover` context and `crop_id`); None when the map or the crop is gone."""
    try:
        emap = get_map(request.get("map"))
        crop_id = int(request["crop_id"])
        caption = tools.point_caption(workspace, emap, crop_id, request.get("colour_by"))
    except (FfclrError, KeyError, TypeError, ValueError):
        return None
    return [file_url(emap.paths[emap.row(crop_id)]), caption]


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
    nearest, similarities = cosine_neighbours(emap.features[i:i + 1], emap.features,
                                              N_NEIGHBOURS + 1, unit_memory=True)
    others = [(j, sim) for j, sim in zip(nearest[0], similarities[0]) if j != i][:N_NEIGHBOURS]
    labels = tools.map_labels(workspace, emap.dataset, [emap.crop_ids[j] for j, _ in others])
    neighbours = [(str(emap.paths[j]), tools.neighbour_caption(emap, j, label, sim))
                  for (j, sim), label in zip(others, labels)]
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
        try:
            if store.relabel(int(crop_id), int(class_index), note="app") is None:
                return None
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
                "Drag a lasso or a box on the map to select a group (relabel, tag or export it). "
                "Keys: **n**/**p** next/previous suspicious crop, **u** undo.")
    _build_controls(ws, c)
    c["explore_status"] = gr.Markdown(elem_id="explore-status")
    states = {"key": gr.State(None), "selected": gr.State(None), "selection": gr.State([]),
              "similar": gr.State([]), "batch": gr.State(None)}
    _build_inspector(c, lambda request: hover_info(ws, request))
    with gr.Row():
        with gr.Column():
            _build_selection(c)
        with gr.Column():
            _build_similarity(c)
    c["explore_table"] = gr.Dataframe(headers=TABLE_COLUMNS, label="Most suspicious crops "
                                      "(click a row)", interactive=False, max_height=320,
                                      elem_id="explore-table")
    _wire_compute(ws, c, states)
    _wire_navigation(ws, c, states)
    _wire_relabel(ws, c, states)
    _wire_selection(ws, c, states)
    _wire_selection_actions(ws, c, states)
    _wire_similarity(ws, c, states)
    _wire_refresh(ws, c, tab, states, compute_outputs(c, states))


def _build_controls(ws: Workspace, c: dict) -> None:
    """Checkpoint, dataset and split pickers, the colouring, and the Compute button."""
    datasets = dataset_choices(ws)
    with gr.Row():
        c["explore_checkpoint"] = gr.Dropdown(label="Checkpoint", choices=checkpoint_choices(ws),
                                              scale=3, elem_id="explore-checkpoint")
        c["explore_dataset"] = gr.Dropdown(label="Dataset", choices=datasets,
                                           value=datasets[0] if datasets else None, scale=1,
                                           elem_id="explore-dataset")
        c["explore_split"] = gr.Dropdown(label="Split", choices=_splits(
            ws, datasets[0] if datasets else None), value="", scale=1, elem_id="explore-split")
        c["explore_colour"] = gr.Dropdown(label="Colour by", choices=list(tools.COLOUR_BY),
                                          value="label", scale=1, elem_id="explore-colour")
        c["explore_compute"] = gr.Button("Compute map", variant="primary", scale=1,
                                         elem_id="explore-compute")


def _splits(ws: Workspace, dataset: str | None) -> list[tuple[str, str]]:
    return [("all splits", ""), *((s, s) for s in split_choices(ws, dataset))]


def _build_inspector(c: dict, hover) -> None:
    """The map (`hover` answers its hovers) beside the selected crop: its images, scores, label,
    stepping and neighbours."""
    with gr.Row():
        with gr.Column(scale=3):
            c["explore_plot"] = scatter_component(hover, elem_id="explore-plot")
        with gr.Column(scale=2):
            with gr.Row():
                c["explore_crop"] = gr.Image(label="Crop", type="filepath", height=160,
                                             interactive=False, elem_id="explore-crop")
                c["explore_context"] = gr.Image(label="In its schematic", type="pil", height=160,
                                                interactive=False)
            c["explore_info"] = gr.Markdown(elem_id="explore-info")
            c["explore_label"] = gr.Dropdown(label="Label (changing it saves at once)",
                                             choices=[], elem_id="explore-label")
            with gr.Row():
                c["explore_prev"] = gr.Button("◀ previous suspicious (p)", elem_id="explore-prev")
                c["explore_next"] = gr.Button("next suspicious (n) ▶", elem_id="explore-next")
                c["explore_undo"] = gr.Button("Undo (u)", elem_id="explore-undo")
            c["explore_neighbours"] = gr.Gallery(
                label="Nearest neighbours (cosine similarity)", columns=4, height=240,
                object_fit="contain", elem_classes=["ffclr-captions"],
                elem_id="explore-neighbours")


def _build_selection(c: dict) -> None:
    """The lassoed crops: summary, thumbnails, relabel, tag and CSV export."""
    c["explore_selection_info"] = gr.Markdown(tools.selection_view(None, None, [])[0],
                                              elem_id="explore-selection-info")
    c["explore_selection_gallery"] = gr.Gallery(label="Selected crops (click one to inspect "
                                                "it)", columns=6, height=200,
                                                object_fit="contain",
                                                elem_classes=["ffclr-captions"])
    with gr.Row():
        c["explore_selection_label"] = gr.Dropdown(label="Relabel the selection to", choices=[],
                                                   scale=2, elem_id="explore-selection-label")
        c["explore_selection_relabel"] = gr.Button("Relabel selection", scale=1,
                                                   elem_id="explore-selection-relabel")
        c["explore_selection_undo"] = gr.Button("Undo relabel", scale=1,
                                                elem_id="explore-selection-undo")
    with gr.Row():
        c["explore_tag"] = gr.Textbox(label="Tag", max_length=tools.MAX_TAG_CHARS, scale=2,
                                      elem_id="explore-tag")
        c["explore_tag_add"] = gr.Button("Tag selection", scale=1, elem_id="explore-tag-add")
        c["explore_tag_remove"] = gr.Button("Remove tag", scale=1, elem_id="explore-tag-remove")
    with gr.Row():
        c["explore_export"] = gr.Button("Export selection (CSV)", elem_id="explore-export")
        c["explore_selection_csv"] = gr.DownloadButton("Download CSV", visible=False,
                                                       elem_id="explore-selection-csv")


def _build_similarity(c: dict) -> None:
    """Similarity search from a dropped image or from the clicked crop."""
    c["explore_query"] = gr.Image(label="Drop an image to find the most similar crops",
                                  type="filepath", sources=["upload"], height=140,
                                  elem_id="explore-query")
    with gr.Row():
        c["explore_similar_clicked"] = gr.Button("Crops like the clicked one",
                                                 elem_id="explore-similar-clicked")
        c["explore_similar_select"] = gr.Button("Select these", elem_id="explore-similar-select")
    c["explore_similar"] = gr.Gallery(label="Most similar crops on this map (cosine "
                                      "similarity; click one to inspect it)", columns=4,
                                      height=300, object_fit="contain",
                                      elem_classes=["ffclr-captions"], elem_id="explore-similar")


def _show(ws: Workspace, map_key: str | None, crop_id: int, colour_by: str | None = None,
          selection: list[int] | None = None, ringed: bool = False) -> tuple:
    """Values of the details outputs for one crop; `ringed`: the browser has ringed it on the
    map already (a click there), so the figure is not sent again."""
    emap = get_map(map_key)
    d = crop_details(ws, emap, crop_id)
    return (d["crop_id"], d["crop_path"], d["context"], d["info"],
            gr.update(choices=_class_choices(emap), value=d["label"]), d["neighbours"],
            gr.skip() if ringed else map_figure(ws, emap, d["crop_id"], colour_by, selection))


def _class_choices(emap: ExploreMap) -> list[tuple[str, int]]:
    return [(name, i) for i, name in enumerate(emap.class_names)]


def _details_outputs(c: dict, states: dict) -> list:
    return [states["selected"], c["explore_crop"], c["explore_context"], c["explore_info"],
            c["explore_label"], c["explore_neighbours"], c["explore_plot"]]


def _selection_outputs(c: dict, states: dict) -> list:
    return [states["selection"], c["explore_selection_info"], c["explore_selection_gallery"],
            c["explore_selection_csv"]]


def _selection_values(ws: Workspace, emap: ExploreMap | None, crop_ids: list[int]) -> tuple:
    info, gallery = tools.selection_view(ws, emap, crop_ids)
    return crop_ids, info, gallery, gr.DownloadButton(visible=False)


def map_outputs(ws: Workspace, emap: ExploreMap, colour_by: str | None) -> tuple:
    """What a newly computed map shows (`_wire_compute`'s outputs): its status, key, table and
    figure, and nothing of the crop, selection or similar crops of the map before."""
    return (ok_md(f"Map of {len(emap.crop_ids)} crops of **{md_text(emap.dataset)}**."),
            emap.key, suspicious_rows(ws, emap),
            gr.update(choices=_class_choices(emap), value=None), [], [], None, None, None, None,
            "", gr.update(choices=[], value=None), [], map_figure(ws, emap, colour_by=colour_by),
            *_selection_values(ws, emap, []))


def _last_map_file(ws: Workspace) -> Path:
    return ws.cache / LAST_MAP_FILE


def remember_map(ws: Workspace, checkpoint: str, dataset: str, split: str | None) -> None:
    """Keep what the last map was computed from, so a reloaded page shows it again."""
    text = json.dumps({"checkpoint": str(checkpoint), "dataset": dataset, "split": split or ""})
    write_aside(_last_map_file(ws), lambda tmp: tmp.write_text(text))


def last_map(ws: Workspace) -> dict | None:
    """(checkpoint, dataset, split) of the last map computed, while its dataset is imported and
    its checkpoint is one the picker offers; None otherwise."""
    try:
        last = json.loads(_last_map_file(ws).read_text())
    except (OSError, ValueError):
        return None
    if not (isinstance(last, dict) and all(isinstance(last.get(k), str)
                                           for k in ("checkpoint", "dataset", "split"))):
        return None
    if last["dataset"] not in dataset_choices(ws) or last["checkpoint"] not in [
            path for _, path in checkpoint_choices(ws)]:
        return None
    return last


def compute_outputs(c: dict, states: dict) -> list:
    """The components `map_outputs` fills, in its order."""
    return [c["explore_status"], states["key"], c["explore_table"],
            c["explore_selection_label"], states["similar"], c["explore_similar"],
            states["batch"], *_details_outputs(c, states), *_selection_outputs(c, states)]


def _wire_compute(ws: Workspace, c: dict, states: dict) -> None:
    """Compute a map; everything shown about the previous map (clicked crop, selection,
    similar crops) is cleared, so nothing acts on crops of another map."""
    outputs = compute_outputs(c, states)

    @guard(len(outputs))
    def on_compute(checkpoint, dataset, split, colour_by, progress=gr.Progress()):
        emap = compute_map(ws, checkpoint, dataset, split, _progress_callback(progress))
        remember_map(ws, checkpoint, dataset, split)
        return map_outputs(ws, emap, colour_by)

    c["explore_compute"].click(on_compute, [c["explore_checkpoint"], c["explore_dataset"],
                                            c["explore_split"], c["explore_colour"]],
                               outputs, api_name="explore_compute")

    @guard(2)
    def on_colour(map_key, crop_id, colour_by, selection):
        if not map_key:
            return gr.skip(), gr.skip()
        emap = get_map(map_key)
        return "", map_figure(ws, emap, crop_id, colour_by, selection)

    c["explore_colour"].input(on_colour, [states["key"], states["selected"], c["explore_colour"],
                                          states["selection"]],
                              [c["explore_status"], c["explore_plot"]], show_progress="hidden",
                              api_name="explore_colour")


def _wire_navigation(ws: Workspace, c: dict, states: dict) -> None:
    """Clicking a point, a table row or a similar crop, and stepping through the suspicious
    crops."""
    outputs = [c["explore_status"], *_details_outputs(c, states)]
    view = [c["explore_colour"], states["selection"]]

    @guard(len(outputs))
    def on_point(map_key, colour_by, selection, evt: gr.EventData):
        return ("", *_show(ws, map_key, int(evt._data["point_id"]), colour_by, selection,
                           ringed=True))

    @guard(len(outputs))
    def on_row(map_key, colour_by, selection, evt: gr.SelectData):
        return ("", *_show(ws, map_key, int(evt.row_value[1]), colour_by, selection))

    @guard(len(outputs))
    def on_thumbnail(map_key, colour_by, selection, shown, evt: gr.SelectData):
        """A click on a thumbnail of the similar or the selected crops (`shown`: their ids)."""
        return ("", *_show(ws, map_key, int(shown[evt.index]), colour_by, selection))

    def stepper(step):
        @guard(len(outputs))
        def on_step(map_key, colour_by, selection, crop_id):
            emap = get_map(map_key)
            return ("", *_show(ws, map_key, step_suspicious(emap, crop_id, step), colour_by,
                               selection))
        return on_step

    key = states["key"]
    c["explore_plot"].select(on_point, [key, *view], outputs, show_progress="hidden",
                             api_name="explore_point")
    c["explore_table"].select(on_row, [key, *view], outputs, show_progress="hidden")
    c["explore_similar"].select(on_thumbnail, [key, *view, states["similar"]], outputs,
                                show_progress="hidden", api_name="explore_show_similar")
    c["explore_selection_gallery"].select(on_thumbnail, [key, *view, states["selection"]],
                                          outputs, show_progress="hidden",
                                          api_name="explore_show_selected")
    for button, step in ((c["explore_next"], 1), (c["explore_prev"], -1)):
        button.click(stepper(step), [key, *view, states["selected"]], outputs,
                     show_progress="hidden")


def _wire_relabel(ws: Workspace, c: dict, states: dict) -> None:
    """Relabelling the clicked crop with the dropdown, and undoing it."""
    key, selected = states["key"], states["selected"]
    view = [c["explore_colour"], states["selection"]]

    @guard(4)
    def on_relabel(map_key, crop_id, class_index, colour_by, selection):
        message = relabel(ws, crop_id, class_index)
        if message is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        emap = get_map(map_key)
        d = crop_details(ws, emap, crop_id)
        return (ok_md(message), map_figure(ws, emap, crop_id, colour_by, selection),
                suspicious_rows(ws, emap), d["info"])

    c["explore_label"].input(on_relabel, [key, selected, c["explore_label"], *view],
                             [c["explore_status"], c["explore_plot"], c["explore_table"],
                              c["explore_info"]], api_name="explore_relabel")

    @guard(5)
    def on_undo(map_key, crop_id, colour_by, selection):
        message = undo(ws, crop_id)
        emap = get_map(map_key)
        d = crop_details(ws, emap, crop_id)
        return (ok_md(message), map_figure(ws, emap, crop_id, colour_by, selection),
                suspicious_rows(ws, emap), d["info"], gr.update(value=d["label"]))

    c["explore_undo"].click(on_undo, [key, selected, *view],
                            [c["explore_status"], c["explore_plot"], c["explore_table"],
                             c["explore_info"], c["explore_label"]], show_progress="hidden")


def _wire_selection(ws: Workspace, c: dict, states: dict) -> None:
    """A lasso or box on the map (or 'Select these' under the similar crops) sets the
    selection."""
    outputs = [c["explore_status"], *_selection_outputs(c, states)]

    @guard(len(outputs))
    def on_lasso(map_key, evt: gr.EventData):
        emap = get_map(map_key)
        return ("", *_selection_values(ws, emap, tools.on_map(emap, evt._data.get("point_ids"))))

    c["explore_plot"].input(on_lasso, states["key"], outputs, show_progress="hidden",
                            api_name="explore_lasso")

    @guard(len(outputs) + 1)
    def on_select_similar(map_key, similar, crop_id, colour_by):
        emap = get_map(map_key)
        crop_ids = tools.on_map(emap, similar)
        if not crop_ids:
            raise FfclrError("find similar crops first (drop an image or click a crop)")
        return ("", *_selection_values(ws, emap, crop_ids),
                map_figure(ws, emap, crop_id, colour_by, crop_ids))

    c["explore_similar_select"].click(
        on_select_similar, [states["key"], states["similar"], states["selected"],
                            c["explore_colour"]], [*outputs, c["explore_plot"]],
        show_progress="hidden", api_name="explore_select_similar")


def _wire_selection_actions(ws: Workspace, c: dict, states: dict) -> None:
    """Relabel, tag, untag and export the selection."""
    key, selection, selected = states["key"], states["selection"], states["selected"]

    outputs = [c["explore_status"], states["batch"], c["explore_plot"], c["explore_table"],
               c["explore_selection_info"], c["explore_selection_gallery"], c["explore_info"],
               c["explore_label"]]

    def redrawn(emap: ExploreMap, crop_ids: list[int], crop_id: int | None, colour_by) -> tuple:
        """Map, table, selection and clicked crop after labels of a group changed."""
        info, gallery = tools.selection_view(ws, emap, crop_ids)
        details = crop_details(ws, emap, crop_id) if crop_id in emap.crop_ids else None
        return (map_figure(ws, emap, crop_id, colour_by, crop_ids), suspicious_rows(ws, emap),
                info, gallery, details["info"] if details else gr.skip(),
                gr.update(value=details["label"]) if details else gr.skip())

    @guard(len(outputs))
    def on_relabel_selection(map_key, crop_ids, class_index, crop_id, colour_by):
        emap = get_map(map_key)
        message, batch = tools.relabel_selection(ws, emap, crop_ids, class_index)
        return ok_md(message), batch, *redrawn(emap, crop_ids, crop_id, colour_by)

    c["explore_selection_relabel"].click(
        on_relabel_selection, [key, selection, c["explore_selection_label"], selected,
                               c["explore_colour"]], outputs,
        api_name="explore_relabel_selection")

    @guard(len(outputs))
    def on_undo_batch(map_key, batch, crop_ids, crop_id, colour_by):
        emap = get_map(map_key)
        message = tools.undo_batch(ws, emap, batch)
        return ok_md(message), None, *redrawn(emap, crop_ids, crop_id, colour_by)

    c["explore_selection_undo"].click(
        on_undo_batch, [key, states["batch"], selection, selected, c["explore_colour"]],
        outputs, api_name="explore_undo_selection")

    def tagger(remove: bool):
        @guard(2)
        def on_tag(map_key, crop_ids, tag, crop_id, colour_by):
            emap = get_map(map_key)
            message = tools.tag_selection(ws, crop_ids, tag, remove=remove)
            return ok_md(message), map_figure(ws, emap, crop_id, colour_by, crop_ids)
        return on_tag

    for button, remove in ((c["explore_tag_add"], False), (c["explore_tag_remove"], True)):
        button.click(tagger(remove), [key, selection, c["explore_tag"], selected,
                                      c["explore_colour"]],
                     [c["explore_status"], c["explore_plot"]], show_progress="hidden",
                     api_name="explore_untag" if remove else "explore_tag")

    @guard(2)
    def on_export(map_key, crop_ids):
        path = tools.export_selection(ws, get_map(map_key), crop_ids)
        return (ok_md(f"{len(crop_ids)} crops written; download the CSV."),
                gr.DownloadButton(value=str(path), visible=True))

    c["explore_export"].click(on_export, [key, selection],
                              [c["explore_status"], c["explore_selection_csv"]],
                              api_name="explore_export_selection")


def _wire_similarity(ws: Workspace, c: dict, states: dict) -> None:
    """Nearest crops to the clicked crop, or to a dropped image."""
    outputs = [c["explore_status"], states["similar"], c["explore_similar"]]

    @guard(len(outputs))
    def on_clicked(map_key, crop_id):
        emap = get_map(map_key)
        if crop_id is None:
            raise FfclrError("click a crop on the map first")
        ids, gallery = tools.similar_crops(ws, emap, emap.features[emap.row(crop_id)],
                                           exclude=int(crop_id))
        return ok_md(f"The {len(ids)} crops most similar to crop #{int(crop_id)}."), ids, gallery

    c["explore_similar_clicked"].click(on_clicked, [states["key"], states["selected"]], outputs,
                                       show_progress="hidden", api_name="explore_similar")

    @guard(len(outputs))
    def on_image(map_key, image):
        if not image:
            return gr.skip(), gr.skip(), gr.skip()
        emap = get_map(map_key)
        ids, gallery = tools.similar_crops(ws, emap, tools.image_features(emap.checkpoint, image))
        return (ok_md(f"The {len(ids)} crops most similar to the dropped image."), ids, gallery)

    c["explore_query"].upload(on_image, [states["key"], c["explore_query"]], outputs,
                              api_name="explore_similar_image")


def _wire_refresh(ws: Workspace, c: dict, tab: gr.Tab, states: dict, outputs: list) -> None:
    """New checkpoints and datasets when the tab opens; the split list follows the dataset. A
    page with no map yet (a reload, another browser) shows the last map computed again, unless
    another checkpoint was put in the picker (Runs' "Open checkpoint in Explore")."""
    def refresh(checkpoint, dataset):
        checkpoints, datasets, dataset = checkpoint_and_dataset_updates(ws, checkpoint, dataset)
        return checkpoints, datasets, gr.update(choices=_splits(ws, dataset))

    @guard(3 + len(outputs), status_at=3)
    def on_open(checkpoint, dataset, map_key, colour_by, progress=gr.Progress()):
        last = None if map_key else last_map(ws)
        if last is None or checkpoint not in (None, "", last["checkpoint"]):
            return (*refresh(checkpoint, dataset), *[gr.skip()] * len(outputs))
        emap = compute_map(ws, last["checkpoint"], last["dataset"], last["split"],
                           _progress_callback(progress))
        checkpoints, datasets, _ = checkpoint_and_dataset_updates(ws, last["checkpoint"],
                                                                  last["dataset"])
        return (checkpoints, datasets,
                gr.update(choices=_splits(ws, last["dataset"]), value=last["split"]),
                *map_outputs(ws, emap, colour_by))

    tab.select(on_open, [c["explore_checkpoint"], c["explore_dataset"], states["key"],
                         c["explore_colour"]],
               [c["explore_checkpoint"], c["explore_dataset"], c["explore_split"], *outputs],
               show_progress="minimal")
    c["explore_dataset"].input(lambda d: gr.update(choices=_splits(ws, d), value=""),
                               c["explore_dataset"], c["explore_split"], show_progress="hidden")
