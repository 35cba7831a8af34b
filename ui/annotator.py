"""The box editor of the Annotate tab: plotly.js shape editing inside a `gr.HTML`.

The drawing is the layout image of a plot whose y axis points down (drawing pixels), each box an
editable rectangle coloured by class, labelled with its class and the model's confidence. In the
browser: drag a box to move it, drag an edge or corner to resize it, click it to select it, drag
on the drawing (draw mode) to draw a new one, scroll to zoom (over a box too: the wheel is
passed to the plot, which would not see it there), pan with the modebar's pan tool.
Each edit goes back to Python at once as an event: `select` with `{box_id}`, `edit` with
`{kind: "move", box_id, bbox}` or `{kind: "add", bbox}` (bbox = [x, y, w, h] in drawing pixels).
Zoom and pan are kept while the same drawing is redrawn after an edit.

Names from data reach plotly escaped (`plotly_text`); the placeholder note is DOM text.
The payload of an event comes from the browser and is checked (`read_edit`) before use.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Iterable

import gradio as gr

from ffclr.annotate.boxes import Box
from ffclr.errors import FfclrError
from ui.build_assets import plotly_script_tag
from ui.common import plotly_text
from ui.plot import PALETTE

HEIGHT_PX = 680
MIN_BOX_PX = 2.0
SELECTED_COLOUR = "#ff2d55"
EDIT_KINDS = ("move", "add")

ANNOTATOR_JS = r"""
function emptyNote() {
  const note = document.createElement('p');
  note.className = 'annotator-empty';
  note.textContent = 'Pick a drawing in the queue (or add drawings) to annotate it.';
  return note;
}
function boxOf(shape) {
  const x0 = Math.min(shape.x0, shape.x1), y0 = Math.min(shape.y0, shape.y1);
  return [x0, y0, Math.abs(shape.x1 - shape.x0), Math.abs(shape.y1 - shape.y0)];
}
function onRelayout(holder, event) {
  const ids = holder._ids || [];
  if (Array.isArray(event.shapes)) {
    if (event.shapes.length > ids.length) {
      trigger('edit', {kind: 'add', bbox: boxOf(event.shapes[event.shapes.length - 1])});
    }
    return;
  }
  const moved = new Set();
  for (const key of Object.keys(event)) {
    const match = /^shapes\[(\d+)\]\./.exec(key);
    if (match) moved.add(Number(match[1]));
  }
  for (const index of moved) {
    if (index < ids.length) {
      trigger('edit', {kind: 'move', box_id: ids[index],
                       bbox: boxOf(holder.layout.shapes[index])});
    }
  }
}
function wheelOverBoxes(holder, event) {
  const drag = holder.querySelector('.nsewdrag');
  if (!drag || !event.target.closest || !event.target.closest('.shapelayer')) return;
  event.preventDefault();
  event.stopPropagation();
  drag.dispatchEvent(new WheelEvent('wheel', {
    deltaX: event.deltaX, deltaY: event.deltaY, deltaMode: event.deltaMode,
    clientX: event.clientX, clientY: event.clientY, bubbles: true, cancelable: true}));
}
function bind(holder) {
  if (holder._ffclrBound) return;
  holder._ffclrBound = true;
  holder.on('plotly_relayout', (event) => onRelayout(holder, event));
  holder.addEventListener('wheel', (event) => wheelOverBoxes(holder, event),
                          {capture: true, passive: false});
  holder.addEventListener('mousedown', (event) => {
    const shape = event.target.closest && event.target.closest('.shapelayer [data-index]');
    holder._down = shape ? {index: Number(shape.getAttribute('data-index')),
                            x: event.clientX, y: event.clientY} : null;
  }, true);
  document.addEventListener('mouseup', (event) => {
    const down = holder._down;
    holder._down = null;
    if (!down || Math.abs(event.clientX - down.x) + Math.abs(event.clientY - down.y) > 3) return;
    const ids = holder._ids || [];
    if (down.index < ids.length) trigger('select', {box_id: ids[down.index]});
  }, true);
}
function draw() {
  const holder = element.querySelector('.annotator-plot');
  if (!holder) return;
  if (!props.value) {
    if (holder._ffclrBound) Plotly.purge(holder);
    holder._ffclrBound = false;
    holder._drawing = null;
    holder.replaceChildren(emptyNote());
    return;
  }
  if (typeof Plotly === 'undefined') { setTimeout(draw, 200); return; }
  const note = holder.querySelector('.annotator-empty');
  if (note) note.remove();
  const spec = JSON.parse(props.value);
  const layout = spec.layout;
  const full = holder._fullLayout;
  if (holder._drawing === spec.drawing_id && full && full.xaxis && full.yaxis) {
    layout.xaxis.range = full.xaxis.range.slice();
    layout.yaxis.range = full.yaxis.range.slice();
    layout.dragmode = full.dragmode;
  }
  holder._drawing = spec.drawing_id;
  holder._ids = spec.box_ids;
  Plotly.react(holder, spec.data, layout, spec.config).then(() => {
    holder.dataset.boxes = String(spec.box_ids.length);
    holder.dataset.selected = spec.selected === null ? '' : String(spec.selected);
    holder.dataset.drawing = String(spec.drawing_id);
    holder.dataset.revision = String(spec.revision);
  });
  bind(holder);
}
draw();
watch('value', draw);
"""


@dataclass(frozen=True)
class DrawingView:
    """What the editor needs of a drawing: its id, the URL of its image and its size."""
    id: int
    url: str
    width: int
    height: int


@dataclass(frozen=True)
class Edit:
    """One checked edit from the browser."""
    kind: str
    box_id: int | None
    bbox: tuple[float, float, float, float] | None


def annotator_component(**kwargs) -> gr.HTML:
    return gr.HTML(value="", html_template=f"<div class='annotator-plot' style='width:100%;"
                   f"min-height:{HEIGHT_PX}px'></div>", js_on_load=ANNOTATOR_JS,
                   head=plotly_script_tag(), **kwargs)


def class_colour(class_index: int) -> str:
    return PALETTE[int(class_index) % len(PALETTE)]


def _translucent(colour: str, alpha: float = 0.12) -> str:
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def box_label(box: Box) -> str:
    """Class, and the model's confidence for a box a person has not accepted yet (plain text)."""
    if box.score is None or box.accepted:
        return box.class_name
    return f"{box.class_name} {score_text(box.score)}"


