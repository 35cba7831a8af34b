"""`Trainer`: one pretraining run's model, optimiser and schedule, stepped a batch at a time.

The crops live in memory as uint8 on the training device; each step draws its views with
`ffclr.train.augment` from a generator seeded by (seed, step) and its crops from a permutation
seeded by (seed, epoch), so a run resumed from any checkpoint (`state_dict`) retraces the
uninterrupted run. `ffclr.train.loop.pretrain` builds a trainer, opens the run and calls `fit`.
"""
from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ffclr.data.preprocess import DEFAULT_MEAN, DEFAULT_STD, to_model_input
from ffclr.errors import FfclrError
from ffclr.model.checkpoint import model_state_dict
from ffclr.model.embed import autocast, inference_dtype
from ffclr.model.networks import SimCLRModel
from ffclr.train import distributed
from ffclr.train.augment import PRESETS, augment, sample_params, slice_params
from ffclr.train.config import PretrainConfig
from ffclr.train.data import load_training_data
from ffclr.train.losses import positive_topk, supcon_rows
from ffclr.train.monitor import Recorder, knn_monitor, knn_queries
from ffclr.train.optim import build_optimizer, default_lr, lr_at
from ffclr.workspace import Workspace

MAX_SKIPPED_IN_A_ROW = 20


def pick_device(config: PretrainConfig, ctx: distributed.DistContext) -> torch.device:
    if not config.disable_cuda and torch.cuda.is_available():
        return torch.device("cuda", ctx.local_rank if ctx.enabled else config.gpu_index)
    return torch.device("cpu")


def autocast_dtype(config: PretrainConfig, device: torch.device) -> torch.dtype | None:
    """fp16 (with a grad scaler) on CUDA when asked; bf16 when asked, or by default on a CPU
    with native bf16; else full precision."""
    if device.type == "cuda" and config.fp16_precision:
        return torch.float16
    if config.bf16 is None:
        return inference_dtype(device)
    return torch.bfloat16 if config.bf16 else None


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) % (2 ** 63))


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
    """False when a gradient holds inf/NaN. With oneDNN on CPU, bf16 autocast gives NaN weight
    gradients now and then for a stride-2 convolution over a 1×1 map (ResNet layer4 at 16 px);
    such a step is skipped, as a grad scaler skips fp16 overflows, instead of poisoning the
    weights."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return bool(torch.nn.utils.get_total_norm(grads).isfinite()) if grads else True


class StopRequest:
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


@dataclass
class StepOutput:
    epoch: int
    """The epoch the step belonged to (0-based)."""
    loss: float
    """Mean loss over all ranks."""
    lr: float
    logits: torch.Tensor
    anchor_labels: torch.Tensor
    all_labels: torch.Tensor


class LossWindow:
    """Mean loss and views per second since the last logged step."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.start, self.views, self.loss, self.steps = time.perf_counter(), 0, 0.0, 0

    def add(self, loss: float, views: int) -> float:
        """Count one step; returns the views per second of the window so far."""
        self.views += views
        self.loss += loss
        self.steps += 1
        return self.views / max(1e-9, time.perf_counter() - self.start)

    @property
    def mean_loss(self) -> float:
        return self.loss / self.steps


