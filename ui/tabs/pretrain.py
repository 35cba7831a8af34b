"""Pretrain tab: options, Start (a worker process via `ffclr.train.jobs`), live curves polled
from the store, Cancel, the queue. The page holds no job state: a reload or an app restart shows
the same.

Every setting is a `PretrainConfig` field, showing the config's default; the presets override
some of them. The tab's own choices (dataset and split, mode, device, precision) map to fields."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gradio as gr

from ffclr.errors import FfclrError
from ffclr.train import jobs
from ffclr.train.config import ARCH_NAMES, AUGMENT_HELP, AUGMENT_PRESETS, PretrainConfig
from ffclr.workspace import Workspace
from ui.common import (Context, dataset_choices, fmt_duration, guard, imported_dataset, info,
                       md_code, md_text, ok_md, open_store, run_dataset, run_duration,
                       split_choices)

DEFAULTS = PretrainConfig()
SETTINGS = ("arch", "image_size", "batch_size", "epochs", "time_budget", "lr", "temperature",
            "augment", "knn_every")
"""The `PretrainConfig` fields the tab shows as widgets of their own (with `run_name`), and that
a preset sets; an empty widget holds None."""
TEXT_NUMBERS = ("time_budget", "lr")
"""Settings whose default is None, shown in text boxes (empty: None) since a Gradio 6 Number
shows an initial None as 0."""
APP_SETTINGS = dict(log_every_n_steps=2, checkpoint_every=1)
"""What the app asks of every run: a point on the live curves every second step and a checkpoint
every epoch, so that Cancel always keeps one."""

MODES = {"unlabeled (SimCLR)": "ff_devices_unlabeled",
         "labeled (supervised contrastive)": "ff_devices_labeled",
         "one-shot (the seed's)": "ff_devices_one_shot"}
"""The Mode dropdown's labels → `PretrainConfig.dataset_name`."""
DEFAULT_MODE = next(label for label, name in MODES.items() if name == DEFAULTS.dataset_name)
DEVICES = {"auto": {}, "CPU": {"disable_cuda": True}, "GPU": {}}
"""The Device dropdown's labels → `PretrainConfig` fields ("GPU" also refuses a machine without
CUDA)."""
PRECISIONS = {"auto": {},
              "fp32": {"fp16_precision": False, "bf16": False},
              "bf16 (CPU)": {"fp16_precision": False, "bf16": True},
              "fp16 (GPU)": {"fp16_precision": True}}
"""The Precision dropdown's labels → `PretrainConfig` fields ("auto": as the config says)."""
CURVES = (("loss", "loss"), ("views_per_s", "views/s"), ("knn_top1", "kNN top-1 (%)"))
PERCENT_CURVES = {"knn_top1": 100}
"""Curves stored as fractions and shown in percent, as the status line shows them."""
QUEUE_COLUMNS = ["id", "name", "status", "created", "dataset"]
POLL_SECONDS = 1.0

PRESETS = {
    "CPU quick (≈3 min)": dict(arch="resnet18", image_size=48, batch_size=256, epochs=1000,
                               time_budget=180, knn_every=5),
    "CPU thorough (20 min)": dict(arch="resnet18", image_size=48, batch_size=256, epochs=5000,
                                  time_budget=1200, knn_every=20),
    "GPU (ResNet-50, 64 px)": dict(arch="resnet50", image_size=64, batch_size=512, epochs=200,
                                   fp16_precision=True, knn_every=10),
}
"""`PretrainConfig` fields each preset overrides; the others keep the config's defaults."""


@dataclass
class PretrainOptions:
    """What the tab sends to `start`: the dataset split to train on, the tab's labels for mode,
    device and precision, and `settings`, the `PretrainConfig` fields set by the other widgets
    (any not given keep the config's defaults)."""
    dataset: str | None
    split: str = "train"
    mode: str = DEFAULT_MODE
    device: str = "auto"
    precision: str = "auto"
    settings: dict[str, Any] = field(default_factory=dict)


