"""Refit from the new labels: the detector (on the export's drawings of a split plus the drawings
annotated into it) and the linear probe (on the dataset's crops, the annotated drawings' among
them), in the background worker's queue (`ffclr.train.jobs`, kind 'refit'), recording the new
figures beside the old ones in the run's summary.

The refitted detector is a new file under `detectors/`: the detector in use is never changed.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable

from ffclr.errors import FfclrError
from ffclr.workspace import Workspace

KIND = "refit"
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class RefitConfig:
    dataset: str
    checkpoint: str
    """Encoder checkpoint of the refitted detector and probe."""
    detector: str | None = None
    """The detector in use now: its figures are the 'old' ones."""
    split: str = "train"
    """Labelled drawings and crops the refit learns from."""
    eval_split: str = "valid"
    """Labelled drawings and crops both old and new are scored on."""
    probe: bool = True
    seed: int = 0

    @classmethod
    def from_dict(cls, raw: dict) -> "RefitConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})

    def validate(self, workspace: Workspace) -> "RefitConfig":
        if self.split == self.eval_split:
            raise FfclrError(f"refit: learn from one split and score on another (both are "
                             f"{self.split!r})")
        if not Path(self.checkpoint).is_file():
            raise FfclrError(f"{self.checkpoint}: no such checkpoint")
        if self.detector and not Path(self.detector).exists() \
                and not Path(f"{self.detector}.npz").exists():
            raise FfclrError(f"{self.detector}: no such detector file")
        with workspace.open_store() as store:
            if store.dataset(self.dataset) is None:
                raise FfclrError(f"no imported dataset named {self.dataset!r}")
        return self


def start_refit(workspace: Workspace, config: RefitConfig) -> int:
    """Queue a refit behind any pretraining or refit already queued; returns its run id. Paths
    are stored absolute: the worker runs in the workspace folder."""
    from ffclr.train.jobs import start_job

    config = replace(config.validate(workspace),
                     checkpoint=str(Path(config.checkpoint).resolve()),
                     detector=config.detector and str(Path(config.detector).resolve()))
    with workspace.open_store() as store:
        dataset_id = store.dataset(config.dataset)["id"]
    return start_job(workspace, KIND, asdict(config), name=f"refit {config.dataset}",
                     dataset_id=dataset_id)


def detector_file(workspace: Workspace, dataset: str, run_id: int) -> Path:
    """Where run `run_id` saves its detector (the folder the app lists detectors from)."""
    from ffclr.data.safe_paths import safe_name

    return workspace.root / "detectors" / f"{safe_name(dataset)}-refit-{run_id:04d}.npz"


def detector_figures(detector, labelled) -> dict:
    """mAP@50, mAP@[.5:.95] and AR@100 of `detector` on a LabelledSplit's drawings."""
    from ffclr.detection import detect_image
    from ffclr.detection.evaluation import labelled_scores

    found = []
    for item in labelled.images:
        try:
            found.append(detect_image(detector, item.path, min_score=0.0))
        except FfclrError:
            found.append([])
    try:
        scores = labelled_scores(labelled.images, found, labelled.class_names,
                                 labelled.category_ids)
    except FfclrError as exc:
        return {"drawings": len(labelled.images), "error": str(exc)}
    return {"drawings": len(labelled.images), "mAP50": scores["mAP50"], "mAP": scores["mAP"],
            "AR100": scores["AR100"]}


def _probe_figures(metrics: dict) -> dict:
    return {k: metrics.get(k) for k in ("top1", "macro_f1", "n_train", "n_test")}


def previous_probe(workspace: Workspace, dataset: str, checkpoint: str) -> dict | None:
    """Figures of the latest finished probe run on this dataset and checkpoint, if any."""
    resolved = str(Path(checkpoint).resolve())
    with workspace.open_store() as store:
        for run in store.runs(kind="probe", status="finished"):
            config = run["config"]
            if config.get("checkpoint") == resolved and \
                    (config.get("train") or {}).get("dataset") == dataset:
                return {"run": run["id"], **_probe_figures(run["summary"])}
    return None


def refit(workspace: Workspace, config: RefitConfig, run_id: int,
          progress: Progress | None = None) -> dict:
    """Refit the detector (and the probe), score old and new; returns the run's summary."""
    from ffclr.annotate.finish import labelled_split
    from ffclr.detection import load_detector, save_detector
    from ffclr.detection.training import fit_labelled

    learn = labelled_split(workspace, config.dataset, config.split)
    try:
        scored = labelled_split(workspace, config.dataset, config.eval_split)
    except FfclrError:
        scored = None
    detector = fit_labelled(config.checkpoint, learn, seed=config.seed, progress=progress)
    detector.info.update({"dataset": config.dataset, "split": config.split, "refit_run": run_id})
    path = save_detector(detector, detector_file(workspace, config.dataset, run_id))
    summary = {"detector": str(path), "drawings": len(learn.images),
               "boxes": int(sum(len(i.boxes) for i in learn.images)),
               "score_threshold": detector.score_threshold}
    if scored is not None:
        summary["detector_new"] = detector_figures(detector, scored)
        if config.detector:
            summary["detector_old"] = detector_figures(load_detector(config.detector), scored)
    if config.probe:
        summary |= refit_probe(workspace, config, progress)
    return summary


def refit_probe(workspace: Workspace, config: RefitConfig, progress: Progress | None) -> dict:
    """A probe run on the dataset's crops (new ones included), with the previous one's figures."""
    from ffclr.data.cropset import load_dataset_split
    from ffclr.eval.evaluate import run_probe

    old = previous_probe(workspace, config.dataset, config.checkpoint)
    train = load_dataset_split(config.dataset, config.split, workspace)
    test = load_dataset_split(config.dataset, config.eval_split, workspace)
    report = run_probe(train, test, config.checkpoint, workspace, progress=progress)
    return {"probe_old": old, "probe_new": {"run": report.run_id,
                                            **_probe_figures(report.metrics)}}


def run_refit(workspace: Workspace, run_id: int, raw: dict) -> int:
    """The worker's work for a queued refit (`ffclr.train.jobs.run_job`)."""
    from ffclr.train.jobs import failure_recorded

    config = RefitConfig.from_dict(raw)
    with failure_recorded(workspace, run_id):
        with workspace.open_store() as store:
            store.mark_running(run_id, os.getpid())

        def progress(done: int, total: int, message: str) -> None:
            with workspace.open_store() as store:
                store.log_metrics(run_id, done, {"progress": done / max(total, 1)})
            print(message, flush=True)

        summary = refit(workspace, config, run_id, progress)
        with workspace.open_store() as store:
            store.finish_run(run_id, "finished", summary=summary,
                             checkpoint=str(Path(config.checkpoint).resolve()))
    return 0


def summary_lines(summary: dict) -> list[str]:
    """The refit's figures, new beside old, as lines of text."""
    lines = [f"detector {summary['detector']}: {summary['drawings']} drawings, "
             f"{summary['boxes']} boxes, threshold {summary['score_threshold']:.2f}"]
    for what, keys in (("detector", ("mAP50", "mAP")), ("probe", ("top1", "macro_f1"))):
        new, old = summary.get(f"{what}_new"), summary.get(f"{what}_old")
        if not new:
            continue
        for key in keys:
            before = "-" if not old or old.get(key) is None else f"{old[key]:.3f}"
            after = "-" if new.get(key) is None else f"{new[key]:.3f}"
            lines.append(f"{what} {key}: {before} -> {after}")
    return lines
