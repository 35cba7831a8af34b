"""`python app.py` options: localhost by default, a password from a file, $FFCLR_AUTH or --auth
(never an empty one), no open host without a password unless insisted on, limits passed to
Gradio, never a share link."""
from __future__ import annotations

import os

import pytest

from ffclr.errors import FfclrError
from ui import main, serve


def _parse(argv, environ=None):
    return main.parse_args(argv, environ={} if environ is None else environ)


def _refused(argv, capsys, environ=None) -> str:
    with pytest.raises(SystemExit) as exit_info:
        _parse(argv, environ)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_defaults_bind_localhost_without_auth():
    args = _parse([])
    assert (args.host, args.port, args.auth) == ("127.0.0.1", 7860, None)
    assert (args.queue_size, args.max_upload_mb) == (serve.DEFAULT_QUEUE_SIZE,
                                                     serve.DEFAULT_MAX_UPLOAD_MB)
    assert _parse(["--auth", "ann:secret:x"]).auth == "ann:secret:x"


@pytest.mark.parametrize("value", ["no-colon", "ann:", ":secret", " :secret", ""])
def test_auth_without_user_or_password_is_refused_without_echoing_it(value, capsys):
    err = _refused(["--auth", value], capsys)
    assert err.startswith("error: --auth must be USER:PASS") and err.count("\n") == 1
    assert "secret" not in err


def test_auth_comes_from_a_file_or_the_environment(tmp_path, capsys):
    secret = tmp_path / "auth.txt"
    secret.write_text("\nann:pa ss:word\nignored:line\n")
    assert _parse(["--auth-file", str(secret)]).auth == "ann:pa ss:word"
    assert _parse([], {"FFCLR_AUTH": "bob:pw"}).auth == "bob:pw"
    assert _parse(["--auth", "cli:pw"], {"FFCLR_AUTH": "bob:pw"}).auth == "cli:pw"
    assert "$FFCLR_AUTH must be USER:PASS" in _refused([], capsys, {"FFCLR_AUTH": "bob:"})
    secret.write_text("ann:\n")
    assert "--auth-file" in _refused(["--auth-file", str(secret)], capsys)
    assert "cannot read it" in _refused(["--auth-file", str(tmp_path / "missing")], capsys)
    assert "not both" in _refused(["--auth", "a:b", "--auth-file", str(secret)], capsys)


def test_auth_help_says_the_password_shows_in_the_process_list():
    help_text = " ".join(main.build_parser().format_help().split())
    assert "process list" in help_text and "FFCLR_AUTH" in help_text


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost",
                                  "LOCALHOST"])
def test_loopback_hosts_need_no_password(host):
    assert _parse(["--host", host]).host == host


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "my-laptop.local"])
def test_other_hosts_without_a_password_are_refused_in_one_line(host, capsys):
    err = _refused(["--host", host], capsys)
    assert err.count("\n") == 1 and "--allow-unauthenticated" in err and host in err
    assert _parse(["--host", host, "--allow-unauthenticated"]).auth is None
    assert _parse(["--host", host], {"FFCLR_AUTH": "ann:pw"}).auth == "ann:pw"


@pytest.mark.parametrize("flag", ["--queue-size", "--max-upload-mb"])
def test_limits_must_be_positive(flag, capsys):
    with pytest.raises(SystemExit):
        _parse([flag, "0"])
    assert _parse([flag, "5"]).__dict__[flag[2:].replace("-", "_")] == 5


def test_main_launches_on_the_given_host_without_share_or_monitoring(workspace, monkeypatch):
    import gradio as gr

    seen = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: seen.update(kwargs,
                                                                                 queue=self._queue))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(workspace.root / "elsewhere"))
    assert main.main(["--workspace", str(workspace.root), "--port", "7999", "--no-demo",
                      "--auth", "ann:secret", "--queue-size", "7", "--max-upload-mb", "3"]) == 0
    assert seen["server_name"] == "127.0.0.1" and seen["server_port"] == 7999
    assert seen["share"] is False and seen["auth"] == ("ann", "secret")
    assert seen["enable_monitoring"] is False
    assert seen["max_file_size"] == 3 * 2**20 and seen["queue"].max_size == 7
    assert workspace.db_path.exists()
    assert os.environ["GRADIO_TEMP_DIR"] == str(serve.upload_folder(workspace))


def test_the_default_queue_size_is_the_apps():
    from ui import build

    assert serve.DEFAULT_QUEUE_SIZE == build.QUEUE_SIZE


def test_result_folders_keep_only_the_newest(workspace):
    import os

    from ui.common import result_folder

    made = []
    for i in range(5):
        with result_folder(workspace, "detections", keep=3) as folder:
            (folder / "drawn.png").write_bytes(b"x")
        os.utime(folder, (1000 + i, 1000 + i))
        made.append(folder)
    kept = sorted(p for p in (workspace.cache / "detections").iterdir())
    assert kept == sorted(made[2:]) and all(p.parent == workspace.cache / "detections" for p in made)
    with pytest.raises(FfclrError):
        with result_folder(workspace, "detections", keep=3):
            raise FfclrError("no drawing given")
    assert sorted((workspace.cache / "detections").iterdir()) == sorted(made[3:])


def test_the_first_start_opens_on_the_demo_data_and_never_touches_a_used_workspace(
        workspace, tmp_path, monkeypatch, capsys):
    """README's set-up promises `python app.py` opens on the built-in demo data; it opened on
    an empty workspace."""
    import gradio as gr

    from ffclr.workspace import resolve_workspace

    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: None)
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "elsewhere"))

    def datasets(ws):
        with ws.open_store() as store:
            return {d["name"]: len(store.crops(d["id"])) for d in store.datasets()}

    assert main.main(["--workspace", str(workspace.root)]) == 0
    assert "loaded the built-in demo data as dataset 'demo'" in capsys.readouterr().out
    loaded = datasets(workspace)
    assert list(loaded) == ["demo"] and loaded["demo"] > 0
    assert (workspace.root / "exports" / "demo" / "train").is_dir()
    assert main.main(["--workspace", str(workspace.root)]) == 0
    assert "built-in demo" not in capsys.readouterr().out and datasets(workspace) == loaded

    empty = resolve_workspace(tmp_path / "empty")
    assert main.main(["--workspace", str(empty.root), "--no-demo"]) == 0
    assert "built-in demo" not in capsys.readouterr().out and datasets(empty) == {}
    assert main.main(["--workspace", str(empty.root)]) == 0
    assert datasets(empty) == {} and not (empty.root / "exports").exists()
