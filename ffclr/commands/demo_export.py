"""`python -m ffclr demo-export OUT [--images N] [--seed S]`: write the synthetic demo export."""
from __future__ import annotations

import os
import time

from ffclr.cli import add_command


def register(subparsers) -> None:
    parser = add_command(subparsers, "demo-export",
                         "write a synthetic Roboflow COCO export of generated fire-alarm "
                         "schematics (the app's demo data)")
    parser.add_argument("out", metavar="OUT", help="folder to write (new, empty, or an earlier "
                                                   "demo export, which is replaced)")
    parser.add_argument("--images", type=int, default=60,
                        help="number of schematics, split about 70/20/10 into train/valid/test "
                             "(default: 60, about 300 boxes)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed; the same seed writes identical files (default: 0)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes drawing schematics (default: one per CPU core)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ffclr.demo.export import write_demo_export

    started = time.perf_counter()
    summary = write_demo_export(args.out, images=args.images, seed=args.seed,
                                workers=args.workers)
    seconds = time.perf_counter() - started
    splits = ", ".join(f"{split} {s['images']} images / {s['boxes']} boxes"
                       for split, s in summary["splits"].items())
    used = {name: n for name, n in summary["classes"].items() if n}
    print(f"wrote {summary['out']} in {seconds:.2f} s: {splits}")
    print(f"{len(used)} classes: " + ", ".join(f"{name} {n}" for name, n in
                                               sorted(used.items(), key=lambda kv: -kv[1])))
    return 0