def device_label(config: PretrainConfig) -> str:
    """The Device choice that shows a config (fp16 autocast runs on CUDA only)."""
    return "CPU" if config.disable_cuda else "GPU" if config.fp16_precision else "auto"


def precision_label(config: PretrainConfig) -> str:
    if config.fp16_precision:
        return "fp16 (GPU)"
    return {True: "bf16 (CPU)", False: "fp32"}.get(config.bf16, "auto")


def widget_value(name: str, value: Any) -> Any:
    """A config value as its widget shows it (a whole number in a text box without `.0`)."""
    if name in TEXT_NUMBERS:
        if value is None:
            return ""
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return value


def setting_value(name: str, value: Any) -> Any:
    """A widget's value as the config takes it: blank text is None, `TEXT_NUMBERS` are read."""
    if isinstance(value, str):
        value = value.strip() or None
    if name in TEXT_NUMBERS and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise FfclrError(f"{name}: {value!r} is not a number") from None
    return value


def preset_values(preset: str) -> list:
    """The preset's values for the `SETTINGS` widgets, then the device and precision labels."""
    config = replace(DEFAULTS, **PRESETS[preset])
    return [widget_value(name, getattr(config, name)) for name in SETTINGS] + [
        device_label(config), precision_label(config)]


def active_run(workspace: Workspace) -> dict | None:
    """The running pretraining run, else the first queued one, else None."""
    runs = pretrain_runs(workspace)
    for status in ("running", "queued"):
        active = sorted((r for r in runs if r["status"] == status), key=lambda r: r["id"])
        if active:
            return active[0]
    return None


def form_values(workspace: Workspace, run: dict) -> dict[str, Any]:
    """The tab's widget values (by `START_INPUTS` name) that show `run`'s settings; the run
    name stays empty, so a new Start makes a run of its own. The dataset and split are left
    out when they are no longer imported."""
    config = PretrainConfig.from_dict(run["config"])
    with open_store(workspace) as store:
        names = {d["id"]: d["name"] for d in store.datasets()}
    values = {"mode": next((label for label, name in MODES.items()
                            if name == config.dataset_name), DEFAULT_MODE),
              **{name: widget_value(name, getattr(config, name)) for name in SETTINGS},
              "device": device_label(config), "precision": precision_label(config),
              "run_name": ""}
    dataset = run_dataset(run, workspace, names)
    if dataset in names.values():
        values["dataset"] = dataset
        data = Path(config.data or "")
        if data.parent == workspace.dataset_dir(dataset) and \
                data.name in split_choices(workspace, dataset):
            values["split"] = data.name
    return values


def matching_preset(config: PretrainConfig) -> str | None:
    """The preset whose every field `config` has, else None (settings of its own)."""
    return next((name for name, fields in PRESETS.items()
                 if all(getattr(config, key) == value for key, value in fields.items())), None)


def crop_folder(workspace: Workspace, dataset: str | None, split: str | None) -> Path:
    """The crops of an imported dataset's split (all splits when `split` is empty)."""
    if not dataset:
        raise FfclrError("pick a dataset (import one in the Data tab first)")
    with open_store(workspace) as store:
        row = imported_dataset(store, dataset)
        splits = store.splits(row["id"])
    if split and split not in splits:
        raise FfclrError(f"dataset {dataset!r} has no split {split!r} (it has "
                         f"{', '.join(splits)})")
    return workspace.dataset_dir(dataset) / split if split else workspace.dataset_dir(dataset)


