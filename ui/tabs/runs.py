"""Runs tab: every import, pretraining and probe run in the store; compare, open, delete."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import gradio as gr

from ffclr.errors import FfclrError
from ffclr.workspace import Workspace
from ui.common import (Context, checkpoint_choices, fmt_duration, guard, md_code, ok_md,
                       open_store, run_dataset, run_duration, run_label, short_text)

RUN_COLUMNS = ["id", "kind", "name", "dataset", "status", "created", "duration", "key metrics"]
RUN_WIDTHS = ["5%", "8%", "12%", "10%", "9%", "13%", "10%", "33%"]
KEY_SUMMARY = ("crops", "images", "top1", "top5", "macro_f1", "balanced_accuracy", "knn_top1",
               "epochs", "final_loss")
KEY_METRICS = ("loss", "knn_top1", "views_per_s")
ACTIVE = ("queued", "running")
KIND_CHOICES = [("all kinds", ""), *[(kind, kind) for kind in ("import", "pretrain", "probe",
                                                                "detector")]]
COMPARE_COLUMNS = ["field", "run A", "run B"]
COMPARE_WIDTHS = ["26%", "37%", "37%"]
VALUE_CHARS = 60
"""Compared values longer than this (paths, mostly) keep their start and end."""


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def key_metrics(run: dict, latest: dict[str, float]) -> str:
    parts = [f"{k}={_fmt(run['summary'][k])}" for k in KEY_SUMMARY
             if k in run["summary"] and not isinstance(run["summary"][k], (dict, list))]
    parts += [f"{k}={_fmt(latest[k])}" for k in KEY_METRICS if k in latest
              and k not in run["summary"]]
    return ", ".join(parts)


def runs_table(workspace: Workspace, kind: str | None = None) -> list[list]:
    """One row per run, newest first (id, kind, name, dataset, status, created, duration,
    metrics)."""
    if not workspace.db_path.exists():
        return []
    with open_store(workspace) as store:
        runs = store.runs(kind=kind or None)
        names = {d["id"]: d["name"] for d in store.datasets()}
        latest = {r["id"]: store.latest_metrics(r["id"]) for r in runs}
    return [[r["id"], r["kind"], r.get("name") or "", run_dataset(r, workspace, names),
             r["status"], (r.get("created_at") or "")[:19].replace("T", " "),
             fmt_duration(run_duration(r)), key_metrics(r, latest[r["id"]])] for r in runs]


def run_choices(workspace: Workspace) -> list[tuple[str, int]]:
    """Every run, newest first (as the table lists them)."""
    if not workspace.db_path.exists():
        return []
    with open_store(workspace) as store:
        return sorted(((run_label(r), r["id"]) for r in store.runs()), key=lambda c: -c[1])


def run_details(workspace: Workspace, run_id: int | None) -> dict:
    if run_id is None:
        return {}
    with open_store(workspace) as store:
        run = store.run(int(run_id))
        if run is None:
            raise FfclrError(f"no run #{run_id}")
        run["latest_metrics"] = store.latest_metrics(int(run_id))
    run["duration"] = fmt_duration(run_duration(run))
    return run


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    elif isinstance(value, list) and len(value) > 8:
        out[prefix] = f"[{len(value)} items]"
    else:
        out[prefix] = value if isinstance(value, (int, float, str)) or value is None \
            else json.dumps(value, default=str)


def compare_runs(workspace: Workspace, run_a: int | None, run_b: int | None) -> list[list]:
    """Rows (field, A, B) over status, config, summary and latest metrics of two runs."""
    if run_a is None or run_b is None:
        raise FfclrError("pick two runs to compare")
    flat = []
    for run_id in (run_a, run_b):
        run = run_details(workspace, run_id)
        values: dict = {}
        for key in ("kind", "name", "status", "duration", "checkpoint", "error"):
            values[key] = run.get(key)
        _flatten("config", run["config"], values)
        _flatten("summary", run["summary"], values)
        _flatten("metric", run["latest_metrics"], values)
        flat.append(values)
    keys = list(dict.fromkeys([*flat[0], *flat[1]]))
    return [[k, *(short_text(_fmt("" if values.get(k) is None else values[k]), VALUE_CHARS)
                  for values in flat)]
            for k in keys if flat[0].get(k) is not None or flat[1].get(k) is not None]


def run_checkpoint(workspace: Workspace, run_id: int | None) -> str:
    run = run_details(workspace, run_id)
    path = run.get("checkpoint")
    if not path or not Path(path).is_file():
        raise FfclrError(f"run #{run_id} has no checkpoint on disk")
    return str(Path(path).resolve())


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return path.resolve() != folder.resolve()
    except ValueError:
        return False


def _claims(run: dict) -> tuple[set[str], set[Path]]:
    """The names and files a run refers to: a folder or file another run claims is kept."""
    names = {run["name"]} if run["kind"] == "pretrain" and run.get("name") else set()
    files = {Path(run["checkpoint"]).resolve()} if run.get("checkpoint") else set()
    files |= {Path(p).resolve() for p in ((run.get("summary") or {}).get("files") or {}).values()}
    return names, files


def run_files(workspace: Workspace, run: dict, others: list[dict] = ()) -> list[Path]:
    """The run's own folders and files inside the workspace, never anything else.

    A pretraining run owns its checkpoint folder and its TensorBoard folder; a probe run owns
    the folder of its files (`probes/run_<id>`); an import owns none (its dataset stays). A
    folder that another run of `others` also uses (the same run name, say after a resume, or a
    probe that read its checkpoint) is kept, and only the files this run alone refers to go.
    """
    candidates: list[tuple[Path, Path]] = []
    if run["kind"] == "pretrain":
        if run.get("checkpoint"):
            candidates.append((Path(run["checkpoint"]).parent, workspace.checkpoints))
        if run.get("name"):
            candidates.append((workspace.checkpoints / run["name"], workspace.checkpoints))
            candidates.append((workspace.runs / run["name"], workspace.runs))
    elif run["kind"] == "probe":
        files = run["summary"].get("files") or {}
        for path in files.values():
            candidates.append((Path(path).parent, workspace.root / "probes"))
    other_names, other_files = set(), set()
    for other in others:
        if other["id"] != run["id"]:
            names, files = _claims(other)
            other_names |= names
            other_files |= files
    own_files = _claims(run)[1] - other_files
    found: list[Path] = []
    for candidate, root in candidates:
        if not (candidate.exists() and _inside(candidate, root)):
            continue
        folder = candidate.resolve()
        shared = candidate.name in other_names or any(f.is_relative_to(folder) for f in other_files)
        chosen = ([f for f in own_files if f.is_file() and f.is_relative_to(folder)]
                  if shared else [folder])
        found.extend(p for p in chosen if p not in found)
    return found


def delete_run(workspace: Workspace, run_id: int | None, confirmed: bool) -> str:
    """Delete a finished run's row, metrics and files (only inside the workspace)."""
    if run_id is None:
        raise FfclrError("pick a run to delete")
    if not confirmed:
        raise FfclrError("tick 'yes, delete it' to confirm")
    with open_store(workspace) as store:
        run = store.run(int(run_id))
        if run is None:
            raise FfclrError(f"no run #{run_id}")
        if run["status"] in ACTIVE:
            raise FfclrError(f"run #{run_id} is {run['status']}: cancel it first")
        files = run_files(workspace, run, store.runs())
        for path in files:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        store.delete_run(int(run_id))
    removed = ", ".join(md_code(p.relative_to(workspace.root.resolve())) for p in files) or "no files"
    return f"Deleted run #{run_id} ({removed})."


