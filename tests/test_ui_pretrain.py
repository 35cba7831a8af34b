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
    assert list(figure.data[0].y) == [3.0, 2.5] and list(figure.data[2].y) == [50.0]
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


def test_curves_plot_epochs_and_knn_in_percent_as_the_status_says(workspace):
    """The axis said step; the status reads epochs and kNN in percent, and so does the plot."""
    with workspace.open_store() as store:
        run = store.create_run("pretrain", {"arch": "resnet18", "epochs": 4}, name="r")
        store.mark_running(run)
        for step in (2, 4, 6):
            store.log_metrics(run, step, {"loss": 5.0 - step / 2, "epoch": step / 4})
        store.log_metrics(run, 8, {"knn_top1": 0.25})
    figure = pretrain.curves_figure(pretrain.curves(workspace, run))
    loss, _, knn = figure.data
    assert list(loss.x) == [0.5, 1.0, 1.5] and list(knn.x) == [2.0] and list(knn.y) == [25.0]
    assert figure.layout.xaxis.title.text == "epoch"
    assert "(%)" in figure.layout.annotations[2].text
    assert "kNN top-1 25.0%" in pretrain.run_status(workspace, run)
    no_epochs = pretrain.curves_figure({"loss": ([3, 6], [1.0, 0.5])})
    assert list(no_epochs.data[0].x) == [3, 6] and no_epochs.layout.xaxis.title.text == "step"


def test_a_queued_run_reads_as_markdown_and_says_what_it_waits_for(workspace):
    with workspace.open_store() as store:
        first = store.create_run("pretrain", {"arch": "resnet18"}, status="queued")
        second = store.create_run("pretrain", {"arch": "resnet18"}, name="mine",
                                  status="queued")
    text = pretrain.run_status(workspace, first)
    assert text.startswith(f"**Run #{first}** · **queued** · ")
    assert "Starting: waiting for the worker process" in text
    text = pretrain.run_status(workspace, second)
    assert text.startswith(f"**Run #{second}** mine · **queued** · ")
    assert f"waiting for run #{first} to finish" in text
    empty = pretrain.curves_figure({}, "no points yet")
    assert empty.layout.annotations[-1].text == "no points yet"


def test_start_shows_the_queued_run_at_once(imported, monkeypatch):
    """Start used to leave the view empty until the worker's first points (half a minute)."""
    def queue_only(workspace, config):
        with workspace.open_store() as store:
            return store.create_run("pretrain", config.to_dict(), status="queued")

    toasts = []
    monkeypatch.setattr(pretrain.jobs, "start_pretrain", queue_only)
    monkeypatch.setattr(pretrain, "notice_lost_workers", lambda *args: None)
    monkeypatch.setattr(pretrain, "info", toasts.append)
    values = dict(pretrain.form_values(imported, {"config": {}, "dataset_id": None}),
                  dataset="demo", split="train", run_name="")
    message, picker, status, figure, queue, _ = pretrain.started(imported, values)
    run_id = picker["value"]
    assert f"Started run #{run_id}." in message and toasts and "Started" in toasts[0]
    assert f"**Run #{run_id}**" in status and "waiting for the worker" in status
    assert figure.layout.annotations[-1].text == "no points yet"
    assert queue == [[run_id, "", "queued", queue[0][3], "demo"]]


def test_a_reloaded_page_shows_the_active_runs_settings(imported):
    """After a reload the form showed the defaults, not the settings of the run under way."""
    from ui_wiring import skipped

    options = pretrain.PretrainOptions(
        dataset="demo", split="valid", mode="labeled (supervised contrastive)", device="CPU",
        precision="fp32", settings=dict(image_size=24, batch_size=16, epochs=7, time_budget="90",
                                        lr="0.01", knn_every=3, augment="rotate",
                                        run_name="mine"))
    config = pretrain.pretrain_config(imported, options)
    with imported.open_store() as store:
        done = store.create_run("pretrain", pretrain.pretrain_config(
            imported, pretrain.PretrainOptions(dataset="demo")).to_dict(), name="old")
        store.finish_run(done, "finished")
    assert all(skipped(v) for v in pretrain.load_view(imported)[5:])
    with imported.open_store() as store:
        run = store.create_run("pretrain", config.to_dict(), name="mine")
        store.mark_running(run)
    loaded = pretrain.load_view(imported)
    assert loaded[0]["value"] == run and f"**Run #{run}**" in loaded[1]
    shown = dict(zip(pretrain.START_INPUTS, loaded[5:]))
    for picker, choices in (("dataset", ["demo"]), ("split", ["train", "valid", "test"])):
        assert set(shown[picker]["choices"]) == set(choices)
        shown[picker] = shown[picker]["value"]
    assert shown == dict(dataset="demo", split="valid", mode="labeled (supervised contrastive)",
                         arch=config.arch, image_size=24, batch_size=16, epochs=7,
                         time_budget="90", lr="0.01", temperature=config.temperature,
                         device="CPU", precision="fp32", augment="rotate", knn_every=3,
                         run_name="")
    again = pretrain.pretrain_config(imported, pretrain.options_from_widgets(shown))
    assert again == config.__class__(**{**config.to_dict(), "run_name": None})
    assert loaded[-1] is None  # settings of its own, no preset
    quick = "CPU quick (≈3 min)"
    with imported.open_store() as store:
        store.finish_run(run, "finished")
        preset_run = store.create_run("pretrain", {**config.to_dict(), **pretrain.PRESETS[quick]})
        store.mark_running(preset_run)
    assert pretrain.load_view(imported)[-1] == quick
