"""The clickable UMAP scatter: a `gr.HTML` drawing plotly.js served from the plotly package.

`gr.Plot` sends no click back to Python in Gradio 6, so the figure travels as JSON in the
component's value and is drawn in the browser with WebGL (`scattergl`; plain SVG `scatter`
where the browser has no WebGL). A click calls `trigger('select', {point_id})` and moves the
ring to the point in the browser (the answer does not send the figure again);
a lasso or box selection calls `trigger('input', {point_ids})` (an empty list when it is
cleared by a double click; a plain click, which plotly also reports as an empty selection,
keeps it). A hover asks Python for that crop's thumbnail URL and caption (the component's
server function `crop_hover`, answered outside the event queue) and shows them in a tooltip
of our own (plotly's own hover label is switched off: it cannot hold images and would sit on
top of ours); an answer that comes back after the mouse left the point, or after a redraw, is
dropped, and a click hides the tooltip until the mouse moves (the ring's redraw may bring a
hover of a point under the still mouse). The figure carries no per-point thumbnails
or captions, only coordinates, crop ids and marker styles.
Names from data reach plotly escaped (`plotly_text`) and the tooltip as DOM text
(`textContent`), never as HTML.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr
import numpy as np

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
DIGITS = 4
"""Coordinates and colour values keep steps of 1/10^DIGITS of their range: finer than a
600-pixel plot shows even zoomed in tenfold."""

SCATTER_JS = r"""
let tooltip = document.getElementById('umap-tooltip');
if (!tooltip) {
  tooltip = document.createElement('div');
  tooltip.id = 'umap-tooltip';
  document.body.appendChild(tooltip);
}
const webgl = (() => {
  try { return !!document.createElement('canvas').getContext('webgl'); } catch (e) { return false; }
})();
let hovered = null, mouse = null, clickedAt = null, generation = 0, infos = new Map();
function hideTooltip() { tooltip.style.display = 'none'; }
function forget() { hovered = null; hideTooltip(); }
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
function hover(holder, crop) {
  if (infos.has(crop)) { showTooltip(infos.get(crop), mouse); return; }
  hideTooltip();
  const asked = generation;
  server.crop_hover({...holder._spec.hover, crop_id: crop}).then((info) => {
    if (asked !== generation || !info) return;
    infos.set(crop, info);
    if (hovered === crop) showTooltip(info, mouse);
  }, () => {});
}
function stillAfterClick(event) {
  if (!clickedAt || !event) return false;
  if (Math.hypot(event.clientX - clickedAt[0], event.clientY - clickedAt[1]) < 4) return true;
  clickedAt = null;
  return false;
}
function selectedIds(event) {
  const ids = new Set();
  for (const point of (event && event.points) || []) {
    if (point.customdata !== undefined) ids.add(point.customdata);
  }
  return [...ids];
}
function ringAt(holder, point) {
  Plotly.relayout(holder, {shapes: [{...holder._spec.ring, xanchor: point.x, yanchor: point.y}]});
}
function bind(holder) {
  holder.on('plotly_click', (event) => {
    forget();
    if (event.event) clickedAt = [event.event.clientX, event.event.clientY];
    const point = event.points && event.points[0];
    if (point && point.customdata !== undefined) {
      trigger('select', {point_id: point.customdata});
      setTimeout(() => ringAt(holder, point), 0);
    }
  });
  holder.on('plotly_hover', (event) => {
    const point = event.points && event.points[0];
    if (!point || point.customdata === undefined || stillAfterClick(event.event)) {
      forget();
      return;
    }
    hovered = point.customdata;
    mouse = event.event;
    hover(holder, hovered);
  });
  holder.on('plotly_unhover', forget);
  holder.on('plotly_selecting', forget);
  holder.on('plotly_relayout', forget);
  holder.on('plotly_selected', (event) => {
    forget();
    if (event) trigger('input', {point_ids: selectedIds(event)});
  });
  holder.on('plotly_deselect', () => trigger('input', {point_ids: []}));
  holder.addEventListener('mouseleave', forget);
}
function draw() {
  forget();
  generation += 1;
  infos = new Map();
  const holder = element.querySelector('.umap-plot');
  if (!holder) return;
  if (!props.value) { holder.replaceChildren(emptyNote()); return; }
  if (typeof Plotly === 'undefined') { setTimeout(draw, 200); return; }
  const placeholder = holder.querySelector('.umap-empty');
  if (placeholder) placeholder.remove();
  const spec = JSON.parse(props.value);
  if (!webgl) for (const trace of spec.data) trace.type = 'scatter';
  holder._spec = spec;
  Plotly.react(holder, spec.data, spec.layout, {displaylogo: false, responsive: true});
  holder.dataset.points = String(spec.n_points);
  if (!holder._ffclrBound) { holder._ffclrBound = true; bind(holder); }
}
draw();
watch('value', draw);
"""


def scatter_component(hover: Callable[[dict], list[str] | None], **kwargs) -> gr.HTML:
    """The map; `hover` answers the browser's hover requests: it gets the figure's `hover`
    context plus `crop_id` and returns [thumbnail URL, caption in plain text] or None."""
    def crop_hover(request: dict) -> list[str] | None:
        return hover(request) if isinstance(request, dict) else None

    return gr.HTML(value="", html_template="<div class='umap-plot' style='width:100%;"
                   f"min-height:{HEIGHT}px'></div>", js_on_load=SCATTER_JS,
                   head=plotly_script_tag(), server_functions=[crop_hover], **kwargs)


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


def rounded(values, span: float) -> np.ndarray:
    """`values` rounded to steps of at most `span` / 10^DIGITS (kept as floats)."""
    values = np.asarray(values, dtype=np.float64)
    if not span > 0 or not math.isfinite(span):
        return values
    return np.round(values, max(math.ceil(DIGITS - math.log10(span)), 0))


@dataclass
class _Points:
    """The map's points as arrays: rounded coordinates, crop ids, flagged and selected."""
    xy: np.ndarray
    ids: np.ndarray
    flagged: np.ndarray
    selected: np.ndarray
    selecting: bool
    """A selection is shown (its points highlighted, the others dimmed)."""


