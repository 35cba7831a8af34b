"""Static assets served to the browser from installed packages (nothing from the web)."""
from __future__ import annotations

from pathlib import Path


def plotly_js_path() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def plotly_script_tag() -> str:
    return f'<script src="/gradio_api/file={plotly_js_path()}"></script>'
