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
