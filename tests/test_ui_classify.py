"""Classify tab handlers: dropped images → top-k, neighbours, unknown flag; bad files refused."""
from __future__ import annotations

import pytest
from PIL import Image

from ffclr.errors import FfclrError
from test_ui_probe import one_c
from ui.tabs import classify, probe


@pytest.fixture
def classifier(workspace, demo_export, monkeypatch):
    import torch

    from ffclr.checkpoint import save_checkpoint
    from ffclr.coco_import import import_export
    from ffclr.models import SimCLRModel

    import_export(demo_export, "demo", workspace)
    one_c(monkeypatch)
    torch.manual_seed(0)
    checkpoint = save_checkpoint(workspace.checkpoints / "tiny" / "checkpoint_0001.pth.tar",
                                 {"epoch": 1, "arch": "resnet18", "image_size": 32,
                                  "state_dict": SimCLRModel("resnet18", out_dim=32).state_dict()})
    report = probe.run_probe(workspace, str(checkpoint), "demo", "train", "valid")
    return workspace, report.run_id


def test_classify_gives_top_k_neighbours_and_refuses_non_images(classifier, tmp_path):
    workspace, run_id = classifier
    assert [v for _, v in classify.classifier_choices(workspace)] == [run_id]
    with workspace.open_store() as store:
        crop = store.crops(store.dataset("demo")["id"], "train")[0]
        root = store.dataset("demo")["root"]
    symbol = f"{root}/{crop['path']}"
    text = tmp_path / "notes.png"
    text.write_text("this is text, not a picture")
    huge = tmp_path / "huge.png"
    Image.new("RGB", (8000, 6000)).save(huge)
    entries = classify.classify(workspace, run_id, [symbol, str(text), str(huge)], top_k=3)
    assert entries[0]["result"] is not None and len(entries[0]["result"].top) <= 3
    assert "not an image" in entries[1]["error"] and "too large" in entries[2]["error"]
    rows = classify.result_rows(entries)
    assert rows[0][0] == crop["path"].rsplit("/", 1)[-1] and 0 < rows[0][2] <= 1
    assert rows[1][1].startswith("refused:")
    gallery = classify.neighbour_gallery(entries)
    assert len(gallery) == 8 and gallery[0][0] == symbol  # the crop itself is its own nearest


def test_classify_explains_what_is_missing(classifier):
    workspace, run_id = classifier
    with pytest.raises(FfclrError, match="drop one or more"):
        classify.classify(workspace, run_id, [])
    with pytest.raises(FfclrError, match="pick a classifier"):
        classify.classify(workspace, None, ["x.png"])
