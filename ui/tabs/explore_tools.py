"""Explore's tools on a computed map: colour by, lasso/box selections (relabel, tag, export as
CSV) and similarity search (a crop of the map, or a dropped image).

Functions take the workspace and an `ExploreMap` (ui/tabs/explore.py) and return data; the tab
wires them to Gradio. Names from data are returned as plain text (captions, CSV) or through
`md_text` (Markdown).
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ffclr.data.csv_files import write_csv
from ffclr.errors import FfclrError
from ffclr.eval.neighbours import cosine_neighbours
from ffclr.workspace import Workspace
from ui.common import check_image_upload, md_text, open_store, result_folder
from ui.plot import PALETTE, Colouring

if TYPE_CHECKING:
    from ui.tabs.explore import ExploreMap

COLOUR_BY = ("label", "predicted class", "split", "label-issue score", "source drawing", "tag")
"""A map holds one dataset (and one split or all), so there is no colour by dataset."""
MAX_CATEGORIES = len(PALETTE)
"""Drawings or tag sets beyond the most frequent `MAX_CATEGORIES - 1` share one colour."""
SCORE_TITLE = "label quality (low = likely error)"
LEGEND_CHARS = 32
N_SIMILAR = 16
SELECTION_SHOWN = 24
FEW_CROPS = 2000
"""Up to this many crops' labels are read by id; more, with the whole dataset's."""
MAX_TAG_CHARS = 64
SPLIT_ORDER = ("train", "valid", "test")
CSV_COLUMNS = ["crop_id", "path", "split", "label", "suggested", "label_quality",
               "outlier_distance", "flagged", "source_image", "tags"]


def map_labels(workspace: Workspace, dataset: str, crop_ids: list[int]) -> list[int]:
    """Effective labels now (after edits), in the order of `crop_ids`: a few crops' read by id,
    many read with the whole dataset's."""
    with open_store(workspace) as store:
        dataset_id = store.dataset(dataset)["id"]
        labels = store.labels(dataset_id, crop_ids if len(crop_ids) <= FEW_CROPS else None)
    return [labels[c] for c in crop_ids]


def map_tags(workspace: Workspace, dataset: str) -> dict[int, list[str]]:
    with open_store(workspace) as store:
        return store.crop_tags(store.dataset(dataset)["id"])


# colour by


def _frequent_first(categories: list[str], last: str | None = None) -> list[str]:
    """Categories by count (ties by name), `last` at the end; beyond `MAX_CATEGORIES - 1`
    they are folded into one "other" category (the caller renames its points)."""
    counts = Counter(c for c in categories if c != last)
    order = sorted(counts, key=lambda c: (-counts[c], c))
    return order + ([last] if last in categories else [])


def _folded(categories: list[str], order: list[str], noun: str) -> tuple[list[str], list[str]]:
    if len(order) <= MAX_CATEGORIES:
        return categories, order
    kept = set(order[:MAX_CATEGORIES - 1])
    other = f"{len(order) - len(kept)} other {noun}"
    return [c if c in kept else other for c in categories], order[:MAX_CATEGORIES - 1] + [other]


def colouring(workspace: Workspace, emap: ExploreMap, colour_by: str | None,
              labels: list[int]) -> Colouring:
    """The colours of the map's points for one of `COLOUR_BY` (`labels`: current labels)."""
    colour_by = colour_by or "label"
    names = emap.class_names
    if colour_by == "label":
        return Colouring("label", [names[i] for i in labels], names)
    if colour_by == "predicted class":
        return Colouring("predicted class", [names[int(i)] for i in emap.suggested], names)
    if colour_by == "split":
        order = [s for s in SPLIT_ORDER if s in emap.splits]
        return Colouring("split", list(emap.splits),
                         order + sorted(set(emap.splits) - set(order)))
    if colour_by == "label-issue score":
        return Colouring(SCORE_TITLE, values=[float(q) for q in emap.quality])
    if colour_by == "source drawing":
        categories, order = _folded(list(emap.sources), _frequent_first(list(emap.sources)),
                                    "drawings")
        return Colouring("source drawing", categories, order, legend_chars=LEGEND_CHARS)
    if colour_by == "tag":
        tags = map_tags(workspace, emap.dataset)
        categories = [", ".join(sorted(tags.get(c, []))) or "untagged" for c in emap.crop_ids]
        categories, order = _folded(categories, _frequent_first(categories, "untagged"),
                                    "tag sets")
        return Colouring("tag", categories, order, legend_chars=LEGEND_CHARS)
    raise FfclrError(f"colour by {colour_by!r}: choose one of {', '.join(COLOUR_BY)}")


