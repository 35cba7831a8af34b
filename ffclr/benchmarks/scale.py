"""How every stage a user runs grows with the number of symbols: a synthetic export of each size
goes through demo-export, import, one pretraining epoch, embed, probe, kNN, explore, classify,
detector fit and detect (each `python -m ffclr ...` in its own process) and the app in Chromium;
wall seconds and peak resident memory per stage and size."""
from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ffclr.benchmarks.measure import Measured, run_measured
from ffclr.errors import FfclrError

NAME = "scale"
HELP = ("seconds and peak memory of every stage (import to the app in a browser) on synthetic "
        "exports of growing size")

SYMBOLS_PER_DRAWING = 5.0
"""About what the demo export draws per schematic."""
DATASET = "scale"
RUN = "scale-epoch"
DETECTION_DRAWINGS = 100
CLASSIFIED_CROPS = 100
STAGE_TIMEOUT_S = 4 * 3600


def add_arguments(parser) -> None:
    parser.add_argument("--sizes", default="2000,20000,100000",
                        help="dataset sizes in symbols, comma-separated (default: "
                             "2000,20000,100000)")
    parser.add_argument("--out", type=Path, default=Path("scale.json"),
                        help="results JSON (default: scale.json), rewritten after every stage")
    parser.add_argument("--figure", type=Path, metavar="DIR",
                        help="also write DIR/scale.html (+ .png) : seconds against size, log-log")
    parser.add_argument("--workdir", type=Path,
                        help="where exports and workspaces are written (default: a temporary "
                             "folder, removed at the end)")
    parser.add_argument("--no-app", action="store_true",
                        help="skip the app stages (Chromium)")
    parser.add_argument("--seed", type=int, default=0)


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise FfclrError(f"--sizes: whole numbers separated by commas, got {text!r}") from None
    if not sizes or min(sizes) < 50:
        raise FfclrError(f"--sizes: at least one size, each >= 50 symbols, got {text!r}")
    return sorted(set(sizes))


@dataclass
class Results:
    sizes: list[int]
    symbols: list[int | None]
    stages: dict[str, dict[str, list]]
    errors: dict[str, str]

    def record(self, stage: str, index: int, measured: Measured | None,
               seconds: float | None = None) -> None:
        row = self.stages.setdefault(stage, {"seconds": [None] * len(self.sizes),
                                             "peak_rss_mb": [None] * len(self.sizes)})
        if measured is not None and not measured.ok:
            self.errors[f"{stage}@{self.sizes[index]}"] = measured.last_line()[:300]
            return
        row["seconds"][index] = round(seconds if seconds is not None else measured.seconds, 3)
        if measured is not None and measured.peak_rss_mb is not None:
            row["peak_rss_mb"][index] = round(measured.peak_rss_mb, 1)

    def as_json(self) -> dict:
        return {"sizes": self.sizes, "symbols": self.symbols, "stages": self.stages,
                "errors": self.errors}


def ffclr_argv(workspace: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "ffclr", "--workspace", str(workspace), *map(str, args)]


def drawing_count(symbols: int) -> int:
    return max(10, math.ceil(symbols / SYMBOLS_PER_DRAWING))


def _first_files(folder: Path, pattern: str, count: int) -> list[Path]:
    return sorted(folder.rglob(pattern))[:count]


