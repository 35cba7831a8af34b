"""The clickable UMAP scatter: a `gr.HTML` drawing plotly.js served from the plotly package.

`gr.Plot` sends no click back to Python in Gradio 6, so the figure travels as JSON in the
component's value and is drawn in the browser; a click calls `trigger('select', {point_id})`,
a hover shows the crop's thumbnail in a tooltip of our own (plotly's cannot hold images).
Names from data reach plotly escaped (`plotly_text`) and the tooltip as DOM text (`textContent`),
never as HTML.
"""
from __future__ import annotations

import json

import gradio as gr

from ui.build_assets import plotly_script_tag
from ui.common import plotly_text

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#e7ba52",
           "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363"]

SCATTER_JS = r"""
let tooltip = document.getElementById('umap-tooltip');
if (!tooltip) {
  tooltip = document.createElement('div');
  tooltip.id = 'umap-tooltip';
  document.body.appendChild(tooltip);
}
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
  tooltip.style.left = (mouse.clientX + 14) + 'px';
  tooltip.style.top = (mouse.clientY + 14) + 'px';
  tooltip.style.display = 'block';
}
function draw() {
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
  if (holder._ffclrBound) return;
  holder._ffclrBound = true;
  holder.on('plotly_click', (event) => {
    const point = event.points && event.points[0];
    if (point && point.customdata !== undefined) {
      tooltip.style.display = 'none';
      trigger('select', {point_id: point.customdata});
    }
  });
  holder.on('plotly_hover', (event) => {
    const point = event.points && event.points[0];
    if (!point) return;
    const info = holder._spec.thumbs[String(point.customdata)];
    if (!info) return;
    showTooltip(info, event.event);
  });
  holder.on('plotly_unhover', () => { tooltip.style.display = 'none'; });
}
draw();
watch('value', draw);
"""


def scatter_component(**kwargs) -> gr.HTML:
    return gr.HTML(value="", html_template="<div class='umap-plot' style='width:100%;"
                   "min-height:560px'></div>", js_on_load=SCATTER_JS, head=plotly_script_tag(),
                   **kwargs)


def scatter_spec(coords, crop_ids: list[int], labels: list[int], class_names: list[str],
                 thumbs: dict[int, tuple[str, str]], flagged: set[int] | None = None,
                 selected: int | None = None, title: str = "") -> str:
    """The figure as JSON: one trace per class (legend = colours), customdata = crop id.

    `thumbs` maps a crop id to (thumbnail URL, caption); the caption is plain text.
    """
    flagged = flagged or set()
    traces = []
    for class_index, name in enumerate(class_names):
        rows = [i for i, label in enumerate(labels) if label == class_index]
        if not rows:
            continue
        colour = PALETTE[class_index % len(PALETTE)]
        shown = plotly_text(name)
        traces.append({
            "type": "scatter", "mode": "markers", "name": f"{shown} ({len(rows)})",
            "x": [float(coords[i][0]) for i in rows], "y": [float(coords[i][1]) for i in rows],
            "customdata": [int(crop_ids[i]) for i in rows],
            "hovertemplate": f"{shown}<br>crop #%{{customdata}}<extra></extra>",
            "marker": {"color": colour, "size": [11 if crop_ids[i] in flagged else 7 for i in rows],
                       "line": {"width": [2 if crop_ids[i] in flagged else 0 for i in rows],
                                "color": "#000"}},
        })
    if selected is not None and selected in crop_ids:
        i = crop_ids.index(selected)
        traces.append({"type": "scatter", "mode": "markers", "name": "selected",
                       "x": [float(coords[i][0])], "y": [float(coords[i][1])],
                       "customdata": [int(selected)], "hoverinfo": "skip",
                       "marker": {"size": 18, "color": "rgba(0,0,0,0)",
                                  "line": {"width": 3, "color": "#ff2d55"}}})
    layout = {"title": {"text": plotly_text(title)}, "height": 560,
              "margin": {"l": 30, "r": 10, "t": 40, "b": 30},
              "hovermode": "closest", "legend": {"itemclick": "toggle"},
              "xaxis": {"showticklabels": False, "zeroline": False},
              "yaxis": {"showticklabels": False, "zeroline": False}}
    return json.dumps({"data": traces, "layout": layout, "n_points": len(crop_ids),
                       "thumbs": {str(k): v for k, v in thumbs.items()}})
