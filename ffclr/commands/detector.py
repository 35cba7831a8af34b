"""`python -m ffclr detector fit`: fit a symbol detector on a labelled export, save one file."""
from __future__ import annotations

from ffclr.cli import add_command, workspace_from


def register(subparsers) -> None:
    parser = add_command(subparsers, "detector",
                         "fit a whole-drawing symbol detector (proposals + encoder + probe with a "
                         "background class) on a labelled COCO export")
    actions = parser.add_subparsers(dest="detector_action", metavar="ACTION", required=True)
    fit = add_command(actions, "fit", "fit a detector on one split of an export and save it")
    fit.add_argument("--checkpoint", required=True, metavar="CKPT",
                     help="pretrained encoder checkpoint (ours or the seed's)")
    fit.add_argument("--export", required=True, metavar="EXPORT",
                     help="Roboflow COCO export folder (train/valid/... with "
                          "_annotations.coco.json)")
    fit.add_argument("--split", default="train", help="labelled split to fit on (default train)")
    fit.add_argument("--save", required=True, metavar="DETECTOR",
                     help="where to write the detector (.npz, one self-contained file)")
    fit.add_argument("--seed", type=int, default=0)
    fit.set_defaults(func=run_fit)


def run_fit(args) -> int:
    from ffclr.detection import fit_detector, save_detector
    from ffclr.progress import tqdm_progress

    workspace = workspace_from(args)
    config = {"checkpoint": args.checkpoint, "export": args.export, "split": args.split,
              "save": args.save, "seed": args.seed}
    with workspace.open_store() as store:
        run_id = store.create_run("detector", config)
        store.mark_running(run_id)
        try:
            with tqdm_progress() as progress:
                detector = fit_detector(args.checkpoint, args.export, args.split, seed=args.seed,
                                        progress=progress)
            path = save_detector(detector, args.save)
        except BaseException as exc:
            store.finish_run(run_id, "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed",
                             error=str(exc)[:500])
            raise
        summary = {"score_threshold": detector.score_threshold, "detector": str(path),
                   **detector.info}
        store.finish_run(run_id, "finished", summary=summary)
    info = detector.info
    accept = detector.accept_threshold
    judged = (f"{info.get('threshold_images', 0)} held-out drawings"
              if info.get("threshold_held_out") else "the training drawings themselves")
    print(f"fitted on {info['images']} drawings of {args.split!r} ({info['training_crops']} crops, "
          f"{info['background_crops']} background); score threshold "
          f"{detector.score_threshold:.2f}, accept-all threshold "
          f"{'none' if accept is None else f'{accept:.2f}'} (chosen on {judged}); saved {path}")
    return 0
