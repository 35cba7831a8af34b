"""The launched app on 127.0.0.1 serves only its own files: `/gradio_api/file=` reads crops and
plotly.js but no file outside the served folders (system files, the store, checkpoints, by path
or through `..`), fetches no URL; there is no `/monitoring`; uploads are capped and land in the
workspace's upload folder, which each start empties of old entries; the queue is bounded."""
from __future__ import annotations

import os
import time
from urllib.parse import quote

import httpx
import pytest

from ui import serve
from ui.build_assets import plotly_js_path


@pytest.fixture
def served(workspace, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", os.environ.get("GRADIO_TEMP_DIR", "/nonexistent"))
    crop = workspace.dataset_dir("demo") / "train" / "valve" / "crop_1.png"
    crop.parent.mkdir(parents=True)
    crop.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 64)
    checkpoint = workspace.checkpoints / "run1" / "checkpoint_0001.pth.tar"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"weights")
    demo, url = serve.start_app(workspace, limits=serve.Limits(queue_size=5, max_upload_mb=1))
    with httpx.Client(base_url=url.rstrip("/"), timeout=30) as client:
        yield client, demo, {"crop": crop, "checkpoint": checkpoint}
    demo.close()


def _file(client, target: str) -> httpx.Response:
    return client.get(f"/gradio_api/file={quote(target, safe='/:')}")


def test_served_folders_are_readable(served):
    client, _, files = served
    assert _file(client, str(files["crop"])).content == files["crop"].read_bytes()
    assert _file(client, str(plotly_js_path())).status_code == 200


def test_files_outside_the_served_folders_are_refused(served, workspace):
    client, _, files = served
    datasets = workspace.datasets
    for target in ["/etc/passwd", str(workspace.db_path), str(files["checkpoint"]),
                   f"{datasets}/../{workspace.db_path.name}",
                   f"{datasets}/%2e%2e/{workspace.db_path.name}",
                   str(serve.__file__)]:
        response = client.get(f"/gradio_api/file={target}")
        assert response.status_code in (403, 404), (target, response.status_code)
        assert b"root:" not in response.content and b"weights" not in response.content
        assert b"SQLite" not in response.content


def test_urls_are_never_fetched(served, monkeypatch):
    import gradio.route_utils

    asked = []

    async def record(host, *args, **kwargs):
        asked.append(host)
        raise ValueError("no outside requests in this test")

    monkeypatch.setattr(gradio.route_utils.safehttpx, "async_validate_url", record)
    client, _, _ = served
    for path in ["/gradio_api/file=http://1.1.1.1/x.png", "/gradio_api/file=HTTPS://1.1.1.1/a",
                 "/gradio_api/file=http%3A//1.1.1.1/x.png", "/gradio_api/file/http://1.1.1.1/",
                 "/gradio_api/file=http://127.0.0.1/", "/gradio_api/proxy=http://1.1.1.1/"]:
        response = client.get(path)
        assert response.status_code in (400, 403), (path, response.status_code)
    assert asked == []


def test_monitoring_is_off(served):
    client, _, _ = served
    for path in ["/monitoring", "/monitoring/summary"]:
        assert client.get(path).status_code == 403, path


def test_uploads_are_capped_and_kept_in_the_workspace(served, workspace):
    client, _, _ = served
    too_big = client.post("/gradio_api/upload",
                          files={"files": ("big.zip", b"0" * (2**20 + 1))})
    assert too_big.status_code == 413
    small = client.post("/gradio_api/upload", files={"files": ("small.zip", b"PK")})
    assert small.status_code == 200, small.text
    [stored] = small.json()
    assert os.path.realpath(stored).startswith(str(serve.upload_folder(workspace)) + os.sep)


def test_the_queue_is_bounded(served):
    _, demo, _ = served
    assert demo._queue.max_size == 5


def test_start_empties_the_upload_folder_of_old_entries(workspace, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", os.environ.get("GRADIO_TEMP_DIR", "/nonexistent"))
    folder = serve.upload_folder(workspace)
    (folder / "old_hash").mkdir(parents=True)
    (folder / "old_hash" / "upload.zip").write_bytes(b"PK")
    (folder / "old.png").write_bytes(b"x")
    (folder / "fresh.png").write_bytes(b"x")
    long_ago = time.time() - serve.UPLOAD_MAX_AGE_SECONDS - 60
    for old in (folder / "old_hash", folder / "old.png"):
        os.utime(old, (long_ago, long_ago))
    assert serve.prepare_upload_folder(workspace) == folder
    assert sorted(p.name for p in folder.iterdir()) == ["fresh.png"]
    assert os.environ["GRADIO_TEMP_DIR"] == str(folder)
