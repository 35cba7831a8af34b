"""The Annotate tab's refit: queue a refit of the detector and the probe from the new labels in
the background worker (`ffclr.annotate.refit`), follow it with a timer, show its figures beside
those of the detector and probe in use before, and pick the new detector when it ends."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from ffclr.annotate import refit
from ffclr.errors import FfclrError
from ffclr.train import jobs
from ffclr.workspace import Workspace
from ui import schematics
from ui.common import guard, md_text, ok_md, open_store


def start_refit(workspace: Workspace, dataset: str | None, checkpoint: str | None,
                detector: str | None) -> str:
    """Queue a refit of the detector and the probe from the dataset's labels (the annotated
    drawings among them) in the background worker; the detector in use is scored beside it."""
    if not dataset:
        raise FfclrError("pick a dataset")
    checkpoint = checkpoint or detector_checkpoint(workspace, detector)
    if not checkpoint:
        raise FfclrError("pick the checkpoint whose encoder the refitted detector and probe use")
    run_id = refit.start_refit(workspace, refit.RefitConfig(dataset, checkpoint,
                                                            detector or None))
    return (f"Refit run #{run_id} queued (behind any pretraining or refit already waiting); "
            "its figures appear here when it ends.")


def detector_checkpoint(workspace: Workspace, detector: str | None) -> str | None:
    """The checkpoint a detector was fitted (or refitted) with, as its run recorded it."""
    if not detector or not workspace.db_path.exists():
        return None
    with open_store(workspace) as store:
        runs = store.runs(kind="detector") + store.runs(kind=refit.KIND)
    for run in runs:
        saved = (run.get("summary") or {}).get("detector")
        if saved and Path(saved).resolve() == Path(detector).resolve():
            return run["config"].get("checkpoint")
    return None


def latest_refit(workspace: Workspace, dataset: str | None) -> dict | None:
    """The dataset's most recent refit run, its status brought up to date."""
    if not dataset or not workspace.db_path.exists():
        return None
    with open_store(workspace) as store:
        row = store.dataset(dataset)
        runs = [r for r in store.runs(kind=refit.KIND)
                if row is not None and r.get("dataset_id") == row["id"]]
    if not runs:
        return None
    return jobs.status(workspace, max(r["id"] for r in runs))


REFIT_FIGURES = [("detector", "mAP50", "detector mAP@50"), ("detector", "mAP", "detector mAP"),
                 ("detector", "AR100", "detector AR@100"), ("detector", "drawings",
                                                           "drawings scored"),
                 ("probe", "top1", "probe top-1"), ("probe", "macro_f1", "probe macro F1"),
                 ("probe", "n_train", "probe training crops")]


def refit_rows(summary: dict) -> list[list]:
    """[figure, before, after] for what a refit measured (before: the detector and probe in use
    then; '' where there was none)."""
    def shown(value):
        if value is None:
            return ""
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    rows = []
    for what, key, label in REFIT_FIGURES:
        new, old = summary.get(f"{what}_new") or {}, summary.get(f"{what}_old") or {}
        if key in new:
            rows.append([label, shown(old.get(key)), shown(new.get(key))])
    return rows


def refit_view(workspace: Workspace, dataset: str | None) -> tuple[str, list[list], bool,
                                                                    str | None]:
    """(status line, figures, still queued or running, the new detector's file once finished)."""
    run = latest_refit(workspace, dataset)
    if run is None:
        return "No refit yet for this dataset.", [], False, None
    head = f"Refit run #{int(run['id'])}: {md_text(run['status'])}"
    if run["status"] in ("queued", "running"):
        share = (run.get("metrics") or {}).get("progress")
        return head + (f" ({share:.0%})" if share is not None else "") + ".", [], True, None
    if run["status"] != "finished":
        return head + (f": {md_text(run.get('error') or '')}" if run.get("error") else "."), \
            [], False, None
    summary = run.get("summary") or {}
    detector = summary.get("detector")
    return (head + f" on {int(summary.get('drawings', 0))} drawings, "
            f"{int(summary.get('boxes', 0))} boxes; the new detector "
            f"{md_text(Path(detector).name if detector else '')} is picked.",
            refit_rows(summary), False, detector)


# layout and wiring


def build(c: dict) -> None:
    with gr.Row():
        c["annotate_refit"] = gr.Button("Refit the detector and the probe from the new labels",
                                        scale=1, elem_id="annotate-refit")
        c["annotate_refit_status"] = gr.Markdown(elem_id="annotate-refit-status")
    c["annotate_refit_table"] = gr.Dataframe(headers=["figure (on valid)", "before", "after"],
                                             label="The refit's figures beside the previous ones",
                                             interactive=False, elem_id="annotate-refit-table")


def wire(ws: Workspace, c: dict) -> None:
    """Start a refit; a timer follows it while it is queued or running, and picks the new
    detector when it ends; a reloaded page shows the latest refit at once."""
    timer = gr.Timer(1.0, active=False)
    outputs = [c["annotate_refit_status"], c["annotate_refit_table"], timer,
               c["annotate_detector"]]

    def view(dataset):
        status, rows, running, detector = refit_view(ws, dataset)
        return (status, rows, gr.Timer(active=running),
                gr.update(choices=schematics.detector_choices(ws), value=detector)
                if detector else gr.skip())

    @guard(len(outputs))
    def on_refit(dataset, checkpoint, detector):
        message = start_refit(ws, dataset, checkpoint, detector)
        return (ok_md(message), [], gr.Timer(active=True), gr.skip())

    c["annotate_refit"].click(on_refit, [c["annotate_dataset"], c["annotate_checkpoint"],
                                         c["annotate_detector"]], outputs,
                              api_name="annotate_refit")
    timer.tick(guard(len(outputs))(view), c["annotate_dataset"], outputs,
               show_progress="hidden")
    c["demo"].load(guard(len(outputs))(view), c["annotate_dataset"], outputs,
                   show_progress="hidden")
    c["annotate_dataset"].change(guard(len(outputs))(view), c["annotate_dataset"], outputs,
                                 show_progress="hidden")
