"""Labelling with pre-annotation, simulated: a detector fitted on one split pre-annotates the
drawings of another, which it never saw, and their ground truth plays the labeller. Counts the
actions each drawing needs with and without the pre-annotation and, with --learning-curve, how
fast the detector improves when drawings are labelled in the queue's order or at random."""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ffclr.benchmarks import REAL_EXPORT
from ffclr.errors import FfclrError

NAME = "annotate"
HELP = ("simulate labelling new drawings with the detector's pre-annotation (actions vs from "
        "scratch) and, with --learning-curve, mAP@50 against drawings labelled in the queue's "
        "order and in random order")


THRESHOLDS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95)
"""Other pre-annotation thresholds the run reports the ratio at."""


@dataclass(frozen=True)
class ActionCosts:
    """Clicks and keystrokes of the labeller; a symbol from scratch is a box plus a class."""

    draw_box: float = 1.0
    set_class: float = 1.0
    accept: float = 1.0
    """Once per drawing: accepting the pre-annotation."""
    adjust: float = 1.0
    delete: float = 1.0
    correct_iou: float = 0.75
    match_iou: float = 0.5


def add_arguments(parser) -> None:
    parser.add_argument("--export", type=Path, default=REAL_EXPORT,
                        help="Roboflow export folder (default: ../shared/datasets/ff_devices)")
    parser.add_argument("--checkpoint", required=True, metavar="CKPT",
                        help="encoder checkpoint; 'random' is a randomly initialised ResNet-18 "
                             "(as in bench detect)")
    parser.add_argument("--fit-split", default="train", help="the detector learns from it")
    parser.add_argument("--split", default="valid",
                        help="drawings to label (never seen by the detector)")
    parser.add_argument("--detector", type=Path, metavar="DETECTOR",
                        help="pre-annotate with this saved detector instead of fitting one on "
                             "--fit-split (the learning curve still refits from CKPT)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--learning-curve", action="store_true",
                        help="also refit on growing parts of --fit-split, in the queue's order "
                             "and at random, scoring mAP@50 on --split")
    parser.add_argument("--seeds", type=int, default=3, help="learning curve: seeds to average")
    parser.add_argument("--start", type=int, default=10,
                        help="learning curve: drawings labelled before the queue starts")
    parser.add_argument("--steps", type=int, default=6,
                        help="learning curve: refits between the start and all drawings")


def drawing_actions(boxes: np.ndarray, classes: np.ndarray, truth_boxes: np.ndarray,
                    truth_classes: np.ndarray, costs: ActionCosts = ActionCosts()) -> dict:
    """Actions to turn the pre-annotation (`boxes` xyxy best first, `classes`) into the truth.

    Matched greedily with `match_detections` in passes of decreasing agreement: right class and
    IoU ≥ 0.75 (free), right class and IoU ≥ 0.5 (adjust), IoU ≥ 0.75 (change class), IoU ≥ 0.5
    (both); boxes left are deleted, labelled symbols left are drawn and classed.
    """
    from ffclr.detection.boxes import match_detections

    boxes, truth_boxes = np.asarray(boxes).reshape(-1, 4), np.asarray(truth_boxes).reshape(-1, 4)
    free_box, free_truth = np.ones(len(boxes), bool), np.ones(len(truth_boxes), bool)
    counts = {}
    agnostic = (np.zeros(len(boxes), np.int64), np.zeros(len(truth_boxes), np.int64))
    passes = [("correct", True, costs.correct_iou), ("adjust", True, costs.match_iou),
              ("wrong_class", False, costs.correct_iou),
              ("adjust_and_class", False, costs.match_iou)]
    for name, same_class, iou in passes:
        b, t = np.flatnonzero(free_box), np.flatnonzero(free_truth)
        mine, theirs = (classes, truth_classes) if same_class else agnostic
        hit, matched = match_detections(boxes[b], np.asarray(mine)[b], truth_boxes[t],
                                        np.asarray(theirs)[t], iou)
        free_box[b[hit]], free_truth[t[matched]] = False, False
        counts[name] = int(hit.sum())
    counts["false"], counts["missed"] = int(free_box.sum()), int(free_truth.sum())
    symbol = costs.draw_box + costs.set_class
    assisted = (costs.accept + costs.adjust * counts["adjust"] + costs.set_class
                * counts["wrong_class"] + (costs.adjust + costs.set_class)
                * counts["adjust_and_class"] + costs.delete * counts["false"]
                + symbol * counts["missed"])
    return {"symbols": len(truth_boxes), "pre_annotated": len(boxes), **counts,
            "actions_assisted": float(assisted), "actions_scratch": float(symbol * len(truth_boxes))}


