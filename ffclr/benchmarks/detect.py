"""Whole-drawing detection on the real export: fit on train, detect on every valid schematic,
score with pycocotools' COCOeval (mAP@50, mAP@[.5:.95], per-class AP, AR@100, AP and AR by box
size), count the shown boxes' errors in the manner of TIDE, check that the accept-all threshold
chosen on train holds on valid, time it, measure the recall of the proposals that bound it and
how consistently the labels themselves box identical symbols (what bounds AR and mAP); with
`--resolutions`, the same drawings resampled as if exported at another resolution."""
from __future__ import annotations

import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from ffclr.benchmarks import REAL_EXPORT
from ffclr.detection.consistency import label_consistency, labelled_ink
from ffclr.detection.evaluation import ERROR_KINDS, coco_scores, error_breakdown
from ffclr.errors import FfclrError

NAME = "detect"
HELP = ("fit the detector on the real train schematics, detect on valid, COCO mAP@50, "
        "mAP@[.5:.95], per-class AP, AR@100 and AP by box size, the errors of the shown boxes, "
        "the accept-all threshold on valid, proposal recall and seconds per schematic")
RANDOM = "random"


def add_arguments(parser) -> None:
    parser.add_argument("--export", type=Path, default=REAL_EXPORT,
                        help="Roboflow export with train/ and valid/ (default: "
                             "../shared/datasets/ff_devices)")
    parser.add_argument("--checkpoint", nargs="+", required=True, metavar="CKPT",
                        help="encoder checkpoints to compare; 'random' is a randomly "
                             "initialised ResNet-18 (32 px, small stem) as a baseline")
    parser.add_argument("--limit", type=int, help="only the first N valid schematics")
    parser.add_argument("--save-dir", type=Path, help="keep the fitted detectors here")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--resolutions", type=_factors, default=(),
                        help="also detect on the valid drawings resampled by these factors (as "
                             "if exported at another resolution, e.g. 0.75,1.5), with and "
                             "without the second pass at the training scale")


def _factors(text: str) -> tuple[float, ...]:
    import argparse

    try:
        factors = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected factors like 0.75,1.5") from None
    if not factors or any(not 0.25 <= f <= 4 for f in factors):
        raise argparse.ArgumentTypeError(f"{text!r}: factors must lie between 0.25 and 4")
    return factors


