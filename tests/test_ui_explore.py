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
    url = spec["thumbs"][str(points[0])][0]
    assert url.startswith("/gradio_api/file=") and url.endswith(".png")
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