def _marker(flagged: np.ndarray) -> dict:
    if not flagged.any():
        return {"size": 7, "line": {"width": 0, "color": "#000"}}
    return {"size": np.where(flagged, 11, 7).tolist(),
            "line": {"width": np.where(flagged, 2, 0).tolist(), "color": "#000"}}


def _trace(name: str, rows: np.ndarray, points: _Points) -> dict:
    trace = {"type": "scattergl", "mode": "markers", "name": name, "hoverinfo": "none",
             "x": points.xy[rows, 0].tolist(), "y": points.xy[rows, 1].tolist(),
             "customdata": points.ids[rows].tolist(), "marker": _marker(points.flagged[rows])}
    if points.selecting:
        trace["selectedpoints"] = np.flatnonzero(points.selected[rows]).tolist()
    return trace


def _short(name: str, chars: int | None) -> str:
    return name if chars is None or len(name) <= chars else name[:chars - 1] + "…"


def _category_traces(colouring: Colouring, points: _Points) -> list[dict]:
    rows_of: dict[str, list[int]] = defaultdict(list)
    for i, category in enumerate(colouring.categories):
        rows_of[category].append(i)
    traces = []
    for index, category in enumerate(colouring.order or []):
        rows = rows_of.get(category)
        if not rows:
            continue
        name = plotly_text(_short(category, colouring.legend_chars))
        trace = _trace(f"{name} ({len(rows)})", np.asarray(rows), points)
        trace["marker"]["color"] = PALETTE[index % len(PALETTE)]
        traces.append(trace)
    return traces


def _scale_trace(colouring: Colouring, points: _Points) -> dict:
    trace = _trace(plotly_text(colouring.title), np.arange(len(points.ids)), points)
    trace["marker"].update({
        "color": rounded(colouring.values, colouring.high - colouring.low).tolist(),
        "colorscale": QUALITY_SCALE, "cmin": colouring.low, "cmax": colouring.high,
        "showscale": True, "colorbar": {"title": {"text": plotly_text(colouring.title),
                                                  "side": "right"}, "thickness": 14}})
    trace["showlegend"] = False
    return trace


RING = {"type": "circle", "name": "clicked", "xref": "x", "yref": "y", "xsizemode": "pixel",
        "ysizemode": "pixel", "x0": -9, "x1": 9, "y0": -9, "y1": 9, "layer": "above",
        "line": {"width": 3, "color": "#ff2d55"}}
"""The clicked crop's ring: a layout shape of fixed size in pixels, anchored at the point
(`xanchor`, `yanchor`), drawn over the points and never dimmed by a selection. The browser
moves it itself when a point is clicked; a shape moves without redrawing the points, where a
ring trace made plotly redraw all of them (0.46 s against 0.03 s at 100,000 points, headless
Chromium)."""


def _ring(points: _Points, selected: int) -> dict:
    i = int(np.flatnonzero(points.ids == selected)[0])
    return {**RING, "xanchor": float(points.xy[i, 0]), "yanchor": float(points.xy[i, 1])}


def scatter_spec(coords, crop_ids: list[int], colouring: Colouring,
                 flagged: set[int] | None = None, selected: int | None = None, title: str = "",
                 selection: set[int] | None = None, revision: str = "",
                 hover: dict | None = None) -> str:
    """The figure as compact JSON; customdata = crop id.

    `selected` is the clicked crop (ringed), `selection` the lassoed crops (the others are
    dimmed); zoom, pan and the drag tool are kept across redraws with the same `revision`;
    `hover` goes back to the component's `hover` function with each hovered crop id.
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    ids = np.asarray(crop_ids, dtype=np.int64)
    span = float(np.ptp(coords)) if len(coords) else 0.0
    selection = selection or set()
    points = _Points(xy=rounded(coords, span), ids=ids,
                     flagged=np.isin(ids, list(flagged or ())),
                     selected=np.isin(ids, list(selection)), selecting=bool(selection))
    if colouring.values is not None:
        traces = [_scale_trace(colouring, points)]
    else:
        traces = _category_traces(colouring, points)
    ringed = selected is not None and bool(np.any(ids == int(selected)))
    layout = {"shapes": [_ring(points, int(selected))] if ringed else [],
              "title": {"text": plotly_text(title), "x": 0.01, "xanchor": "left",
                        "yref": "container", "y": 1 - TITLE_TOP / HEIGHT, "yanchor": "middle",
                        "font": {"size": 14}},
              "height": HEIGHT, "margin": {"l": 30, "r": 10, "t": TITLE_TOP + 24, "b": 30},
              "hovermode": "closest", "dragmode": "lasso", "uirevision": revision,
              "legend": {"itemclick": "toggle", "title": {"text": plotly_text(colouring.title)}},
              "xaxis": {"showticklabels": False, "zeroline": False},
              "yaxis": {"showticklabels": False, "zeroline": False}}
    return json.dumps({"data": traces, "layout": layout, "n_points": len(ids),
                       "hover": hover or {}, "ring": RING}, separators=(",", ":"))
