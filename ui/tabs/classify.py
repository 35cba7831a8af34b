"""Classify tab: drop symbol images → top-k classes, nearest training crops, unknown flag
(`ffclr.eval.classify`); whole schematics go through a fitted detector (`ui.schematics`)."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from ffclr.errors import FfclrError
from ffclr.eval.classify import classify_images, load_classifier as load_probe_classifier
from ffclr.workspace import Workspace
from ui import schematics
from ui.common import (Context, check_image_upload, checkpoint_and_dataset_updates,
                       checkpoint_choices, dataset_choices, error_md, guard, md_code, md_text,
                       ok_md, open_store, result_folder, user_message, warn)

TOP_K = 5
RESULT_COLUMNS = ["file", "prediction", "prob. (%)", "unknown symbol",
                  "distance to nearest crop", "top-k (or why refused)"]
"""The file and what matters about it first; the free text (top-k, a refusal's reason) last;
every cell wraps within `RESULT_WIDTHS`."""
RESULT_WIDTHS = ["15%", "18%", "11%", "14%", "14%", "28%"]
NEIGHBOURS = 8
"""Nearest training crops shown for a classified file (two rows of the gallery)."""
DRAWING_HEIGHT = 720
"""Height (px) of the "Symbols found" gallery; each drawing's tile is a little lower (CSS
`#detect-drawn .thumbnail-item` in ui/build.py, instead of Gradio's square tile as wide as the
gallery), so a whole drawing fits in view, scaled to fit (object-fit contain)."""

_CLASSIFIERS: dict[tuple, tuple] = {}


def classifier_choices(workspace: Workspace) -> list[tuple[str, int]]:
    """Finished probe runs whose saved probe is on disk (a probe + its encoder = a classifier)."""
    if not workspace.db_path.exists():
        return []
    with open_store(workspace) as store:
        runs = store.runs(kind="probe", status="finished")
    choices = []
    for run in runs:
        path = (run["summary"].get("files") or {}).get("probe")
        if path and Path(path).is_file():
            top1 = run["summary"].get("top1")
            train = run["config"].get("train") or {}
            choices.append((f"probe #{run['id']} · {train.get('dataset', '')} "
                            f"{train.get('split') or ''} · top-1 "
                            f"{top1:.1%} · {Path(run['config'].get('checkpoint', '')).parent.name}"
                            if top1 is not None else f"probe #{run['id']}", run["id"]))
    return choices


def load_classifier(workspace: Workspace, probe_run: int | None):
    """(encoder, probe, reference) of a probe run, cached while its files are unchanged."""
    if probe_run is None:
        raise FfclrError("pick a classifier: fit a probe in the Probe tab first")
    with open_store(workspace) as store:
        run = store.run(int(probe_run))
    if run is None or run["kind"] != "probe":
        raise FfclrError(f"no probe run #{probe_run}")
    probe_path = Path((run["summary"].get("files") or {}).get("probe") or "")
    checkpoint = Path(run["config"].get("checkpoint") or "")
    for path, what in ((probe_path, "probe"), (checkpoint, "checkpoint")):
        if not path.is_file():
            raise FfclrError(f"probe run #{probe_run}: its {what} file {path} is gone")
    key = (str(probe_path), probe_path.stat().st_mtime_ns, str(checkpoint),
           checkpoint.stat().st_mtime_ns)
    if key not in _CLASSIFIERS:
        loaded = load_probe_classifier(checkpoint, probe_path, workspace)
        _CLASSIFIERS.clear()
        _CLASSIFIERS[key] = loaded
    return _CLASSIFIERS[key]


def classify(workspace: Workspace, probe_run: int | None, files: list[str] | None,
             top_k: int = TOP_K) -> list[dict]:
    """One entry per dropped file: its result, or why it was refused."""
    if not files:
        raise FfclrError("drop one or more symbol images first")
    encoder, probe, reference = load_classifier(workspace, probe_run)
    entries, accepted = [], []
    for path in files:
        entry = {"file": Path(path).name, "path": str(path), "result": None, "error": None}
        try:
            check_image_upload(path)
            accepted.append(entry)
        except FfclrError as exc:
            entry["error"] = str(exc)
        entries.append(entry)
    if accepted:
        results = classify_images([e["path"] for e in accepted], encoder, probe, reference,
                                  top_k=top_k, n_neighbours=NEIGHBOURS)
        for entry, result in zip(accepted, results):
            if result.error:
                problem = result.error.removeprefix(f"{result.source}: ")
                entry["error"] = f"{entry['file']}: {problem}"
            else:
                entry["result"] = result
    return entries


def result_rows(entries: list[dict]) -> list[list]:
    """One row per file in `RESULT_COLUMNS` order."""
    rows = []
    for e in entries:
        r, file = e["result"], e["file"]
        if r is None:
            rows.append([file, "refused", None, "", None, e["error"]])
        elif not r.top:
            rows.append([file, "no prediction", None, "UNKNOWN" if r.unknown else "no",
                         r.distance, "the encoder gives non-finite features for this image "
                         "(a diverged checkpoint?)"])
        else:
            rows.append([file, r.label, round(100 * r.top[0][1], 1),
                         "UNKNOWN" if r.unknown else "no", round(r.distance, 4),
                         ", ".join(f"{name} {p:.1%}" for name, p in r.top)])
    return rows


def neighbour_gallery(entries: list[dict], index: int = 0) -> list[tuple[str, str]]:
    good = [e for e in entries if e["result"] is not None]
    if not good:
        return []
    result = good[min(index, len(good) - 1)]["result"]
    return [(n["path"], f"{n['class']} · {n['similarity']:.2f}") for n in result.neighbours]


def fit_summary(detector) -> str:
    """How well a newly fitted detector did on the training drawings it held out, in words."""
    info = detector.info
    if info.get("threshold_f1") is None:
        return ""
    judged = ("drawings it held out" if info.get("threshold_held_out")
              else "its own training drawings (too few to hold any out)")
    text = (f"On {info.get('threshold_images', '?')} {judged}: boxes scoring "
            f"{detector.score_threshold:.2f} or more are shown, with precision "
            f"{info['threshold_precision']:.2f} and recall {info['threshold_recall']:.2f}.")
    if detector.accept_threshold is None:
        return text + " No score reached 95% precision, so Annotate has no accept-all threshold."
    return text + (f" Accept-all in Annotate from {detector.accept_threshold:.2f} (precision "
                   f"{info['accept_precision']:.2f}, recall {info['accept_recall']:.2f}).")


def classify_message(entries: list[dict]) -> str:
    """The status after classifying: how many were classified (and flagged unknown), then a
    warning naming the first refused file and why, when any was refused."""
    refused = [e for e in entries if e["result"] is None]
    unknown = sum(bool(e["result"] and e["result"].unknown) for e in entries)
    parts = []
    if len(refused) < len(entries):
        message = f"Classified {len(entries) - len(refused)} image(s)"
        message += f"; {unknown} flagged as unknown symbols" if unknown else ""
        parts.append(ok_md(message + "."))
    if refused:
        more = (f" ({len(refused) - 1} more refused: see the table's last column)"
                if len(refused) > 1 else "")
        parts.append(error_md(f"Refused {refused[0]['error']}{more}"))
    return "\n\n".join(parts)


def detect_message(result: dict) -> str:
    """The status line after finding symbols; refused files are named as text."""
    message = f"Found {len(result['rows'])} symbols in {len(result['drawn'])} drawing(s)."
    if result["refused"]:
        message += " Refused: " + "; ".join(md_text(reason) for reason in result["refused"])
    return ok_md(message)


def build(ctx: Context, tab: gr.Tab) -> None:
    top_k = _symbols_layout(ctx)
    entries_state = gr.State([])
    gr.Markdown("### Whole schematics")
    build_schematics(ctx)
    _wire_symbols(ctx, tab, top_k, entries_state)


def _symbols_layout(ctx: Context) -> gr.Slider:
    """Classifier, top-k, the drop zone and the results; returns the top-k slider."""
    c = ctx.components
    choices = classifier_choices(ctx.workspace)
    with gr.Row():
        c["classify_probe"] = gr.Dropdown(label="Classifier (a fitted probe and its encoder)",
                                          choices=choices,
                                          value=choices[0][1] if choices else None, scale=3,
                                          elem_id="classify-probe")
        top_k = gr.Slider(1, 10, value=TOP_K, step=1, label="top-k", scale=1)
    with gr.Row():
        with gr.Column(scale=1):
            c["classify_files"] = gr.File(label="Drop symbol images here", file_count="multiple",
                                          file_types=["image"], type="filepath",
                                          elem_id="classify-files")
            c["classify_go"] = gr.Button("Classify", variant="primary", elem_id="classify-go")
        with gr.Column(scale=2):
            c["classify_status"] = gr.Markdown(elem_id="classify-status")
            c["classify_table"] = gr.Dataframe(headers=RESULT_COLUMNS, interactive=False,
                                               column_widths=RESULT_WIDTHS, wrap=True,
                                               elem_classes="ffclr-wrap",
                                               elem_id="classify-table")
            c["classify_neighbours"] = gr.Gallery(label="Nearest training crops (click a row "
                                                  "for another file)", columns=NEIGHBOURS // 2,
                                                  height="auto", object_fit="contain",
                                                  elem_id="classify-neighbours")
    return top_k


def _wire_symbols(ctx: Context, tab: gr.Tab, top_k: gr.Slider, entries_state: gr.State) -> None:
    ws, c = ctx.workspace, ctx.components

    @guard(4)
    def on_classify(probe_run, files, k):
        entries = classify(ws, probe_run, files, int(k))
        lightweight = [{"file": e["file"], "neighbours": e["result"].neighbours if e["result"]
                        else []} for e in entries]
        return (classify_message(entries), result_rows(entries), neighbour_gallery(entries),
                lightweight)

    c["classify_go"].click(on_classify, [c["classify_probe"], c["classify_files"], top_k],
                           [c["classify_status"], c["classify_table"], c["classify_neighbours"],
                            entries_state], api_name="classify")
    c["classify_files"].upload(on_classify, [c["classify_probe"], c["classify_files"], top_k],
                               [c["classify_status"], c["classify_table"],
                                c["classify_neighbours"], entries_state])

    def on_row(entries, evt: gr.SelectData):
        try:
            chosen = entries[evt.index[0]]
            return [(n["path"], f"{n['class']} · {n['similarity']:.2f}")
                    for n in chosen["neighbours"]]
        except (IndexError, KeyError, TypeError) as exc:
            warn(user_message(exc))
            return gr.skip()

    c["classify_table"].select(on_row, entries_state, c["classify_neighbours"],
                               show_progress="hidden")

    def refresh(current):
        options = classifier_choices(ws)
        ids = [v for _, v in options]
        return gr.update(choices=options, value=current if current in ids
                         else (ids[0] if ids else None))

    tab.select(refresh, c["classify_probe"], c["classify_probe"], show_progress="hidden")


def build_schematics(ctx: Context) -> None:
    ws = ctx.workspace
    c = ctx.components
    detectors = schematics.detector_choices(ws)
    with gr.Row():
        c["detect_detector"] = gr.Dropdown(label="Detector", choices=detectors,
                                           value=detectors[0][1] if detectors else None, scale=3,
                                           elem_id="detect-detector")
        with gr.Column(scale=2):
            with gr.Accordion("Fit a detector", open=not detectors):
                checkpoint = gr.Dropdown(label="Encoder checkpoint",
                                         choices=checkpoint_choices(ws))
                dataset = gr.Dropdown(label="Learn from the train split of",
                                      choices=dataset_choices(ws))
                fit_button = gr.Button("Fit detector", elem_id="detect-fit")
    with gr.Row():
        with gr.Column(scale=1):
            files = gr.File(label="Drop whole schematics here", file_count="multiple",
                            file_types=["image"], type="filepath", elem_id="detect-files")
            go = gr.Button("Find symbols", variant="primary", elem_id="detect-go")
            coco = gr.DownloadButton("Download COCO", visible=False, elem_id="detect-coco")
        with gr.Column(scale=2):
            status = gr.Markdown(elem_id="detect-status")
            drawn = gr.Gallery(label="Symbols found (one drawing under another; click one to "
                               "enlarge it)",
                               columns=1, height=DRAWING_HEIGHT, object_fit="contain",
                               elem_id="detect-drawn")
            table = gr.Dataframe(headers=schematics.TABLE_COLUMNS, interactive=False,
                                 max_height=300, wrap=True, elem_id="detect-table",
                                 column_widths=schematics.TABLE_WIDTHS, elem_classes="ffclr-wrap")

    @guard(2)
    def on_fit(checkpoint_path, dataset_name, progress=gr.Progress()):
        path = schematics.fit(ws, checkpoint_path, dataset_name,
                              lambda d, t, m: progress((d, t) if t else None, desc=m))
        return (ok_md(f"Detector saved: {md_code(path)}. {fit_summary(schematics.load(path))}"),
                gr.update(choices=schematics.detector_choices(ws), value=path))

    fit_button.click(on_fit, [checkpoint, dataset], [status, c["detect_detector"]])

    @guard(4)
    def on_detect(detector, paths, progress=gr.Progress()):
        with result_folder(ws, "detections") as out:
            result = schematics.detect(ws, detector, paths, out,
                                       lambda d, t, m: progress((d, t) if t else None, desc=m))
        return (detect_message(result), result["drawn"], result["rows"] or None,
                gr.DownloadButton(value=result["coco"], visible=True))

    go.click(on_detect, [c["detect_detector"], files], [status, drawn, table, coco],
             api_name="detect")

    def refresh(current_checkpoint, current_dataset, current_detector):
        checkpoints, datasets, _ = checkpoint_and_dataset_updates(ws, current_checkpoint,
                                                                  current_dataset)
        detectors = schematics.detector_choices(ws)
        paths = [path for _, path in detectors]
        return checkpoints, datasets, gr.update(
            choices=detectors, value=current_detector if current_detector in paths
            else (paths[0] if paths else None))

    c["tab_classify"].select(refresh, [checkpoint, dataset, c["detect_detector"]],
                             [checkpoint, dataset, c["detect_detector"]], show_progress="hidden")
