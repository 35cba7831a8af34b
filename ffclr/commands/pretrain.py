"""`python -m ffclr pretrain`: SimCLR pretraining, with the seed's `run.py` flags."""
from __future__ import annotations

import argparse

from ffclr.cli import add_command, workspace_from
from ffclr.train.config import (ARCH_NAMES, AUGMENT_HELP, AUGMENT_PRESETS, DATASET_MODES,
                                OPTIMIZER_NAMES, PretrainConfig)

DEFAULTS = PretrainConfig()


def register(subparsers) -> None:
    p = add_command(subparsers, "pretrain", "SimCLR pretraining on symbol crops (the seed's "
                                            "run.py flags work)")
    add_seed_flags(p.add_argument_group("the seed's run.py flags"))
    add_ffclr_flags(p.add_argument_group("ffclr"))
    p.add_argument("--run-id", dest="run_id", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def add_seed_flags(seed) -> None:
    """sthalles/SimCLR's `run.py` flags, under their names; defaults from `PretrainConfig`."""
    seed.add_argument("-data", metavar="DIR", dest="data", default=DEFAULTS.data,
                      help="crop folder (<dir>/<class>/<img>, e.g. "
                           "./datasets/ff_devices_individual/train); default: the train split "
                           "of the workspace's latest imported dataset")
    seed.add_argument("-dataset-name", dest="dataset_name", default=DEFAULTS.dataset_name,
                      choices=list(DATASET_MODES),
                      help="ff_devices_unlabeled: SimCLR on every crop; ff_devices_labeled: "
                           "supervised contrastive (same class = positive); ff_devices_one_shot: "
                           "one crop per class (the seed's mode); cifar10/stl10: torchvision "
                           "datasets under -data (default %(default)s)")
    seed.add_argument("-a", "--arch", default=DEFAULTS.arch, choices=list(ARCH_NAMES))
    seed.add_argument("-j", "--workers", type=int, default=DEFAULTS.workers,
                      help="threads decoding crops into the in-memory cache")
    seed.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    seed.add_argument("-b", "--batch-size", dest="batch_size", type=int,
                      default=DEFAULTS.batch_size,
                      help="crops per step per process (default %(default)s)")
    seed.add_argument("--lr", "--learning-rate", dest="lr", type=float, default=DEFAULTS.lr,
                      help="default: 1e-3 for adam, 0.3 x batch/256 for lars and sgd")
    seed.add_argument("--wd", "--weight-decay", dest="weight_decay", type=float,
                      default=DEFAULTS.weight_decay)
    seed.add_argument("--seed", type=int, default=DEFAULTS.seed)
    seed.add_argument("--disable-cuda", dest="disable_cuda", action="store_true",
                      default=DEFAULTS.disable_cuda)
    seed.add_argument("--fp16-precision", "--fp16_precision", dest="fp16_precision",
                      action="store_true", default=DEFAULTS.fp16_precision,
                      help="fp16 autocast with a grad scaler (CUDA)")
    seed.add_argument("--out_dim", "--out-dim", dest="out_dim", type=int, default=DEFAULTS.out_dim)
    seed.add_argument("--log-every-n-steps", dest="log_every_n_steps", type=int,
                      default=DEFAULTS.log_every_n_steps)
    seed.add_argument("--temperature", type=float, default=DEFAULTS.temperature)
    seed.add_argument("--n-views", dest="n_views", type=int, default=DEFAULTS.n_views)
    seed.add_argument("--gpu-index", dest="gpu_index", type=int, default=DEFAULTS.gpu_index)


def add_ffclr_flags(new) -> None:
    """The flags ffclr adds to the seed's; defaults from `PretrainConfig`."""
    new.add_argument("--image-size", dest="image_size", type=int, default=DEFAULTS.image_size,
                     help="crop side fed to the network, px (default %(default)s)")
    new.add_argument("--small-stem", dest="small_stem", default=DEFAULTS.small_stem,
                     action=argparse.BooleanOptionalAction,
                     help="3x3 stride-1 first conv and no max-pool, for small inputs")
    new.add_argument("--bf16", default=DEFAULTS.bf16, action=argparse.BooleanOptionalAction,
                     help="bf16 autocast (default: on for CPUs with native bf16)")
    new.add_argument("--augment", default=DEFAULTS.augment, choices=list(AUGMENT_PRESETS),
                     help=AUGMENT_HELP)
    new.add_argument("--optimizer", default=DEFAULTS.optimizer, choices=list(OPTIMIZER_NAMES))
    new.add_argument("--warmup", type=float, default=DEFAULTS.warmup,
                     help="warm-up epochs, at most a tenth of the run (default %(default)s)")
    new.add_argument("--time-budget", dest="time_budget", type=float, default=DEFAULTS.time_budget,
                     metavar="SECONDS", help="stop with a checkpoint when spent; the "
                                             "learning-rate schedule is planned to end then")
    new.add_argument("--resume", metavar="PATH|auto", default=DEFAULTS.resume,
                     help="continue from a checkpoint, or 'auto': the latest unfinished run")
    new.add_argument("--checkpoint-every", dest="checkpoint_every", type=int,
                     default=DEFAULTS.checkpoint_every, metavar="EPOCHS")
    new.add_argument("--knn-every", dest="knn_every", type=int, default=DEFAULTS.knn_every,
                     metavar="EPOCHS", help="kNN top-1 on a labelled split every N epochs "
                                            "(0: never)")
    new.add_argument("--knn-data", dest="knn_data", default=DEFAULTS.knn_data, metavar="DIR",
                     help="labelled crops for --knn-every (default: the valid split beside "
                          "-data, else leave-one-out on the training crops)")
    new.add_argument("--run-name", dest="run_name", default=DEFAULTS.run_name)


def config_from_args(args: argparse.Namespace) -> PretrainConfig:
    names = PretrainConfig.__dataclass_fields__
    return PretrainConfig(**{k: v for k, v in vars(args).items() if k in names}).validate()


def run(args: argparse.Namespace) -> int:
    workspace = workspace_from(args)
    if args.run_id is not None:
        from ffclr.train.jobs import run_job

        return run_job(workspace, args.run_id)
    from ffclr.train.loop import pretrain

    result = pretrain(config_from_args(args), workspace)
    where = f"; checkpoint {result.checkpoint}" if result.checkpoint else ""
    print(f"run {result.run_name} {result.status} after {result.steps} steps "
          f"({result.epochs} epochs){where}")
    return 0 if result.status == "finished" else 1