def _given_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings as the config takes them; refuses None where the config needs a value."""
    given = {name: setting_value(name, value) for name, value in settings.items()}
    empty = [name for name, value in given.items()
             if value is None and getattr(DEFAULTS, name) is not None]
    if empty:
        raise FfclrError(f"{', '.join(empty)}: give a value")
    return given


def _choice(table: dict, label: str, what: str) -> dict:
    if label not in table:
        raise FfclrError(f"{what} {label!r} is not one of {', '.join(table)}")
    return table[label]


def pretrain_config(workspace: Workspace, options: PretrainOptions) -> PretrainConfig:
    """The validated config: `PretrainConfig`'s defaults, overridden by `APP_SETTINGS`, then the
    options' settings, then the tab's own choices."""
    data = crop_folder(workspace, options.dataset, options.split)
    dataset_name = _choice(MODES, options.mode, "mode")
    device = _choice(DEVICES, options.device, "device")
    precision = _choice(PRECISIONS, options.precision, "precision")
    if options.device == "GPU":
        import torch

        if not torch.cuda.is_available():
            raise FfclrError("device GPU: no CUDA GPU on this machine (choose auto or CPU)")
    values = {**APP_SETTINGS, **_given_settings(options.settings), "data": str(data),
              "dataset_name": dataset_name, **device, **precision}
    return PretrainConfig(**values).validate()


def start(workspace: Workspace, options: PretrainOptions) -> int:
    """Queue a pretraining job (a worker process); returns its run id."""
    return int(jobs.start_pretrain(workspace, pretrain_config(workspace, options)))


def cancel(workspace: Workspace, run_id: int | None) -> str:
    if run_id is None:
        raise FfclrError("pick the run to cancel")
    with open_store(workspace) as store:
        run = store.run(int(run_id))
    if run is None:
        raise FfclrError(f"no run #{run_id}")
    if run["status"] not in ("queued", "running"):
        raise FfclrError(f"run #{run_id} is already {run['status']}")
    jobs.cancel(workspace, int(run_id))
    return f"Cancel requested for run #{run_id}: it stops at the next step and keeps a checkpoint."


def pretrain_runs(workspace: Workspace) -> list[dict]:
    if not workspace.db_path.exists():
        return []
    with open_store(workspace) as store:
        return store.runs(kind="pretrain")


def run_choices(workspace: Workspace) -> list[tuple[str, int]]:
    return [(f"#{r['id']} {r.get('name') or ''} · {r['status']}", r["id"])
            for r in pretrain_runs(workspace)]


def default_run(workspace: Workspace) -> int | None:
    """The running job, else the first queued, else the most recent run."""
    active = active_run(workspace)
    if active:
        return active["id"]
    runs = pretrain_runs(workspace)
    return runs[0]["id"] if runs else None


def queue_rows(workspace: Workspace) -> list[list]:
    runs = [r for r in pretrain_runs(workspace) if r["status"] in ("queued", "running")]
    runs.sort(key=lambda r: (r["status"] != "running", r["id"]))
    with open_store(workspace) as store:
        names = {d["id"]: d["name"] for d in store.datasets()}
    return [[r["id"], r.get("name") or "", r["status"], (r["created_at"] or "")[:19]
             .replace("T", " "), run_dataset(r, workspace, names)] for r in runs]


def curves(workspace: Workspace, run_id: int) -> dict[str, tuple[list[int], list[float]]]:
    with open_store(workspace) as store:
        rows = store.metrics(int(run_id))
    out: dict[str, tuple[list[int], list[float]]] = {}
    for row in rows:
        steps, values = out.setdefault(row["name"], ([], []))
        steps.append(row["step"])
        values.append(row["value"])
    return out


def epoch_axis(series: dict[str, tuple[list[int], list[float]]]):
    """The x axis of the curves: (title, step → x). Epochs where the run logged them (the
    trainer logs `epoch` beside every other metric, and `step / epoch` is the steps per epoch
    for steps it did not log it at), else steps."""
    steps, epochs = series.get("epoch", ([], []))
    known = dict(zip(steps, epochs))
    per_epoch = next((step / epoch for step, epoch in zip(reversed(steps), reversed(epochs))
                      if epoch > 0), None)
    if per_epoch is None:
        return "step", float
    return "epoch", lambda step: known.get(step, step / per_epoch)


def curves_figure(series: dict[str, tuple[list[int], list[float]]], waiting: str = ""):
    """Loss, views/s and kNN top-1 (in %) against epochs; `waiting` is written on an empty
    figure."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=[title for _, title in CURVES])
    axis, to_x = epoch_axis(series)
    for col, (name, title) in enumerate(CURVES, start=1):
        steps, values = series.get(name, ([], []))
        scale = PERCENT_CURVES.get(name, 1)
        fig.add_scatter(x=[to_x(step) for step in steps], y=[v * scale for v in values],
                        mode="lines+markers", name=title, row=1, col=col, marker={"size": 4})
        fig.update_xaxes(title_text=axis, row=1, col=col)
    if waiting and not any(series.get(name) for name, _ in CURVES):
        fig.add_annotation(text=waiting, xref="paper", yref="paper", x=0.5, y=0.5,
                           showarrow=False, font={"size": 14, "color": "#555"})
    fig.update_layout(height=320, showlegend=False, margin={"l": 40, "r": 10, "t": 40, "b": 40})
    return fig


