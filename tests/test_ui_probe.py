"""Probe tab handlers: fit on train, score on valid, tables, heatmap, CSV; refusals."""
from __future__ import annotations

import csv

import pytest

from ffclr.errors import FfclrError
from ui.tabs import probe


def one_c(monkeypatch) -> None:
    """ffclr.eval.probe's own C search (tested there) over one value, so UI tests stay quick."""
    import functools

    from ffclr.eval import probe as probe_module

    monkeypatch.setattr(probe_module, "select_c",
                        functools.partial(probe_module.select_c, grid=(1.0,)))


def demo_with_tiny_checkpoint(workspace, demo_export, monkeypatch) -> str:
    """The demo export imported as `demo`, and an untrained ResNet-18 checkpoint at 32 px."""
    import torch

    from ffclr.model.checkpoint import save_checkpoint
    from ffclr.data.coco_import import import_export
    from ffclr.model.networks import SimCLRModel

    import_export(demo_export, "demo", workspace)
    one_c(monkeypatch)
    torch.manual_seed(0)
    model = SimCLRModel("resnet18", out_dim=32, small_stem=True)
    return str(save_checkpoint(workspace.checkpoints / "tiny" / "checkpoint_0001.pth.tar",
                               {"epoch": 1, "arch": "resnet18", "image_size": 32,
                                "state_dict": model.state_dict()}))


@pytest.fixture
def probed(workspace, demo_export, monkeypatch):
    return workspace, demo_with_tiny_checkpoint(workspace, demo_export, monkeypatch)


def test_probe_reports_metrics_baseline_classes_confusion_and_csv(probed):
    workspace, checkpoint = probed
    report = probe.run_probe(workspace, checkpoint, "demo", "train", "valid")
    rows = {r[0]: r[1:] for r in probe.summary_rows(report.metrics)}
    assert 0 <= rows["top-1"][0] <= 1 and 0 <= rows["top-1"][1] <= 1
    assert rows["top-1"][1] == round(report.metrics["baseline"]["top1"], 4)
    with workspace.open_store() as store:
        valid = store.crops(store.dataset("demo")["id"], "valid")
        n_valid = len(valid)
    assert rows["train / test crops"][1] == n_valid
    guessed = {r["class_index"] for r in report.metrics["per_class"] if r["predicted"]}
    assert rows["classes in macro-F1 (tested or predicted)"][0] == len(
        guessed | {c["label"] for c in valid})
    classes = probe.class_rows(report.metrics)
    assert sum(r[2] for r in classes) == n_valid
    with workspace.open_store() as store:
        n_train = len(store.crops(store.dataset("demo")["id"], "train"))
    assert sum(r[1] or 0 for r in classes) == n_train
    figure = probe.confusion_figure(report.metrics)
    assert sum(map(sum, figure.data[0].z)) == n_valid
    with open(report.files["csv"], newline="") as handle:
        table = list(csv.DictReader(handle))
    assert any(row["class"] == "overall:top1" for row in table)
    assert "Probe run #" in probe.headline(report)
    with workspace.open_store() as store:
        assert store.run(report.run_id)["status"] == "finished"


def test_probe_refuses_scoring_on_its_training_split(probed):
    workspace, checkpoint = probed
    with pytest.raises(FfclrError, match="not fitted on"):
        probe.run_probe(workspace, checkpoint, "demo", "train", "train")
    with pytest.raises(FfclrError, match="pick a checkpoint"):
        probe.run_probe(workspace, None, "demo", "train", "valid")


def test_per_class_table_puts_the_counts_beside_the_class_in_view(workspace):
    """n_train was the last column, pushed out of view by long class names."""
    from ui.build import build_app
    from ui_wiring import component

    metrics = {"per_class": [
        {"class": "dedicated-metal-module-box-for-fire-smoke-exhaust-fan", "precision": 0.5,
         "recall": 0.25, "f1": 1 / 3, "support": 4, "n_train": 9},
        {"class": "unseen", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0,
         "n_train": 0},
        {"class": "untested, guessed", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0,
         "n_train": 5, "predicted": 2},
        {"class": "tested, never guessed", "precision": 0.0, "recall": 0.0, "f1": 0.0,
         "support": 3, "n_train": 5, "predicted": 0}]}
    rows = probe.class_rows(metrics)
    assert rows == [["dedicated-metal-module-box-for-fire-smoke-exhaust-fan", 9, 4, 0.333, 0.5,
                     0.25], ["untested, guessed", 5, 0, None, 0.0, None],
                    ["tested, never guessed", 5, 3, 0.0, None, 0.0]]
    assert probe.CLASS_COLUMNS[:3] == ["class", "n_train", "support"]
    table = component(build_app(workspace), "probe-classes")
    assert table.wrap and len(table.column_widths) == len(probe.CLASS_COLUMNS)


def test_opening_probe_after_an_import_fills_the_splits_in_the_same_step(workspace, demo_export):
    """The splits used to follow in a second event after the dataset, so a quick Fit probe
    said 'pick the train and the test split'."""
    from ffclr.data.coco_import import import_export
    from ui.build import build_app
    from ui_wiring import call, skipped

    demo = build_app(workspace)
    import_export(demo_export, "demo", workspace)
    opened = list(call(demo, "tab-probe", "select", None, None, None, None).values())
    assert opened[1]["value"] == "demo"
    assert (opened[2]["value"], opened[3]["value"]) == ("train", "valid")
    again = list(call(demo, "tab-probe", "select", None, "demo", "valid", "test").values())
    assert skipped(again[2]) and skipped(again[3])