def simulate(detector, images, evidence: list, threshold: float | None = None) -> dict:
    """Actions per drawing of `images` (LabelledImage) pre-annotated as the Annotate tab does
    with the boxes of `evidence` (the queue's DrawingEvidence of each) scored at least
    `threshold` (default: the detector's)."""
    from ffclr.annotate.editing import one_box_per_symbol
    from ffclr.detection.boxes import xywh_to_xyxy

    threshold = detector.score_threshold if threshold is None else threshold
    per_drawing = []
    for item, found in zip(images, evidence):
        shown = one_box_per_symbol([d for d in found.detections if d.score >= threshold])
        row = drawing_actions(xywh_to_xyxy([d.bbox for d in shown]),
                              np.array([d.class_index for d in shown], np.int64),
                              item.boxes, item.classes)
        per_drawing.append({"file_name": item.path.name, **row})
    assisted = sum(r["actions_assisted"] for r in per_drawing)
    scratch = sum(r["actions_scratch"] for r in per_drawing)
    return {"actions_assisted": assisted, "actions_scratch": scratch,
            "ratio": assisted / scratch if scratch else None,
            "score_threshold": threshold, "per_drawing": per_drawing}


def ratio_by_threshold(detector, images, evidence: list) -> dict[str, float | None]:
    """The ratio had the labeller pre-annotated at other thresholds (scored on these same
    drawings: it shows where the cost lies, it does not choose a threshold fairly)."""
    return {f"{t:.2f}": simulate(detector, images, evidence, t)["ratio"]
            for t in THRESHOLDS}


def examine_all(detector, images, knn=None) -> list:
    """The queue's DrawingEvidence of every LabelledImage (unreadable ones raise FfclrError)."""
    from ffclr.annotate.queue import examine
    from ffclr.detection.images import read_drawing

    return [examine(detector, read_drawing(item.path)[0], knn) for item in images]


def labelled_knn(encoder, images, class_names: list[str]):
    """The queue's kNN check over the labelled boxes of `images`, embedded by `encoder`."""
    from ffclr.annotate.queue import KnnCheck
    from ffclr.detection.crops import crop_pixels
    from ffclr.detection.detector import encoder_features
    from ffclr.detection.images import read_drawing

    features, labels = [], []
    for item in images:
        pixels = crop_pixels(read_drawing(item.path)[0], item.boxes, encoder.image_size)
        features.append(encoder_features(encoder, pixels))
        labels.append(item.classes)
    return KnnCheck(encoder, np.concatenate(features), np.concatenate(labels), class_names)


def map50(detector, images, evidence) -> float:
    """COCO mAP@50 of the evidence's detections on `images` (LabelledImage)."""
    from ffclr.detection.evaluation import labelled_scores

    return labelled_scores(images, [found.detections for found in evidence],
                           detector.class_names, detector.category_ids)["mAP50"]


def curve_points(n_pool: int, start: int, steps: int) -> list[int]:
    """Numbers of labelled drawings to refit at: `start`, then `steps` even strides to all."""
    if n_pool < 2:
        raise FfclrError(f"a learning curve needs at least 2 drawings to label (got {n_pool})")
    start = min(max(start, 1), n_pool - 1)
    return sorted({int(round(start + k * (n_pool - start) / steps)) for k in range(steps + 1)})


class CurveFit:
    """Refits on subsets of `fit_data` and scores them on `target` (shared by both orders)."""

    def __init__(self, checkpoint, encoder, fit_data, target: list):
        self.checkpoint, self.encoder, self.fit_data, self.target = (checkpoint, encoder,
                                                                     fit_data, target)

    def fit(self, rows: list[int], seed: int):
        from ffclr.detection.training import LabelledSplit, fit_labelled

        subset = LabelledSplit(self.fit_data.class_names, self.fit_data.category_ids,
                               [self.fit_data.images[i] for i in rows])
        return fit_labelled(self.checkpoint, subset, seed=seed, encoder=self.encoder)

    def score(self, detector) -> float:
        try:
            return map50(detector, self.target, examine_all(detector, self.target))
        except FfclrError:
            return 0.0

    def knn(self, rows: list[int]):
        return labelled_knn(self.encoder, [self.fit_data.images[i] for i in rows],
                            self.fit_data.class_names)


def queue_next(curve: CurveFit, detector, labelled: list[int], pool: list[int], n: int
               ) -> list[int]:
    """The first `n` drawings of `pool` in the queue's order, given the drawings `labelled`."""
    from ffclr.annotate.queue import labelled_embedding, rank
    from ffclr.detection.images import read_drawing

    images = curve.fit_data.images
    knn = curve.knn(labelled)
    evidence = dict(zip(pool, examine_all(detector, [images[i] for i in pool], knn)))
    known = [labelled_embedding(detector, read_drawing(images[i].path)[0], images[i].boxes)
             for i in labelled]
    ranked = rank(evidence, detector.score_threshold, [e for e in known if e is not None])
    return [item.drawing_id for item in ranked[:n]]