def eta_seconds(run: dict, latest: dict[str, float]) -> float | None:
    if run["status"] != "running" or not run.get("started_at"):
        return None
    elapsed = (datetime.now(timezone.utc) - datetime.fromisoformat(run["started_at"])
               ).total_seconds()
    budget = run["config"].get("time_budget")
    by_epochs = None
    epoch, epochs = latest.get("epoch"), run["config"].get("epochs")
    if epoch and epochs:
        by_epochs = elapsed * (epochs - epoch) / epoch
    if budget:
        left = max(0.0, budget - elapsed)
        return min(left, by_epochs) if by_epochs is not None else left
    return by_epochs


def run_status(workspace: Workspace, run_id: int | None) -> str:
    """Markdown: status, epoch, latest metrics, ETA; the error and last checkpoint if it failed."""
    if run_id is None:
        return "No pretraining run yet. Pick options (or a preset) and press **Start**."
    with open_store(workspace) as store:
        run = store.run(int(run_id))
        if run is None:
            return f"Run #{run_id} was deleted."
        latest = store.latest_metrics(int(run_id))
    config = run["config"]
    name = md_text(run.get("name") or "")
    parts = [f"**Run #{run['id']}**{' ' + name if name else ''} · **{md_text(run['status'])}** · "
             f"{md_text(config.get('arch', ''))}, {md_text(config.get('image_size', ''))} px, "
             f"batch {md_text(config.get('batch_size', ''))} · {fmt_duration(run_duration(run))}"]
    if "epoch" in latest:
        epochs = config.get("epochs")
        parts.append(f"epoch {latest['epoch']:.1f}" + (f" / {epochs}" if epochs else ""))
    if "loss" in latest:
        parts.append(f"loss {latest['loss']:.3f}")
    if "views_per_s" in latest:
        parts.append(f"{latest['views_per_s']:.0f} views/s")
    if "knn_top1" in latest:
        parts.append(f"kNN top-1 {latest['knn_top1']:.1%}")
    eta = eta_seconds(run, latest)
    if eta is not None:
        parts.append(f"ETA {fmt_duration(eta)}")
    text = " · ".join(parts)
    waiting = waiting_line(workspace, run, latest)
    if waiting:
        text += f"\n\n{waiting}"
    if run.get("error"):
        text += f"\n\n⚠ **Error:** {md_text(run['error'])}"
    if run["status"] in ("failed", "cancelled", "interrupted", "finished"):
        text += (f"\n\nLast checkpoint: {md_code(run['checkpoint'])}" if run.get("checkpoint")
                 else "\n\nNo checkpoint was written.")
    return text


