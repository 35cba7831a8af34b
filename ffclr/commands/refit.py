"""`python -m ffclr refit`: refit the detector and the probe of a dataset from its labels, the
drawings annotated in the app included; old and new figures side by side."""
from __future__ import annotations

import argparse

from ffclr.cli import add_command, workspace_from


def register(subparsers) -> None:
    parser = add_command(subparsers, "refit",
                         "refit a dataset's detector and linear probe from its labels (annotated "
                         "drawings included), scoring the old and the new on another split")
    parser.add_argument("--dataset", metavar="NAME", help="an imported dataset")
    parser.add_argument("--checkpoint", metavar="CKPT", help="encoder checkpoint")
    parser.add_argument("--detector", metavar="DETECTOR",
                        help="the detector in use now, scored beside the new one")
    parser.add_argument("--split", default="train", help="split to learn from (default train)")
    parser.add_argument("--eval-split", default="valid",
                        help="split old and new are scored on (default valid)")
    parser.add_argument("--no-probe", dest="probe", action="store_false",
                        help="refit the detector only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queue", action="store_true",
                        help="run it in the background worker, behind queued pretraining runs; "
                             "prints the run id")
    parser.add_argument("--run-id", dest="run_id", type=int, default=None, help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args) -> int:
    from ffclr.annotate.refit import KIND, RefitConfig, run_refit, start_refit, summary_lines
    from ffclr.errors import FfclrError

    workspace = workspace_from(args)
    if args.run_id is not None:
        from ffclr.train.jobs import run_job

        return run_job(workspace, args.run_id, work=run_refit)
    if not args.dataset or not args.checkpoint:
        raise FfclrError("refit: give --dataset and --checkpoint")
    config = RefitConfig(dataset=args.dataset, checkpoint=args.checkpoint,
                         detector=args.detector, split=args.split, eval_split=args.eval_split,
                         probe=args.probe, seed=args.seed).validate(workspace)
    if args.queue:
        print(f"refit queued as run {start_refit(workspace, config)}")
        return 0
    from dataclasses import asdict

    with workspace.open_store() as store:
        run_id = store.create_run(KIND, asdict(config), name=f"refit {config.dataset}",
                                  dataset_id=store.dataset(config.dataset)["id"])
    code = run_refit(workspace, run_id, asdict(config))
    with workspace.open_store() as store:
        summary = store.run(run_id)["summary"]
    print(f"refit run {run_id}")
    print("\n".join(summary_lines(summary)))
    return code
