"""The clickable UMAP scatter: a `gr.HTML` drawing plotly.js served from the plotly package.

`gr.Plot` sends no click back to Python in Gradio 6, so the figure travels as JSON in the
component's value and is drawn in the browser. A click calls `trigger('select', {point_id})`;
a lasso or box selection calls `trigger('input', {point_ids})` (an empty list when it is
cleared by a double click; a plain click, which plotly also reports as an empty selection,
keeps it); a hover shows the crop's thumbnail in a tooltip of our own (plotly's own hover label
is switched off: it cannot hold images and would sit on top of ours).
Names from data reach plotly escaped (`plotly_text`) and the tooltip as DOM text
(`textContent`), never as HTML.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import gradio as gr

from ui.build_assets import plotly_script_tag
from ui.common import plotly_text

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#e7ba52",
           "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363"]
QUALITY_SCALE = [[0.0, "#d73027"], [0.5, "#fee08b"], [1.0, "#1a9850"]]
"""Red (low: a likely label error) through yellow to green (high)."""
HEIGHT = 600
TITLE_TOP = 48
"""Pixels from the top of the figure to the title's middle: below plotly's toolbar."""

SCATTER_JS = r"""
let tooltip = document.getElementById('umap-tooltip');
if (!tooltip) {
  tooltip = document.createElement('div');
  tooltip.id = 'umap-tooltip';
  document.body.appendChild(tooltip);
}
function hideTooltip() { tooltip.style.display = 'none'; }
function emptyNote() {
  const note = document.createElement('p');
  note.className = 'umap-empty';
  note.textContent = 'Pick a checkpoint and a dataset, then Compute map.';
  return note;
}
function showTooltip(info, mouse) {
  const image = document.createElement('img');
  image.src = info[0];
  const caption = document.createElement('div');
  caption.textContent = info[1];
  tooltip.replaceChildren(image, caption);
  tooltip.style.display = 'block';
  const x = mouse.clientX + 14, y = mouse.clientY + 14;
  const width = tooltip.offsetWidth, height = tooltip.offsetHeight;
  tooltip.style.left = (x + width > window.innerWidth ? mouse.clientX - width - 14 : x) + 'px';
  tooltip.style.top = (y + height > window.innerHeight ? mouse.clientY - height - 14 : y) + 'px';
}
function selectedIds(event) {
  const ids = new Set();
  for (const point of (event && event.points) || []) {
    if (point.customdata !== undefined) ids.add(point.customdata);
  }
  return [...ids];
}
function bind(holder) {
  holder.on('plotly_click', (event) => {
    hideTooltip();
    const point = event.points && event.points[0];
    if (point && point.customdata !== undefined) trigger('select', {point_id: point.customdata});
  });
  holder.on('plotly_hover', (event) => {
    const point = event.points && event.points[0];
    if (!point) return;
    const info = holder._spec.thumbs[String(point.customdata)];
    if (info) showTooltip(info, event.event); else hideTooltip();
  });
  holder.on('plotly_unhover', hideTooltip);
  holder.on('plotly_selecting', hideTooltip);
  holder.on('plotly_relayout', hideTooltip);
  holder.on('plotly_selected', (event) => {
    hideTooltip();
    if (event) trigger('input', {point_ids: selectedIds(event)});
  });
  holder.on('plotly_deselect', () => trigger('input', {point_ids: []}));
  holder.addEventListener('mouseleave', hideTooltip);
}
function draw() {
  hideTooltip();
  const holder = element.querySelector('.umap-plot');
  if (!holder) return;
  if (!props.value) { holder.replaceChildren(emptyNote()); return; }
  if (typeof Plotly === 'undefined') { setTimeout(draw, 200); return; }
  const placeholder = holder.querySelector('.umap-empty');
  if (placeholder) placeholder.remove();
  const spec = JSON.parse(props.value);
  holder._spec = spec;
  Plotly.react(holder, spec.data, spec.layout, {displaylogo: false, responsive: true});
  holder.dataset.points = String(spec.n_points);
  if (!holder._ffclrBound) { holder._ffclrBound = true; bind(holder); }
}
draw();
watch('value', draw);
"""


def scatter_component(**kwargs) -> gr.HTML:
    return gr.HTML(value="", html_template="<div class='umap-plot' style='width:100%;"
                   f"min-height:{HEIGHT}px'></div>", js_on_load=SCATTER_JS,
                   head=plotly_script_tag(), **kwargs)


@dataclass
class Colouring:
    """How the points are coloured: one category per point (a trace each, in `order`, with the
    legend) or one number per point on a continuous scale (`values`, `low`..`high`)."""
    title: str
    categories: list[str] | None = None
    order: list[str] | None = None
    """Every category, in legend order; a category's colour is its place here."""
    values: list[float] | None = None
    low: float = 0.0
    high: float = 1.0
    legend_chars: int | None = None
    """Cut longer category names in the legend (Roboflow's drawing names are long); the
    tooltip shows them whole."""


