"""`python app.py` options: localhost by default, --auth checked, never a share link."""
from __future__ import annotations

import pytest

from ui import main


def test_defaults_bind_localhost_and_auth_is_checked():
    args = main.parse_args([])
    assert (args.host, args.port, args.auth) == ("127.0.0.1", 7860, None)
    assert main.parse_args(["--auth", "ann:secret:x"]).auth == "ann:secret:x"
    with pytest.raises(SystemExit):
        main.parse_args(["--auth", "no-colon"])


def test_main_launches_on_the_given_host_without_share(workspace, monkeypatch):
    import gradio as gr

    seen = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: seen.update(kwargs))
    assert main.main(["--workspace", str(workspace.root), "--port", "7999",
                      "--auth", "ann:secret"]) == 0
    assert seen["server_name"] == "127.0.0.1" and seen["server_port"] == 7999
    assert seen["share"] is False and seen["auth"] == ("ann", "secret")
    assert workspace.db_path.exists()