def point_caption(workspace: Workspace, emap: ExploreMap, crop_id: int,
                  colour_by: str | None) -> str:
    """The tooltip text of one point: crop id, its label now, and what the map is coloured by
    (names whole: the legend may cut them or fold rare ones into "other")."""
    i = emap.row(crop_id)
    colour_by = colour_by or "label"
    with open_store(workspace) as store:
        crop = store.crop(int(crop_id))
        if crop is None:
            raise FfclrError(f"no crop #{crop_id}")
        tags = store.crop_tags(crop["dataset_id"]).get(int(crop_id), []) \
            if colour_by == "tag" else []
    caption = f"#{int(crop_id)} {emap.class_names[int(crop['label'])]}"
    if colour_by == "label":
        return caption
    if colour_by == "predicted class":
        value = emap.class_names[int(emap.suggested[i])]
    elif colour_by == "split":
        value = emap.splits[i]
    elif colour_by == "label-issue score":
        return f"{caption}\n{SCORE_TITLE}: {float(emap.quality[i]):.3f}"
    elif colour_by == "source drawing":
        value = emap.sources[i]
    elif colour_by == "tag":
        value = ", ".join(sorted(tags)) or "untagged"
    else:
        raise FfclrError(f"colour by {colour_by!r}: choose one of {', '.join(COLOUR_BY)}")
    return f"{caption}\n{colour_by}: {value}"


# selection


def on_map(emap: ExploreMap, crop_ids) -> list[int]:
    """The ids of `crop_ids` that are on this map, each once, in the map's order."""
    wanted = {int(c) for c in crop_ids or []}
    return [c for c in emap.crop_ids if c in wanted]


def selection_view(workspace: Workspace, emap: ExploreMap, crop_ids: list[int]
                   ) -> tuple[str, list[tuple[str, str]]]:
    """(summary Markdown, gallery of the first `SELECTION_SHOWN` crops) of a selection."""
    if not crop_ids:
        return ("No crops selected: drag a lasso or a box on the map (the toolbar switches "
                "between them); double-click the map to clear."), []
    labels = dict(zip(emap.crop_ids, map_labels(workspace, emap.dataset, emap.crop_ids)))
    counts = Counter(emap.class_names[labels[c]] for c in crop_ids)
    parts = ", ".join(f"{n} {md_text(name)}" for name, n in counts.most_common(6))
    more = f" and {len(counts) - 6} more classes" if len(counts) > 6 else ""
    rows = {c: i for i, c in enumerate(emap.crop_ids)}
    gallery = [(str(emap.paths[rows[c]]), f"#{c} {emap.class_names[labels[c]]}")
               for c in crop_ids[:SELECTION_SHOWN]]
    shown = f" (the first {SELECTION_SHOWN} below)" if len(crop_ids) > SELECTION_SHOWN else ""
    return f"**{len(crop_ids)} crops selected**{shown}: {parts}{more}.", gallery


def _require(crop_ids: list[int]) -> None:
    if not crop_ids:
        raise FfclrError("select crops first: drag a lasso or a box on the map")


SELECTION_NOTE = "app: selection"


def _latest_edits(store, dataset: str) -> dict[int, dict]:
    latest: dict[int, dict] = {}
    for edit in store.label_edits(dataset_id=store.dataset(dataset)["id"]):
        latest[edit["crop_id"]] = edit
    return latest


def relabel_selection(workspace: Workspace, emap: ExploreMap, crop_ids: list[int],
                      class_index: int | None) -> tuple[str, dict[int, int]]:
    """Give every selected crop the class in one transaction (each crop keeps its own undo).
    Returns the message and the batch: crop id → the edit made (for `undo_batch`)."""
    _require(crop_ids)
    if class_index is None:
        raise FfclrError("pick the class to give the selected crops")
    if not 0 <= int(class_index) < len(emap.class_names):
        raise FfclrError(f"class index {class_index} is not a class of {emap.dataset}")
    with open_store(workspace) as store:
        before = {c: e["id"] for c, e in _latest_edits(store, emap.dataset).items()}
        try:
            changed = store.relabel_many([int(c) for c in crop_ids], int(class_index),
                                         note=SELECTION_NOTE)
        except KeyError as exc:
            raise FfclrError(str(exc.args[0])) from None
        after = _latest_edits(store, emap.dataset)
    batch = {c: after[c]["id"] for c in crop_ids
             if c in after and after[c]["id"] != before.get(c)}
    name = md_text(emap.class_names[int(class_index)])
    kept = len(crop_ids) - changed
    already = f" ({kept} already were)" if kept else ""
    return (f"Saved: {changed} of {len(crop_ids)} selected crops are now **{name}**{already}. "
            "**Undo relabel** takes them back."), batch


def undo_batch(workspace: Workspace, emap: ExploreMap, batch: dict | None) -> str:
    """Undo the last selection relabel: each of its crops goes back to its previous label,
    unless it was edited again since (then it keeps its newer label)."""
    if not batch:
        raise FfclrError("no selection relabel to undo")
    with open_store(workspace) as store:
        latest = _latest_edits(store, emap.dataset)
        undone = [int(c) for c, edit_id in batch.items()
                  if latest.get(int(c), {}).get("id") == edit_id]
        for crop_id in undone:
            store.undo_relabel(crop_id)
    kept = len(batch) - len(undone)
    since = f"; {kept} edited again since keep their newer label" if kept else ""
    return f"Undone: {len(undone)} crops are back to their previous labels{since}."


