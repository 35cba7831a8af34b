"""Pretraining speed on the real train crops: the seed's per-sample PIL DataLoader pipeline
against ours at the seed's settings (same model, batch, image size, fp32), and our default
recipe; one epoch each, in one run."""
from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

from ffclr.benchmarks import REAL_EXPORT
from ffclr.errors import FfclrError

NAME = "pretrain"
HELP = "pretraining views/s: the seed's PIL DataLoader pipeline vs ours, and our default recipe"


def add_arguments(parser) -> None:
    parser.add_argument("--export", type=Path, default=REAL_EXPORT,
                        help="Roboflow export whose train split is imported into a temporary "
                             "workspace (default: ../shared/datasets/ff_devices)")
    parser.add_argument("-data", dest="data", default=None,
                        help="use this crop folder instead of importing --export")
    parser.add_argument("--seed-workers", type=int, default=12,
                        help="DataLoader workers of the seed pipeline (run.py's -j default: 12)")
    parser.add_argument("--default-epochs", type=int, default=3,
                        help="epochs timed for the default recipe (default: 3)")
    parser.add_argument("--skip-seed", action="store_true",
                        help="skip the (slow) seed pipeline")


def seed_pipeline_epoch(paths: list[Path], workers: int, image_size: int = 96,
                        batch_size: int = 32) -> tuple[float, int]:
    """One epoch as the fork's run.py trains: ImageFolder-style PIL transforms per sample in
    DataLoader workers, the fork's schematic recipe, ResNet-18, Adam, fp32, on the GPU when
    there is one (as run.py). (seconds, views)."""
    import torch
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    from ffclr.train.losses import nt_xent
    from ffclr.model.networks import SimCLRModel
    from ffclr.data.preprocess import load_image_rgb

    recipe = transforms.Compose([
        transforms.Resize((image_size, image_size)),
        transforms.RandomChoice([transforms.RandomRotation((a, a)) for a in (90, 180, 270)]),
        transforms.RandomApply([transforms.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.4),
        transforms.RandomGrayscale(p=0.2),
        transforms.GaussianBlur(kernel_size=int(0.1 * image_size) | 1, sigma=(0.1, 2.0)),
        transforms.ToTensor(),
    ])

    class TwoViews(Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            image = load_image_rgb(paths[i])
            return recipe(image), recipe(image)

    loader = DataLoader(TwoViews(), batch_size=batch_size, shuffle=True, drop_last=True,
                        num_workers=workers, persistent_workers=False)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = SimCLRModel("resnet18", 128, small_stem=False).to(device)
    optimizer = torch.optim.Adam(model.parameters(), 3e-4, weight_decay=1e-4)
    start, views = time.perf_counter(), 0
    for a, b in loader:
        z = model(torch.cat([a, b]).to(device))
        loss = nt_xent(z[:len(a)], z[len(a):], 0.07)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        views += 2 * len(a)
    return time.perf_counter() - start, views


def ours(data: str, workspace, **overrides) -> dict:
    from ffclr.train.config import PretrainConfig
    from ffclr.train.loop import pretrain

    config = PretrainConfig(data=data, seed=0, log_every_n_steps=10 ** 6, **overrides)
    start = time.perf_counter()
    with GpuUtilisation() as gpu:
        result = pretrain(config, workspace)
    wall = time.perf_counter() - start
    steps, seconds = result.summary["steps"], result.summary["train_seconds"]
    views = steps * min(config.batch_size, result.summary["crops"]) * config.n_views
    epochs = result.summary["epochs"]
    return {"views_per_s": views / seconds, "epoch_s": seconds / epochs, "wall_s": wall,
            "epochs": epochs, "gpu_util": gpu.mean}


class GpuUtilisation:
    """Mean GPU utilisation (%, NVML through `torch.cuda.utilization`) sampled every 0.2 s
    while the block runs; `mean` is None without a GPU or NVML."""

    def __init__(self, every_s: float = 0.2):
        self.every_s, self.samples, self.mean = every_s, [], None
        self._stop = threading.Event()
        self._thread = None

    def _sample(self) -> None:
        import torch

        while not self._stop.wait(self.every_s):
            try:
                self.samples.append(torch.cuda.utilization())
            except Exception:  # no NVML: report nothing rather than fail the benchmark
                return

    def __enter__(self) -> "GpuUtilisation":
        import torch

        if torch.cuda.is_available():
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread:
            self._stop.set()
            self._thread.join()
        self.mean = sum(self.samples) / len(self.samples) if self.samples else None


def run(args) -> int:
    import torch

    from ffclr.data.cropset import load_crop_set
    from ffclr.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="ffclr-bench-pretrain-") as tmp:
        workspace = Workspace(Path(tmp))
        data = args.data
        if data is None:
            if not args.export.exists():
                raise FfclrError(f"{args.export}: no such export (give --export or -data)")
            from ffclr.data.coco_import import import_export

            import_export(args.export, "bench", workspace)
            data = str(workspace.dataset_dir("bench") / "train")
        paths = load_crop_set(data, workspace).paths
        print(f"{len(paths)} crops from {data}; {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.1f}")
        rows = []
        if torch.cuda.is_available():
            ours(data, workspace, epochs=1)  # warm-up: CUDA context, cuDNN autotuning
        if not args.skip_seed:
            with GpuUtilisation() as gpu:
                seconds, views = seed_pipeline_epoch(paths, args.seed_workers)
            rows.append(("seed pipeline (PIL DataLoader, -j %d), 96 px, b 32, fp32"
                         % args.seed_workers, views / seconds, seconds, gpu.mean))
        seed_settings = dict(image_size=96, small_stem=False, augment="seed", batch_size=32,
                             epochs=1, bf16=False)
        for name, settings in [("ours at the seed's settings (96 px, b 32, fp32)", seed_settings),
                               ("ours at the seed's settings + bf16",
                                {**seed_settings, "bf16": True}),
                               ("ours, default recipe (48 px, b 256, bf16 auto)",
                                {"epochs": args.default_epochs})]:
            measured = ours(data, workspace, **settings)
            rows.append((name, measured["views_per_s"], measured["epoch_s"], measured["gpu_util"]))
    base = rows[0][1] if not args.skip_seed else None
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"device: {device}")
    print(f"{'pipeline':60s} {'views/s':>8s} {'s/epoch':>8s} {'x seed':>7s} {'GPU %':>6s}")
    for name, views_per_s, epoch_s, gpu_util in rows:
        ratio = f"{views_per_s / base:7.1f}" if base else "      -"
        util = f"{gpu_util:6.0f}" if gpu_util is not None else "     -"
        print(f"{name:60s} {views_per_s:8.0f} {epoch_s:8.1f} {ratio} {util}")
    return 0
