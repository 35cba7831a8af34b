"""`python -m ffclr embed --checkpoint CKPT -data DIR`: backbone features of every crop, cached."""
from __future__ import annotations

from ffclr.cli import add_command, workspace_from


def add_crop_arguments(parser) -> None:
    parser.add_argument("-data", "--data", metavar="DIR",
                        help="crops: an imported dataset folder or one split of it, or any "
                             "<dir>/<class>/<image> tree")
    parser.add_argument("--dataset", metavar="NAME", help="an imported dataset, by name")
    parser.add_argument("--split", help="with --dataset: one split (default: all)")


def register(subparsers) -> None:
    parser = add_command(subparsers, "embed", "compute (or reuse) the backbone features of every "
                         "crop for a checkpoint, cached in <workspace>/cache/embeddings/")
    parser.add_argument("--checkpoint", "--checkpoint_path", required=True, metavar="CKPT")
    add_crop_arguments(parser)
    parser.add_argument("-b", "--batch-size", type=int, default=256)
    parser.set_defaults(func=run)


def run(args) -> int:
    from ffclr.eval.embedding import embed_crop_set
    from ffclr.eval.evaluate import resolve_crop_set
    from ffclr.progress import tqdm_progress

    workspace = workspace_from(args)
    crops = resolve_crop_set(workspace, args.data, args.dataset, args.split)
    with tqdm_progress("crop") as progress:
        embeddings = embed_crop_set(crops, args.checkpoint, workspace,
                                    batch_size=args.batch_size, progress=progress)
    state = "reused" if embeddings.cached else "computed"
    print(f"{state} {embeddings.features.shape[0]} × {embeddings.features.shape[1]} features: "
          f"{embeddings.cache_file}")
    return 0