def _tag_name(tag: str | None) -> str:
    tag = " ".join(str(tag or "").split())
    if not tag:
        raise FfclrError("type a tag first")
    if len(tag) > MAX_TAG_CHARS:
        raise FfclrError(f"a tag has at most {MAX_TAG_CHARS} characters ({len(tag)} given)")
    return tag


def tag_selection(workspace: Workspace, crop_ids: list[int], tag: str | None,
                  remove: bool = False) -> str:
    """Add `tag` to (or remove it from) every selected crop."""
    _require(crop_ids)
    tag = _tag_name(tag)
    with open_store(workspace) as store:
        try:
            if remove:
                changed = store.untag_crops([int(c) for c in crop_ids], tag)
            else:
                changed = store.tag_crops([int(c) for c in crop_ids], tag)
        except (KeyError, ValueError) as exc:
            raise FfclrError(str(exc.args[0])) from None
    if remove:
        return (f"Removed the tag **{md_text(tag)}** from {changed} of {len(crop_ids)} "
                "selected crops.")
    return f"Tagged {changed} of {len(crop_ids)} selected crops **{md_text(tag)}**."


def selection_rows(workspace: Workspace, emap: ExploreMap, crop_ids: list[int]) -> list[dict]:
    """One row per selected crop (`CSV_COLUMNS`), in the map's order."""
    labels = dict(zip(emap.crop_ids, map_labels(workspace, emap.dataset, emap.crop_ids)))
    tags = map_tags(workspace, emap.dataset)
    rows = {c: i for i, c in enumerate(emap.crop_ids)}
    out = []
    for crop_id in crop_ids:
        i = rows[crop_id]
        out.append({"crop_id": crop_id, "path": str(emap.paths[i]), "split": emap.splits[i],
                    "label": emap.class_names[labels[crop_id]],
                    "suggested": emap.class_names[int(emap.suggested[i])],
                    "label_quality": f"{float(emap.quality[i]):.4f}",
                    "outlier_distance": f"{float(emap.outlier_distance[i]):.4f}",
                    "flagged": "yes" if emap.flagged[i] else "", "source_image": emap.sources[i],
                    "tags": ";".join(sorted(tags.get(crop_id, [])))})
    return out


def export_selection(workspace: Workspace, emap: ExploreMap, crop_ids: list[int]) -> Path:
    """The selection as a CSV file (in a fresh folder under cache/explore/)."""
    _require(crop_ids)
    with result_folder(workspace, "explore") as folder:
        return write_csv(folder / f"selection-{len(crop_ids)}-crops.csv", CSV_COLUMNS,
                         selection_rows(workspace, emap, crop_ids))


# similarity search


def similar_crops(workspace: Workspace, emap: ExploreMap, query: np.ndarray,
                  k: int = N_SIMILAR, exclude: int | None = None
                  ) -> tuple[list[int], list[tuple[str, str]]]:
    """The `k` crops of the map nearest to the feature vector `query` (cosine), never the crop
    `exclude`: (their ids, gallery items captioned with the similarity to 3 digits)."""
    nearest, sims = cosine_neighbours(np.asarray(query)[None], emap.features, k + 1,
                                      unit_memory=True)
    found = [(int(j), float(s)) for j, s in zip(nearest[0], sims[0])
             if exclude is None or emap.crop_ids[j] != exclude][:k]
    labels = map_labels(workspace, emap.dataset, [emap.crop_ids[j] for j, _ in found])
    return ([emap.crop_ids[j] for j, _ in found],
            [(str(emap.paths[j]), neighbour_caption(emap, j, label, sim))
             for (j, sim), label in zip(found, labels)])


def neighbour_caption(emap: ExploreMap, row: int, label: int, similarity: float) -> str:
    """Similarity first (it must stay readable when a caption is cut), then id and label."""
    return f"{similarity:.3f} · #{emap.crop_ids[row]} {emap.class_names[label]}"


_ENCODER: dict[tuple, object] = {}


def _encoder(checkpoint: str):
    """The checkpoint's encoder, kept while the file is unchanged (one at a time)."""
    from ffclr.model.checkpoint import load_encoder

    stat = os.stat(checkpoint)
    key = (str(Path(checkpoint).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _ENCODER:
        _ENCODER.clear()
        _ENCODER[key] = load_encoder(checkpoint)
    return _ENCODER[key]


def image_features(checkpoint: str, image: str | os.PathLike) -> np.ndarray:
    """The feature vector of one image file with the map's checkpoint (as its crops were)."""
    from ffclr.eval.embedding import embed_images

    check_image_upload(image)
    if not Path(checkpoint).is_file():
        raise FfclrError(f"{Path(checkpoint).name}: the map's checkpoint is gone; compute the "
                         "map again")
    return embed_images([Path(image)], _encoder(checkpoint))[0]