def waiting_line(workspace: Workspace, run: dict, latest: dict[str, float]) -> str:
    """What a run that shows no curve yet waits for: the runs ahead of it in the queue, or its
    worker starting (loading torch and the crops) before the first points."""
    if run["status"] == "queued":
        ahead = [r["id"] for r in pretrain_runs(workspace) if r["id"] < run["id"]
                 and r["status"] in ("queued", "running")]
        if ahead:
            return (f"Queued: waiting for run{'s' if len(ahead) > 1 else ''} "
                    f"{', '.join(f'#{i}' for i in sorted(ahead))} to finish (one job runs at "
                    "a time).")
        return (f"Starting: waiting for the worker process (it loads torch and the crops); "
                f"the first points follow its first {APP_SETTINGS['log_every_n_steps']} steps.")
    if run["status"] == "running" and not latest:
        return "Running: loading the crops and the model; the first points follow shortly."
    return ""


def notice_lost_workers(workspace: Workspace, run_id: int) -> None:
    """Let ffclr.train.jobs mark a run whose worker process died as interrupted."""
    try:
        jobs.status(workspace, int(run_id))
    except FfclrError:
        pass


def poll_signature(workspace: Workspace, run_id: int | None) -> tuple:
    """Changes whenever something shown would change (so unchanged polls send nothing)."""
    if run_id is None or not workspace.db_path.exists():
        return (run_id,)
    notice_lost_workers(workspace, run_id)
    with open_store(workspace) as store:
        run = store.run(int(run_id))
        count = store.db.execute("SELECT COUNT(*) FROM metrics WHERE run_id = ?",
                                 [int(run_id)]).fetchone()[0]
        active = [(r["id"], r["status"]) for r in store.runs(kind="pretrain")
                  if r["status"] in ("queued", "running")]
    if run is None:
        return (run_id, None)
    ticking = run["status"] == "running" and int(datetime.now().timestamp()) // 5
    return (run_id, run["status"], count, run.get("checkpoint"), run.get("error"),
            tuple(active), ticking)


# layout

START_INPUTS = ("dataset", "split", "mode", "arch", "image_size", "batch_size", "epochs",
                "time_budget", "lr", "temperature", "device", "precision", "augment",
                "knn_every", "run_name")
"""The widgets the `pretrain_start` API takes, in its argument order."""
OWN_CHOICES = ("dataset", "split", "mode", "device", "precision")
"""The widgets that are the tab's own choices; the others are `PretrainConfig` fields."""


def options_from_widgets(values: dict[str, Any]) -> PretrainOptions:
    return PretrainOptions(**{name: values[name] for name in OWN_CHOICES},
                           settings={name: value for name, value in values.items()
                                     if name not in OWN_CHOICES})


def build(ctx: Context, tab: gr.Tab) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            widgets = _options_column(ctx)
        with gr.Column(scale=2, elem_id="pretrain-live"):
            _run_column(ctx)
    signature = gr.State(None)
    _wire_preset(ctx.components, widgets)
    _wire_live_view(ctx, signature, widgets)
    _wire_start_and_cancel(ctx, widgets, signature)
    _wire_dataset_refresh(ctx.workspace, tab, widgets)


