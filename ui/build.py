"""`build_app(workspace) -> gr.Blocks`: the seven tabs, wired to each other."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from ffclr.workspace import Workspace
from ui.build_assets import plotly_js_path
from ui.common import Context, md_code
from ui.tabs import annotate, classify, data, explore, pretrain, probe, runs

TAB_MODULES = (data, pretrain, explore, probe, classify, annotate, runs)
TAB_NAMES = ("Data", "Pretrain", "Explore", "Probe", "Classify", "Annotate", "Runs")
QUEUE_SIZE = 64

CSS = """
.ffclr-error { color: #b91c1c; font-weight: 600; padding: 4px 0; }
.ffclr-ok { color: #166534; padding: 4px 0; }
#umap-tooltip { position: fixed; pointer-events: none; z-index: 1000; display: none;
  background: #fff; border: 1px solid #999; padding: 4px; border-radius: 4px;
  box-shadow: 0 2px 6px rgba(0,0,0,.3); font-size: 12px; color: #111; }
#umap-tooltip div { white-space: pre-line; max-width: 260px; }
.ffclr-captions .caption-label { white-space: normal; max-width: 100%; overflow-wrap: anywhere; }
#umap-tooltip img { display: block; max-width: 96px; max-height: 96px; image-rendering: pixelated; }
#pretrain-live { position: sticky; top: 8px; align-self: flex-start; }
.ffclr-wrap td, .ffclr-wrap td * { overflow-wrap: anywhere; }
.ffclr-wrap th, .ffclr-wrap th * { overflow-wrap: normal; word-break: keep-all; }
#detect-drawn .thumbnail-item { aspect-ratio: auto; height: 660px; }
#explore-crop img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }
"""

KEYBOARD_JS = """
<script>
document.addEventListener('keydown', (event) => {
  const target = event.target;
  if (target && (target.tagName === 'INPUT' || target.tagName === 'TEXTAREA' ||
                 target.isContentEditable)) return;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const buttons = {'n': 'explore-next', 'j': 'explore-next', 'p': 'explore-prev',
                   'k': 'explore-prev', 'u': 'explore-undo'};
  const id = buttons[event.key];
  if (!id) return;
  const button = document.getElementById(id);
  if (button && button.offsetParent !== null) { button.click(); event.preventDefault(); }
});
</script>
"""


def static_paths(workspace: Workspace) -> list[Path]:
    """Folders the browser may fetch files from: plotly.js, the crops (hover thumbnails) and the
    drawings being annotated."""
    return [plotly_js_path().parent, workspace.datasets, annotate.drawings_root(workspace)]


def build_app(workspace: Workspace, queue_size: int = QUEUE_SIZE) -> gr.Blocks:
    """The app; at most `queue_size` requests wait in its queue (more are refused)."""
    workspace.root.mkdir(parents=True, exist_ok=True)
    workspace.datasets.mkdir(parents=True, exist_ok=True)
    annotate.drawings_root(workspace).mkdir(parents=True, exist_ok=True)
    workspace.open_store().close()
    gr.set_static_paths([str(p) for p in static_paths(workspace)])
    ctx = Context(workspace=workspace)
    with gr.Blocks(title="ffclr") as demo:
        ctx.components["demo"] = demo
        gr.Markdown(f"## ffclr — symbols on fire-protection schematics\n"
                    f"Workspace: {md_code(workspace.root)}")
        with gr.Tabs(elem_id="ffclr-tabs") as tabs:
            ctx.components["tabs"] = tabs
            for module, name in zip(TAB_MODULES, TAB_NAMES):
                with gr.Tab(name, id=name.lower(), elem_id=f"tab-{name.lower()}") as tab:
                    ctx.components[f"tab_{name.lower()}"] = tab
                    module.build(ctx, tab)
        for module in TAB_MODULES:
            wire = getattr(module, "wire", None)
            if wire:
                wire(ctx)
    demo.queue(default_concurrency_limit=2, max_size=queue_size)
    return demo


def launch_options(workspace: Workspace) -> dict:
    """Keyword arguments for `launch()` (Gradio 6 takes css/head there, not in Blocks)."""
    return {"css": CSS, "head": KEYBOARD_JS + annotate.ANNOTATE_KEYS_JS,
            "allowed_paths": [str(workspace.datasets), str(annotate.drawings_root(workspace))],
            "show_error": False, "quiet": True}
