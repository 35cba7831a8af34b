"""SimCLR pretraining: one run behind `python -m ffclr pretrain` and the UI's jobs.

`pretrain` settles the config (a resumed run takes its checkpoint's), builds a
`ffclr.train.trainer.Trainer`, opens the run's store row and trains. The run's status, config
and metrics go to the store, scalars to TensorBoard, checkpoints to
`<workspace>/checkpoints/<run>/checkpoint_{epoch:04d}.pth.tar` (the latest one is kept).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ffclr.data.safe_paths import check_name
from ffclr.errors import FfclrError
from ffclr.model.checkpoint import load_checkpoint
from ffclr.train import distributed
from ffclr.train.config import TORCHVISION_DATASETS, PretrainConfig
from ffclr.train.data import default_data_dir
from ffclr.train.monitor import Progress, Recorder
from ffclr.train.trainer import Trainer
from ffclr.workspace import Workspace

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


def _settle_config(config: PretrainConfig, workspace: Workspace
                   ) -> tuple[PretrainConfig, Path | None, dict | None]:
    """The run's config (a resumed run's from its checkpoint, but for `DEVICE_FIELDS`), with a
    seed drawn when none was given and the crop folder found when none was given (so the kNN
    monitor finds the `valid` split beside it); the checkpoint path and contents it resumes
    from."""
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
    if config.data is None and config.dataset_name not in TORCHVISION_DATASETS:
        config.data = str(default_data_dir(workspace))
    return config, resume_path, resumed


def _open_run(config: PretrainConfig, workspace: Workspace, run_id: int | None,
              resumed: dict | None, dataset: str | None) -> tuple[int, str]:
    resumed_name = (resumed or {}).get("run_name")
    if resumed_name is not None:
        check_name(resumed_name, "run name in the checkpoint")
    with workspace.open_store() as store:
        if run_id is None and resumed and resumed.get("run_id") is not None \
                and store.run(resumed["run_id"]) is not None:
            run_id = resumed["run_id"]
        if run_id is None:
            ds = store.dataset(dataset) if dataset else None
            run_id = store.create_run("pretrain", config.to_dict(), name=config.run_name,
                                      dataset_id=ds["id"] if ds else None, status="running")
        name = config.run_name or resumed_name or f"pretrain-{run_id:04d}"
        store.update_run(run_id, name=name, config=config.to_dict(), cancel_requested=0,
                         error=None, ended_at=None)
        store.mark_running(run_id)
    return run_id, name


def pretrain(config: PretrainConfig, workspace: Workspace, *, run_id: int | None = None,
             progress: Progress | None = None) -> PretrainResult:
    """Train (or resume) one run; returns how it ended. Raises FfclrError on bad input."""
    config, resume_path, resumed = _settle_config(config, workspace)
    ctx = distributed.init_from_env(not config.disable_cuda and torch.cuda.is_available())
    trainer = Trainer(config, workspace, ctx, resumed)
    run_name = config.run_name or "pretrain"
    if ctx.is_main:
        run_id, run_name = _open_run(config, workspace, run_id, resumed, trainer.data.dataset)
    recorder = Recorder(workspace, run_id, run_name, trainer.total_steps, trainer.global_step,
                        progress, ctx.is_main, last_checkpoint=resume_path)
    try:
        status, final = trainer.fit(recorder)
    except BaseException as exc:
        _record_failure(trainer, recorder, exc)
        recorder.close()
        distributed.shutdown(ctx)
        raise
    summary = trainer.final_summary()
    recorder.finish(status, summary)
    recorder.close()
    distributed.shutdown(ctx)
    return PretrainResult(run_id=run_id, run_name=run_name, status=status, checkpoint=final,
                          steps=trainer.global_step,
                          epochs=trainer.global_step // trainer.steps_per_epoch, summary=summary)


def _record_failure(trainer: Trainer, recorder: Recorder, exc: BaseException) -> None:
    """Ctrl-C: the run is cancelled, with a checkpoint of where it stopped; any other exception:
    failed, with the error (an FfclrError's message as it is)."""
    if not (recorder.enabled and recorder.run_id is not None):
        return
    cancelled = isinstance(exc, KeyboardInterrupt)
    if cancelled:
        trainer.save_checkpoint()
    message = str(exc) if isinstance(exc, FfclrError) else f"{type(exc).__name__}: {exc}"
    recorder.finish("cancelled" if cancelled else "failed", {"steps": trainer.global_step},
                    error=None if cancelled else message)