class Trainer:
    """Set-up (device, precision, data, model, optimiser; state restored from a checkpoint),
    `step`, `end_of_epoch` (schedule re-plan, kNN monitor, checkpoint) and `state_dict`.

    Under `torchrun` every rank builds one; each takes its slice of the global batch, and only
    rank 0 records (see `ffclr.train.monitor.Recorder`).
    """

    def __init__(self, config: PretrainConfig, workspace: Workspace,
                 ctx: distributed.DistContext, resumed: dict | None = None):
        self.config, self.ctx = config, ctx
        self.device = pick_device(config, ctx)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        torch.manual_seed(config.seed)
        self.dtype = autocast_dtype(config, self.device)
        self.recipe = PRESETS[config.augment]
        self.data = load_training_data(config.data, config.dataset_name, config.mode,
                                       config.image_size, config.workers, workspace)
        self._size_batches()
        self.knn_queries = knn_queries(config, workspace) if config.knn_every else None
        self.model, self.bare = self._build_model(resumed)
        self.base_lr = config.lr or default_lr(config.optimizer, self.global_batch)
        self.optimizer = build_optimizer(config.optimizer, self.bare, self.base_lr,
                                         config.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)
        self.global_step, self.elapsed = 0, 0.0
        self.total_steps = config.epochs * self.steps_per_epoch
        self.skipped_steps = self._skipped_in_a_row = 0
        if resumed is not None:
            self._restore(resumed)
        self.images = self.data.images.to(self.device)
        self.labels = self.data.labels.to(self.device)
        self.summary: dict[str, float] = {}
        """The metrics last logged, with the last kNN score."""
        self.recorder: Recorder | None = None
        self._perm_epoch, self._perm = -1, None

    def _size_batches(self) -> None:
        config, ctx = self.config, self.ctx
        self.crops = len(self.data.images)
        self.per_rank = min(config.batch_size, self.crops // ctx.world_size)
        if self.per_rank < 2:
            raise FfclrError(f"{self.data.source}: {self.crops} crops, too few for a batch of 2 "
                             "per process")
        self.global_batch = self.per_rank * ctx.world_size
        self.steps_per_epoch = self.crops // self.global_batch
        views = self.per_rank * config.n_views
        self.rows = slice(ctx.rank * views, (ctx.rank + 1) * views)
        """This rank's rows of the global batch of views."""

    def _build_model(self, resumed: dict | None) -> tuple[torch.nn.Module, SimCLRModel]:
        """The model to step (DDP-wrapped under torchrun) and the bare model inside it."""
        config = self.config
        model = SimCLRModel(config.arch, config.out_dim, config.small_stem)
        if resumed is not None:
            model.load_state_dict(model_state_dict(resumed))
        model = model.to(self.device, memory_format=torch.channels_last)
        if not self.ctx.enabled:
            return model, model
        bare = distributed.convert_batchnorm(model, self.device.type == "cuda")
        return torch.nn.parallel.DistributedDataParallel(
            bare, device_ids=[self.device.index] if self.device.type == "cuda" else None), bare

    def _restore(self, state: dict) -> None:
        """Optimiser, grad scaler, RNG, step and schedule from a checkpoint (the weights are
        loaded before the model is wrapped)."""
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        self.global_step, self.elapsed = int(state["step"]), float(state.get("elapsed", 0.0))
        self.total_steps = int(state["scheduler"]["total_steps"])

    def state_dict(self) -> dict:
        """The checkpoint of the current step: weights, optimiser, schedule, RNG, the run's
        identity, and what evaluation needs (image size, normalisation, class names)."""
        config = self.config
        return {
            "epoch": self.global_step // self.steps_per_epoch, "arch": config.arch,
            "state_dict": self.bare.state_dict(), "optimizer": self.optimizer.state_dict(),
            "image_size": config.image_size, "mean": list(DEFAULT_MEAN), "std": list(DEFAULT_STD),
            "class_names": list(self.data.class_names), "config": config.to_dict(),
            "mode": config.mode, "step": self.global_step, "steps_per_epoch": self.steps_per_epoch,
            "scheduler": {"total_steps": self.total_steps,
                          "warmup_steps": self.warmup_steps(self.total_steps),
                          "base_lr": self.base_lr},
            "scaler": self.scaler.state_dict(), "rng": {"torch": torch.get_rng_state()},
            "elapsed": self.elapsed, "run_id": self.recorder.run_id,
            "run_name": self.recorder.run_name,
        }

    def warmup_steps(self, total: int) -> int:
        return min(int(self.config.warmup * self.steps_per_epoch), total // 10)

    def fit(self, recorder: Recorder) -> tuple[str, Path | None]:
        """Train until the planned steps are done, a stop is asked for (SIGTERM or the store,
        on any rank) or the time budget is spent; then a last kNN score and checkpoint.
        Returns the status ("finished" or "cancelled") and the final checkpoint (None off
        rank 0)."""
        self.recorder = recorder
        self._start_session()
        self.model.train()
        with StopRequest() as stop:
            status = self._run_steps(stop)
            if self.config.knn_every and self.ctx.is_main and "knn_top1" not in self.summary:
                self._monitor_knn()
            return status, self.save_checkpoint()

    def _start_session(self) -> None:
        """Start the clocks of this process's share of the run (time budget, views/s)."""
        self.window = LossWindow()
        self._session_start, self._elapsed_before = time.perf_counter(), self.elapsed
        self._session_first_step = self.global_step

    def _run_steps(self, stop: StopRequest) -> str:
        while self.global_step < self.total_steps:
            out = self.step()
            cancelled, out_of_time = self._report(out, stop)
            if self.global_step % self.steps_per_epoch == 0:
                self.end_of_epoch(stopping=cancelled or out_of_time)
            if cancelled:
                return "cancelled"
            if out_of_time:
                break
        return "finished"

    def step(self) -> StepOutput:
        """One optimiser step on the next global batch, of which this rank computes its rows."""
        config, rows = self.config, self.rows
        epoch = self.global_step // self.steps_per_epoch
        batch = self._next_batch()
        x = self._views(batch)
        lr = self._set_lr()
        with autocast(self.device, self.dtype):
            z = self.model(x)
        group_labels = (self.labels[batch.to(self.device)] if config.mode == "labeled"
                        else torch.arange(self.global_batch, device=self.device))
        all_labels = group_labels.repeat_interleave(config.n_views)
        all_z = distributed.gather(z.float())
        anchor_index = torch.arange(rows.start, rows.stop, device=self.device)
        loss, logits = supcon_rows(z.float(), all_labels[rows], all_z, all_labels,
                                   anchor_index, config.temperature)
        self._apply_gradients(loss)
        self.global_step += 1
        self.elapsed = self._elapsed_before + time.perf_counter() - self._session_start
        global_loss = distributed.all_mean(loss.detach()).item()
        return StepOutput(epoch, global_loss, lr, logits, all_labels[rows], all_labels)

    def _next_batch(self) -> torch.Tensor:
        """Crop indices of this step's global batch: a slice of its epoch's permutation."""
        epoch, k = divmod(self.global_step, self.steps_per_epoch)
        if epoch != self._perm_epoch:
            self._perm_epoch = epoch
            self._perm = epoch_permutation(self.crops, self.config.seed, epoch)
        return self._perm[k * self.global_batch:(k + 1) * self.global_batch]

    def _views(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's augmented views of its crops of `batch`, as channels-last model input;
        the augmentation parameters are drawn for the whole global batch."""
        n_views, rows = self.config.n_views, self.rows
        params = sample_params(self.global_batch * n_views, self.recipe,
                               step_generator(self.config.seed, self.global_step))
        rank = self.ctx.rank
        mine = batch[rank * self.per_rank:(rank + 1) * self.per_rank].to(self.device)
        views = augment(self.images[mine].repeat_interleave(n_views, 0),
                        slice_params(params, rows.start, rows.stop), self.recipe)
        return to_model_input(views, DEFAULT_MEAN, DEFAULT_STD).contiguous(
            memory_format=torch.channels_last)

    def _set_lr(self) -> float:
        lr = lr_at(self.global_step, self.total_steps, self.warmup_steps(self.total_steps),
                   self.base_lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def _apply_gradients(self, loss: torch.Tensor) -> None:
        """Backward and optimiser step; a step with non-finite gradients is skipped (see
        `grads_finite`), and too many in a row, or a non-finite loss, stop the run."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if not torch.isfinite(loss):
            raise FfclrError(f"loss became {loss.item()} at step {self.global_step}; lower --lr")
        if self.scaler.is_enabled() or grads_finite(self.model):
            self.scaler.step(self.optimizer)
            self._skipped_in_a_row = 0
        else:
            self.skipped_steps += 1
            self._skipped_in_a_row += 1
            if self._skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW:
                raise FfclrError(f"gradients were not finite for {self._skipped_in_a_row} "
                                 "steps in a row; rerun with --no-bf16 or a lower --lr")
        self.scaler.update()

    def _report(self, out: StepOutput, stop: StopRequest) -> tuple[bool, bool]:
        """Progress, then the stop decisions all ranks take together (cancelled, out of time);
        the metrics are logged every `log_every_n_steps` and on the last step."""
        config, step = self.config, self.global_step
        views_per_s = self.window.add(out.loss, self.global_batch * config.n_views)
        self.recorder.tick(step, self.total_steps, f"epoch {out.epoch + 1}, loss {out.loss:.3f}",
                           {"loss": f"{out.loss:.3f}", "views/s": f"{views_per_s:.0f}",
                            "lr": f"{out.lr:.2e}"})
        cancelled = distributed.any_rank(stop.requested or self.recorder.cancel_requested())
        out_of_time = bool(config.time_budget) and distributed.any_rank(
            self.elapsed >= config.time_budget)
        if (step % config.log_every_n_steps == 0 or step == self.total_steps or cancelled
                or out_of_time):
            acc = positive_topk(out.logits, out.anchor_labels, out.all_labels)
            self.summary = {"loss": self.window.mean_loss, "acc/top1": acc["top1"],
                            "acc/top5": acc["top5"], "learning_rate": out.lr,
                            "views_per_s": views_per_s, "epoch": step / self.steps_per_epoch}
            self.recorder.metrics(step, self.summary)
            self.window.reset()
        return cancelled, out_of_time

    def end_of_epoch(self, stopping: bool = False) -> None:
        """Re-plan the steps that fit the time budget, score the kNN monitor and write a
        checkpoint, each when due; no checkpoint when `stopping` (the final one follows)."""
        config, epoch = self.config, self.global_step // self.steps_per_epoch
        if config.time_budget:
            self.total_steps = planned_total_steps(
                self.global_step, self.global_step - self._session_first_step,
                self.elapsed - self._elapsed_before, config.time_budget - self.elapsed,
                config.epochs * self.steps_per_epoch)
        if config.knn_every and epoch % config.knn_every == 0 and self.ctx.is_main:
            self._monitor_knn()
        if not stopping and epoch % config.checkpoint_every == 0:
            self.save_checkpoint()

    def _monitor_knn(self) -> None:
        top1 = knn_monitor(self.bare, self.data, self.knn_queries, self.device, self.dtype)
        self.summary["knn_top1"] = top1
        self.recorder.metrics(self.global_step, {"knn_top1": top1})

    def save_checkpoint(self) -> Path | None:
        """Rank 0 writes `state_dict()` (see `Recorder.save_checkpoint`); other ranks: None."""
        return self.recorder.save_checkpoint(self.state_dict()) if self.ctx.is_main else None

    def final_summary(self) -> dict:
        return {**self.summary, "steps": self.global_step, "skipped_steps": self.skipped_steps,
                "epochs": self.global_step / self.steps_per_epoch,
                "train_seconds": self.elapsed, "crops": self.crops}