def random_checkpoint(folder: Path) -> Path:
    import torch

    from ffclr.model.checkpoint import save_checkpoint
    from ffclr.model.networks import SimCLRModel

    torch.manual_seed(0)
    model = SimCLRModel("resnet18", small_stem=True)
    return save_checkpoint(folder / "random.pth.tar", {
        "epoch": 0, "arch": "resnet18", "state_dict": model.state_dict(), "image_size": 32,
        "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)})


def proposal_recall(detector, images) -> dict:
    """Share of labelled boxes overlapped (IoU ≥ t) by a proposal, and by a candidate that
    passed the pixel filter (what the encoder sees)."""
    from ffclr.detection.boxes import box_iou
    from ffclr.detection.detector import propose, select_candidates
    from ffclr.detection.images import read_drawing

    best_proposal, best_candidate, counts = [], [], []
    for item in images:
        if not len(item.boxes):
            continue
        image, _ = read_drawing(item.path)
        cores, boxes = propose(image, detector.margins, detector.config)
        cand = select_candidates(detector, image, None)
        counts.append((len(boxes), len(cand.boxes)))
        best_proposal.extend(box_iou(item.boxes, boxes).max(axis=1, initial=0.0))
        best_candidate.extend(box_iou(item.boxes, cand.boxes).max(axis=1, initial=0.0))
    p, c = np.array(best_proposal), np.array(best_candidate)
    return {"proposals_per_image": float(np.mean([n[0] for n in counts])),
            "candidates_per_image": float(np.mean([n[1] for n in counts])),
            **{f"proposal_recall@{t}": float(np.mean(p >= t)) for t in (0.5, 0.7)},
            **{f"candidate_recall@{t}": float(np.mean(c >= t)) for t in (0.5, 0.7)}}


def threshold_scores(results, images, threshold: float) -> dict:
    """Precision and recall (IoU ≥ 0.5, same class) of the boxes shown by default."""
    from ffclr.detection.boxes import match_detections, xywh_to_xyxy

    tp = shown = total = 0
    for (_, _, found), item in zip(results, images):
        kept = [d for d in found if d.score >= threshold]
        _, matched = match_detections(xywh_to_xyxy([d.bbox for d in kept]),
                                      np.array([d.class_index for d in kept], np.int64),
                                      item.boxes, item.classes)
        tp += matched.sum()
        shown += len(kept)
        total += len(item.boxes)
    return {"threshold": threshold, "precision": float(tp / max(shown, 1)),
            "recall": float(tp / max(total, 1))}


def accept_scores(detector, results, images) -> dict:
    """The 'accept all above it' threshold: chosen on train for a precision target, and the
    precision and recall it gives on these drawings (does it hold on unseen ones?)."""
    target = detector.config.accept_precision
    chosen = {"target_precision": target, "threshold": detector.accept_threshold,
              "train_precision": detector.info.get("accept_precision"),
              "train_recall": detector.info.get("accept_recall")}
    if detector.accept_threshold is None:
        return chosen | {"precision": None, "recall": 0.0, "holds": False}
    valid = threshold_scores(results, images, detector.accept_threshold)
    return chosen | {"precision": valid["precision"], "recall": valid["recall"],
                     "holds": valid["precision"] >= target}


def resolution_scores(detector, images, factors) -> dict:
    """COCO scores and seconds per drawing on `images` (LabelledImage) resampled by each factor
    (Lanczos, boxes scaled alike), for the detector as it is and, where it has one, without its
    second pass at the training scale."""
    from dataclasses import replace

    from ffclr.detection.detector import detect_rgb
    from ffclr.detection.evaluation import labelled_scores
    from ffclr.detection.images import read_drawing
    from ffclr.detection.rescale import resampled

    variants = {"as_configured": detector}
    if detector.config.rescale_beyond is not None:
        variants["one_pass"] = replace(detector, config=replace(detector.config,
                                                                rescale_beyond=None))
    scores = {}
    for factor in factors:
        found = {name: [] for name in variants}
        seconds = {name: [] for name in variants}
        for item in images:
            image = resampled(read_drawing(item.path)[0], factor)
            if image is None:
                raise FfclrError(f"{item.path.name}: resampled by {factor:g} it would exceed "
                                 "the pixel limit")
            for name, variant in variants.items():
                started = time.perf_counter()
                found[name].append(detect_rgb(variant, image, 0.0))
                seconds[name].append(time.perf_counter() - started)
        scaled = [replace(item, boxes=item.boxes * factor) for item in images]
        row = {}
        for name in variants:
            coco = labelled_scores(scaled, found[name], detector.class_names,
                                   detector.category_ids)
            row[name] = {k: coco[k] for k in ("mAP50", "mAP", "mAP75", "AR100")} | {
                "seconds_per_schematic": float(np.mean(seconds[name]))}
        scores[f"{factor:g}"] = row
    return scores


def evaluate_checkpoint(checkpoint: Path, export: Path, limit: int | None,
                        save_dir: Path | None, resolutions=()) -> dict:
    from ffclr.detection import detect_image, fit_detector, save_detector
    from ffclr.detection.training import read_labelled_split

    started = time.perf_counter()
    detector = fit_detector(checkpoint, export, "train")
    fit_seconds = time.perf_counter() - started
    if save_dir:
        save_detector(detector, save_dir / f"detector-{Path(checkpoint).stem.split('.')[0]}.npz")
    valid = read_labelled_split(export, "valid")
    images = valid.images[:limit] if limit else valid.images
    detect_image(detector, images[0].path, min_score=0.0)
    results, seconds = [], []
    for item in images:
        started = time.perf_counter()
        found = detect_image(detector, item.path, min_score=0.0)
        seconds.append(time.perf_counter() - started)
        results.append((item.path.name, None, found))
        print(f"  {item.path.name[:40]}: {len(found)} boxes, {seconds[-1]:.2f} s", flush=True)
    from ffclr.data.export_source import ANNOTATIONS

    with contextlib.redirect_stdout(io.StringIO()):
        from pycocotools.coco import COCO
        truth = COCO(str(export / "valid" / ANNOTATIONS))
    names = {item.path.name for item in images}
    image_ids = [i for i, info in truth.imgs.items() if info["file_name"] in names]
    return {"checkpoint": str(checkpoint), "fit_seconds": fit_seconds,
            "seconds_per_schematic": float(np.mean(seconds)),
            "seconds_per_schematic_max": float(np.max(seconds)),
            "valid_images": len(images), "valid_boxes": int(sum(len(i.boxes) for i in images)),
            "detector": detector.info,
            **coco_scores(export / "valid" / ANNOTATIONS, results, image_ids),
            "at_threshold": threshold_scores(results, images, detector.score_threshold),
            "errors_at_threshold": error_breakdown(images, [r[2] for r in results],
                                                   detector.score_threshold),
            "accept": accept_scores(detector, results, images),
            "label_consistency": label_consistency(labelled_ink(images, detector.config)),
            **proposal_recall(detector, images),
            "resolutions": resolution_scores(detector, images, resolutions)}


def report_lines(result: dict) -> list[str]:
    lines = [f"checkpoint {result['checkpoint']}",
             f"  mAP@50 {result['mAP50']:.3f}  mAP@[.5:.95] {result['mAP']:.3f}  "
             f"mAP@75 {result['mAP75']:.3f}  AR@100 {result['AR100']:.3f}",
             f"  {result['seconds_per_schematic']:.2f} s per schematic (max "
             f"{result['seconds_per_schematic_max']:.2f}) on {result['valid_images']} valid "
             f"schematics, {result['valid_boxes']} boxes; fit {result['fit_seconds']:.0f} s",
             f"  proposals/image {result['proposals_per_image']:.0f}, reaching the encoder "
             f"{result['candidates_per_image']:.0f}; proposal recall @0.5 "
             f"{result['proposal_recall@0.5']:.3f} @0.7 {result['proposal_recall@0.7']:.3f}; "
             f"candidate recall @0.5 {result['candidate_recall@0.5']:.3f} @0.7 "
             f"{result['candidate_recall@0.7']:.3f}",
             f"  at the threshold chosen on train ({result['at_threshold']['threshold']:.2f}): "
             f"precision {result['at_threshold']['precision']:.3f}, recall "
             f"{result['at_threshold']['recall']:.3f}",
             _accept_line(result["accept"]),
             _consistency_line(result["label_consistency"]),
             "  shown boxes at the threshold: " + ", ".join(
                 f"{k} {result['errors_at_threshold'][k]}" for k in ("hit",) + ERROR_KINDS),
             "  by box side (px): " + "; ".join(
                 f"{name} ({v['boxes']} boxes) AP {v['AP']:.3f} AR@100 {v['AR100']:.3f}"
                 for name, v in result["by_size"].items()),
             "  per class (support, AP50, AP):"]
    for row in sorted(result["per_class"], key=lambda r: -r["support"]):
        ap50 = "  -  " if row["AP50"] is None else f"{row['AP50']:.3f}"
        ap = "  -  " if row["AP"] is None else f"{row['AP']:.3f}"
        lines.append(f"    {row['name'][:48]:48s} {row['support']:4d} {ap50} {ap}")
    for factor, row in result.get("resolutions", {}).items():
        lines.append(f"  drawings resampled {factor}x: " + "; ".join(
            f"{name.replace('_', ' ')} mAP@50 {v['mAP50']:.3f} mAP@[.5:.95] {v['mAP']:.3f} "
            f"AR@100 {v['AR100']:.3f}, {v['seconds_per_schematic']:.2f} s"
            for name, v in row.items()))
    return lines


def _consistency_line(consistency: dict) -> str:
    if not consistency["pairs"]:
        return "  labels' consistency: no two identical symbols in one drawing to compare"
    recall = consistency["mean_box_recall_at"]
    return (f"  labels' consistency: {consistency['pairs']} pairs of identical symbols, their "
            f"boxes agree at IoU ≥ 0.75 in {consistency['pair_iou_at']['0.75']:.0%} (median IoU "
            f"{consistency['pair_iou_median']:.2f}); the annotators' mean box would match "
            f"{recall['0.50']:.0%} @0.5, {recall['0.75']:.0%} @0.75: AR and mAP@[.5:.95] at "
            f"most about {consistency['mean_box_ar']:.2f} on these labels")


def _accept_line(accept: dict) -> str:
    if accept["threshold"] is None:
        return (f"  no score reached {accept['target_precision']:.0%} precision on train: "
                "nothing to accept in one action")
    return (f"  accept-all threshold {accept['threshold']:.2f} (precision "
            f"{accept['train_precision']:.3f}, recall {accept['train_recall']:.3f} on train): "
            f"precision {accept['precision']:.3f}, recall {accept['recall']:.3f} here, "
            f"{'holds' if accept['holds'] else 'does not hold'}")


def run(args) -> int:
    export = Path(args.export)
    if not (export / "train").is_dir() or not (export / "valid").is_dir():
        raise FfclrError(f"{export}: needs train/ and valid/ splits")
    results = []
    with tempfile.TemporaryDirectory(prefix="ffclr-bench-detect-") as tmp:
        for checkpoint in args.checkpoint:
            path = random_checkpoint(Path(tmp)) if checkpoint == RANDOM else Path(checkpoint)
            print(f"fitting on {export / 'train'} with {checkpoint} ...", flush=True)
            result = evaluate_checkpoint(path, export, args.limit, args.save_dir,
                                         args.resolutions)
            result["checkpoint"] = checkpoint
            results.append(result)
            print("\n".join(report_lines(result)), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    return 0
