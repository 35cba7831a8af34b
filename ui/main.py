"""The app's entry point, `python app.py` or (installed) `ffclr-app`:
`[--host 127.0.0.1] [--port 7860] [--workspace DIR] [--auth USER:PASS]`.

Importing this module turns off Gradio's analytics and the Hugging Face hub, so it must come
before anything imports gradio."""
from __future__ import annotations

import argparse
import os
import sys

for _name, _value in (("GRADIO_ANALYTICS_ENABLED", "False"), ("HF_HUB_OFFLINE", "1"),
                      ("HF_HUB_DISABLE_TELEMETRY", "1")):
    os.environ[_name] = _value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The ffclr browser app.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--workspace", metavar="DIR", default=None,
                        help="workspace folder (default: $FFCLR_WORKSPACE, else the current "
                             "directory)")
    parser.add_argument("--auth", metavar="USER:PASS", default=None,
                        help="ask for this user name and password before showing the app")
    args = parser.parse_args(argv)
    if args.auth is not None and (":" not in args.auth or args.auth.startswith(":")):
        parser.error("--auth must look like USER:PASS")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from ffclr.workspace import resolve_workspace
    from ui.build import build_app, launch_options

    workspace = resolve_workspace(args.workspace)
    demo = build_app(workspace)
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    print(f"ffclr app: workspace {workspace.root}, serving on http://{args.host}:{args.port}",
          flush=True)
    demo.launch(server_name=args.host, server_port=args.port, auth=auth, share=False,
                **launch_options(workspace))
    return 0


if __name__ == "__main__":
    sys.exit(main())
