"""Pretrain tab handlers: options → config, live view from the store, queue, cancel, start."""
from __future__ import annotations

import time
from dataclasses import fields, replace

import pytest

from ffclr.errors import FfclrError
from ffclr.train.config import PretrainConfig
from ui.tabs import pretrain


@pytest.fixture
def imported(workspace, demo_export):
    from ffclr.data.coco_import import import_export

    import_export(demo_export, "demo", workspace)
    return workspace


def test_options_become_a_validated_config(imported):
    options = pretrain.PretrainOptions(dataset="demo", split="train",
                                       mode="labeled (supervised contrastive)", device="CPU",
                                       precision="fp32",
                                       settings=dict(image_size=24, batch_size=16, epochs=3,
                                                     time_budget=" 30 ", lr="", run_name=" "))
    config = pretrain.pretrain_config(imported, options)
    assert config.data == str(imported.dataset_dir("demo") / "train")
    assert config.dataset_name == "ff_devices_labeled" and config.disable_cuda
    assert config.time_budget == 30 and config.bf16 is False and config.lr is None
    assert (config.image_size, config.batch_size, config.epochs) == (24, 16, 3)
    assert config.run_name is None
    with pytest.raises(FfclrError, match="no split 'nope'"):
        pretrain.pretrain_config(imported, pretrain.PretrainOptions(dataset="demo", split="nope"))
    with pytest.raises(FfclrError, match="pick a dataset"):
        pretrain.pretrain_config(imported, pretrain.PretrainOptions(dataset=None))
    for settings, refusal in ((dict(image_size=4), "image-size"), (dict(lr="0"), "lr"),
                              (dict(lr="fast"), "'fast' is not a number"),
                              (dict(time_budget=0), "time-budget"), (dict(epochs=None), "epochs")):
        with pytest.raises(FfclrError, match=refusal):
            pretrain.pretrain_config(imported, pretrain.PretrainOptions("demo", settings=settings))


def test_defaults_are_the_configs_and_presets_override_it(imported):
    config = pretrain.pretrain_config(imported, pretrain.PretrainOptions(dataset="demo"))
    defaults = PretrainConfig()
    assert replace(config, data=None, **{name: getattr(defaults, name)
                                          for name in pretrain.APP_SETTINGS}) == defaults
    assert set(pretrain.START_INPUTS) == {*pretrain.OWN_CHOICES, *pretrain.SETTINGS, "run_name"}
    quick = pretrain.preset_values("CPU quick (≈3 min)")
    assert dict(zip(pretrain.SETTINGS, quick)) == dict(
        arch="resnet18", image_size=48, batch_size=256, epochs=1000, time_budget="180", lr="",
        temperature=defaults.temperature, augment=defaults.augment, knn_every=5)
    assert quick[-2:] == ["auto", "auto"]
    gpu = pretrain.preset_values("GPU (ResNet-50, 64 px)")
    assert gpu[:4] == ["resnet50", 64, 512, 200] and gpu[-2:] == ["GPU", "fp16 (GPU)"]
    for name, preset in pretrain.PRESETS.items():
        assert set(preset) <= {f.name for f in fields(PretrainConfig)}, name
        values = dict(zip((*pretrain.SETTINGS, "device", "precision"),
                          pretrain.preset_values(name)))
        options = pretrain.options_from_widgets(  # device auto: this machine may lack CUDA
            dict(values, dataset="demo", split="train", mode=pretrain.DEFAULT_MODE, run_name="",
                 device="auto"))
        config = pretrain.pretrain_config(imported, options)
        assert {k: getattr(config, k) for k in preset} == preset, name


