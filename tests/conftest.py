from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPO = Path(__file__).resolve().parents[1]
REAL_EXPORT = REPO.parent / "shared" / "datasets" / "ff_devices"


def pytest_collection_modifyitems(items):
    """Every test that uses the `real_export` fixture gets the `real_data` marker, so
    `pytest -m real_data` (or `-m "not real_data"`) selects exactly the tests on the real export."""
    for item in items:
        if "real_export" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_data)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    from ffclr.workspace import resolve_workspace

    root = tmp_path / "ws"
    monkeypatch.setenv("FFCLR_WORKSPACE", str(root))
    return resolve_workspace(root)


@pytest.fixture(scope="session")
def real_export() -> Path:
    if not (REAL_EXPORT / "train" / "_annotations.coco.json").is_file():
        pytest.skip(f"real export not found at {REAL_EXPORT} (only on the developers' machines)")
    return REAL_EXPORT


@pytest.fixture(scope="session")
def demo_export(tmp_path_factory) -> Path:
    """A small synthetic Roboflow export (train/valid/test), made once per test session."""
    from ffclr.demo.export import write_demo_export

    out = tmp_path_factory.mktemp("demo") / "export"
    write_demo_export(out, images=12, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A random-weight ResNet-18 (16 px, small stem) checkpoint, shared by the whole run."""
    import torch

    from ffclr.model.checkpoint import save_checkpoint
    from ffclr.model.networks import SimCLRModel

    torch.manual_seed(0)
    model = SimCLRModel("resnet18", out_dim=32, small_stem=True)
    path = tmp_path_factory.mktemp("enc") / "checkpoint_0000.pth.tar"
    save_checkpoint(path, {"epoch": 0, "arch": "resnet18", "state_dict": model.state_dict(),
                           "image_size": 16, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)})
    return path


@pytest.fixture(scope="session")
def detector_file(tiny_checkpoint, demo_export, tmp_path_factory):
    """The tiny detector, fitted once per test run through the CLI (which also records the fit
    as a run in the store); tests copy it before changing anything."""
    from ffclr.cli import main
    from ffclr.workspace import resolve_workspace

    folder = tmp_path_factory.mktemp("det")
    path = folder / "detector.npz"
    code = main(["detector", "fit", "--checkpoint", str(tiny_checkpoint), "--export",
                 str(demo_export), "--split", "train", "--save", str(path),
                 "--workspace", str(folder / "ws")])
    assert code == 0 and path.is_file()
    with resolve_workspace(folder / "ws").open_store() as store:
        (run,) = store.runs(kind="detector")
    assert run["status"] == "finished" and run["summary"]["detector"] == str(path)
    return path


@pytest.fixture(scope="session")
def detector(detector_file):
    from ffclr.detection import load_detector

    return load_detector(detector_file)
