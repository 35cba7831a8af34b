"""Classify tab (being built)."""
from __future__ import annotations

import gradio as gr

from ui.common import Context


def build(ctx: Context, tab: gr.Tab) -> None:
    gr.Markdown("Not available yet.")