def score_text(score: float) -> str:
    """A score to two decimals, cut rather than rounded: a box that reads 1.00 or 0.50 has at
    least that score, so it never reads as high as a threshold it is under."""
    return f"{math.floor(score * 100) / 100:.2f}"


def _shape(box: Box, selected: bool, min_score: float) -> dict:
    x, y, w, h = (float(v) for v in box.bbox)
    colour = class_colour(box.class_index)
    pending = not box.accepted and box.score is not None
    dash = "solid" if not pending else ("dash" if box.score >= min_score else "dot")
    return {"type": "rect", "xref": "x", "yref": "y", "x0": x, "y0": y, "x1": x + w,
            "y1": y + h, "layer": "above",
            "line": {"color": SELECTED_COLOUR if selected else colour,
                     "width": 3 if selected else 2, "dash": dash},
            "fillcolor": _translucent(colour), "opacity": 1.0,
            "label": {"text": plotly_text(box_label(box)), "textposition": "top left",
                      "yanchor": "bottom", "padding": 1,
                      "font": {"size": 11, "color": SELECTED_COLOUR if selected else colour}}}


def editor_spec(drawing: DrawingView, boxes: Iterable[Box], selected: int | None = None,
                min_score: float = 0.5, revision: int = 0, nonce: str = "") -> str:
    """The figure as JSON for `annotator_component`: the drawing, one editable rectangle per box
    (solid once a person accepted, drew, moved or re-classed it; dashed when the model proposed
    it at or above `min_score`, dotted below), `box_ids[i]` the id of shape i. `revision` counts
    the drawing's edits; a new `nonce` makes the browser redraw even when nothing changed (to
    undo a drag that was refused)."""
    boxes = list(boxes)
    w, h = int(drawing.width), int(drawing.height)
    shapes = [_shape(box, box.id == selected, min_score) for box in boxes]
    corners = {"type": "scatter", "mode": "markers", "x": [0, w], "y": [0, h],
               "marker": {"opacity": 0}, "hoverinfo": "skip", "showlegend": False}
    layout = {
        "height": HEIGHT_PX, "margin": {"l": 40, "r": 10, "t": 10, "b": 30},
        "dragmode": "drawrect", "hovermode": False, "showlegend": False,
        "xaxis": {"range": [0, w], "showgrid": False, "zeroline": False, "constrain": "domain"},
        "yaxis": {"range": [h, 0], "showgrid": False, "zeroline": False,
                  "scaleanchor": "x", "scaleratio": 1, "constrain": "domain"},
        "images": [{"source": drawing.url, "xref": "x", "yref": "y", "x": 0, "y": 0,
                    "sizex": w, "sizey": h, "xanchor": "left", "yanchor": "top",
                    "sizing": "stretch", "layer": "below"}],
        "shapes": shapes,
        "newshape": {"line": {"color": SELECTED_COLOUR, "width": 2},
                     "fillcolor": "rgba(0,0,0,0)"},
    }
    config = {"displaylogo": False, "responsive": True, "scrollZoom": True,
              "doubleClick": False, "edits": {"shapePosition": True},
              "modeBarButtonsToAdd": ["drawrect"],
              "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d", "toImage"]}
    return json.dumps({"data": [corners], "layout": layout, "config": config,
                       "box_ids": [int(box.id) for box in boxes], "drawing_id": int(drawing.id),
                       "selected": None if selected is None else int(selected),
                       "revision": int(revision), "nonce": str(nonce)})


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FfclrError(f"edit from the browser: {what} is not a number")
    return float(value)


def read_bbox(value: Any, width: int, height: int) -> tuple[float, float, float, float]:
    """[x, y, w, h] from the browser clipped to the drawing; FfclrError if it is not a box of at
    least MIN_BOX_PX on each side inside the drawing."""
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise FfclrError("edit from the browser: the box is not [x, y, width, height]")
    x, y, w, h = (_number(v, "a box coordinate") for v in value)
    x0, y0 = max(0.0, min(x, x + w)), max(0.0, min(y, y + h))
    x1, y1 = min(float(width), max(x, x + w)), min(float(height), max(y, y + h))
    if x1 - x0 < MIN_BOX_PX or y1 - y0 < MIN_BOX_PX:
        raise FfclrError(f"a box must be at least {MIN_BOX_PX:g} pixels wide and high inside "
                         "the drawing")
    return (round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2))


def read_box_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FfclrError("edit from the browser: the box id is not a whole number")
    return int(value)


def read_edit(data: Any, width: int, height: int) -> Edit:
    """An `edit` event's payload, checked: kind, the box it is about, its new box."""
    if not isinstance(data, dict) or data.get("kind") not in EDIT_KINDS:
        raise FfclrError("edit from the browser: unknown kind of edit")
    box_id = read_box_id(data.get("box_id")) if data["kind"] == "move" else None
    return Edit(data["kind"], box_id, read_bbox(data.get("bbox"), width, height))
