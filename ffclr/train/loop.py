"""SimCLR pretraining: the training loop behind `python -m ffclr pretrain` and the UI's jobs.

The crops live in memory as uint8 on the training device; each step draws its views with
`ffclr.train.augment` from a generator seeded by (seed, step) and its crops from a permutation seeded
by (seed, epoch), so a run resumed from any checkpoint retraces the uninterrupted run. The run's
status, config and metrics go to the store, scalars to TensorBoard, checkpoints to
`<workspace>/checkpoints/<run>/checkpoint_{epoch:04d}.pth.tar` (the latest one is kept).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ffclr.train import distributed
from ffclr.train.augment import PRESETS, augment, sample_params, slice_params
from ffclr.model.checkpoint import load_checkpoint, model_state_dict, save_checkpoint
from ffclr.errors import FfclrError
from ffclr.train.losses import positive_topk, supcon_rows
from ffclr.model.networks import SimCLRModel
from ffclr.train.optim import build_optimizer, default_lr, lr_at
from ffclr.train.config import PretrainConfig
from ffclr.train.data import TrainingData, from_crop_set, knn_split_dir, load_training_data
from ffclr.data.preprocess import DEFAULT_MEAN, DEFAULT_STD, to_model_input
from ffclr.workspace import Workspace

Progress = Callable[[int, int, str], None]
DEVICE_FIELDS = ("disable_cuda", "gpu_index", "workers", "resume")
"""Settings a resumed run takes from the command line; all others come from its checkpoint."""


@dataclass
class PretrainResult:
    run_id: int | None
    run_name: str
    status: str
    checkpoint: Path | None
    steps: int
    epochs: int
    summary: dict = field(default_factory=dict)


def pick_device(config: PretrainConfig, ctx: distributed.DistContext) -> torch.device:
    if not config.disable_cuda and torch.cuda.is_available():
        return torch.device("cuda", ctx.local_rank if ctx.enabled else config.gpu_index)
    return torch.device("cpu")


def cpu_bf16_supported() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(config: PretrainConfig, device: torch.device) -> torch.dtype | None:
    """fp16 (with a grad scaler) on CUDA when asked; bf16 when asked, or by default on a CPU
    with native bf16; else full precision."""
    if device.type == "cuda" and config.fp16_precision:
        return torch.float16
    if config.bf16 is None:
        return torch.bfloat16 if device.type == "cpu" and cpu_bf16_supported() else None
    return torch.bfloat16 if config.bf16 else None


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) % (2 ** 63))


@torch.no_grad()
def embed_images(model: SimCLRModel, images: torch.Tensor, device: torch.device,
                 dtype: torch.dtype | None, batch: int = 512) -> torch.Tensor:
    """L2-normalised backbone features of uint8 images (eval mode, no augmentation)."""
    was_training = model.training
    model.eval()
    out = []
    for chunk in images.split(batch):
        x = to_model_input(chunk.to(device), DEFAULT_MEAN, DEFAULT_STD)
        with _autocast(device, dtype):
            out.append(torch.nn.functional.normalize(model.features(x).float(), dim=1).cpu())
    model.train(was_training)
    return torch.cat(out)


def knn_top1(memory: torch.Tensor, memory_labels: torch.Tensor, queries: torch.Tensor | None,
             query_labels: torch.Tensor | None, k: int = 20, temperature: float = 0.07) -> float:
    """Weighted cosine kNN (InstDisc-style votes); leave-one-out on `memory` when no queries."""
    leave_one_out = queries is None
    if leave_one_out:
        queries, query_labels = memory, memory_labels
    n_classes = int(max(memory_labels.max(), query_labels.max())) + 1
    k = min(k, len(memory) - int(leave_one_out))
    correct = 0
    for start in range(0, len(queries), 1024):
        sims = queries[start:start + 1024] @ memory.T
        if leave_one_out:
            rows = torch.arange(len(sims))
            sims[rows, rows + start] = -float("inf")
        top, index = sims.topk(k, dim=1)
        votes = torch.zeros(len(sims), n_classes).scatter_add_(
            1, memory_labels[index], (top / temperature).exp())
        correct += (votes.argmax(1) == query_labels[start:start + 1024]).sum().item()
    return correct / len(queries)


MAX_SKIPPED_IN_A_ROW = 20


def planned_total_steps(step: int, steps_run: int, seconds_run: float, seconds_left: float,
                        max_steps: int) -> int:
    """Steps that fit the time budget, from the mean step time of this session so far, and never
    more than `max_steps` (`--epochs`).

    The mean over the whole session, not over the last epoch: with one-step epochs (one-shot
    mode) a single slow step (a checkpoint, a kNN pass) would otherwise shrink the plan and
    collapse the cosine schedule mid-run.
    """
    per_step = seconds_run / max(1, steps_run)
    left = max(0.0, seconds_left)
    return min(max_steps, max(step + (1 if left > per_step else 0), step + int(left / per_step)))


def grads_finite(model: torch.nn.Module) -> bool:
    """False when a gradient holds inf/NaN. On this CPU's oneDNN, bf16 autocast gives NaN weight
    gradients now and then for a stride-2 convolution over a 1×1 map (ResNet layer4 at 16 px);
    such a step is skipped, as a grad scaler skips fp16 overflows, instead of poisoning the
    weights."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return bool(torch.nn.utils.get_total_norm(grads).isfinite()) if grads else True


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


