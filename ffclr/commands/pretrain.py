"""`python -m ffclr pretrain`: SimCLR pretraining, with the seed's `run.py` flags."""
from __future__ import annotations

import argparse

from ffclr.cli import add_command, workspace_from
from ffclr.train.config import AUGMENT_HELP, AUGMENT_PRESETS, DATASET_MODES, PretrainConfig

D = PretrainConfig()


def register(subparsers) -> None:
    p = add_command(subparsers, "pretrain", "SimCLR pretraining on symbol crops (the seed's "
                                            "run.py flags work)")
    seed = p.add_argument_group("the seed's run.py flags")
    seed.add_argument("-data", metavar="DIR", dest="data", default=D.data,
                      help="crop folder (<dir>/<class>/<img>, e.g. "
                           "./datasets/ff_devices_individual/train); default: the train split "
                           "of the workspace's latest imported dataset")
    seed.add_argument("-dataset-name", dest="dataset_name", default=D.dataset_name,
                      choices=list(DATASET_MODES),
                      help="ff_devices_unlabeled: SimCLR on every crop; ff_devices_labeled: "
                           "supervised contrastive (same class = positive); ff_devices_one_shot: "
                           "one crop per class (the seed's mode); cifar10/stl10: torchvision "
                           "datasets under -data (default %(default)s)")
    seed.add_argument("-a", "--arch", default=D.arch, choices=["resnet18", "resnet50"])
    seed.add_argument("-j", "--workers", type=int, default=D.workers,
                      help="threads decoding crops into the in-memory cache")
    seed.add_argument("--epochs", type=int, default=D.epochs)
    seed.add_argument("-b", "--batch-size", dest="batch_size", type=int, default=D.batch_size,
                      help="crops per step per process (default %(default)s)")
    seed.add_argument("--lr", "--learning-rate", dest="lr", type=float, default=D.lr,
                      help="default: 1e-3 for adam, 0.3 x batch/256 for lars and sgd")
    seed.add_argument("--wd", "--weight-decay", dest="weight_decay", type=float,
                      default=D.weight_decay)
    seed.add_argument("--seed", type=int, default=D.seed)
    seed.add_argument("--disable-cuda", dest="disable_cuda", action="store_true")
    seed.add_argument("--fp16-precision", "--fp16_precision", dest="fp16_precision",
                      action="store_true", help="fp16 autocast with a grad scaler (CUDA)")
    seed.add_argument("--out_dim", "--out-dim", dest="out_dim", type=int, default=D.out_dim)
    seed.add_argument("--log-every-n-steps", dest="log_every_n_steps", type=int,
                      default=D.log_every_n_steps)
    seed.add_argument("--temperature", type=float, default=D.temperature)
    seed.add_argument("--n-views", dest="n_views", type=int, default=D.n_views)
    seed.add_argument("--gpu-index", dest="gpu_index", type=int, default=D.gpu_index)
    new = p.add_argument_group("ffclr")
    new.add_argument("--image-size", dest="image_size", type=int, default=D.image_size,
                     help="crop side fed to the network, px (default %(default)s)")
    new.add_argument("--small-stem", dest="small_stem", default=D.small_stem,
                     action=argparse.BooleanOptionalAction,
                     help="3x3 stride-1 first conv and no max-pool, for small inputs")
    new.add_argument("--bf16", default=D.bf16, action=argparse.BooleanOptionalAction,
                     help="bf16 autocast (default: on for CPUs with native bf16)")
    new.add_argument("--augment", default=D.augment, choices=list(AUGMENT_PRESETS),
                     help=AUGMENT_HELP)
    new.add_argument("--optimizer", default=D.optimizer, choices=["adam", "lars", "sgd"])
    new.add_argument("--warmup", type=float, default=D.warmup,
                     help="warm-up epochs, at most a tenth of the run (default %(default)s)")
    new.add_argument("--time-budget", dest="time_budget", type=float, default=D.time_budget,
                     metavar="SECONDS", help="stop with a checkpoint when spent; the "
                                             "learning-rate schedule is planned to end then")
    new.add_argument("--resume", metavar="PATH|auto", default=D.resume,
                     help="continue from a checkpoint, or 'auto': the latest unfinished run")
    new.add_argument("--checkpoint-every", dest="checkpoint_every", type=int,
                     default=D.checkpoint_every, metavar="EPOCHS")
    new.add_argument("--knn-every", dest="knn_every", type=int, default=D.knn_every,
                     metavar="EPOCHS", help="kNN top-1 on a labelled split every N epochs")
    new.add_argument("--knn-data", dest="knn_data", default=D.knn_data, metavar="DIR",
                     help="labelled crops for --knn-every (default: the valid split beside "
                          "-data, else leave-one-out on the training crops)")
    new.add_argument("--run-name", dest="run_name", default=D.run_name)
    new.add_argument("--run-id", dest="run_id", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


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