def _marker(rows: list[int], crop_ids: list[int], flagged: set[int]) -> dict:
    return {"size": [11 if crop_ids[i] in flagged else 7 for i in rows],
            "line": {"width": [2 if crop_ids[i] in flagged else 0 for i in rows],
                     "color": "#000"}}


def _trace(name: str, rows: list[int], coords, crop_ids: list[int], flagged: set[int],
           selection: set[int]) -> dict:
    trace = {"type": "scatter", "mode": "markers", "name": name, "hoverinfo": "none",
             "x": [float(coords[i][0]) for i in rows], "y": [float(coords[i][1]) for i in rows],
             "customdata": [int(crop_ids[i]) for i in rows],
             "marker": _marker(rows, crop_ids, flagged)}
    if selection:
        trace["selectedpoints"] = [n for n, i in enumerate(rows) if crop_ids[i] in selection]
    return trace


def _short(name: str, chars: int | None) -> str:
    return name if chars is None or len(name) <= chars else name[:chars - 1] + "…"


def _category_traces(colouring: Colouring, coords, crop_ids, flagged, selection) -> list[dict]:
    traces = []
    for index, category in enumerate(colouring.order or []):
        rows = [i for i, c in enumerate(colouring.categories) if c == category]
        if not rows:
            continue
        name = plotly_text(_short(category, colouring.legend_chars))
        trace = _trace(f"{name} ({len(rows)})", rows, coords, crop_ids, flagged, selection)
        trace["marker"]["color"] = PALETTE[index % len(PALETTE)]
        traces.append(trace)
    return traces


def _scale_trace(colouring: Colouring, coords, crop_ids, flagged, selection) -> dict:
    rows = list(range(len(crop_ids)))
    trace = _trace(plotly_text(colouring.title), rows, coords, crop_ids, flagged, selection)
    trace["marker"].update({
        "color": [float(v) for v in colouring.values], "colorscale": QUALITY_SCALE,
        "cmin": colouring.low, "cmax": colouring.high, "showscale": True,
        "colorbar": {"title": {"text": plotly_text(colouring.title), "side": "right"},
                     "thickness": 14}})
    trace["showlegend"] = False
    return trace


def scatter_spec(coords, crop_ids: list[int], colouring: Colouring,
                 thumbs: dict[int, tuple[str, str]], flagged: set[int] | None = None,
                 selected: int | None = None, title: str = "", selection: set[int] | None = None,
                 revision: str = "") -> str:
    """The figure as JSON; customdata = crop id.

    `thumbs` maps a crop id to (thumbnail URL, caption in plain text;
    line breaks are kept); `selected` is the
    clicked crop (ringed), `selection` the lassoed crops (the others are dimmed); zoom, pan and
    the drag tool are kept across redraws with the same `revision`.
    """
    flagged, selection = flagged or set(), selection or set()
    if colouring.values is not None:
        traces = [_scale_trace(colouring, coords, crop_ids, flagged, selection)]
    else:
        traces = _category_traces(colouring, coords, crop_ids, flagged, selection)
    if selected is not None and selected in crop_ids:
        i = crop_ids.index(selected)
        traces.append({"type": "scatter", "mode": "markers", "name": "clicked",
                       "x": [float(coords[i][0])], "y": [float(coords[i][1])],
                       "customdata": [int(selected)], "hoverinfo": "skip",
                       "marker": {"size": 18, "color": "rgba(0,0,0,0)",
                                  "line": {"width": 3, "color": "#ff2d55"}}})
    layout = {"title": {"text": plotly_text(title), "x": 0.01, "xanchor": "left",
                        "yref": "container", "y": 1 - TITLE_TOP / HEIGHT, "yanchor": "middle",
                        "font": {"size": 14}},
              "height": HEIGHT, "margin": {"l": 30, "r": 10, "t": TITLE_TOP + 24, "b": 30},
              "hovermode": "closest", "dragmode": "lasso", "uirevision": revision,
              "legend": {"itemclick": "toggle", "title": {"text": plotly_text(colouring.title)}},
              "xaxis": {"showticklabels": False, "zeroline": False},
              "yaxis": {"showticklabels": False, "zeroline": False}}
    return json.dumps({"data": traces, "layout": layout, "n_points": len(crop_ids),
                       "thumbs": {str(k): v for k, v in thumbs.items()}})
