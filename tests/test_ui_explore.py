"""Explore tab handlers on demo data with a small untrained checkpoint: map, click, relabel,
undo."""
from __future__ import annotations

import json

import pytest

from ffclr.errors import FfclrError
from ffclr.workspace import resolve_workspace
from test_ui_probe import one_c


@pytest.fixture(scope="module")
def explored(tmp_path_factory, demo_export):
    """A workspace with the demo export imported and a random-weight ResNet-18 checkpoint."""
    import torch

    from ffclr.model.checkpoint import save_checkpoint
    from ffclr.data.coco_import import import_export
    from ffclr.model.networks import SimCLRModel

    workspace = resolve_workspace(tmp_path_factory.mktemp("explore") / "ws")
    import_export(demo_export, "demo", workspace)
    torch.manual_seed(0)
    model = SimCLRModel("resnet18", out_dim=32)
    checkpoint = save_checkpoint(workspace.checkpoints / "tiny" / "checkpoint_0001.pth.tar",
                                 {"epoch": 1, "arch": "resnet18", "state_dict": model.state_dict(),
                                  "image_size": 32})
    from ui.tabs import explore

    with pytest.MonkeyPatch.context() as patch:
        one_c(patch)
        emap = explore.compute_map(workspace, str(checkpoint), "demo")
    return workspace, checkpoint, emap


def test_map_covers_every_crop_with_scores_and_a_clickable_figure(explored):
    from ui.tabs import explore

    workspace, checkpoint, emap = explored
    with workspace.open_store() as store:
        n_crops = len(store.crops(store.dataset("demo")["id"]))
    assert len(emap.crop_ids) == n_crops == len(emap.coords)
    spec = json.loads(explore.map_figure(workspace, emap))
    points = [cid for trace in spec["data"] for cid in trace["customdata"]]
    assert sorted(points) == sorted(emap.crop_ids)
    assert spec["n_points"] == n_crops
    assert {t["type"] for t in spec["data"]} == {"scattergl"}
    assert spec["hover"] == {"map": emap.key, "colour_by": "label"}
    assert "gradio_api/file" not in json.dumps(spec)
    rows = explore.suspicious_rows(workspace, emap)
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    qualities = [r[5] for r in rows]
    flagged = [r for r in rows if r[7] == "yes"]
    assert rows[:len(flagged)] == flagged
    assert qualities[len(flagged):] == sorted(qualities[len(flagged):])


def test_crop_details_show_schematic_neighbours_and_label(explored):
    from ui.tabs import explore

    workspace, checkpoint, emap = explored
    crop_id = emap.crop_ids[3]
    details = explore.crop_details(workspace, emap, crop_id)
    assert details["crop_id"] == crop_id
    assert details["context"] is not None and details["context"].size[0] > 100
    assert len(details["neighbours"]) == explore.N_NEIGHBOURS
    assert f"#{crop_id}" not in [caption.split()[0] for _, caption in details["neighbours"]]
    with pytest.raises(FfclrError, match="not on this map"):
        explore.crop_details(workspace, emap, 10**9)


def test_relabel_saves_at_once_recolours_and_undoes(explored):
    from ui.tabs import explore

    workspace, checkpoint, emap = explored
    crop_id = emap.crop_ids[0]
    before = explore.current_labels(workspace, emap)[0]
    new = (before + 1) % len(emap.class_names)
    message = explore.relabel(workspace, crop_id, new)
    assert "Saved" in message
    assert explore.relabel(workspace, crop_id, new) is None  # the dropdown's second `input`
    with workspace.open_store() as store:
        assert store.crop(crop_id)["label"] == new
        assert [e["new_class_index"] for e in store.label_edits(crop_id)] == [new]
    spec = json.loads(explore.map_figure(workspace, emap, selected=crop_id))
    trace = next(t for t in spec["data"] if t["name"].startswith(emap.class_names[new]))
    assert crop_id in trace["customdata"]
    assert "Undone" in explore.undo(workspace, crop_id)
    assert explore.current_labels(workspace, emap)[0] == before
    with pytest.raises(FfclrError, match="pick the new class"):
        explore.relabel(workspace, crop_id, None)


