"""Probe tab: a linear probe on frozen features (`ffclr.eval.evaluate.run_probe`), its metrics
beside the majority baseline, the per-class table, the confusion heatmap and the CSV."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from ffclr.data.cropset import load_dataset_split
from ffclr.errors import FfclrError
from ffclr.eval.evaluate import run_probe as fit_and_score
from ffclr.workspace import Workspace
from ui.common import (Context, checkpoint_and_dataset_updates, checkpoint_choices,
                       dataset_choices, guard, md_text, ok_md, plotly_text, split_choices)

METHODS = {"logistic regression, L-BFGS (CV-chosen regularisation)": "lbfgs",
           "Adam + focal loss (the seed's probe)": "adam"}
SUMMARY_KEYS = (("top1", "top-1"), ("top5", "top-5"), ("balanced_accuracy", "balanced accuracy"),
                ("macro_f1", "macro-F1"))
CLASS_COLUMNS = ["class", "n_train", "support", "f1", "precision", "recall"]
"""The class, how many crops it had to learn from and to be scored on, then the scores; the
class name wraps within `CLASS_WIDTHS` of the page's width, and the headers never wrap."""
CLASS_WIDTHS = ["40%", "12%", "12%", "12%", "12%", "12%"]


def run_probe(workspace: Workspace, checkpoint: str | None, dataset: str | None,
              train_split: str | None, test_split: str | None, method: str = "lbfgs",
              progress=None):
    """Fit on the train split's crops only, score on the test split; returns ffclr's report."""
    if not checkpoint:
        raise FfclrError("pick a checkpoint (pretrain one in the Pretrain tab)")
    if not dataset:
        raise FfclrError("pick a dataset (import one in the Data tab)")
    if not train_split or not test_split:
        raise FfclrError("pick the train and the test split")
    if train_split == test_split:
        raise FfclrError(f"train and test are both {train_split!r}: a probe must be scored on "
                         "crops it was not fitted on")
    method = METHODS.get(method, method)
    train = load_dataset_split(dataset, train_split, workspace)
    test = load_dataset_split(dataset, test_split, workspace)
    return fit_and_score(train, test, checkpoint, workspace, method=method, progress=progress)


def summary_rows(metrics: dict) -> list[list]:
    """(metric, probe, majority baseline) rows."""
    baseline = metrics.get("baseline") or {}
    rows = []
    for key, title in SUMMARY_KEYS:
        value = metrics.get(key)
        base = baseline.get(key)
        rows.append([title, None if value is None else round(value, 4),
                     None if base is None else round(base, 4)])
    rows.append(["train / test crops", metrics.get("n_train"), metrics.get("n_test")])
    if metrics.get("macro_f1_classes") is not None:
        rows.append(["classes in macro-F1 (tested or predicted)", metrics["macro_f1_classes"],
                     None])
    return rows


def class_rows(metrics: dict) -> list[list]:
    """One row per class seen in training or testing, in `CLASS_COLUMNS` order. A score that is
    undefined is left blank rather than 0: recall and F1 of a class with no test crop, precision
    of a class never predicted (a report saved before `predicted` was counted shows them all)."""
    rows = []
    for r in metrics["per_class"]:
        if not (r["support"] or r.get("n_train")):
            continue
        tested, guessed = r["support"] > 0, r.get("predicted", 1) > 0
        rows.append([r["class"], r.get("n_train", ""), r["support"],
                     round(r["f1"], 3) if tested else None,
                     round(r["precision"], 3) if guessed else None,
                     round(r["recall"], 3) if tested else None])
    return rows


