"""Pretrain tab: options, Start (a worker process via `ffclr.train.jobs`), live curves polled from the
store, Cancel, the queue. The page holds no job state: a reload or an app restart shows the same."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import gradio as gr

from ffclr.errors import FfclrError
from ffclr.workspace import Workspace
from ui.common import (Context, dataset_choices, fmt_duration, guard, has_backend,
                       missing_backend_message, ok_md, open_store, run_dataset, run_duration,
                       split_choices)

MODES = {"unlabeled (SimCLR)": "ff_devices_unlabeled",
         "labeled (supervised contrastive)": "ff_devices_labeled",
         "one-shot (the seed's)": "ff_devices_one_shot"}
PRECISIONS = ("auto", "fp32", "bf16 (CPU)", "fp16 (GPU)")
DEVICES = ("auto", "CPU", "GPU")
CURVES = (("loss", "loss"), ("views_per_s", "views/s"), ("knn_top1", "kNN top-1"))
QUEUE_COLUMNS = ["id", "name", "status", "created", "dataset"]
POLL_SECONDS = 1.0


@dataclass
class PretrainOptions:
    dataset: str | None
    split: str = "train"
    mode: str = "unlabeled (SimCLR)"
    arch: str = "resnet18"
    image_size: int = 48
    batch_size: int = 256
    epochs: int = 100
    time_budget_s: float = 0
    """0: no budget, train for `epochs`."""
    lr: float = 0
    """0: the optimiser's default."""
    temperature: float = 0.2
    device: str = "auto"
    precision: str = "auto"
    augment: str = "default"
    knn_every: int = 1
    run_name: str = ""


PRESETS = {
    "CPU quick (≈3 min)": dict(arch="resnet18", image_size=48, batch_size=256, epochs=1000,
                               time_budget_s=180, lr=0, temperature=0.2, device="auto",
                               precision="auto", augment="default", knn_every=5),
    "CPU thorough (20 min)": dict(arch="resnet18", image_size=48, batch_size=256, epochs=5000,
                                  time_budget_s=1200, lr=0, temperature=0.2, device="auto",
                                  precision="auto", augment="default", knn_every=20),
    "GPU (ResNet-50, 64 px)": dict(arch="resnet50", image_size=64, batch_size=512, epochs=200,
                                   time_budget_s=0, lr=0, temperature=0.2, device="GPU",
                                   precision="fp16 (GPU)", augment="default", knn_every=10),
}
PRESET_FIELDS = ("arch", "image_size", "batch_size", "epochs", "time_budget_s", "lr",
                 "temperature", "device", "precision", "augment", "knn_every")


def pretrain_config(workspace: Workspace, options: PretrainOptions):
    """The `ffclr.train.config.PretrainConfig` for these options (validated)."""
    from ffclr.train.config import PretrainConfig

    if not options.dataset:
        raise FfclrError("pick a dataset (import one in the Data tab first)")
    with open_store(workspace) as store:
        dataset = store.dataset(options.dataset)
        if dataset is None:
            raise FfclrError(f"no imported dataset named {options.dataset!r}")
        splits = store.splits(dataset["id"])
    data = workspace.dataset_dir(options.dataset)
    if options.split:
        if options.split not in splits:
            raise FfclrError(f"dataset {options.dataset!r} has no split {options.split!r} "
                             f"(it has {', '.join(splits)})")
        data = data / options.split
    if options.mode not in MODES:
        raise FfclrError(f"mode {options.mode!r} is not one of {', '.join(MODES)}")
    if options.device == "GPU":
        import torch

        if not torch.cuda.is_available():
            raise FfclrError("device GPU: no CUDA GPU on this machine (choose auto or CPU)")
    config = PretrainConfig(
        data=str(data), dataset_name=MODES[options.mode], arch=options.arch,
        image_size=int(options.image_size), batch_size=int(options.batch_size),
        epochs=int(options.epochs), time_budget=float(options.time_budget_s) or None,
        lr=float(options.lr) or None, temperature=float(options.temperature),
        disable_cuda=options.device == "CPU", fp16_precision=options.precision == "fp16 (GPU)",
        bf16={"fp32": False, "bf16 (CPU)": True}.get(options.precision),
        augment=options.augment, knn_every=int(options.knn_every), log_every_n_steps=2,
        checkpoint_every=1, run_name=(options.run_name or "").strip() or None)
    return config.validate()


