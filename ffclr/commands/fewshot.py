"""`python -m ffclr fewshot --checkpoint CKPT [CKPT ...]`: few-shot accuracy, kNN, and the seed's
per-class comparison of encoders (e.g. one-shot vs multi-shot pretraining) as a figure."""
from __future__ import annotations

from pathlib import Path

from ffclr.cli import add_command, workspace_from


def register(subparsers) -> None:
    parser = add_command(subparsers, "fewshot",
                         "few-shot (1/5/10 crops per class) and kNN accuracy of one or more "
                         "checkpoints; with --figure, their linear probes compared per class")
    parser.add_argument("--checkpoint", nargs="+", required=True, metavar="CKPT")
    parser.add_argument("--name", nargs="+", metavar="NAME",
                        help="legend names, one per checkpoint (default: pretraining mode)")
    parser.add_argument("--train", metavar="DIR", help="training crops (default: split 'train' "
                        "of --dataset)")
    parser.add_argument("--test", metavar="DIR", help="test crops (default: split 'valid')")
    parser.add_argument("--dataset", metavar="NAME")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--figure", type=Path, metavar="PATH",
                        help="save the per-class comparison as PATH.html (+ .png when possible)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ffclr.model.checkpoint import load_encoder
    from ffclr.eval.embedding import embed_crop_set
    from ffclr.errors import FfclrError
    from ffclr.eval.evaluate import align_classes, resolve_crop_set
    from ffclr.eval.fewshot import few_shot, per_class_figure, save_figure
    from ffclr.eval.knn import KnnClassifier
    from ffclr.eval.metrics import classification_metrics
    from ffclr.eval.probe import fit_probe

    workspace = workspace_from(args)
    train = resolve_crop_set(workspace, args.train, args.dataset, "train")
    test = resolve_crop_set(workspace, args.test, args.dataset, "valid")
    train_y, test_y, names = align_classes(train, test)
    if args.name and len(args.name) != len(args.checkpoint):
        raise FfclrError("--name: give one name per --checkpoint")
    per_class = {}
    for index, checkpoint in enumerate(args.checkpoint):
        encoder = load_encoder(checkpoint)
        label = (args.name[index] if args.name else
                 encoder.config.get("dataset_name") or Path(checkpoint).stem)
        train_x = embed_crop_set(train, checkpoint, workspace, encoder).features
        test_x = embed_crop_set(test, checkpoint, workspace, encoder).features
        print(f"{label} ({checkpoint}):")
        for shots in args.shots:
            print("  " + few_shot(train_x, train_y, test_x, test_y, names, shots, args.seeds).line())
        knn = KnnClassifier.fit(train_x, train_y, len(names))
        knn_metrics = classification_metrics(test_y, knn.predict_proba(test_x), names)
        print(f"  kNN (k={knn.k}): top-1 {knn_metrics['top1']:.3f}, macro-F1 "
              f"{knn_metrics['macro_f1']:.3f}")
        if args.figure:
            probe = fit_probe(train_x, train_y, names)
            metrics = classification_metrics(test_y, probe.predict_proba(test_x), names, train_y)
            print(f"  linear probe: top-1 {metrics['top1']:.3f}, macro-F1 {metrics['macro_f1']:.3f}")
            per_class[label] = metrics["per_class"]
    if args.figure:
        written = save_figure(per_class_figure(per_class, "recall",
                                               "Linear probe recall per class"), args.figure)
        print("figure: " + ", ".join(str(p) for p in written)
              + ("" if any(p.suffix == ".png" for p in written) else
                 " (no PNG: needs kaleido, or Chromium at /usr/bin/chromium for playwright)"))
    return 0
