"""Pretraining recipes compared at equal epochs on the real export, for choosing defaults.

Each recipe pretrains on the train crops without labels; a linear probe is then fitted on the
train features. The probe's cross-validated macro-F1 on train is the score to choose by (it
never sees valid); the valid scores are reported beside it, not used to choose. Made for a GPU,
where a CPU budget's worth of epochs takes under a minute; probes run in worker processes while
the next recipe trains.
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import fields
from pathlib import Path

from ffclr.benchmarks import REAL_EXPORT, import_train_valid
from ffclr.benchmarks.accuracy import probe_scores
from ffclr.errors import FfclrError

NAME = "recipes"
HELP = ("compare pretraining recipes at equal epochs: probe cross-validation on train (to choose "
        "by) and scores on valid (to report)")
DEFAULT_RECIPES = (
    "seed-loss:temperature=0.07,lr=3e-4",
    "t0.2-lr3e-4:lr=3e-4",
    "default:",
    "lr2e-3:lr=2e-3",
    "t0.1:temperature=0.1",
)
"""The comparison behind the default temperature (0.2) and Adam learning rate (1e-3)."""


def add_arguments(parser) -> None:
    parser.add_argument("--export", type=Path, default=REAL_EXPORT,
                        help="Roboflow export with train/ and valid/ (default: "
                             "../shared/datasets/ff_devices)")
    parser.add_argument("--epochs", type=int, default=160,
                        help="epochs per recipe (default 160: what the default recipe trains "
                             "in 20 minutes on a 2-core CPU)")
    parser.add_argument("--recipe", action="append", metavar="NAME:KEY=VALUE,...",
                        help="a recipe: a name, then pretraining settings (PretrainConfig field "
                             "names, e.g. 'hot:temperature=0.5,lr=1e-3'); repeat for more "
                             f"(default: {' '.join(DEFAULT_RECIPES)})")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")


def parse_recipe(text: str) -> tuple[str, dict]:
    """'name:key=value,...' → (name, overrides typed after `PretrainConfig`'s defaults)."""
    from ffclr.train.config import PretrainConfig

    name, colon, settings = text.partition(":")
    if not colon or not name:
        raise FfclrError(f"--recipe {text!r}: write NAME:KEY=VALUE,... ('NAME:' alone for the "
                         "defaults)")
    defaults = PretrainConfig()
    known = {f.name for f in fields(PretrainConfig)}
    overrides = {}
    for item in filter(None, settings.split(",")):
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in known:
            raise FfclrError(f"--recipe {text!r}: {item!r} is not KEY=VALUE with KEY one of "
                             f"{', '.join(sorted(known))}")
        overrides[key] = _typed(getattr(defaults, key), value.strip(), f"--recipe {text!r}: {key}")
    return name, overrides


def _typed(default, value: str, where: str):
    """`value` as the type of the field's default (None: a bool, a number or else the text)."""
    if isinstance(default, bool) or (default is None and value.lower() in ("true", "false")):
        return value.lower() in ("1", "true", "yes")
    try:
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float) or default is None:
            return float(value)
    except ValueError:
        if default is not None:
            raise FfclrError(f"{where}={value!r} is not a number") from None
    return value


class _Inline(Executor):
    def submit(self, fn, *args, **kwargs):
        future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def run(args) -> int:
    import torch

    from ffclr.model.checkpoint import load_encoder
    from ffclr.eval.embedding import embed_crop_set
    from ffclr.train.config import PretrainConfig
    from ffclr.train.loop import pretrain

    recipes = [parse_recipe(text) for text in (args.recipe or DEFAULT_RECIPES)]
    workspace, train, valid = import_train_valid(args.export, "ffclr-bench-recipes-")
    names = train.class_names
    data_dir = str(Path(train.paths[0]).parents[1])
    gpu = torch.cuda.is_available()
    pool = ProcessPoolExecutor(max(1, min(8, (os.cpu_count() or 2) - 2))) if gpu else _Inline()
    pending = []
    for name, overrides in recipes:
        config = PretrainConfig(**{"data": data_dir, "epochs": args.epochs, "seed": 0,
                                   "run_name": f"recipe-{name}", "checkpoint_every": 10 ** 6,
                                   "log_every_n_steps": 10 ** 6, **overrides}).validate()
        start = time.perf_counter()
        result = pretrain(config, workspace)
        seconds = time.perf_counter() - start
        encoder = load_encoder(result.checkpoint)
        train_x = embed_crop_set(train, result.checkpoint, workspace, encoder).features
        valid_x = embed_crop_set(valid, result.checkpoint, workspace, encoder).features
        row = {"recipe": name, "settings": overrides, "epochs": result.summary["epochs"],
               "train_s": seconds, "device": "cuda" if gpu else "cpu"}
        pending.append((row, pool.submit(probe_scores, train_x, train.labels, valid_x,
                                         valid.labels, names)))
        print(f"{name}: {row['epochs']:.0f} epochs in {seconds:.0f} s", flush=True)
    rows = [{**row, **future.result()} for row, future in pending]
    pool.shutdown()
    print()
    print("\n".join(results_table(rows)))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"epochs": args.epochs, "rows": rows}, indent=1))
        print(f"\nwritten {args.out}")
    return 0


def results_table(rows: list[dict]) -> list[str]:
    lines = ["| Recipe | Settings | Epochs | Train s | CV macro-F1 (train) % | CV top1 (train) % "
             "| Top1 (valid) % | Macro-F1 (valid) % | Balanced acc. (valid) % |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        settings = ", ".join(f"{k}={v}" for k, v in r["settings"].items()) or "defaults"
        lines.append(f"| {r['recipe']} | {settings} | {r['epochs']:.0f} | {r['train_s']:.0f} | "
                     f"{100 * r['cv_macro_f1']:.2f} | {100 * r['cv_top1']:.2f} | "
                     f"{100 * r['top1']:.2f} | {100 * r['macro_f1']:.2f} | "
                     f"{100 * r['balanced_accuracy']:.2f} |")
    return lines