def start(workspace: Workspace, options: PretrainOptions) -> int:
    """Queue a pretraining job (a worker process); returns its run id."""
    if not has_backend("ffclr.train.jobs"):
        raise FfclrError("starting pretraining from the app is not available yet: this ffclr "
                         "has no ffclr.train.jobs (use `python -m ffclr pretrain` meanwhile)")
    from ffclr.train import jobs

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
    if has_backend("ffclr.train.jobs"):
        from ffclr.train import jobs

        jobs.cancel(workspace, int(run_id))
    else:
        with open_store(workspace) as store:
            store.request_cancel(int(run_id))
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
    runs = pretrain_runs(workspace)
    for status in ("running", "queued"):
        active = [r for r in runs if r["status"] == status]
        if active:
            return active[-1]["id"] if status == "queued" else active[0]["id"]
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


def curves_figure(series: dict[str, tuple[list[int], list[float]]]):
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=[title for _, title in CURVES])
    for col, (name, title) in enumerate(CURVES, start=1):
        steps, values = series.get(name, ([], []))
        fig.add_scatter(x=steps, y=values, mode="lines+markers", name=title, row=1, col=col,
                        marker={"size": 4})
        fig.update_xaxes(title_text="step", row=1, col=col)
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
    parts = [f"**Run #{run['id']} {run.get('name') or ''}** · **{run['status']}** · "
             f"{config.get('arch', '')}, {config.get('image_size', '')} px, batch "
             f"{config.get('batch_size', '')} · {fmt_duration(run_duration(run))}"]
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
    if run["status"] == "queued":
        text += "\n\nWaiting for the job before it to finish (one job runs at a time)."
    if run.get("error"):
        text += f"\n\n⚠ **Error:** {run['error']}"
    if run["status"] in ("failed", "cancelled", "interrupted", "finished"):
        text += (f"\n\nLast checkpoint: `{run['checkpoint']}`" if run.get("checkpoint")
                 else "\n\nNo checkpoint was written.")
    return text


def notice_lost_workers(workspace: Workspace, run_id: int) -> None:
    """Let ffclr.train.jobs mark a run whose worker process died as interrupted."""
    if has_backend("ffclr.train.jobs"):
        from ffclr.train import jobs

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


def _options(*values) -> PretrainOptions:
    return PretrainOptions(*values)