def one_seed(curve: CurveFit, seed: int, points: list[int]) -> dict[str, list[float]]:
    """mAP@50 at each number of labelled drawings, in the queue's order and at random, from
    the same random start; the last point (everything labelled) is shared."""
    from ffclr.annotate.queue import random_order

    everything = list(np.random.default_rng(seed).permutation(len(curve.fit_data.images)))
    first, start = everything[: points[0]], curve.fit(everything[: points[0]], seed)
    start_map, final_map = curve.score(start), None
    scores = {}
    for order in ("queue", "random"):
        labelled, detector, maps = list(first), start, [start_map]
        pool = [i for i in everything if i not in first]
        shuffled = [item.drawing_id for item in random_order(pool, seed)]
        for n in points[1:]:
            take = n - len(labelled)
            if take >= len(pool):
                chosen = list(pool)
            elif order == "queue":
                chosen = queue_next(curve, detector, labelled, pool, take)
            else:
                chosen = [i for i in shuffled if i in pool][:take]
            labelled += chosen
            pool = [i for i in pool if i not in chosen]
            if not pool and final_map is not None:
                maps.append(final_map)
                break
            detector = curve.fit(labelled, seed)
            maps.append(curve.score(detector))
            final_map = maps[-1] if not pool else final_map
            print(f"  seed {seed} {order}: {len(labelled)} drawings, mAP@50 {maps[-1]:.3f}",
                  flush=True)
        scores[order] = maps
    return scores


def learning_curve(checkpoint, encoder, fit_data, target: list, seeds: int = 3, start: int = 10,
                   steps: int = 6) -> dict:
    """Mean mAP@50 on `target` over `seeds` against drawings of `fit_data` labelled, and the
    fraction of them the queue needs to reach random order's final mAP@50."""
    curve = CurveFit(checkpoint, encoder, fit_data, target)
    points = curve_points(len(fit_data.images), start, steps)
    runs = [one_seed(curve, seed, points) for seed in range(seeds)]
    queue = np.mean([r["queue"] for r in runs], axis=0)
    random = np.mean([r["random"] for r in runs], axis=0)
    return {"labelled": points, "queue_map50": queue.tolist(), "random_map50": random.tolist(),
            "per_seed": runs, "seeds": seeds,
            "queue_fraction_to_random_final": reach_fraction(points, queue, random[-1])}


def reach_fraction(points: list[int], curve: np.ndarray, target: float) -> float | None:
    """Fraction of all drawings at the first point where `curve` reaches `target`."""
    reached = np.flatnonzero(np.asarray(curve) >= target - 1e-9)
    return points[reached[0]] / points[-1] if len(reached) else None


def run(args) -> int:
    from ffclr.benchmarks.detect import RANDOM, random_checkpoint
    from ffclr.detection import load_detector
    from ffclr.detection.training import fit_detector, read_labelled_split
    from ffclr.model.checkpoint import load_encoder

    export = Path(args.export)
    for split in (args.fit_split, args.split):
        if not (export / split).is_dir():
            raise FfclrError(f"{export}: no {split}/ split")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ffclr-bench-annotate-") as tmp:
        checkpoint = random_checkpoint(Path(tmp)) if args.checkpoint == RANDOM \
            else Path(args.checkpoint)
        if args.detector:
            detector = load_detector(args.detector)
        else:
            print(f"fitting on {export / args.fit_split} ...", flush=True)
            detector = fit_detector(checkpoint, export, args.fit_split)
        target = read_labelled_split(export, args.split)
        evidence = examine_all(detector, target.images)
        result = {"checkpoint": args.checkpoint, "detector": args.detector and str(args.detector),
                  "export": str(export), "fit_split": args.fit_split, "split": args.split,
                  "costs": asdict(ActionCosts()),
                  "map50": map50(detector, target.images, evidence),
                  "ratio_by_threshold": ratio_by_threshold(detector, target.images, evidence),
                  **simulate(detector, target.images, evidence)}
        print(f"actions with pre-annotation {result['actions_assisted']:.0f}, from scratch "
              f"{result['actions_scratch']:.0f}: ratio {result['ratio']:.3f} on "
              f"{len(target.images)} drawings of {args.split!r} (mAP@50 {result['map50']:.3f})",
              flush=True)
        print("ratio had it pre-annotated from score " + ", ".join(
            f"{t}: {r:.3f}" for t, r in result["ratio_by_threshold"].items() if r is not None))
        if args.learning_curve:
            result["learning_curve"] = learning_curve(
                checkpoint, load_encoder(checkpoint), read_labelled_split(export, args.fit_split),
                target.images, seeds=args.seeds, start=args.start, steps=args.steps)
            print("\n".join(curve_lines(result["learning_curve"])), flush=True)
    result["seconds"] = time.perf_counter() - started
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    return 0


def curve_lines(curve: dict) -> list[str]:
    lines = ["drawings labelled   mAP@50 queue   mAP@50 random"]
    for n, q, r in zip(curve["labelled"], curve["queue_map50"], curve["random_map50"]):
        lines.append(f"{n:17d}   {q:12.3f}   {r:13.3f}")
    reach = curve["queue_fraction_to_random_final"]
    lines.append("the queue reaches random order's final mAP@50 "
                 + (f"with {reach:.0%} of the drawings" if reach is not None else "never"))
    return lines