def measure_size(index: int, size: int, root: Path, detection_export: Path, results: Results,
                 save, app: bool, seed: int) -> None:
    """Every stage on one size, in the order a user meets them; a failed stage is recorded in
    `errors` and the stages that need its output are skipped."""
    export, workspace, logs = root / "export", root / "workspace", root / "logs"
    checkpoint = workspace / "checkpoints" / RUN / "checkpoint_0001.pth.tar"
    probe, detector = root / "probe.npz", root / "detector.npz"

    def stage(name: str, *args: str, argv: list[str] | None = None) -> bool:
        measured = run_measured(argv or ffclr_argv(workspace, *args), logs / f"{name}.log",
                                timeout=STAGE_TIMEOUT_S)
        results.record(name, index, measured)
        save()
        print(f"  {name:14} {measured.seconds:8.1f} s  {measured.peak_rss_mb or 0:7.0f} MB"
              + ("" if measured.ok else f"  FAILED: {measured.last_line()[:160]}"), flush=True)
        return measured.ok

    if not stage("demo_export", argv=ffclr_argv(workspace, "demo-export", export, "--images",
                                                drawing_count(size), "--seed", seed)):
        return
    if not stage("import", "import", export, "--name", DATASET):
        return
    results.symbols[index] = _crop_count(workspace)
    if not stage("pretrain_epoch", "pretrain", "--epochs", "1", "--seed", seed,
                 "--run-name", RUN):
        return
    crops = _first_files(workspace / "datasets" / f"{DATASET}_individual" / "valid", "*.png",
                         CLASSIFIED_CROPS)
    stage("embed", "embed", "--checkpoint", checkpoint, "--dataset", DATASET)
    probed = stage("probe", "probe", "--checkpoint", checkpoint, "--dataset", DATASET,
                   "--save-probe", probe)
    stage("knn", "fewshot", "--checkpoint", checkpoint, "--dataset", DATASET, "--shots", "1",
          "--seeds", "1")
    stage("explore", "explore", "--checkpoint", checkpoint, "--dataset", DATASET,
          "--split", "train", "--umap-html", root / "umap.html")
    if probed:
        stage("classify", "classify", "--checkpoint", checkpoint, "--probe", probe, *crops)
    if stage("detector_fit", "detector", "fit", "--checkpoint", checkpoint, "--export",
             detection_export, "--split", "train", "--save", detector):
        drawings = _first_files(export / "train", "*.jpg", DETECTION_DRAWINGS)
        stage("detect", "detect", "--detector", detector, "--out", root / "detections.json",
              *drawings)
    if app:
        from ffclr.benchmarks.scale_app import measure_app

        for name, seconds, measured in measure_app(workspace, DATASET, RUN, logs / "app.log"):
            results.record(name, index, measured, seconds)
            print(f"  {name:14} " + ("FAILED" if seconds is None else f"{seconds:8.2f} s"),
                  flush=True)
        save()


def _crop_count(workspace: Path) -> int:
    from ffclr.workspace import Workspace

    with Workspace(workspace).open_store() as store:
        dataset = store.dataset(DATASET)
        return sum(c["crops"] for c in store.label_counts(dataset["id"])) if dataset else 0


def figure(results: dict):
    import plotly.graph_objects as go
    from plotly.express.colors import qualitative

    fig = go.Figure()
    x = [s or size for s, size in zip(results["symbols"], results["sizes"])]
    for name, row in results["stages"].items():
        points = [(xi, yi) for xi, yi in zip(x, row["seconds"]) if yi]
        if points:
            fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points],
                                     mode="lines+markers", name=name))
    fig.update_layout(title="ffclr stages: wall seconds against symbols (log-log; linear "
                            "growth is a slope of 1)", xaxis_type="log", yaxis_type="log",
                      xaxis_title="symbols in the dataset", yaxis_title="seconds",
                      template="plotly_white", width=1100, height=700,
                      colorway=qualitative.Dark24)
    return fig


def run(args) -> int:
    sizes = parse_sizes(args.sizes)
    results = Results(sizes, [None] * len(sizes), {}, {})
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ffclr-bench-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        partial = args.out.with_name(args.out.name + ".partial")
        partial.write_text(json.dumps(results.as_json(), indent=1))
        partial.replace(args.out)

    try:
        detection_export = workdir / "detection-export"
        fitted = run_measured(ffclr_argv(workdir / "detection-workspace", "demo-export",
                                         detection_export, "--images",
                                         round(DETECTION_DRAWINGS / 0.7), "--seed",
                                         args.seed + 1), workdir / "detection-export.log")
        if not fitted.ok:
            raise FfclrError(f"demo-export for the detector: {fitted.last_line()}")
        for index, size in enumerate(sizes):
            print(f"{size} symbols ({drawing_count(size)} drawings):", flush=True)
            root = workdir / f"size-{size}"
            shutil.rmtree(root, ignore_errors=True)
            measure_size(index, size, root, detection_export, results, save,
                         not args.no_app, args.seed)
            if args.workdir is None:
                shutil.rmtree(root, ignore_errors=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    save()
    print(f"results: {args.out}")
    if args.figure:
        from ffclr.eval.fewshot import save_figure

        written = save_figure(figure(results.as_json()), args.figure / "scale")
        print("figure: " + ", ".join(map(str, written)))
    return 1 if results.errors else 0