def show_run(workspace: Workspace, run_id: int | None) -> tuple[dict, Any]:
    """The picked run's details; the status line is cleared only when a run is picked, so the
    message of a delete (which unpicks the run) stays."""
    return run_details(workspace, run_id), ("" if run_id is not None else gr.skip())


def after_delete(workspace: Workspace, run_id: int | None, confirmed: bool, kind: str,
                 compared: list) -> tuple:
    """Delete the run; the status, the refreshed table, both run pickers emptied, the
    confirmation unticked, and the compare table (and what it compares) cleared when it showed
    the deleted run."""
    message = delete_run(workspace, run_id, confirmed)
    choices = run_choices(workspace)
    stale = run_id in (compared or [])
    return (ok_md(message), gr.update(value=runs_table(workspace, kind) or None),
            gr.update(choices=choices, value=None), gr.update(choices=choices, value=None),
            False, None if stale else gr.skip(), [] if stale else gr.skip())


def build(ctx: Context, tab: gr.Tab) -> None:
    ws = ctx.workspace
    c = ctx.components
    with gr.Row():
        c["runs_kind"] = gr.Dropdown(label="Kind", choices=KIND_CHOICES, value="", scale=1,
                                     elem_id="runs-kind")
        c["runs_refresh"] = gr.Button("Refresh", scale=0, elem_id="runs-refresh")
    c["runs_table"] = gr.Dataframe(headers=RUN_COLUMNS, value=runs_table(ws) or None,
                                   interactive=False, max_height=360, wrap=True,
                                   column_widths=RUN_WIDTHS, elem_classes="ffclr-wrap",
                                   elem_id="runs-table")
    c["runs_status"] = gr.Markdown(elem_id="runs-status")
    with gr.Row():
        with gr.Column():
            c["runs_a"] = gr.Dropdown(label="Run", choices=run_choices(ws), value=None,
                                      elem_id="runs-a")
            with gr.Row():
                c["runs_open_explore"] = gr.Button("Open checkpoint in Explore")
                c["runs_open_probe"] = gr.Button("Open checkpoint in Probe")
            with gr.Row():
                c["runs_confirm"] = gr.Checkbox(label="yes, delete it", value=False,
                                                elem_id="runs-confirm")
                c["runs_delete"] = gr.Button("Delete run and its files", variant="stop",
                                             elem_id="runs-delete")
        with gr.Column():
            c["runs_b"] = gr.Dropdown(label="Compare with", choices=run_choices(ws), value=None,
                                      elem_id="runs-b")
            c["runs_compare"] = gr.Button("Compare side by side", elem_id="runs-compare")
    c["runs_compare_table"] = gr.Dataframe(headers=COMPARE_COLUMNS, interactive=False,
                                           max_height=480, wrap=True,
                                           column_widths=COMPARE_WIDTHS,
                                           elem_classes="ffclr-wrap",
                                           elem_id="runs-compare-table")
    c["runs_details"] = gr.JSON(label="The picked run: config, summary, error")
    compared = gr.State([])
    _wire_runs(ctx, tab, compared)