def test_the_same_relabel_sent_twice_at_once_saves_one_edit_and_one_undo_restores(explored):
    """The dropdown fires `input` on pick and again on blur; the app serves two requests at a
    time, so both can arrive together."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from ui.tabs import explore

    workspace, checkpoint, emap = explored
    crop_id = emap.crop_ids[1]
    before = explore.current_labels(workspace, emap)[1]
    new = (before + 1) % len(emap.class_names)
    together = Barrier(2)

    def pick(_):
        together.wait()
        return explore.relabel(workspace, crop_id, new)

    with ThreadPoolExecutor(2) as pool:
        messages = list(pool.map(pick, range(2)))
    assert sorted(m is None for m in messages) == [False, True]
    with workspace.open_store() as store:
        assert [e["new_class_index"] for e in store.label_edits(crop_id)] == [new]
    explore.undo(workspace, crop_id)
    assert explore.current_labels(workspace, emap)[1] == before


def test_next_and_previous_walk_the_suspicion_order(explored):
    from ui.tabs import explore

    workspace, checkpoint, emap = explored
    order = [emap.crop_ids[i] for i in emap.order]
    assert explore.step_suspicious(emap, None, 1) == order[0]
    assert explore.step_suspicious(emap, order[0], 1) == order[1]
    assert explore.step_suspicious(emap, order[0], -1) == order[-1]


def test_compute_map_explains_missing_choices(explored):
    from ui.tabs import explore

    workspace, checkpoint, emap = explored
    with pytest.raises(FfclrError, match="pick a checkpoint"):
        explore.compute_map(workspace, None, "demo")
    with pytest.raises(FfclrError, match="pick a dataset"):
        explore.compute_map(workspace, str(checkpoint), None)


def test_only_the_most_recent_maps_stay_in_memory(explored, monkeypatch):
    from collections import OrderedDict
    from dataclasses import replace

    from ui.tabs import explore

    _, _, emap = explored
    monkeypatch.setattr(explore, "_MAPS", OrderedDict())
    keys = [f"map{i}" for i in range(explore.MAPS_KEPT + 1)]
    for key in keys:
        explore._keep_map(replace(emap, key=key))
        if key != keys[0]:
            explore.get_map(keys[1])
    assert list(explore._MAPS) == keys[2:] + keys[1:2]
    with pytest.raises(FfclrError, match="no longer in memory"):
        explore.get_map(keys[0])


# colour by, selections, similarity search (the new controls, through their handlers)


@pytest.fixture(scope="module")
def demo(explored):
    from ui.build import build_app

    workspace, _, _ = explored
    return build_app(workspace)


@pytest.fixture(scope="module")
def handlers(demo):
    """The Explore handlers of the built app, by api_name (called directly, no server)."""
    return {fn.api_name: fn.fn for fn in demo.fns.values() if fn.api_name}


def test_hovering_a_point_asks_python_for_its_thumbnail_and_caption(explored, demo):
    from dataclasses import replace

    from ui.tabs import explore

    workspace, _, emap = explored
    plot = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "explore-plot")
    hover = plot.crop_hover
    explore._keep_map(emap)
    crop_id = emap.crop_ids[4]
    label = explore.current_labels(workspace, emap)[4]
    url, caption = hover({"map": emap.key, "colour_by": "label", "crop_id": crop_id})
    assert url.startswith("/gradio_api/file=") and url.endswith(".png")
    assert url.endswith(emap.paths[4].name)
    assert caption == f"#{crop_id} {emap.class_names[label]}"
    url, caption = hover({"map": emap.key, "colour_by": "split", "crop_id": crop_id})
    assert caption.split("\n")[1] == f"split: {emap.splits[4]}"
    score = hover({"map": emap.key, "colour_by": "label-issue score", "crop_id": crop_id})[1]
    assert score.split("\n")[1] == f"label quality (low = likely error): {emap.quality[4]:.3f}"
    for request in ({"map": emap.key, "crop_id": 10**9}, {"map": "gone", "crop_id": crop_id},
                    {"map": emap.key, "crop_id": "x"}, {"map": emap.key}, "not a dict",
                    {"map": emap.key, "colour_by": "dataset", "crop_id": crop_id}):
        assert hover(request) is None, request
    name = '<img src=x onerror="alert(1)"> & %{x}'
    hostile = explore._keep_map(replace(emap, key="hostile-names",
                                        class_names=[name] * len(emap.class_names)))
    _, caption = hover({"map": hostile.key, "colour_by": "predicted class", "crop_id": crop_id})
    assert caption == f"#{crop_id} {name}\npredicted class: {name}"


def points_of(spec: dict) -> list[int]:
    return [cid for trace in spec["data"] for cid in trace["customdata"]]


def point_at(spec: dict, crop_id: int) -> tuple[float, float]:
    """Where the figure draws crop `crop_id`, in data coordinates."""
    trace = next(t for t in spec["data"] if crop_id in t["customdata"])
    k = trace["customdata"].index(crop_id)
    return trace["x"][k], trace["y"][k]


def test_colour_by_every_option_covers_every_crop_without_plotly_hover_labels(explored):
    from ui.plot import HEIGHT, TITLE_TOP
    from ui.tabs import explore, explore_tools

    workspace, _, emap = explored
    for colour_by in explore_tools.COLOUR_BY:
        spec = json.loads(explore.map_figure(workspace, emap, colour_by=colour_by))
        assert sorted(points_of(spec)) == sorted(emap.crop_ids), colour_by
        assert {t["hoverinfo"] for t in spec["data"]} == {"none"}
        assert {t["type"] for t in spec["data"]} == {"scattergl"}
        assert spec["hover"]["colour_by"] == colour_by
        assert not any("hovertemplate" in t for t in spec["data"])
    predicted = json.loads(explore.map_figure(workspace, emap, colour_by="predicted class"))
    counts = {name: int(sum(emap.suggested == i)) for i, name in enumerate(emap.class_names)}
    assert {t["name"] for t in predicted["data"]} == {f"{n} ({k})" for n, k in counts.items() if k}
    split = json.loads(explore.map_figure(workspace, emap, colour_by="split"))
    assert [t["name"].split()[0] for t in split["data"]] == ["train", "valid", "test"]
    score = json.loads(explore.map_figure(workspace, emap, colour_by="label-issue score"))
    [trace] = score["data"]
    assert trace["marker"]["showscale"] and len(trace["marker"]["color"]) == len(emap.crop_ids)
    assert trace["marker"]["color"][0] == pytest.approx(float(emap.quality[0]), abs=1e-4)
    assert trace["marker"]["colorscale"][0] == [0.0, "#d73027"]
    drawing = json.loads(explore.map_figure(workspace, emap, colour_by="source drawing"))
    assert all(len(t["name"].rsplit(" (", 1)[0]) <= 32 for t in drawing["data"])
    assert any(t["name"].rsplit(" (", 1)[0].endswith("…") for t in drawing["data"])
    caption = explore_tools.point_caption(workspace, emap, emap.crop_ids[0], "source drawing")
    assert caption.split("\n")[1] == f"source drawing: {emap.sources[0]}"
    title = drawing["layout"]["title"]
    assert title["xanchor"] == "left" and title["yref"] == "container"
    assert (1 - title["y"]) * HEIGHT == pytest.approx(TITLE_TOP)
    assert drawing["layout"]["margin"]["t"] > TITLE_TOP and drawing["layout"]["dragmode"] == "lasso"
    with pytest.raises(FfclrError, match="colour by 'dataset'"):
        explore.map_figure(workspace, emap, colour_by="dataset")


def test_rare_drawings_share_one_colour():
    from ui.tabs.explore_tools import MAX_CATEGORIES, _folded, _frequent_first

    categories = [f"d{i}" for i in range(30) for _ in range(30 - i)]
    folded, order = _folded(categories, _frequent_first(categories), "drawings")
    assert len(order) == MAX_CATEGORIES and order[0] == "d0"
    assert order[-1] == f"{30 - MAX_CATEGORIES + 1} other drawings"
    assert folded.count(order[-1]) == sum(30 - i for i in range(MAX_CATEGORIES - 1, 30))
    assert _frequent_first(["untagged", "b", "a", "b"], "untagged") == ["b", "a", "untagged"]


def test_map_script_hides_its_tooltip_on_click_unhover_leave_and_redraw():
    from ui.plot import SCATTER_JS

    body = SCATTER_JS.split("function bind(holder)")[1]
    click = body.split("plotly_click")[1].split("});")[0]
    assert "forget()" in click
    for event in ("'plotly_unhover', forget", "'plotly_selecting', forget",
                  "'mouseleave', forget"):
        assert event in body
    assert "function forget() { hovered = null; hideTooltip(); }" in SCATTER_JS
    assert SCATTER_JS.split("function draw() {")[1].lstrip().startswith(
        "forget();\n  generation += 1;\n  infos = new Map();")
    assert "if (event) trigger('input', {point_ids: selectedIds(event)})" in SCATTER_JS


def test_map_script_drops_a_hover_answer_for_a_point_left_or_a_figure_redrawn():
    from ui.plot import SCATTER_JS

    answer = SCATTER_JS.split("server.crop_hover(")[1].split("}, () => {});")[0]
    assert "if (asked !== generation || !info) return;" in answer
    assert "if (hovered === crop) showTooltip(info, mouse);" in answer
    assert "innerHTML" not in SCATTER_JS and "caption.textContent = info[1]" in SCATTER_JS


def synthetic_spec(n: int) -> str:
    import numpy as np

    from ui.plot import Colouring, scatter_spec

    rng = np.random.default_rng(0)
    coords = (rng.normal(size=(n, 2)) * 5 + 3).astype(np.float32)
    ids = list(range(100_000, 100_000 + n))
    names = [f"class {k}" for k in range(12)]
    return scatter_spec(coords, ids, Colouring("label", [names[i % 12] for i in range(n)], names),
                        flagged=set(ids[::50]), selected=ids[3], selection=set(ids[:100]),
                        revision="r", hover={"map": "r", "colour_by": "label"})


def test_map_payload_is_small_per_point_and_grows_linearly():
    import numpy as np

    from ui.plot import DIGITS

    large, larger = synthetic_spec(5_000), synthetic_spec(20_000)
    assert len(large) / 5_000 < 30 and (len(larger) - len(large)) / 15_000 < 30
    assert len(larger) / len(large) == pytest.approx(4, rel=0.1)
    spec = json.loads(large)
    assert {t["type"] for t in spec["data"]} == {"scattergl"}
    assert set(spec) == {"data", "layout", "n_points", "hover", "ring"} and spec["n_points"] == 5_000
    xs = np.concatenate([t["x"] for t in spec["data"]])
    steps = np.round(xs * 10 ** (DIGITS - 1), 6)
    assert np.allclose(steps, np.round(steps)) and len(set(xs.tolist())) > 1_000
    [ring] = spec["layout"]["shapes"]
    assert (ring["xanchor"], ring["yanchor"]) == point_at(spec, 100_003)
    assert {k: v for k, v in ring.items() if k not in ("xanchor", "yanchor")} == spec["ring"]
    flagged = [t for t in spec["data"] if t["customdata"][0] == 100_000][0]
    assert flagged["marker"]["size"][0] == 11 and flagged["marker"]["line"]["width"][0] == 2
    assert sum(len(t["selectedpoints"]) for t in spec["data"]) == 100


def test_neighbour_similarities_show_three_digits(explored):
    import re

    from ui.tabs import explore

    workspace, _, emap = explored
    captions = [c for _, c in explore.crop_details(workspace, emap, emap.crop_ids[5])["neighbours"]]
    assert all(re.match(r"^-?\d\.\d{3} · #\d+ ", c) for c in captions), captions
    sims = [float(c.split(" · ")[0]) for c in captions]
    assert sims == sorted(sims, reverse=True)


def test_colour_dropdown_redraws_the_map(explored, handlers):
    _, _, emap = explored
    status, figure = handlers["explore_colour"](emap.key, None, "split", [])
    assert status == "" and json.loads(figure)["layout"]["legend"]["title"]["text"] == "split"
    assert handlers["explore_colour"](None, None, "split", []) == (gr_skip(), gr_skip())


def gr_skip():
    import gradio as gr

    return gr.skip()


def test_lasso_selects_crops_of_the_map_then_relabels_them_at_once(explored, handlers):
    import gradio as gr

    from ui.tabs import explore

    workspace, _, emap = explored
    chosen = emap.crop_ids[-6:-1]
    status, selection, info, gallery, csv_button = handlers["explore_lasso"](
        emap.key, gr.EventData(None, {"point_ids": [10**9, *reversed(chosen), chosen[0]]}))
    assert selection == chosen and info.startswith("**5 crops selected**")
    assert [caption.split()[0] for _, caption in gallery] == [f"#{c}" for c in chosen]
    assert csv_button.visible is False
    before = dict(zip(emap.crop_ids, explore.current_labels(workspace, emap)))
    new = (before[chosen[0]] + 1) % len(emap.class_names)
    status, batch, figure, rows, info, gallery, details, label = handlers[
        "explore_relabel_selection"](emap.key, selection, new, chosen[1], "label")
    changed = sum(before[c] != new for c in chosen)
    assert f"Saved: {changed} of 5 selected crops" in status and len(batch) == changed
    assert f"Crop #{chosen[1]}" in details and label["value"] == new
    with workspace.open_store() as store:
        assert all(store.crop(c)["label"] == new for c in chosen)
    spec = json.loads(figure)
    trace = next(t for t in spec["data"] if t["name"].startswith(emap.class_names[new]))
    assert set(chosen) <= set(trace["customdata"])
    assert {trace["customdata"][i] for i in trace["selectedpoints"]} == set(chosen)
    assert "Undone" in explore.undo(workspace, chosen[0])
    assert explore.current_labels(workspace, emap)[emap.row(chosen[0])] == before[chosen[0]]
    explore.relabel(workspace, chosen[0], new)
    status, batch, *_ = handlers["explore_undo_selection"](emap.key, batch, selection, None,
                                                           "label")
    assert f"Undone: {changed - 1} crops" in status and "1 edited again" in status
    assert batch is None
    labels = explore.current_labels(workspace, emap)
    assert [labels[emap.row(c)] for c in chosen] == [new] + [before[c] for c in chosen[1:]]
    assert "no selection relabel" in handlers["explore_undo_selection"](
        emap.key, None, selection, None, "label")[0]
    cleared = handlers["explore_lasso"](emap.key, gr.EventData(None, {"point_ids": []}))
    assert cleared[1] == [] and cleared[2].startswith("No crops selected")
    status = handlers["explore_relabel_selection"](emap.key, [], new, None, "label")[0]
    assert "select crops first" in status


def test_selection_is_tagged_coloured_by_tag_and_exported_as_csv(explored, handlers):
    import csv

    workspace, _, emap = explored
    chosen = emap.crop_ids[10:14]
    status, figure = handlers["explore_tag"](emap.key, chosen, "  check   me ", None, "tag")
    assert "Tagged 4 of 4 selected crops **check me**" in status
    names = {t["name"] for t in json.loads(figure)["data"]}
    assert "check me (4)" in names and f"untagged ({len(emap.crop_ids) - 4})" in names
    status, _ = handlers["explore_untag"](emap.key, chosen[:1], "check me", None, "tag")
    assert "from 1 of 1" in status
    from ui.tabs.explore_tools import point_caption

    assert point_caption(workspace, emap, chosen[1], "tag").endswith("\ntag: check me")
    assert point_caption(workspace, emap, chosen[0], "tag").endswith("\ntag: untagged")
    assert "type a tag first" in handlers["explore_tag"](emap.key, chosen, " ", None, "tag")[0]
    status, button = handlers["explore_export_selection"](emap.key, chosen)
    assert "4 crops written" in status and button.visible is True
    assert button.value["orig_name"] == "selection-4-crops.csv"
    with open(button.value["path"], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["crop_id"]) for r in rows] == chosen
    assert list(rows[0]) == ["crop_id", "path", "split", "label", "suggested", "label_quality",
                             "outlier_distance", "flagged", "source_image", "tags"]
    assert [r["tags"] for r in rows] == ["", "check me", "check me", "check me"]
    assert rows[0]["path"] == str(emap.paths[emap.row(chosen[0])])
    assert "select crops first" in handlers["explore_export_selection"](emap.key, [])[0]


def test_similar_crops_to_a_clicked_crop_and_to_a_dropped_image(explored, handlers, tmp_path):
    import re

    import gradio as gr

    _, _, emap = explored
    crop_id = emap.crop_ids[7]
    status, ids, gallery = handlers["explore_similar"](emap.key, crop_id)
    assert "most similar to crop" in status and len(ids) == len(gallery) == 16
    assert crop_id not in ids
    sims = [float(caption.split(" · ")[0]) for _, caption in gallery]
    assert sims == sorted(sims, reverse=True)
    assert all(re.match(r"^-?\d\.\d{3} · #\d+ ", caption) for _, caption in gallery)
    dropped = emap.paths[emap.row(crop_id)]
    status, ids, gallery = handlers["explore_similar_image"](emap.key, str(dropped))
    assert "dropped image" in status and ids[0] == crop_id
    assert gallery[0][1].startswith("1.000 · ")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    assert "not an image" in handlers["explore_similar_image"](emap.key, str(broken))[0]
    assert "click a crop" in handlers["explore_similar"](emap.key, None)[0]
    status, selection, info, _, _, figure = handlers["explore_select_similar"](
        emap.key, ids, None, "label")
    assert sorted(selection) == sorted(ids) and info.startswith("**16 crops selected**")
    shown = handlers["explore_show_similar"](emap.key, "label", selection, ids,
                                             gr.SelectData(None, {"index": 2, "value": None}))
    assert shown[1] == ids[2] and f"Crop #{ids[2]}" in shown[4]
    shown = handlers["explore_show_selected"](emap.key, "label", selection, selection,
                                              gr.SelectData(None, {"index": 0, "value": None}))
    assert shown[1] == selection[0]


def test_a_map_click_leaves_the_figure_to_the_browser_other_ways_to_a_crop_ring_it(
        explored, handlers):
    import gradio as gr

    _, _, emap = explored
    crop_id = emap.crop_ids[3]
    clicked = handlers["explore_point"](emap.key, "label", [],
                                        gr.EventData(None, {"point_id": crop_id}))
    assert clicked[1] == crop_id and f"Crop #{crop_id}" in clicked[4]
    assert isinstance(clicked[-1], type(gr.skip()))
    other = emap.crop_ids[5]
    shown = handlers["explore_show_selected"](emap.key, "label", [other], [other],
                                              gr.SelectData(None, {"index": 0, "value": None}))
    figure = json.loads(shown[-1])
    [ring] = figure["layout"]["shapes"]
    assert shown[1] == other and (ring["xanchor"], ring["yanchor"]) == point_at(figure, other)
    assert {k: v for k, v in ring.items() if k not in ("xanchor", "yanchor")} == figure["ring"]


def test_computing_another_map_clears_the_previous_crop_and_selection(explored, handlers,
                                                                     monkeypatch):
    import gradio as gr

    workspace, checkpoint, emap = explored
    crop_id = emap.crop_ids[0]
    shown = handlers["explore_point"](emap.key, "label", [],
                                      gr.EventData(None, {"point_id": crop_id}))
    assert shown[1] == crop_id
    one_c(monkeypatch)
    out = handlers["explore_compute"](str(checkpoint), "demo", "train", "label",
                                      progress=lambda *args, **kwargs: None)
    (status, key, rows, selection_label, similar, similar_gallery, batch, selected, crop,
     context, info, label, neighbours, figure, selection, selection_info, selection_gallery,
     csv_button) = out
    assert batch is None
    assert "Map of" in status and key != emap.key
    assert (selected, crop, context, info, neighbours) == (None, None, None, "", [])
    assert label["choices"] == [] and label["value"] is None
    assert selection == [] and selection_gallery == [] and similar == similar_gallery == []
    assert [name for name, _ in selection_label["choices"]] == emap.class_names
    assert {cid for t in json.loads(figure)["data"] for cid in t["customdata"]} <= set(
        emap.crop_ids)
    status = handlers["explore_relabel"](key, selected, 0, "label", [])[0]
    assert "click a crop on the map first" in status


def test_a_reloaded_page_shows_the_last_map_again(explored, monkeypatch):
    """After a reload the Explore tab was empty until Compute map was pressed again."""
    from ui.build import build_app
    from ui.tabs import explore
    from ui_wiring import call, skipped

    workspace, checkpoint, emap = explored
    one_c(monkeypatch)
    demo = build_app(workspace)
    explore._last_map_file(workspace).unlink(missing_ok=True)
    fresh = call(demo, "tab-explore", "select", None, None, None, "label")
    assert all(skipped(fresh[key]) for key in ("explore-status", "explore-plot"))
    call(demo, "explore-compute", "click", str(checkpoint), "demo", "valid", "label")
    assert explore.last_map(workspace) == {"checkpoint": str(checkpoint), "dataset": "demo",
                                           "split": "valid"}
    reloaded = call(demo, "tab-explore", "select", None, None, None, "label")
    assert reloaded["explore-checkpoint"]["value"] == str(checkpoint)
    assert reloaded["explore-split"]["value"] == "valid"
    assert "Map of" in reloaded["explore-status"]
    shown = {cid for trace in json.loads(reloaded["explore-plot"])["data"]
             for cid in trace["customdata"]}
    with workspace.open_store() as store:
        valid = {c["id"] for c in store.crops(store.dataset("demo")["id"], "valid")}
    assert shown == valid
    kept = call(demo, "tab-explore", "select", str(checkpoint), "demo", "some map", "label")
    assert skipped(kept["explore-plot"])  # a page showing a map keeps it
    asked = call(demo, "tab-explore", "select", "/elsewhere/other.pth.tar", "demo", None, "label")
    assert skipped(asked["explore-plot"])  # a checkpoint opened from Runs is not replaced
    explore._last_map_file(workspace).write_text("{not json")
    assert explore.last_map(workspace) is None