def _options_column(ctx: Context) -> dict[str, Any]:
    """Preset, dataset, mode and the settings (showing `PretrainConfig`'s defaults), Start and
    Cancel; returns the widgets by `START_INPUTS` name."""
    ws, c = ctx.workspace, ctx.components
    datasets = dataset_choices(ws)
    first = datasets[0] if datasets else None
    w: dict[str, Any] = {}
    c["pre_preset"] = gr.Dropdown(label="Preset", choices=list(PRESETS), value=None,
                                  elem_id="pretrain-preset")
    with gr.Row():
        w["dataset"] = gr.Dropdown(label="Dataset", choices=datasets, value=first)
        w["split"] = gr.Dropdown(label="Split", choices=split_choices(ws, first) or ["train"],
                                 value="train")
    w["mode"] = gr.Dropdown(label="Mode", choices=list(MODES), value=DEFAULT_MODE)
    with gr.Row():
        w["arch"] = gr.Dropdown(label="Architecture", choices=list(ARCH_NAMES),
                                value=DEFAULTS.arch)
        w["image_size"] = gr.Number(label="Image size (px)", value=DEFAULTS.image_size,
                                    precision=0)
        w["batch_size"] = gr.Number(label="Batch", value=DEFAULTS.batch_size, precision=0)
    with gr.Row():
        w["epochs"] = gr.Number(label="Epochs (at most)", value=DEFAULTS.epochs, precision=0)
        w["time_budget"] = gr.Textbox(label="Time budget (s)",
                                      value=widget_value("time_budget", DEFAULTS.time_budget),
                                      placeholder="none")
    with gr.Row():
        w["lr"] = gr.Textbox(label="Learning rate", value=widget_value("lr", DEFAULTS.lr),
                             placeholder="the optimiser's default")
        w["temperature"] = gr.Number(label="Temperature", value=DEFAULTS.temperature)
    with gr.Row():
        w["device"] = gr.Dropdown(label="Device", choices=list(DEVICES),
                                  value=device_label(DEFAULTS))
        w["precision"] = gr.Dropdown(label="Precision", choices=list(PRECISIONS),
                                     value=precision_label(DEFAULTS),
                                     elem_id="pretrain-precision")
    with gr.Row():
        w["augment"] = gr.Dropdown(label="Augmentation", choices=list(AUGMENT_PRESETS),
                                   value=DEFAULTS.augment, info=AUGMENT_HELP)
        w["knn_every"] = gr.Number(label="kNN every N epochs (0 = never)",
                                   value=DEFAULTS.knn_every, precision=0)
    w["run_name"] = gr.Textbox(label="Run name (optional)", value=DEFAULTS.run_name or "")
    return w


def _run_column(ctx: Context) -> None:
    """Start and Cancel, their message, the run picker, its status, curves and the queue: the
    column stays in view while the options beside it scroll (CSS `#pretrain-live`)."""
    ws, c = ctx.workspace, ctx.components
    with gr.Row():
        c["pre_start"] = gr.Button("Start", variant="primary", elem_id="pretrain-start")
        c["pre_cancel"] = gr.Button("Cancel", variant="stop", elem_id="pretrain-cancel")
    c["pre_message"] = gr.Markdown(elem_id="pretrain-message")
    c["pre_run"] = gr.Dropdown(label="Run", choices=run_choices(ws), value=default_run(ws),
                               elem_id="pretrain-run")
    c["pre_status"] = gr.Markdown(elem_id="pretrain-status")
    c["pre_plot"] = gr.Plot(label="Live curves", elem_id="pretrain-plot")
    c["pre_queue"] = gr.Dataframe(headers=QUEUE_COLUMNS, label="Queue (one job at a time)",
                                  interactive=False, max_height=200)


def _wire_preset(c: dict[str, Any], widgets: dict[str, Any]) -> None:
    outputs = [widgets[name] for name in SETTINGS] + [widgets["device"], widgets["precision"]]

    def apply_preset(name):
        if name not in PRESETS:
            return [gr.skip()] * len(outputs)
        return preset_values(name)

    c["pre_preset"].input(apply_preset, c["pre_preset"], outputs, show_progress="hidden")


def run_view(workspace: Workspace, run_id: int | None) -> tuple:
    """Status, curves and queue of a run (nothing picked: the tab's first-use line)."""
    series = curves(workspace, run_id) if run_id is not None else {}
    return (run_status(workspace, run_id),
            curves_figure(series, "no points yet" if run_id is not None else ""),
            queue_rows(workspace) or None)