def build(ctx: Context, tab: gr.Tab) -> None:
    ws = ctx.workspace
    c = ctx.components
    if not has_backend("ffclr.train.jobs"):
        gr.Markdown(missing_backend_message("Starting pretraining from the app", "ffclr.train.jobs")
                    + " Runs started with `python -m ffclr pretrain` still show here live.")
    from ffclr.train.config import AUGMENT_HELP, AUGMENT_PRESETS
    from ffclr.model.networks import ARCHS

    datasets = dataset_choices(ws)
    with gr.Row():
        with gr.Column(scale=1):
            c["pre_preset"] = gr.Dropdown(label="Preset", choices=list(PRESETS),
                                          value=None, elem_id="pretrain-preset")
            with gr.Row():
                dataset = gr.Dropdown(label="Dataset", choices=datasets,
                                      value=datasets[0] if datasets else None)
                split = gr.Dropdown(label="Split", choices=split_choices(
                    ws, datasets[0] if datasets else None) or ["train"], value="train")
            mode = gr.Dropdown(label="Mode", choices=list(MODES), value="unlabeled (SimCLR)")
            with gr.Row():
                arch = gr.Dropdown(label="Architecture", choices=list(ARCHS), value="resnet18")
                image_size = gr.Number(label="Image size (px)", value=48, precision=0)
                batch = gr.Number(label="Batch", value=256, precision=0)
            with gr.Row():
                epochs = gr.Number(label="Epochs (at most)", value=100, precision=0)
                budget = gr.Number(label="Time budget (s, 0 = none)", value=0)
            with gr.Row():
                lr = gr.Number(label="Learning rate (0 = default)", value=0)
                temperature = gr.Number(label="Temperature", value=0.2)
            with gr.Row():
                device = gr.Dropdown(label="Device", choices=list(DEVICES), value="auto")
                precision = gr.Dropdown(label="Precision", choices=list(PRECISIONS), value="auto",
                                        elem_id="pretrain-precision")
            with gr.Row():
                augment = gr.Dropdown(label="Augmentation", choices=list(AUGMENT_PRESETS),
                                      value="default", info=AUGMENT_HELP)
                knn_every = gr.Number(label="kNN every N epochs (0 = never)", value=1,
                                      precision=0)
            run_name = gr.Textbox(label="Run name (optional)")
            with gr.Row():
                c["pre_start"] = gr.Button("Start", variant="primary", elem_id="pretrain-start")
                c["pre_cancel"] = gr.Button("Cancel", variant="stop", elem_id="pretrain-cancel")
            c["pre_message"] = gr.Markdown(elem_id="pretrain-message")
        with gr.Column(scale=2):
            c["pre_run"] = gr.Dropdown(label="Run", choices=run_choices(ws),
                                       value=default_run(ws), elem_id="pretrain-run")
            c["pre_status"] = gr.Markdown(elem_id="pretrain-status")
            c["pre_plot"] = gr.Plot(label="Live curves", elem_id="pretrain-plot")
            c["pre_queue"] = gr.Dataframe(headers=QUEUE_COLUMNS, label="Queue (one job at a time)",
                                          interactive=False, max_height=200)
    option_inputs = [dataset, split, mode, arch, image_size, batch, epochs, budget, lr,
                     temperature, device, precision, augment, knn_every, run_name]
    preset_outputs = [arch, image_size, batch, epochs, budget, lr, temperature, device, precision,
                      augment, knn_every]
    signature = gr.State(None)
    timer = gr.Timer(POLL_SECONDS)

    def apply_preset(name):
        if name not in PRESETS:
            return [gr.skip()] * len(preset_outputs)
        return [PRESETS[name][f] for f in PRESET_FIELDS]

    c["pre_preset"].change(apply_preset, c["pre_preset"], preset_outputs, show_progress="hidden")

    def view(run_id):
        series = curves(ws, run_id) if run_id is not None else {}
        return run_status(ws, run_id), curves_figure(series), queue_rows(ws) or None

    def poll(run_id, last):
        now = poll_signature(ws, run_id)
        if now == last:
            return gr.skip(), gr.skip(), gr.skip(), last, gr.skip()
        choices = run_choices(ws)
        return (*view(run_id), now, gr.update(choices=choices))

    poll_outputs = [c["pre_status"], c["pre_plot"], c["pre_queue"], signature, c["pre_run"]]
    timer.tick(guard(5, status_at=None)(poll), [c["pre_run"], signature], poll_outputs,
               show_progress="hidden", queue=False)

    def on_load():
        run_id = default_run(ws)
        return (gr.update(choices=run_choices(ws), value=run_id), *view(run_id),
                poll_signature(ws, run_id))

    ctx.components["pretrain_load"] = (on_load, [c["pre_run"], c["pre_status"], c["pre_plot"],
                                                 c["pre_queue"], signature])

    @guard(3)
    def on_start(*values):
        run_id = start(ws, _options(*values))
        return (ok_md(f"Started run #{run_id}."),
                gr.update(choices=run_choices(ws), value=run_id), None)

    c["pre_start"].click(on_start, option_inputs, [c["pre_message"], c["pre_run"], signature],
                         api_name="pretrain_start")

    @guard(2)
    def on_cancel(run_id):
        return ok_md(cancel(ws, run_id)), None

    c["pre_cancel"].click(on_cancel, c["pre_run"], [c["pre_message"], signature],
                          api_name="pretrain_cancel")
    c["pre_run"].change(lambda r: (*view(r), poll_signature(ws, r)), c["pre_run"],
                        [c["pre_status"], c["pre_plot"], c["pre_queue"], signature],
                        show_progress="hidden")

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
