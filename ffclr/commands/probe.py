"""`python -m ffclr probe`: linear probe on frozen features, the seed's `linear_classifier.py` flags."""
from __future__ import annotations

from ffclr.cli import add_command, workspace_from


def register(subparsers) -> None:
    parser = add_command(
        subparsers, "probe",
        "fit a linear probe on the frozen features of training crops and score it on test crops "
        "(metrics JSON, per-class CSV, saved probe, a run in the store)")
    parser.add_argument("--train_dataset_name", "--train", metavar="DIR",
                        help="training crops folder (default: split 'train' of --dataset)")
    parser.add_argument("--test_dataset_name", "--test", metavar="DIR",
                        help="test crops folder (default: split 'valid' of --dataset)")
    parser.add_argument("--dataset", metavar="NAME",
                        help="an imported dataset (instead of the two folders)")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--test-split", default="valid")
    parser.add_argument("--checkpoint_path", "--checkpoint", required=True, metavar="CKPT")
    parser.add_argument("--method", choices=("lbfgs", "adam"), default="lbfgs",
                        help="lbfgs: logistic regression, C chosen by CV on the training crops "
                             "(default); adam: the seed's Adam + focal-loss head, fixed epochs")
    parser.add_argument("--epochs", type=int, default=100, help="adam: training epochs")
    parser.add_argument("--batch_size", "--batch-size", type=int, default=256,
                        help="adam: batch size")
    parser.add_argument("--loss_fn", choices=("focal", "cross_entropy"), default="focal",
                        help="adam: loss")
    parser.add_argument("--arch", choices=("resnet18", "resnet50"),
                        help="checked against the checkpoint (which records it)")
    parser.add_argument("--num_classes", type=int,
                        help="checked against the dataset's class list (which decides it)")
    parser.add_argument("--workers", type=int, default=0,
                        help="accepted for the seed's command lines; features come from a cache")
    parser.add_argument("--metrics-json", metavar="PATH")
    parser.add_argument("--csv", metavar="PATH")
    parser.add_argument("--save-probe", metavar="PATH", help="where to save the probe (.npz)")
    parser.set_defaults(func=run)


def run(args) -> int:
    import sys

    from ffclr.model.checkpoint import load_encoder
    from ffclr.errors import FfclrError
    from ffclr.eval.evaluate import resolve_crop_set, run_probe, summary_lines
    from ffclr.progress import tqdm_progress

    workspace = workspace_from(args)
    train = resolve_crop_set(workspace, args.train_dataset_name, args.dataset, args.train_split)
    test = resolve_crop_set(workspace, args.test_dataset_name, args.dataset, args.test_split)
    encoder = load_encoder(args.checkpoint_path)
    if args.arch and args.arch != encoder.arch:
        raise FfclrError(f"--arch {args.arch}, but {args.checkpoint_path} holds a {encoder.arch}")
    if args.num_classes and args.num_classes != len(train.class_names):
        print(f"note: --num_classes {args.num_classes} ignored; the dataset has "
              f"{len(train.class_names)} classes", file=sys.stderr)
    with tqdm_progress() as progress:
        report = run_probe(train, test, args.checkpoint_path, workspace, method=args.method,
                           epochs=args.epochs, batch_size=args.batch_size, loss_fn=args.loss_fn,
                           metrics_json=args.metrics_json, csv=args.csv,
                           save_probe=args.save_probe, encoder=encoder, progress=progress)
    for line in summary_lines(report.metrics):
        print(line)
    print(f"probe run {report.run_id}: " + ", ".join(f"{k} {v}" for k, v in report.files.items()))
    return 0
