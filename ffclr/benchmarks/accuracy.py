"""Frozen-feature accuracy on the real export: label-free pretraining on the train crops within a
fixed CPU time budget, then a linear probe, kNN and few-shot fitted on train and scored on valid,
beside two baselines computed in the same run (majority class; logistic regression on raw
pixels of the same crops, padded to square at 16×16)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ffclr.benchmarks import REAL_EXPORT, import_train_valid
from ffclr.errors import FfclrError

NAME = "accuracy"
HELP = ("pretrain on the real train crops within a time budget, then probe/kNN/few-shot on valid, "
        "beside majority and raw-pixel baselines")
RAW_PIXEL_SIZE = 16


def add_arguments(parser) -> None:
    parser.add_argument("--export", type=Path, default=REAL_EXPORT,
                        help="Roboflow export with train/ and valid/ (default: "
                             "../shared/datasets/ff_devices), imported into a temporary workspace")
    parser.add_argument("--time-budget", type=float, default=1200,
                        help="seconds of pretraining per mode (default: 1200)")
    parser.add_argument("--modes", nargs="*", default=["unlabeled"],
                        choices=("unlabeled", "labeled", "one_shot"),
                        help="pretraining modes to run (default: unlabeled; 'labeled' uses the "
                             "train labels, supervised contrastive)")
    parser.add_argument("--checkpoint", nargs="+", default=[], metavar="CKPT",
                        help="evaluate these checkpoints too (no pretraining needed)")
    parser.add_argument("--seed", type=int, default=0, help="pretraining seed (default: 0)")
    parser.add_argument("--seeds", dest="fewshot_seeds", type=int, default=10, metavar="N",
                        help="few-shot repetitions, each with its own support draw (default: 10)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")


def raw_pixels(paths: list[Path], size: int = RAW_PIXEL_SIZE) -> np.ndarray:
    from ffclr.data.preprocess import load_image_rgb, square_crop_array

    return np.stack([square_crop_array(load_image_rgb(p), size).ravel() for p in paths]).astype(
        np.float32) / 255.0


def probe_scores(train_x, train_y, test_x, test_y, class_names) -> dict:
    """The cross-validated probe fitted on train: its test scores, its chosen C with that C's
    out-of-fold scores on train (`cv_macro_f1`, `cv_top1`), and the majority baseline."""
    from ffclr.eval.metrics import classification_metrics
    from ffclr.eval.probe import fit_probe

    probe = fit_probe(train_x, train_y, class_names)
    metrics = classification_metrics(test_y, probe.predict_proba(test_x), class_names, train_y)
    c = str(probe.info["C"])
    return {k: metrics[k] for k in ("top1", "top5", "balanced_accuracy", "macro_f1")} | {
        "C": probe.info["C"], "cv_macro_f1": probe.info["cv_macro_f1"][c],
        "cv_top1": probe.info["cv_top1"][c], "baseline": metrics["baseline"]}


def feature_scores(train_x, train_y, test_x, test_y, class_names, seeds: int) -> dict:
    from ffclr.eval.fewshot import few_shot
    from ffclr.eval.knn import KnnClassifier
    from ffclr.eval.metrics import classification_metrics

    scores = probe_scores(train_x, train_y, test_x, test_y, class_names)
    knn = KnnClassifier.fit(train_x, train_y, len(class_names))
    knn_metrics = classification_metrics(test_y, knn.predict_proba(test_x), class_names)
    scores |= {"knn_top1": knn_metrics["top1"], "knn_macro_f1": knn_metrics["macro_f1"],
               "knn_k": knn.k}
    for shots in (1, 5):
        result = few_shot(train_x, train_y, test_x, test_y, class_names, shots, seeds)
        scores[f"{shots}shot_top1"] = [result.top1_mean, result.top1_ci95]
        scores[f"{shots}shot_macro_f1"] = [result.macro_f1_mean, result.macro_f1_ci95]
    return scores


def run(args) -> int:
    from ffclr.model.checkpoint import load_encoder
    from ffclr.eval.embedding import embed_crop_set

    workspace, train, valid = import_train_valid(args.export, "ffclr-bench-accuracy-")
    names = train.class_names
    print(f"workspace {workspace.root}: {len(train)} train, {len(valid)} valid crops, "
          f"{len(names)} classes")

    rows = []
    pixels = feature_scores(raw_pixels(train.paths), train.labels, raw_pixels(valid.paths),
                            valid.labels, names, args.fewshot_seeds)
    majority = pixels.pop("baseline")
    rows.append({**majority, "method": "Majority class", "extractor": "—", "arch": "—",
                 "feature_dim": "—", "projection_dim": "—", "budget": "—"})
    rows.append({"method": "Logistic Regression (L-BFGS, CV)", "extractor": "raw pixels",
                 "arch": f"{RAW_PIXEL_SIZE}×{RAW_PIXEL_SIZE} RGB, padded to square",
                 "feature_dim": 3 * RAW_PIXEL_SIZE ** 2, "projection_dim": "—", "budget": "—",
                 **pixels})

    checkpoints = [(Path(c), "given checkpoint", None) for c in args.checkpoint]
    for mode in args.modes:
        checkpoints.append(pretrain_mode(mode, args.time_budget, workspace, train, args.seed))
    for path, label, trained in checkpoints:
        encoder = load_encoder(path)
        train_x = embed_crop_set(train, path, workspace, encoder).features
        valid_x = embed_crop_set(valid, path, workspace, encoder).features
        scores = feature_scores(train_x, train.labels, valid_x, valid.labels, names,
                                args.fewshot_seeds)
        budget = (f"{trained['epochs']} epochs in {trained['seconds']:.0f} s" if trained
                  else str(encoder.config.get("epochs", "?")) + " epochs")
        stem = "small 3×3 stem" if encoder.model.model.small_stem else "seed stem"
        rows.append({"method": "Logistic Regression (L-BFGS, CV)", "extractor": f"SimCLR {label}",
                     "arch": f"{encoder.arch} ({stem}, {encoder.image_size} px)",
                     "feature_dim": encoder.feature_dim,
                     "projection_dim": encoder.config.get("out_dim", 128), "budget": budget,
                     "checkpoint": str(path), **scores})

    print()
    print("\n".join(results_table(rows)))
    print()
    print("\n".join(extra_table(rows)))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"time_budget": args.time_budget, "seed": args.seed,
                                        "rows": rows}, indent=1, default=str))
        print(f"\nwritten {args.out}")
    return 0


def pretrain_mode(mode: str, budget: float, workspace, train, seed: int = 0
                  ) -> tuple[Path, str, dict]:
    from ffclr.train.config import PretrainConfig
    from ffclr.train.loop import pretrain

    config = PretrainConfig(data=str(Path(train.paths[0]).parents[1]),
                            dataset_name=f"ff_devices_{mode}", time_budget=budget,
                            run_name=f"bench-{mode}", seed=seed)
    start = time.perf_counter()
    result = pretrain(config, workspace)
    seconds = time.perf_counter() - start
    if result.checkpoint is None:
        raise FfclrError(f"pretraining ({mode}) ended {result.status} without a checkpoint")
    print(f"pretrained {mode}: {result.epochs} epochs, {result.steps} steps in {seconds:.0f} s "
          f"→ {result.checkpoint}")
    return Path(result.checkpoint), f"{mode} (default recipe)", {"epochs": result.epochs,
                                                                  "seconds": seconds}


def _pct(value) -> str:
    if isinstance(value, list):
        return f"{100 * value[0]:.2f} ± {100 * value[1]:.2f}"
    return f"{100 * value:.2f}" if isinstance(value, float) else "—"


def results_table(rows: list[dict]) -> list[str]:
    """The seed README's table (train → valid of ff_devices), plus macro-F1."""
    lines = ["| Linear Classification | Dataset | Feature Extractor | Architecture | Feature dim | "
             "Projection dim | Epochs (budget) | Top1 % | Macro-F1 % |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | ff_devices train → valid | {r['extractor']} | {r['arch']} "
                     f"| {r['feature_dim']} | {r['projection_dim']} | {r['budget']} | "
                     f"{_pct(r['top1'])} | {_pct(r['macro_f1'])} |")
    return lines


def extra_table(rows: list[dict]) -> list[str]:
    lines = ["| Features | Top5 % | Balanced acc. % | kNN top1 % | kNN macro-F1 % | "
             "1-shot top1 % | 5-shot top1 % | 1-shot macro-F1 % | 5-shot macro-F1 % |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "knn_top1" not in r and "top5" not in r:
            continue
        lines.append(f"| {r['extractor']} | {_pct(r.get('top5'))} | "
                     f"{_pct(r.get('balanced_accuracy'))} | {_pct(r.get('knn_top1'))} | "
                     f"{_pct(r.get('knn_macro_f1'))} | {_pct(r.get('1shot_top1'))} | "
                     f"{_pct(r.get('5shot_top1'))} | {_pct(r.get('1shot_macro_f1'))} | "
                     f"{_pct(r.get('5shot_macro_f1'))} |")
    return lines
