"""`python -m ffclr classify IMAGE... --checkpoint CKPT --probe PROBE`: classify symbol crops."""
from __future__ import annotations

from pathlib import Path

from ffclr.cli import add_command, workspace_from


def register(subparsers) -> None:
    parser = add_command(subparsers, "classify",
                         "classify symbol crops: top classes, nearest training crops, and an "
                         "'unknown symbol' flag far from all training data")
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    parser.add_argument("--checkpoint", "--checkpoint_path", required=True, metavar="CKPT")
    parser.add_argument("--probe", required=True, metavar="PROBE",
                        help="a probe saved by `ffclr probe` (.npz)")
    parser.add_argument("--train", metavar="DIR",
                        help="reference crops (default: the probe's training crops)")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--neighbours", type=int, default=5)
    parser.set_defaults(func=run)


def run(args) -> int:
    from ffclr.eval.classify import classify_images, format_result, load_classifier

    encoder, probe, reference = load_classifier(args.checkpoint, args.probe,
                                                workspace_from(args), args.train)
    results = classify_images(args.images, encoder, probe, reference, args.top_k,
                              args.neighbours)
    for result in results:
        print("\n".join(format_result(result)))
    return 1 if all(r.error for r in results) else 0
