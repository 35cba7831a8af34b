"""Pretraining engine on tiny synthetic crops: loss, checkpoints, resume, cancel, seed
compatibility, jobs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from ffclr.model.checkpoint import load_checkpoint, load_encoder, save_checkpoint
from ffclr.errors import FfclrError
from ffclr.train.config import PretrainConfig
from ffclr.train.loop import pretrain

REPO = Path(__file__).resolve().parents[1]


def write_crops(root: Path, per_class: int = 8, seed: int = 0) -> Path:
    """Bright strokes on a dark background, three shapes, random sizes and colours."""
    rng = np.random.default_rng(seed)
    for c, shape in enumerate(["ellipse", "box", "cross"]):
        (root / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = (int(v) for v in rng.integers(18, 40, 2))
            image = Image.new("RGB", (w, h), (18, 18, 22))
            draw = ImageDraw.Draw(image)
            colour = tuple(int(v) for v in rng.integers(90, 256, 3))
            if shape == "ellipse":
                draw.ellipse((3, 3, w - 4, h - 4), outline=colour, width=2)
            elif shape == "box":
                draw.rectangle((3, 3, w - 4, h - 4), outline=colour, width=2)
            else:
                draw.line((3, 3, w - 4, h - 4), fill=colour, width=2)
                draw.line((3, h - 4, w - 4, 3), fill=colour, width=2)
            image.save(root / shape / f"{i}.png")
    return root


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run faster on one thread, and far faster when other work shares the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    return write_crops(tmp_path_factory.mktemp("crops") / "train")


def tiny(crops: Path, **overrides) -> PretrainConfig:
    values = dict(data=str(crops), image_size=8, batch_size=8, epochs=2, seed=3,
                  log_every_n_steps=1, bf16=False, lr=1e-3, warmup=0, workers=2,
                  checkpoint_every=1, small_stem=True)
    return PretrainConfig(**{**values, **overrides})


def _fixed_view_loss(model, crops: Path) -> float:
    """Loss of a model on the same augmented views of every crop (batch-norm in batch mode)."""
    from ffclr.train.augment import PRESETS, make_views
    from ffclr.train.losses import supcon
    from ffclr.train.data import decode_crops as crop_pixels
    from ffclr.data.preprocess import to_model_input

    paths = sorted(crops.rglob("*.png"))
    pixels, _ = crop_pixels(paths, 8)
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    views = make_views(images, 2, PRESETS["default"], torch.Generator().manual_seed(123))
    with torch.no_grad():
        z = model.train()(to_model_input(views))
    return supcon(z.view(len(paths), 2, -1), None, 0.5).item()


def test_loss_falls_and_run_is_recorded(crops, workspace):
    from ffclr.model.checkpoint import build_model
    from ffclr.model.networks import SimCLRModel

    config = tiny(crops, epochs=8, temperature=0.5)
    torch.manual_seed(config.seed)
    before = _fixed_view_loss(SimCLRModel("resnet18", 128, small_stem=True), crops)
    result = pretrain(config, workspace)
    after = _fixed_view_loss(build_model(load_checkpoint(result.checkpoint)), crops)
    assert after < before - 0.2, (before, after)
    assert result.status == "finished" and result.steps == 24
    with workspace.open_store() as store:
        run = store.run(result.run_id)
        losses = [m["value"] for m in store.metrics(result.run_id, "loss")]
        assert run["status"] == "finished" and run["kind"] == "pretrain"
        assert run["config"]["image_size"] == 8 and run["checkpoint"] == str(result.checkpoint)
        assert {"acc/top1", "learning_rate", "views_per_s"} <= set(store.latest_metrics(
            result.run_id))
    assert len(losses) == 24 and all(np.isfinite(losses))
    assert list((workspace.runs / result.run_name).glob("events.out.tfevents.*"))


def test_checkpoint_round_trip(crops, workspace):
    result = pretrain(tiny(crops, epochs=1, knn_every=1), workspace)
    assert result.checkpoint.name == "checkpoint_0001.pth.tar"
    assert result.checkpoint.parent == workspace.checkpoints / result.run_name
    state = load_checkpoint(result.checkpoint)
    assert {"epoch", "arch", "state_dict", "optimizer", "image_size", "mean", "std",
            "class_names", "config", "scheduler", "rng"} <= set(state)
    assert all(k.startswith("backbone.") for k in state["state_dict"])
    assert 0.0 <= result.summary["knn_top1"] <= 1.0
    encoder = load_encoder(result.checkpoint)
    assert (encoder.image_size, encoder.arch, encoder.feature_dim) == (8, "resnet18", 512)
    assert encoder.class_names == ["box", "cross", "ellipse"]
    assert encoder.config["batch_size"] == 8 and not encoder.model.training
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    from ffclr.model.networks import SimCLRModel

    model = SimCLRModel("resnet18", 128, small_stem=True)
    model.load_state_dict(state["state_dict"])
    with torch.no_grad():
        assert torch.allclose(encoder.model(x), model.eval().features(x), atol=1e-5)


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "notes.pth.tar"
    bad.write_text("not a checkpoint")
    with pytest.raises(FfclrError, match="notes.pth.tar"):
        load_encoder(bad)
    with pytest.raises(FfclrError, match="missing.pth.tar"):
        load_checkpoint(tmp_path / "missing.pth.tar")


def test_seed_checkpoint_loads(tmp_path):
    """A checkpoint as sthalles/SimCLR's run.py writes it, from its own model definition."""
    from torch import nn
    from torchvision import models

    class ResNetSimCLR(nn.Module):
        def __init__(self, out_dim):
            super().__init__()
            self.backbone = models.resnet18(weights=None, num_classes=out_dim)
            dim_mlp = self.backbone.fc.in_features
            self.backbone.fc = nn.Sequential(nn.Linear(dim_mlp, dim_mlp), nn.ReLU(),
                                             self.backbone.fc)

        def forward(self, x):
            return self.backbone(x)

    seed_model = ResNetSimCLR(64).eval()
    optimizer = torch.optim.Adam(seed_model.parameters(), 3e-4, weight_decay=1e-4)
    path = tmp_path / "checkpoint_0200.pth.tar"
    torch.save({"epoch": 200, "arch": "resnet18", "state_dict": seed_model.state_dict(),
                "optimizer": optimizer.state_dict()}, path)
    encoder = load_encoder(path)
    assert (encoder.image_size, encoder.feature_dim) == (96, 512)
    assert encoder.mean == (0.0, 0.0, 0.0) and encoder.std == (1.0, 1.0, 1.0)
    x = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        trunk = nn.Sequential(*list(seed_model.backbone.children())[:-1])
        assert torch.allclose(encoder.model(x), trunk(x).flatten(1), atol=1e-5)


