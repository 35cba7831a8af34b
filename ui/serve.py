"""Start the app in this process without blocking (for tests and embedding)."""
from __future__ import annotations

import socket

from ffclr.workspace import Workspace


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start_app(workspace: Workspace, host: str = "127.0.0.1", port: int | None = None):
    """Build and launch the app on `host:port` (a free port by default); returns (demo, url)."""
    from ui.build import build_app, launch_options

    demo = build_app(workspace)
    port = port or free_port(host)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, share=False,
                **launch_options(workspace))
    return demo, f"http://{host}:{port}/"
