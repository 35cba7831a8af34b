"""The app's entry point, `python app.py` or (installed) `ffclr-app`:
`[--host 127.0.0.1] [--port 7860] [--workspace DIR] [--auth-file PATH | --auth USER:PASS]
[--allow-unauthenticated] [--queue-size N] [--max-upload-mb MB] [--no-demo]`; a password may
also come from `$FFCLR_AUTH` (`USER:PASS`). The first start on a workspace loads the built-in
demo data (`first_start_demo`).

Importing this module turns off Gradio's analytics and the Hugging Face hub, so it must come
before anything imports gradio."""
from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

for _name, _value in (("GRADIO_ANALYTICS_ENABLED", "False"), ("HF_HUB_OFFLINE", "1"),
                      ("HF_HUB_DISABLE_TELEMETRY", "1")):
    os.environ[_name] = _value

from ui.serve import DEFAULT_MAX_UPLOAD_MB, DEFAULT_QUEUE_SIZE, Limits  # noqa: E402

AUTH_ENV = "FFCLR_AUTH"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: give a whole number of at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="The ffclr browser app.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; any "
                             "other address needs a password or --allow-unauthenticated)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--workspace", metavar="DIR", default=None,
                        help="workspace folder (default: $FFCLR_WORKSPACE, else the current "
                             "directory)")
    parser.add_argument("--auth-file", metavar="PATH", default=None,
                        help="ask for the user name and password written in this file as one "
                             "USER:PASS line (or set $FFCLR_AUTH=USER:PASS)")
    parser.add_argument("--auth", metavar="USER:PASS", default=None,
                        help="the same, given on the command line, where other users of this "
                             "machine can read it in the process list: prefer --auth-file or "
                             "$FFCLR_AUTH")
    parser.add_argument("--allow-unauthenticated", action="store_true",
                        help="serve on a non-loopback --host without a password")
    parser.add_argument("--queue-size", type=positive_int, default=DEFAULT_QUEUE_SIZE,
                        metavar="N", help="requests that may wait for the app; more are "
                                          "refused (default %(default)s)")
    parser.add_argument("--max-upload-mb", type=positive_int, default=DEFAULT_MAX_UPLOAD_MB,
                        metavar="MB", help="largest file the browser may upload, in MB of "
                                           "2**20 bytes (default %(default)s)")
    parser.add_argument("--no-demo", action="store_true",
                        help="on the first start in a workspace, start empty instead of "
                             "loading the built-in demo data as dataset 'demo'")
    return parser


def first_start_demo(workspace) -> str | None:
    """On the first start in a workspace (no store yet, no demo export), draw the synthetic
    demo export with ffclr's own generator into `exports/demo/` and import it as dataset
    `demo`, so the app opens on data; returns a line saying what was done, None when the
    workspace was not new (it is then left as it is). Nothing is downloaded."""
    from ffclr.errors import FfclrError
    from ui.tabs.data import DEMO_NAME, demo_export_dir, load_demo_data

    if workspace.db_path.exists() or demo_export_dir(workspace).exists():
        return None
    try:
        result = load_demo_data(workspace)
    except (FfclrError, OSError) as exc:
        return f"first start: the demo data could not be loaded ({exc}); the Data tab offers it"
    return (f"first start: loaded the built-in demo data as dataset '{DEMO_NAME}' "
            f"({result.crops} crops, export in {demo_export_dir(workspace)}); "
            "--no-demo starts empty")


def read_auth(args: argparse.Namespace, environ=os.environ) -> str | None:
    """`USER:PASS` from --auth-file, --auth or $FFCLR_AUTH (in that order), checked; None when
    none is given. Raises ValueError naming the source, never the password."""
    if args.auth is not None and args.auth_file is not None:
        raise ValueError("give --auth or --auth-file, not both")
    if args.auth_file is not None:
        text, source = read_auth_file(Path(args.auth_file)), f"--auth-file {args.auth_file}"
    elif args.auth is not None:
        text, source = args.auth, "--auth"
    elif AUTH_ENV in environ:
        text, source = environ[AUTH_ENV], f"${AUTH_ENV}"
    else:
        return None
    user, colon, password = text.partition(":")
    if not colon or not user.strip() or not password:
        raise ValueError(f"{source} must be USER:PASS with a user name and a non-empty password")
    return text


def read_auth_file(path: Path) -> str:
    """The file's first non-empty line, without its line ending."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"--auth-file {path}: cannot read it ({exc})") from None
    return next((line for line in lines if line.strip()), "")


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only: localhost, 127.0.0.0/8 or ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_args(argv: list[str] | None = None, environ=os.environ) -> argparse.Namespace:
    """The options, with `auth` resolved to `USER:PASS` or None. A bad password source, or a
    non-loopback host with no password and no --allow-unauthenticated, exits with status 2
    and one line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.auth = read_auth(args, environ)
    except ValueError as exc:
        parser.exit(2, f"error: {exc}\n")
    if not (args.auth or args.allow_unauthenticated or is_loopback(args.host)):
        parser.exit(2, f"error: --host {args.host} lets other machines reach the app: set a "
                       f"password (--auth-file PATH or ${AUTH_ENV}=USER:PASS) or pass "
                       "--allow-unauthenticated\n")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from ffclr.workspace import resolve_workspace
    from ui.serve import build_served_app, launch_kwargs

    workspace = resolve_workspace(args.workspace)
    loaded = None if args.no_demo else first_start_demo(workspace)
    if loaded:
        print(f"ffclr app: {loaded}", flush=True)
    limits = Limits(queue_size=args.queue_size, max_upload_mb=args.max_upload_mb)
    demo = build_served_app(workspace, limits)
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    print(f"ffclr app: workspace {workspace.root}, serving on http://{args.host}:{args.port}",
          flush=True)
    demo.launch(server_name=args.host, server_port=args.port, auth=auth,
                **launch_kwargs(workspace, limits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