def load_view(workspace: Workspace) -> tuple:
    """What a (re)loaded page shows: the run picker on the default run, its view, its poll
    signature, then the settings widgets (`START_INPUTS` order) filled from the running or
    first queued run, left as they are when none is active (the dataset and split pickers get
    today's choices with their value: the page may have been built before the import), and the
    preset those settings are, if any."""
    run_id = default_run(workspace)
    active = active_run(workspace)
    values = form_values(workspace, active) if active else {}
    if "dataset" in values:
        dataset = values["dataset"]
        values["dataset"] = gr.update(choices=dataset_choices(workspace), value=dataset)
        values["split"] = gr.update(choices=split_choices(workspace, dataset) or ["train"],
                                    value=values.get("split", "train"))
    return (gr.update(choices=run_choices(workspace), value=run_id), *run_view(workspace, run_id),
            poll_signature(workspace, run_id),
            *[values.get(name, gr.skip()) for name in START_INPUTS],
            matching_preset(PretrainConfig.from_dict(active["config"])) if active else gr.skip())


def _wire_live_view(ctx: Context, signature: gr.State, widgets: dict[str, Any]) -> None:
    """Status, curves and queue of the picked run, polled from the store (sent only on change)."""
    ws, c = ctx.workspace, ctx.components
    timer = gr.Timer(POLL_SECONDS)

    def poll(run_id, last):
        now = poll_signature(ws, run_id)
        if now == last:
            return gr.skip(), gr.skip(), gr.skip(), last, gr.skip()
        return (*run_view(ws, run_id), now, gr.update(choices=run_choices(ws)))

    poll_outputs = [c["pre_status"], c["pre_plot"], c["pre_queue"], signature, c["pre_run"]]
    timer.tick(guard(5, status_at=None)(poll), [c["pre_run"], signature], poll_outputs,
               show_progress="hidden", queue=False)

    c["pretrain_load"] = (
        guard(6 + len(START_INPUTS), status_at=None)(lambda: load_view(ws)),
        [c["pre_run"], c["pre_status"], c["pre_plot"], c["pre_queue"], signature,
         *[widgets[name] for name in START_INPUTS], c["pre_preset"]])
    c["pre_run"].change(lambda r: (*run_view(ws, r), poll_signature(ws, r)), c["pre_run"],
                        [c["pre_status"], c["pre_plot"], c["pre_queue"], signature],
                        show_progress="hidden")


def started(workspace: Workspace, values: dict[str, Any]) -> tuple:
    """Start a run from the widget values: the message (also a toast, seen wherever the page is
    scrolled), the run picker on it, and its view at once (queued, its worker starting)."""
    run_id = start(workspace, options_from_widgets(values))
    message = f"Started run #{run_id}."
    info(message + " Its worker is starting; the curves follow its first steps.")
    return (ok_md(message), gr.update(choices=run_choices(workspace), value=run_id),
            *run_view(workspace, run_id), poll_signature(workspace, run_id))


def _wire_start_and_cancel(ctx: Context, widgets: dict[str, Any], signature: gr.State) -> None:
    ws, c = ctx.workspace, ctx.components

    @guard(6)
    def on_start(*values):
        return started(ws, dict(zip(START_INPUTS, values)))

    c["pre_start"].click(on_start, [widgets[name] for name in START_INPUTS],
                         [c["pre_message"], c["pre_run"], c["pre_status"], c["pre_plot"],
                          c["pre_queue"], signature], api_name="pretrain_start")

    @guard(2)
    def on_cancel(run_id):
        return ok_md(cancel(ws, run_id)), None

    c["pre_cancel"].click(on_cancel, c["pre_run"], [c["pre_message"], signature],
                          api_name="pretrain_cancel")


def _wire_dataset_refresh(ws: Workspace, tab: gr.Tab, widgets: dict[str, Any]) -> None:
    dataset, split = widgets["dataset"], widgets["split"]

    def refresh(current):
        names = dataset_choices(ws)
        value = current if current in names else (names[0] if names else None)
        return gr.update(choices=names, value=value)

    tab.select(refresh, dataset, dataset, show_progress="hidden")
    dataset.change(lambda d: gr.update(choices=split_choices(ws, d) or ["train"]), dataset, split,
                   show_progress="hidden")


def wire(ctx: Context) -> None:
    fn, outputs = ctx.components["pretrain_load"]
    ctx.components["demo"].load(fn, None, outputs, show_progress="hidden")