def test_seed_cli_spellings_parse():
    from ffclr.cli import build_parser
    from ffclr.commands.pretrain import config_from_args

    readme = ["pretrain", "-data", "./datasets/ff_devices_individual/train", "-dataset-name",
              "ff_devices_one_shot", "-b", "32", "--epochs", "200", "--log-every-n-steps", "10"]
    config = config_from_args(build_parser().parse_args(readme))
    assert (config.data, config.mode, config.batch_size, config.epochs,
            config.log_every_n_steps) == ("./datasets/ff_devices_individual/train", "one_shot",
                                          32, 200, 10)
    flags = ["pretrain", "-a", "resnet50", "-j", "4", "--lr", "0.001", "--wd", "0.0005",
             "--seed", "7", "--disable-cuda", "--fp16_precision", "--out_dim", "64",
             "--temperature", "0.5", "--n-views", "4", "--gpu-index", "1", "-dataset-name",
             "ff_devices_labeled"]
    config = config_from_args(build_parser().parse_args(flags))
    assert (config.arch, config.workers, config.lr, config.weight_decay, config.seed,
            config.disable_cuda, config.fp16_precision, config.out_dim, config.temperature,
            config.n_views, config.gpu_index, config.mode) == (
        "resnet50", 4, 0.001, 0.0005, 7, True, True, 64, 0.5, 4, 1, "labeled")
    dashed = build_parser().parse_args(["pretrain", "--fp16-precision", "--learning-rate", "0.1",
                                        "--weight-decay", "0", "--batch-size", "16"])
    assert (dashed.fp16_precision, dashed.lr, dashed.weight_decay, dashed.batch_size) == (
        True, 0.1, 0.0, 16)


def test_cancel_leaves_checkpoint_and_resume_equals_uninterrupted(crops, workspace):
    full = pretrain(tiny(crops, run_name="full"), workspace)

    def cancel_after_four(done, total, message):
        if done == 4:
            with workspace.open_store() as store:
                store.request_cancel(store.runs(kind="pretrain")[0]["id"])

    from ffclr.train import loop as pretraining

    cut = pretraining.pretrain(tiny(crops, run_name="cut"), workspace,
                               progress=cancel_after_four)
    assert cut.status == "cancelled" and cut.steps == 4 and cut.checkpoint.is_file()
    with workspace.open_store() as store:
        assert store.run(cut.run_id)["status"] == "cancelled"
    resumed = pretrain(PretrainConfig(resume=str(cut.checkpoint)), workspace)
    assert resumed.status == "finished" and resumed.steps == full.steps == 6
    assert resumed.run_id == cut.run_id
    a = load_checkpoint(full.checkpoint)["state_dict"]
    b = load_checkpoint(resumed.checkpoint)["state_dict"]
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key