def confusion_figure(metrics: dict):
    import plotly.graph_objects as go

    names = metrics["class_names"]
    matrix = metrics["confusion"]
    keep = [i for i in range(len(names)) if sum(matrix[i]) or sum(row[i] for row in matrix)]
    z = [[matrix[i][j] for j in keep] for i in keep]
    labels = [plotly_text(names[i]) for i in keep]
    fig = go.Figure(go.Heatmap(z=z, x=labels, y=labels, colorscale="Blues", text=z,
                               texttemplate="%{text}", hovertemplate="true %{y}<br>predicted "
                               "%{x}<br>%{z} crops<extra></extra>"))
    fig.update_layout(height=max(360, 28 * len(labels) + 160), xaxis_title="predicted",
                      yaxis_title="true", yaxis_autorange="reversed",
                      margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


def headline(report) -> str:
    m = report.metrics
    base = m.get("baseline") or {}
    unseen = m.get("unseen_in_train") or []
    text = (f"Probe run #{report.run_id}: top-1 **{m['top1']:.1%}**, macro-F1 "
            f"**{m['macro_f1']:.3f}** (majority class {md_text(base.get('class', '?'))}: top-1 "
            f"{base.get('top1', float('nan')):.1%}).")
    if unseen:
        text += f" Test classes never seen in training: {md_text(', '.join(unseen))}."
    return text


def split_updates(workspace: Workspace, dataset: str | None) -> tuple[dict, dict]:
    """The train and test split pickers for a dataset: its splits, on train and on valid (else
    test)."""
    names = split_choices(workspace, dataset)
    return (gr.update(choices=names, value="train" if "train" in names else None),
            gr.update(choices=names, value="valid" if "valid" in names else
                      ("test" if "test" in names else None)))


def build(ctx: Context, tab: gr.Tab) -> None:
    ws = ctx.workspace
    c = ctx.components
    datasets = dataset_choices(ws)
    first = datasets[0] if datasets else None
    splits = split_choices(ws, first)
    with gr.Row():
        c["probe_checkpoint"] = gr.Dropdown(label="Checkpoint", choices=checkpoint_choices(ws),
                                            scale=3, elem_id="probe-checkpoint")
        dataset = gr.Dropdown(label="Dataset", choices=datasets, value=first, scale=1)
        train = gr.Dropdown(label="Train split", choices=splits,
                            value="train" if "train" in splits else None, scale=1)
        test = gr.Dropdown(label="Test split", choices=splits,
                           value="valid" if "valid" in splits else None, scale=1)
    with gr.Row():
        method = gr.Dropdown(label="Method", choices=list(METHODS), value=list(METHODS)[0],
                             scale=3)
        c["probe_run"] = gr.Button("Fit probe", variant="primary", scale=1, elem_id="probe-run")
        c["probe_csv"] = gr.DownloadButton("Download CSV", visible=False, scale=1,
                                           elem_id="probe-csv")
    c["probe_status"] = gr.Markdown(elem_id="probe-status")
    with gr.Row():
        c["probe_summary"] = gr.Dataframe(headers=["metric", "probe", "majority baseline"],
                                          interactive=False, elem_id="probe-summary")
        c["probe_confusion"] = gr.Plot(label="Confusion matrix")
    c["probe_classes"] = gr.Dataframe(headers=CLASS_COLUMNS, label="Per class",
                                      interactive=False, max_height=400, wrap=True,
                                      column_widths=CLASS_WIDTHS, elem_classes="ffclr-wrap",
                                      elem_id="probe-classes")

    @guard(5)
    def on_run(checkpoint, dataset_name, train_split, test_split, method_name,
               progress=gr.Progress()):
        report = run_probe(ws, checkpoint, dataset_name, train_split, test_split, method_name,
                           lambda d, t, m: progress((d, t) if t else None, desc=m))
        csv = report.files.get("csv")
        return (ok_md(headline(report)), summary_rows(report.metrics), class_rows(report.metrics),
                confusion_figure(report.metrics),
                gr.DownloadButton(value=csv, visible=bool(csv and Path(csv).is_file())))

    c["probe_run"].click(on_run, [c["probe_checkpoint"], dataset, train, test, method],
                         [c["probe_status"], c["probe_summary"], c["probe_classes"],
                          c["probe_confusion"], c["probe_csv"]], api_name="probe_run")

    def refresh(checkpoint, dataset_name, train_split, test_split):
        checkpoints, datasets, picked = checkpoint_and_dataset_updates(ws, checkpoint,
                                                                       dataset_name)
        names = split_choices(ws, picked)
        if picked == dataset_name and {train_split, test_split} <= set(names):
            return checkpoints, datasets, gr.skip(), gr.skip()
        return checkpoints, datasets, *split_updates(ws, picked)

    def splits_of(dataset_name):
        return split_updates(ws, dataset_name)

    tab.select(refresh, [c["probe_checkpoint"], dataset, train, test],
               [c["probe_checkpoint"], dataset, train, test], show_progress="hidden")
    dataset.change(splits_of, dataset, [train, test], show_progress="hidden")