def test_tab_shows_the_configs_defaults(workspace):
    import gradio as gr

    from ui.common import Context

    with gr.Blocks() as demo:
        with gr.Tab("Pretrain") as tab:
            pretrain.build(Context(workspace), tab)
    shown = {block.label: block.value for block in demo.blocks.values()
             if isinstance(block, gr.components.Component) and block.label}
    defaults = PretrainConfig()
    assert all(block.value is not None for block in demo.blocks.values()
               if isinstance(block, gr.Number)), "a Gradio 6 Number shows an initial None as 0"
    assert shown["Epochs (at most)"] == defaults.epochs
    assert shown["kNN every N epochs (0 = never)"] == defaults.knn_every
    assert shown["Time budget (s)"] == "" and defaults.time_budget is None
    assert shown["Learning rate"] == "" and defaults.lr is None
    assert (shown["Architecture"], shown["Image size (px)"], shown["Batch"]) == (
        defaults.arch, defaults.image_size, defaults.batch_size)
    assert (shown["Temperature"], shown["Augmentation"]) == (defaults.temperature,
                                                             defaults.augment)


def test_view_follows_the_store_queue_failure_and_cancel(workspace):
    with workspace.open_store() as store:
        failed = store.create_run("pretrain", {"arch": "resnet18", "epochs": 4}, name="old")
        store.mark_running(failed)
        store.log_metrics(failed, 2, {"loss": 3.0, "views_per_s": 50.0, "epoch": 1.0})
        store.log_metrics(failed, 4, {"loss": 2.5, "views_per_s": 60.0, "epoch": 2.0,
                                      "knn_top1": 0.5})
        store.finish_run(failed, "failed", error="loss became nan at step 4; lower --lr",
                         checkpoint="/ws/checkpoints/old/checkpoint_0001.pth.tar")
        running = store.create_run("pretrain", {"arch": "resnet18", "epochs": 10,
                                                "time_budget": 600}, name="now")
        store.mark_running(running)
        store.log_metrics(running, 2, {"loss": 4.0, "epoch": 1.0})
        queued = store.create_run("pretrain", {"arch": "resnet50"}, name="next")
    text = pretrain.run_status(workspace, failed)
    assert "failed" in text and "lower --lr" in text and "checkpoint_0001.pth.tar" in text
    assert "kNN top-1 50.0%" in text and "epoch 2.0 / 4" in text
    series = pretrain.curves(workspace, failed)
    assert series["loss"] == ([2, 4], [3.0, 2.5])
    figure = pretrain.curves_figure(series)
    assert list(figure.data[0].y) == [3.0, 2.5] and list(figure.data[2].y) == [0.5]
    assert "ETA" in pretrain.run_status(workspace, running)
    assert [r[0] for r in pretrain.queue_rows(workspace)] == [running, queued]
    assert pretrain.default_run(workspace) == running
    before = pretrain.poll_signature(workspace, running)
    with workspace.open_store() as store:
        store.log_metrics(running, 4, {"loss": 3.5})
    assert pretrain.poll_signature(workspace, running) != before
    assert "Cancel requested" in pretrain.cancel(workspace, queued)
    with workspace.open_store() as store:
        assert store.cancel_requested(queued)
    with pytest.raises(FfclrError, match="already failed"):
        pretrain.cancel(workspace, failed)


def test_start_runs_a_worker_that_writes_metrics_and_can_be_cancelled(imported):
    options = pretrain.PretrainOptions(dataset="demo", device="CPU",
                                       settings=dict(image_size=16, batch_size=16, epochs=50,
                                                     time_budget=120, knn_every=0))
    run_id = pretrain.start(imported, options)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and "loss" not in pretrain.curves(imported, run_id):
        time.sleep(0.5)
    assert "loss" in pretrain.curves(imported, run_id), pretrain.run_status(imported, run_id)
    pretrain.cancel(imported, run_id)
    while time.monotonic() < deadline:
        with imported.open_store() as store:
            run = store.run(run_id)
        if run["status"] not in ("queued", "running"):
            break
        time.sleep(0.5)
    assert run["status"] == "cancelled" and run["checkpoint"]
    assert "Last checkpoint" in pretrain.run_status(imported, run_id)