def test_labelled_one_shot_and_many_views_train(crops, workspace):
    labelled = pretrain(tiny(crops, epochs=1, dataset_name="ff_devices_labeled", n_views=3,
                             optimizer="lars", augment="seed"), workspace)
    assert labelled.status == "finished" and labelled.steps == 3
    one_shot = pretrain(tiny(crops, epochs=2, dataset_name="ff_devices_one_shot",
                             optimizer="sgd", lr=0.05), workspace)
    assert one_shot.summary["crops"] == 3 and one_shot.steps == 2


def test_sigkill_is_marked_interrupted_and_resume_auto_continues(crops, workspace):
    command = [sys.executable, "-m", "ffclr", "pretrain", "-data", str(crops), "--image-size",
               "8", "--small-stem", "-b", "8", "--epochs", "6", "--seed", "1", "--no-bf16",
               "--checkpoint-every", "1", "--run-name", "killed", "--workspace",
               str(workspace.root)]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if workspace.db_path.exists():
                with workspace.open_store() as store:
                    runs = store.runs(kind="pretrain")
                    if runs and runs[0]["checkpoint"]:
                        break
            time.sleep(0.3)
        else:
            pytest.fail("the worker wrote no checkpoint within 60 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with workspace.open_store() as store:
        assert store.mark_interrupted_runs() == [runs[0]["id"]]
        assert store.run(runs[0]["id"])["status"] == "interrupted"
    result = pretrain(PretrainConfig(resume="auto", epochs=1), workspace)
    assert result.run_id == runs[0]["id"] and result.run_name == "killed"
    assert result.status == "finished" and result.steps == 6 * 3


def _wait(predicate, seconds: float, what: str):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def test_jobs_run_one_at_a_time_and_cancel(crops, workspace, monkeypatch):
    from ffclr.train import jobs

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    first = jobs.start_pretrain(workspace, tiny(crops, epochs=500))
    second = jobs.start_pretrain(workspace, tiny(crops, epochs=1))
    _wait(lambda: jobs.status(workspace, first)["metrics"].get("loss") is not None, 60,
          "the first job to train")
    assert jobs.status(workspace, second)["status"] == "queued"
    jobs.cancel(workspace, first)
    done = _wait(lambda: (s := jobs.status(workspace, first))["status"] == "cancelled" and s,
                 60, "the first job to stop")
    assert done["checkpoint"] and Path(done["checkpoint"]).is_file()
    finished = _wait(lambda: (s := jobs.status(workspace, second))["status"] in (
        "finished", "failed") and s, 90, "the second job to finish")
    assert finished["status"] == "finished", jobs.worker_log(workspace, second).read_text()
    assert load_encoder(finished["checkpoint"]).image_size == 8


def test_time_budget_stops_with_a_checkpoint_and_a_decayed_schedule(crops, workspace,
                                                                   monkeypatch):
    """The trainer's clock advances 0.1 s each time it is read, so the budget runs out after the
    same steps however busy the machine is."""
    from types import SimpleNamespace

    from ffclr.train import trainer

    ticks = iter(range(10**9))
    monkeypatch.setattr(trainer, "time", SimpleNamespace(perf_counter=lambda: next(ticks) * 0.1))
    result = pretrain(tiny(crops, epochs=10_000, time_budget=3.0), workspace)
    assert result.status == "finished" and result.checkpoint.is_file()
    assert 3 <= result.steps < 10_000 * 3
    assert result.summary["train_seconds"] < 3.0 + 1.0
    assert load_checkpoint(result.checkpoint)["step"] == result.steps
    assert result.summary["learning_rate"] < 0.5 * 1e-3


def test_epochs_cap_a_run_whose_time_budget_is_not_spent(crops, workspace):
    from ffclr.train.trainer import planned_total_steps

    assert planned_total_steps(5, 5, 0.5, 1000.0, 200) == 200
    assert planned_total_steps(200, 200, 20.0, 1000.0, 200) == 200
    result = pretrain(tiny(crops, epochs=2, time_budget=600.0), workspace)
    assert result.status == "finished" and result.epochs == 2
    assert result.summary["train_seconds"] < 60


def test_sigterm_cancels_with_a_checkpoint(crops, workspace):
    def terminate_at_two(done, total, message):
        if done == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    result = pretrain(tiny(crops), workspace, progress=terminate_at_two)
    assert result.status == "cancelled" and result.steps == 2
    assert load_checkpoint(result.checkpoint)["step"] == 2
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_crash_marks_failed_and_keeps_the_last_checkpoint(crops, workspace):
    def crash_at_five(done, total, message):
        if done == 5:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        pretrain(tiny(crops), workspace, progress=crash_at_five)
    with workspace.open_store() as store:
        (run,) = store.runs(kind="pretrain")
    assert run["status"] == "failed" and "disk on fire" in run["error"]
    assert load_checkpoint(run["checkpoint"])["step"] == 3


def test_a_step_with_non_finite_gradients_is_skipped_not_applied(crops, workspace, monkeypatch):
    """bf16 on oneDNN can give a NaN weight gradient; the step must not reach the weights."""
    poisoned = {"done": False}
    original_backward = torch.Tensor.backward

    def backward(self, *args, **kwargs):
        original_backward(self, *args, **kwargs)
        if not poisoned["done"]:
            poisoned["done"] = True
            for parameter in torch.nn.Module.parameters(backward.model):
                parameter.grad.fill_(float("nan"))
                break

    import ffclr.train.trainer as pretraining

    original_build = pretraining.build_optimizer

    def build_optimizer(name, model, lr, weight_decay):
        backward.model = model
        return original_build(name, model, lr, weight_decay)

    monkeypatch.setattr(pretraining, "build_optimizer", build_optimizer)
    monkeypatch.setattr(torch.Tensor, "backward", backward)
    result = pretrain(tiny(crops, epochs=1), workspace)
    assert poisoned["done"] and result.summary["skipped_steps"] == 1
    state = load_checkpoint(result.checkpoint)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_time_budget_plan_is_not_shaken_by_one_slow_step():
    """One-step epochs (one-shot mode) with a slow checkpoint step every tenth epoch."""
    from ffclr.train.trainer import planned_total_steps

    budget, elapsed, step, plans = 300.0, 0.0, 0, []
    while elapsed < budget:
        step += 1
        elapsed += 10.0 if step % 10 == 0 else 1.0
        plans.append(planned_total_steps(step, step, elapsed, budget - elapsed, 10_000))
    final = budget / (elapsed / step)
    assert all(0.95 * final <= plan <= 1.2 * final for plan in plans[30:])


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/abs", "a/b", "", "-flag", "x" * 65])
def test_a_run_name_that_is_not_one_folder_name_is_refused(name):
    with pytest.raises(FfclrError, match="--run-name"):
        PretrainConfig(run_name=name).validate()


def test_the_cli_refuses_an_escaping_run_name_and_writes_nothing(crops, workspace, capsys):
    from ffclr.cli import main

    code = main(["pretrain", "-data", str(crops), "--run-name", "../../escaped", "--epochs", "1",
                 "--workspace", str(workspace.root)])
    assert code == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --run-name '../../escaped'") and "\n" not in error
    assert not any((folder / "escaped").exists()
                   for folder in (workspace.root.parent, workspace.root.parent.parent))
    assert not workspace.checkpoints.exists() and not workspace.runs.exists()


def test_a_checkpoint_naming_an_escaping_run_is_not_resumed(crops, workspace):
    result = pretrain(tiny(crops, epochs=1), workspace)
    state = load_checkpoint(result.checkpoint)
    hostile = workspace.root / "hostile.pth.tar"
    save_checkpoint(hostile, {**state, "run_name": "../../escaped", "run_id": None})
    with pytest.raises(FfclrError, match="run name in the checkpoint"):
        pretrain(tiny(crops, epochs=2, resume=str(hostile)), workspace)
    save_checkpoint(hostile, {**state, "config": {**state["config"], "run_name": "../up"}})
    with pytest.raises(FfclrError, match="--run-name"):
        pretrain(tiny(crops, epochs=2, resume=str(hostile)), workspace)
    assert not any((folder / name).exists() for name in ("escaped", "up")
                   for folder in (workspace.root, workspace.root.parent,
                                  workspace.root.parent.parent))


def test_without_data_the_knn_monitor_scores_the_valid_split(demo_export, workspace):
    from ffclr.data.coco_import import import_export
    from ffclr.train.loop import _settle_config
    from ffclr.train.monitor import knn_queries

    import_export(demo_export, "demo", workspace)
    config, _, _ = _settle_config(PretrainConfig(knn_every=1, seed=0, image_size=16), workspace)
    assert Path(config.data) == workspace.dataset_dir("demo") / "train"
    queries = knn_queries(config, workspace)
    assert queries is not None and Path(queries.source) == workspace.dataset_dir("demo") / "valid"


def test_a_pretraining_run_records_the_dataset_its_crops_come_from(workspace, demo_export,
                                                                  tmp_path):
    from ffclr.data.coco_import import import_export
    from ffclr.train import jobs

    imported = import_export(demo_export, "demo", workspace)
    with workspace.open_store() as store:
        demo_id = store.dataset("demo")["id"]
    assert jobs.dataset_of(workspace, str(workspace.dataset_dir("demo") / "train")) == demo_id
    assert jobs.dataset_of(workspace, str(imported.root)) == demo_id
    assert jobs.dataset_of(workspace, str(tmp_path)) is None
    assert jobs.dataset_of(workspace, None) is None
