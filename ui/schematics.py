"""Whole schematics in the Classify tab: fit a detector (`ffclr.detection`), drop drawings, get
boxes drawn, a table and a COCO file."""
from __future__ import annotations

import time
from pathlib import Path

from ffclr.detection import (detect_images, detections_to_coco, fit_detector, load_detector,
                             read_drawing, save_detector, write_coco)
from ffclr.detection.visualise import draw_detections
from ffclr.errors import FfclrError
from ffclr.workspace import Workspace
from ui.common import check_image_upload, imported_dataset, open_store

TABLE_COLUMNS = ["file", "class", "score", "x", "y", "width", "height"]
TABLE_WIDTHS = ["20%", "30%", "10%", "9%", "9%", "11%", "11%"]
"""Long file and class names wrap; the numbers (whole pixels; the COCO file keeps the
decimals) keep room for their headers."""

_DETECTORS: dict[tuple, object] = {}


def detectors_dir(workspace: Workspace) -> Path:
    return workspace.root / "detectors"


def detector_choices(workspace: Workspace) -> list[tuple[str, str]]:
    """Detectors on disk: those recorded by fit and refit runs (newest first), then any other
    file in `detectors/`."""
    choices, seen = [], set()
    if workspace.db_path.exists():
        with open_store(workspace) as store:
            runs = [*store.runs(kind="detector", status="finished"),
                    *store.runs(kind="refit", status="finished")]
        for run in sorted(runs, key=lambda r: -r["id"]):
            path = run["summary"].get("detector")
            if path and Path(path).is_file() and str(Path(path).resolve()) not in seen:
                seen.add(str(Path(path).resolve()))
                choices.append((f"{run['kind']} #{run['id']} · {Path(path).name}",
                                str(Path(path).resolve())))
    folder = detectors_dir(workspace)
    if folder.is_dir():
        for path in sorted(folder.glob("*.npz")):
            if str(path.resolve()) not in seen:
                choices.append((path.name, str(path.resolve())))
    return choices


def fit(workspace: Workspace, checkpoint: str | None, dataset: str | None, progress=None) -> str:
    """Fit a detector on the train split of the dataset's export; returns the saved path."""
    if not checkpoint:
        raise FfclrError("pick a checkpoint for the detector's encoder")
    if not dataset:
        raise FfclrError("pick the dataset whose labelled drawings the detector learns from")
    with open_store(workspace) as store:
        row = imported_dataset(store, dataset)
    export = Path(row.get("source") or "")
    if not export.exists():
        raise FfclrError(f"dataset {dataset!r}: its export {export} is no longer there")
    target = detectors_dir(workspace) / f"{dataset}-{Path(checkpoint).parent.name}-" \
        f"{time.strftime('%Y%m%d-%H%M%S')}.npz"
    config = {"checkpoint": str(checkpoint), "export": str(export), "split": "train",
              "save": str(target), "seed": 0}
    with open_store(workspace) as store:
        run_id = store.create_run("detector", config, dataset_id=row["id"])
        store.mark_running(run_id)
        try:
            detector = fit_detector(checkpoint, export, "train", seed=0, progress=progress)
            path = save_detector(detector, target)
        except BaseException as exc:
            store.finish_run(run_id, "failed", error=str(exc)[:500])
            raise
        store.finish_run(run_id, "finished", summary={
            "score_threshold": detector.score_threshold, "detector": str(path), **detector.info})
    return str(path)


def load(path: str | None):
    if not path:
        raise FfclrError("pick a detector (or fit one from a checkpoint and a dataset)")
    file = Path(path)
    if not file.is_file():
        raise FfclrError(f"{path}: detector file not found")
    key = (str(file), file.stat().st_mtime_ns)
    if key not in _DETECTORS:
        _DETECTORS.clear()
        _DETECTORS[key] = load_detector(file)
    return _DETECTORS[key]


def detect(workspace: Workspace, detector_path: str | None, files: list[str] | None,
           out_dir: Path, progress=None) -> dict:
    """Drawn images, table rows, the COCO file and refusals for the dropped drawings."""
    if not files:
        raise FfclrError("drop one or more schematic images first")
    detector = load(detector_path)
    accepted, refused = [], []
    for path in files:
        try:
            check_image_upload(path)
            accepted.append(path)
        except FfclrError as exc:
            refused.append(str(exc))
    if not accepted:
        raise FfclrError("; ".join(refused))
    results = detect_images(detector, accepted, progress=progress)
    drawn, rows = [], []
    for path, (name, _size, detections) in zip(accepted, results):
        image, _ = read_drawing(path)
        drawn.append((draw_detections(image, detections), f"{name}: {len(detections)} symbols"))
        rows += [[name, d.class_name, round(d.score, 2), *[round(v) for v in d.bbox]]
                 for d in detections]
    coco = detections_to_coco(results, detector.class_names, detector.category_ids)
    out_dir.mkdir(parents=True, exist_ok=True)
    coco_path = write_coco(coco, out_dir / "detections.coco.json")
    return {"drawn": drawn, "rows": rows, "coco": str(coco_path), "refused": refused}
