"""Frozen-feature evaluation as one call: embed two crop sets, fit a probe on the first, score
it on the second, write metrics JSON/CSV and the probe, and record the run in the store."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ffclr.data.cropset import CropSet, load_crop_set, load_dataset_split
from ffclr.errors import FfclrError
from ffclr.workspace import Workspace


def resolve_crop_set(workspace: Workspace, data: str | Path | None = None,
                     dataset: str | None = None, split: str | None = None) -> CropSet:
    """A folder (`-data DIR`) or an imported dataset by name (optionally one split)."""
    if data:
        return load_crop_set(data, workspace)
    if dataset:
        return load_dataset_split(dataset, split, workspace)
    with workspace.open_store() as store:
        names = [d["name"] for d in store.datasets()] if workspace.db_path.exists() else []
    if len(names) == 1:
        return load_dataset_split(names[0], split, workspace)
    raise FfclrError("say which crops: -data DIR or --dataset NAME"
                     + (f" (imported: {', '.join(names)})" if names else ""))


def align_classes(train: CropSet, test: CropSet) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Labels of both sets over one class list, matched by class name.

    Crops of one imported dataset already share its class list; two plain folders may not
    (the seed's per-split ImageFolder indexing), so their classes are merged by name.
    """
    if train.class_names == test.class_names:
        return train.labels, test.labels, list(train.class_names)
    names = list(train.class_names) + sorted(set(test.class_names) - set(train.class_names))
    index = {name: i for i, name in enumerate(names)}
    remap = np.array([index[n] for n in test.class_names], dtype=np.int64)
    return train.labels, remap[test.labels] if len(test.labels) else test.labels, names


@dataclass
class ProbeReport:
    metrics: dict
    probe: object
    run_id: int | None = None
    files: dict[str, str] = field(default_factory=dict)


def _dataset_id(workspace: Workspace, crop_set: CropSet) -> int | None:
    if not crop_set.dataset:
        return None
    with workspace.open_store() as store:
        row = store.dataset(crop_set.dataset)
    return row["id"] if row else None


def run_probe(train: CropSet, test: CropSet, checkpoint: str | Path, workspace: Workspace,
              method: str = "lbfgs", epochs: int = 100, batch_size: int = 256,
              loss_fn: str = "focal", metrics_json: str | Path | None = None,
              csv: str | Path | None = None, save_probe: str | Path | None = None,
              encoder=None, progress=None) -> ProbeReport:
    """Fit a probe on `train`'s features only, score it on `test`, save and record everything.

    Outputs go to the given paths, else to `<workspace>/probes/run_<id>/`.
    """
    from ffclr.eval.embedding import embed_crop_set
    from ffclr.eval.metrics import classification_metrics, write_metrics_csv
    from ffclr.eval.probe import fit_probe

    train_labels, test_labels, class_names = align_classes(train, test)
    config = {"method": method, "checkpoint": str(Path(checkpoint).resolve()),
              "train": _describe(train), "test": _describe(test)}
    if method == "adam":
        config |= {"epochs": epochs, "batch_size": batch_size, "loss_fn": loss_fn}
    with workspace.open_store() as store:
        run_id = store.create_run("probe", config, dataset_id=_dataset_id(workspace, train))
        store.mark_running(run_id)
    try:
        if encoder is None:
            from ffclr.model.checkpoint import load_encoder

            encoder = load_encoder(checkpoint)
        train_features = embed_crop_set(train, checkpoint, workspace, encoder, progress=progress).features
        test_features = embed_crop_set(test, checkpoint, workspace, encoder, progress=progress).features
        probe = fit_probe(train_features, train_labels, class_names, method=method, epochs=epochs,
                          batch_size=batch_size, loss_fn=loss_fn, progress=progress)
        probe.info |= {"checkpoint": config["checkpoint"], "train_data": config["train"]}
        metrics = classification_metrics(test_labels, probe.predict_proba(test_features),
                                          class_names, train_labels)
        metrics["probe"] = {"method": method, **{k: v for k, v in probe.info.items()
                                                  if k in ("C", "cv_folds", "epochs", "loss_fn")}}
        out = workspace.root / "probes" / f"run_{run_id}"
        files = {"metrics_json": Path(metrics_json or out / "metrics.json"),
                 "csv": Path(csv or out / "metrics.csv"),
                 "probe": Path(save_probe or out / "probe.npz")}
        files["metrics_json"].parent.mkdir(parents=True, exist_ok=True)
        files["metrics_json"].write_text(json.dumps(metrics, indent=1))
        write_metrics_csv(metrics, files["csv"])
        files["probe"] = probe.save(files["probe"])
        files = {k: str(v.resolve()) for k, v in files.items()}
    except BaseException as exc:
        with workspace.open_store() as store:
            store.finish_run(run_id, "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed",
                             error=str(exc)[:500])
        raise
    with workspace.open_store() as store:
        store.finish_run(run_id, "finished", summary={**metrics, "files": files},
                         checkpoint=config["checkpoint"])
    return ProbeReport(metrics, probe, run_id, files)


def _describe(crop_set: CropSet) -> dict:
    """Enough to find the crops again: dataset + split, or the folder."""
    if crop_set.dataset:
        split = crop_set.splits[0] if len(crop_set.splits) == 1 else None
        return {"dataset": crop_set.dataset, "split": split, "n": len(crop_set)}
    return {"folder": str(Path(crop_set.paths[0]).parents[1]), "n": len(crop_set)}


def reload_crop_set(description: dict, workspace: Workspace) -> CropSet:
    """The crop set `_describe` described (e.g. a probe's training crops)."""
    if description.get("dataset"):
        return load_dataset_split(description["dataset"], description.get("split"), workspace)
    return load_crop_set(description["folder"], workspace)


def summary_lines(metrics: dict) -> list[str]:
    base = metrics.get("baseline", {})
    lines = [f"top-1 {metrics['top1']:.4f}  top-5 {metrics['top5']:.4f}  balanced accuracy "
             f"{metrics['balanced_accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  "
             f"(train {metrics['n_train']}, test {metrics['n_test']} crops)"]
    if base:
        lines.append(f"majority-class baseline ({base['class']}): top-1 {base['top1']:.4f}  "
                     f"macro-F1 {base['macro_f1']:.4f}")
    if metrics.get("unseen_in_train"):
        lines.append("test classes never seen in training (always wrong): "
                     + ", ".join(metrics["unseen_in_train"]))
    return lines
