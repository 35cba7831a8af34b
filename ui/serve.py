"""Serving the app: its limits, the upload folder, what `launch()` is given, and `start_app`
(start it in this process without blocking, for tests and embedding).

Gradio keeps every upload in its temporary folder; the app points that folder
(`GRADIO_TEMP_DIR`) at `cache/uploads/` of the workspace and empties it of old entries at each
start. `launch()` gets an upload size cap, no `/monitoring` endpoint, and a guard that answers
`/gradio_api/file=<URL>` with 403 instead of fetching the URL on the caller's behalf."""
from __future__ import annotations

import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from ffclr.workspace import Workspace

DEFAULT_QUEUE_SIZE = 64
DEFAULT_MAX_UPLOAD_MB = 1024
UPLOAD_MAX_AGE_SECONDS = 3600
FILE_ROUTE_URL = re.compile(r"/file[=/][a-z][a-z0-9+.-]*:", re.IGNORECASE)


@dataclass(frozen=True)
class Limits:
    """Requests waiting in Gradio's queue, and the largest upload in MB (1 MB = 2**20 bytes)."""
    queue_size: int = DEFAULT_QUEUE_SIZE
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB


def upload_folder(workspace: Workspace) -> Path:
    return workspace.cache / "uploads"


def prepare_upload_folder(workspace: Workspace,
                          max_age_seconds: float = UPLOAD_MAX_AGE_SECONDS) -> Path:
    """Make `cache/uploads/` Gradio's temporary folder and remove what an earlier start left
    there (entries older than `max_age_seconds`, so a second app on the same workspace keeps
    its fresh uploads). Gradio reads the variable when the app is built and launched."""
    folder = upload_folder(workspace)
    folder.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - max_age_seconds
    for entry in folder.iterdir():
        if entry.lstat().st_mtime >= cutoff:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return folder


class RefuseFileUrls:
    """ASGI middleware: `/gradio_api/file=<scheme>:...` gets 403. Gradio would otherwise fetch a
    public http(s) URL itself and stream it back, making the app a proxy to outside hosts."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and FILE_ROUTE_URL.search(scope.get("path", "")):
            from starlette.responses import PlainTextResponse

            await PlainTextResponse("File not allowed.", status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def launch_kwargs(workspace: Workspace, limits: Limits) -> dict:
    """Everything `launch()` gets besides host, port and auth."""
    from starlette.middleware import Middleware

    from ui.build import launch_options

    return {**launch_options(workspace), "share": False, "enable_monitoring": False,
            "max_file_size": limits.max_upload_mb * 2**20,
            "app_kwargs": {"middleware": [Middleware(RefuseFileUrls)]}}


def build_served_app(workspace: Workspace, limits: Limits):
    """The app built for serving: upload folder prepared and the cache pruned of what outlived
    its source first (files from before the cache named their source stay: `ffclr cache
    --prune` removes them), queue bounded."""
    from ffclr.workspace_cache import prune

    prepare_upload_folder(workspace)
    prune(workspace, unowned=False)
    from ui.build import build_app

    return build_app(workspace, queue_size=limits.queue_size)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start_app(workspace: Workspace, host: str = "127.0.0.1", port: int | None = None,
              limits: Limits = Limits(), auth: tuple[str, str] | None = None):
    """Build and launch the app on `host:port` (a free port by default); returns (demo, url)."""
    demo = build_served_app(workspace, limits)
    port = port or free_port(host)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, auth=auth,
                **launch_kwargs(workspace, limits))
    return demo, f"http://{host}:{port}/"