def _wire_runs(ctx: Context, tab: gr.Tab, compared: gr.State) -> None:
    ws, c = ctx.workspace, ctx.components

    def refresh(kind, a, b):
        choices = run_choices(ws)
        ids = [v for _, v in choices]
        return (gr.update(value=runs_table(ws, kind) or None),
                gr.update(choices=choices, value=a if a in ids else None),
                gr.update(choices=choices, value=b if b in ids else None))

    refresh_outputs = [c["runs_table"], c["runs_a"], c["runs_b"]]
    refresh_inputs = [c["runs_kind"], c["runs_a"], c["runs_b"]]
    c["runs_refresh"].click(refresh, refresh_inputs, refresh_outputs, api_name="runs_refresh")
    c["runs_kind"].change(refresh, refresh_inputs, refresh_outputs)
    tab.select(refresh, refresh_inputs, refresh_outputs, show_progress="hidden")

    c["runs_a"].change(guard(2, status_at=1)(lambda r: show_run(ws, r)),
                       c["runs_a"], [c["runs_details"], c["runs_status"]])
    c["runs_compare"].click(guard(3, status_at=1)(
        lambda a, b: (compare_runs(ws, a, b), "", [a, b])), [c["runs_a"], c["runs_b"]],
        [c["runs_compare_table"], c["runs_status"], compared], api_name="compare_runs")
    c["runs_delete"].click(
        guard(7, status_at=0)(lambda *args: after_delete(ws, *args)),
        [c["runs_a"], c["runs_confirm"], c["runs_kind"], compared],
        [c["runs_status"], c["runs_table"], c["runs_a"], c["runs_b"], c["runs_confirm"],
         c["runs_compare_table"], compared], api_name="delete_run")


def wire(ctx: Context) -> None:
    """Open a run's checkpoint in Explore or Probe: fill that tab's checkpoint and switch to it."""
    c = ctx.components
    ws = ctx.workspace
    for target in ("explore", "probe"):
        dropdown = c[f"{target}_checkpoint"]

        def open_in(run_id, _target=target):
            path = run_checkpoint(ws, run_id)
            return (gr.update(choices=checkpoint_choices(ws), value=path),
                    gr.Tabs(selected=_target), "")

        c[f"runs_open_{target}"].click(guard(3, status_at=2)(open_in), c["runs_a"],
                                       [dropdown, c["tabs"], c["runs_status"]])