class _StopRequest:
    """SIGTERM → stop at the next step (installed only in the main thread)."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def resolve_resume(config: PretrainConfig, workspace: Workspace) -> Path | None:
    """The checkpoint to resume from: a path, or for 'auto' the latest checkpoint of `run_name`,
    else of the latest pretraining run that did not finish. None: start afresh."""
    if not config.resume:
        return None
    if config.resume != "auto":
        path = Path(config.resume)
        if not path.is_file():
            raise FfclrError(f"--resume: {path}: no such checkpoint file")
        return path
    if config.run_name:
        found = sorted((workspace.checkpoints / config.run_name).glob("checkpoint_*.pth.tar"))
        return found[-1] if found else None
    if not workspace.db_path.exists():
        return None
    with workspace.open_store() as store:
        store.mark_interrupted_runs()
        for run in store.runs(kind="pretrain"):
            if run["status"] in ("interrupted", "cancelled", "failed") and run["checkpoint"] \
                    and Path(run["checkpoint"]).is_file():
                return Path(run["checkpoint"])
    return None


class _Recorder:
    """Rank 0's outputs: the store row, TensorBoard scalars, the progress bar."""

    def __init__(self, workspace: Workspace, run_id: int | None, run_name: str, total: int,
                 initial: int, progress: Progress | None, enabled: bool):
        self.enabled = enabled
        self.run_id, self.run_name, self.progress = run_id, run_name, progress
        self.store = workspace.open_store() if enabled else None
        self.writer = None
        self.bar = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter
            from tqdm import tqdm

            self.writer = SummaryWriter(str(workspace.runs / run_name))
            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                            desc=f"pretrain {run_name}")

    def metrics(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        if self.run_id is not None:
            self.store.log_metrics(self.run_id, step, values)

    def tick(self, step: int, total: int, message: str, postfix: dict) -> None:
        if not self.enabled:
            return
        if self.bar.total != total:
            self.bar.total = total
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix(postfix, refresh=False)
        if self.progress:
            self.progress(step, total, message)

    def cancel_requested(self) -> bool:
        return bool(self.enabled and self.run_id is not None
                    and self.store.cancel_requested(self.run_id))

    def close(self) -> None:
        if self.enabled:
            self.bar.close()
            self.writer.close()
            self.store.close()


def _open_run(config: PretrainConfig, workspace: Workspace, run_id: int | None,
              resumed: dict | None, dataset: str | None) -> tuple[int, str]:
    with workspace.open_store() as store:
        if run_id is None and resumed and resumed.get("run_id") is not None \
                and store.run(resumed["run_id"]) is not None:
            run_id = resumed["run_id"]
        if run_id is None:
            ds = store.dataset(dataset) if dataset else None
            run_id = store.create_run("pretrain", config.to_dict(), name=config.run_name,
                                      dataset_id=ds["id"] if ds else None, status="running")
        name = config.run_name or (resumed or {}).get("run_name") or f"pretrain-{run_id:04d}"
        store.update_run(run_id, name=name, config=config.to_dict(), cancel_requested=0,
                         error=None, ended_at=None)
        store.mark_running(run_id)
    return run_id, name


def pretrain(config: PretrainConfig, workspace: Workspace, *, run_id: int | None = None,
             progress: Progress | None = None) -> PretrainResult:
    """Train (or resume) one run; returns how it ended. Raises FfclrError on bad input."""
    config.validate()
    resume_path = resolve_resume(config, workspace)
    if config.resume == "auto" and resume_path is None:
        print("--resume auto: no unfinished run with a checkpoint; starting a new run",
              file=sys.stderr)
    resumed = load_checkpoint(resume_path) if resume_path else None
    if resumed is not None:
        if "step" not in resumed or "config" not in resumed:
            raise FfclrError(f"--resume: {resume_path} is not an ffclr pretraining checkpoint "
                             "(seed checkpoints can be evaluated, not resumed)")
        saved = PretrainConfig.from_dict(resumed["config"])
        for name in DEVICE_FIELDS:
            setattr(saved, name, getattr(config, name))
        config = saved.validate()
    if config.seed is None:
        config.seed = int.from_bytes(os.urandom(4), "little") % (2 ** 31)

    ctx = distributed.init_from_env(not config.disable_cuda and torch.cuda.is_available())
    device = pick_device(config, ctx)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.manual_seed(config.seed)
    dtype = autocast_dtype(config, device)
    recipe = PRESETS[config.augment]

    data = load_training_data(config.data, config.dataset_name, config.mode, config.image_size,
                              config.workers, workspace)
    n = len(data.images)
    per_rank = min(config.batch_size, n // ctx.world_size)
    if per_rank < 2:
        raise FfclrError(f"{data.source}: {n} crops, too few for a batch of 2 per process")
    global_batch = per_rank * ctx.world_size
    steps_per_epoch = n // global_batch
    knn_queries = _knn_queries(config, workspace) if config.knn_every else None

    model = SimCLRModel(config.arch, config.out_dim, config.small_stem)
    if resumed is not None:
        model.load_state_dict(model_state_dict(resumed))
    model = model.to(device, memory_format=torch.channels_last)
    bare = model
    if ctx.enabled:
        model = distributed.convert_batchnorm(model, device.type == "cuda")
        bare = model
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    base_lr = config.lr or default_lr(config.optimizer, global_batch)
    optimizer = build_optimizer(config.optimizer, bare, base_lr, config.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)

    step, elapsed = 0, 0.0
    total_steps = config.epochs * steps_per_epoch
    if resumed is not None:
        optimizer.load_state_dict(resumed["optimizer"])
        if resumed.get("scaler"):
            scaler.load_state_dict(resumed["scaler"])
        torch.set_rng_state(resumed["rng"]["torch"])
        step, elapsed = int(resumed["step"]), float(resumed.get("elapsed", 0.0))
        total_steps = int(resumed["scheduler"]["total_steps"])

    def warmup_steps(total: int) -> int:
        return min(int(config.warmup * steps_per_epoch), total // 10)

    run_name = config.run_name or "pretrain"
    if ctx.is_main:
        run_id, run_name = _open_run(config, workspace, run_id, resumed, data.dataset)
    ckpt_dir = workspace.checkpoints / run_name
    recorder = _Recorder(workspace, run_id, run_name, total_steps, step, progress, ctx.is_main)
    images = data.images.to(device)
    labels = data.labels.to(device)
    last_checkpoint: Path | None = resume_path
    status, error = "running", None

    def checkpoint() -> Path | None:
        nonlocal last_checkpoint
        if not ctx.is_main:
            return None
        state = {
            "epoch": step // steps_per_epoch, "arch": config.arch,
            "state_dict": bare.state_dict(), "optimizer": optimizer.state_dict(),
            "image_size": config.image_size, "mean": list(DEFAULT_MEAN), "std": list(DEFAULT_STD),
            "class_names": list(data.class_names), "config": config.to_dict(),
            "mode": config.mode, "step": step, "steps_per_epoch": steps_per_epoch,
            "scheduler": {"total_steps": total_steps, "warmup_steps": warmup_steps(total_steps),
                          "base_lr": base_lr},
            "scaler": scaler.state_dict(), "rng": {"torch": torch.get_rng_state()},
            "elapsed": elapsed, "run_id": run_id, "run_name": run_name,
        }
        path = save_checkpoint(ckpt_dir / f"checkpoint_{step // steps_per_epoch:04d}.pth.tar",
                               state)
        if last_checkpoint and last_checkpoint != path and last_checkpoint.parent == ckpt_dir:
            last_checkpoint.unlink(missing_ok=True)
        last_checkpoint = path
        recorder.store.update_run(run_id, checkpoint=str(path))
        return path

    summary: dict[str, float] = {}
    window_start, window_views, window_loss, window_steps = time.perf_counter(), 0, 0.0, 0
    loop_start, elapsed_before = time.perf_counter(), elapsed
    session_start_step = step
    model.train()
    skipped_steps = skipped_in_a_row = 0
    try:
        with _StopRequest() as stop:
            perm_epoch, perm = -1, None
            while step < total_steps:
                epoch, k = divmod(step, steps_per_epoch)
                if epoch != perm_epoch:
                    perm_epoch, perm = epoch, epoch_permutation(n, config.seed, epoch)
                batch = perm[k * global_batch:(k + 1) * global_batch]
                params = sample_params(global_batch * config.n_views, recipe,
                                       step_generator(config.seed, step))
                mine = slice(ctx.rank * per_rank, (ctx.rank + 1) * per_rank)
                rows = slice(mine.start * config.n_views, mine.stop * config.n_views)
                local = batch[mine].to(device)
                views = augment(images[local].repeat_interleave(config.n_views, 0),
                                slice_params(params, rows.start, rows.stop), recipe)
                x = to_model_input(views, DEFAULT_MEAN, DEFAULT_STD).contiguous(
                    memory_format=torch.channels_last)
                lr = lr_at(step, total_steps, warmup_steps(total_steps), base_lr)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with _autocast(device, dtype):
                    z = model(x)
                group_labels = (labels[batch.to(device)] if config.mode == "labeled"
                                else torch.arange(global_batch, device=device))
                all_labels = group_labels.repeat_interleave(config.n_views)
                all_z = distributed.gather(z.float())
                anchor_index = torch.arange(rows.start, rows.stop, device=device)
                loss, logits = supcon_rows(z.float(), all_labels[rows], all_z, all_labels,
                                           anchor_index, config.temperature)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if not torch.isfinite(loss):
                    raise FfclrError(f"loss became {loss.item()} at step {step}; lower --lr")
                if scaler.is_enabled() or grads_finite(model):
                    scaler.step(optimizer)
                    skipped_in_a_row = 0
                else:
                    skipped_steps += 1
                    skipped_in_a_row += 1
                    if skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW:
                        raise FfclrError(f"gradients were not finite for {skipped_in_a_row} "
                                         "steps in a row; rerun with --no-bf16 or a lower --lr")
                scaler.update()
                step += 1
                elapsed = elapsed_before + time.perf_counter() - loop_start
                global_loss = distributed.all_mean(loss.detach()).item()
                window_views += global_batch * config.n_views
                window_loss += global_loss
                window_steps += 1
                views_per_s = window_views / max(1e-9, time.perf_counter() - window_start)
                recorder.tick(step, total_steps, f"epoch {epoch + 1}, loss {global_loss:.3f}",
                              {"loss": f"{global_loss:.3f}", "views/s": f"{views_per_s:.0f}",
                               "lr": f"{lr:.2e}"})
                cancelled = distributed.any_rank(stop.requested or recorder.cancel_requested())
                out_of_time = bool(config.time_budget) and distributed.any_rank(
                    elapsed >= config.time_budget)
                if (step % config.log_every_n_steps == 0 or step == total_steps or cancelled
                        or out_of_time):
                    acc = positive_topk(logits, all_labels[rows], all_labels)
                    summary = {"loss": window_loss / window_steps, "acc/top1": acc["top1"],
                               "acc/top5": acc["top5"], "learning_rate": lr,
                               "views_per_s": views_per_s, "epoch": step / steps_per_epoch}
                    recorder.metrics(step, summary)
                    window_start, window_views = time.perf_counter(), 0
                    window_loss, window_steps = 0.0, 0
                epoch_done = step % steps_per_epoch == 0
                if epoch_done and config.time_budget:
                    total_steps = planned_total_steps(
                        step, step - session_start_step, elapsed - elapsed_before,
                        config.time_budget - elapsed, config.epochs * steps_per_epoch)
                if epoch_done and config.knn_every and (step // steps_per_epoch) % \
                        config.knn_every == 0 and ctx.is_main:
                    top1 = _knn_monitor(bare, data, knn_queries, device, dtype)
                    summary["knn_top1"] = top1
                    recorder.metrics(step, {"knn_top1": top1})
                if cancelled:
                    status = "cancelled"
                    break
                if out_of_time:
                    break
                if epoch_done and (step // steps_per_epoch) % config.checkpoint_every == 0:
                    checkpoint()
            if status == "running":
                status = "finished"
            if config.knn_every and ctx.is_main and "knn_top1" not in summary:
                summary["knn_top1"] = _knn_monitor(bare, data, knn_queries, device, dtype)
                recorder.metrics(step, {"knn_top1": summary["knn_top1"]})
            final = checkpoint()
    except BaseException as exc:
        if ctx.is_main and run_id is not None:
            cancelled = isinstance(exc, KeyboardInterrupt)
            if cancelled:
                checkpoint()
            message = str(exc) if isinstance(exc, FfclrError) else f"{type(exc).__name__}: {exc}"
            recorder.store.finish_run(run_id, "cancelled" if cancelled else "failed",
                                      error=None if cancelled else message,
                                      summary={"steps": step},
                                      checkpoint=str(last_checkpoint) if last_checkpoint else None)
        recorder.close()
        distributed.shutdown(ctx)
        raise
    summary = {**summary, "steps": step, "skipped_steps": skipped_steps,
               "epochs": step / steps_per_epoch,
               "train_seconds": elapsed, "crops": n}
    if ctx.is_main:
        recorder.store.finish_run(run_id, status, summary=summary, checkpoint=str(final))
    recorder.close()
    distributed.shutdown(ctx)
    return PretrainResult(run_id=run_id, run_name=run_name, status=status, checkpoint=final,
                          steps=step, epochs=step // steps_per_epoch, summary=summary)


def _knn_queries(config: PretrainConfig, workspace: Workspace) -> TrainingData | None:
    from ffclr.data.cropset import load_crop_set

    folder = knn_split_dir(config.data, config.knn_data)
    if folder is None or config.dataset_name in ("cifar10", "stl10"):
        return None
    return from_crop_set(load_crop_set(folder, workspace), config.image_size, config.workers,
                         str(folder))


def _knn_monitor(model: SimCLRModel, data: TrainingData, queries: TrainingData | None,
                 device: torch.device, dtype: torch.dtype | None) -> float:
    memory = embed_images(model, data.images, device, dtype)
    if queries is None:
        return knn_top1(memory, data.labels, None, None)
    return knn_top1(memory, data.labels, embed_images(model, queries.images, device, dtype),
                    queries.labels)
