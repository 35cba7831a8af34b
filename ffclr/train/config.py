"""`PretrainConfig`: every setting of a pretraining run, the seed's `run.py` flags included."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ffclr.data.safe_paths import check_name
from ffclr.errors import FfclrError

DATASET_MODES = {
    "ff_devices_unlabeled": "unlabeled",
    "ff_devices_labeled": "labeled",
    "ff_devices_one_shot": "one_shot",
    "cifar10": "unlabeled",
    "stl10": "unlabeled",
}
"""The seed's `-dataset-name` choices → training mode. cifar10/stl10 read torchvision datasets."""
TORCHVISION_DATASETS = ("cifar10", "stl10")

ARCH_NAMES = ("resnet18", "resnet50")
"""`--arch` choices; the networks are `ffclr.model.networks.ARCHS`."""
OPTIMIZER_NAMES = ("adam", "lars", "sgd")
"""`--optimizer` choices; the optimisers are `ffclr.train.optim.OPTIMIZERS`."""

AUGMENT_PRESETS = {
    "default": "upright or a quarter turn clockwise, as text on drawings",
    "upright": "no turns",
    "rotate": "any quarter turn (symbols without text)",
    "seed": "the fork's recipe",
}
"""`--augment` choices, one line each for the CLI and the app; the recipes are
`ffclr.train.augment.PRESETS`.

The names above are kept apart from the torch-side registries so that building the CLI or the
app's dropdowns does not import torch; a test checks that both sides hold the same names."""
AUGMENT_HELP = "; ".join(f"{name}: {summary}" for name, summary in AUGMENT_PRESETS.items())


@dataclass
class PretrainConfig:
    data: str | None = None
    """Crop folder (a dataset split or any `<dir>/<class>/<img>` tree); None: the workspace's
    most recently imported dataset, train split."""
    dataset_name: str = "ff_devices_unlabeled"
    arch: str = "resnet18"
    workers: int = 12
    """Threads that decode crops into the in-memory cache (training itself reads no files)."""
    epochs: int = 200
    batch_size: int = 256
    """Crops per step per process (each gives `n_views` views)."""
    lr: float | None = None
    """None: 1e-3 for Adam, 0.3 × batch / 256 for LARS and SGD (`ffclr.train.optim.default_lr`)."""
    weight_decay: float = 1e-4
    seed: int | None = None
    disable_cuda: bool = False
    fp16_precision: bool = False
    out_dim: int = 128
    log_every_n_steps: int = 100
    temperature: float = 0.2
    """The seed's 0.07 gave lower probe accuracy on the real crops (docs/measurements.md, Evaluation, "How the
    default recipe was chosen")."""
    n_views: int = 2
    gpu_index: int = 0
    image_size: int = 48
    """Symbols are ~32 px: 48 px with the standard stem keeps their detail (a 2×2 last map)
    at a fraction of the small stem's cost at 32 px (see docs/measurements.md, Pretraining)."""
    small_stem: bool = False
    bf16: bool | None = None
    """None: bf16 autocast on a CPU that supports it (much faster than fp32 there; see docs/measurements.md), off on CUDA."""
    augment: str = "default"
    optimizer: str = "adam"
    warmup: float = 10.0
    """Warm-up epochs (at most a tenth of the run)."""
    time_budget: float | None = None
    """Seconds of training; the schedule is planned to end when they are spent."""
    checkpoint_every: int = 10
    knn_every: int = 0
    """Epochs between kNN top-1 evaluations (0: never)."""
    knn_data: str | None = None
    """Labelled crops for kNN queries; None: the `valid` split beside `data`, else leave-one-out."""
    run_name: str | None = None
    resume: str | None = None
    """Checkpoint path, or 'auto' for the latest unfinished run (of `run_name` if given)."""

    @property
    def mode(self) -> str:
        return DATASET_MODES[self.dataset_name]

    def validate(self) -> "PretrainConfig":
        checks = [
            (self.dataset_name in DATASET_MODES,
             f"-dataset-name: {self.dataset_name!r} is not one of {', '.join(DATASET_MODES)}"),
            (self.arch in ARCH_NAMES,
             f"--arch: {self.arch!r} is not one of {', '.join(ARCH_NAMES)}"),
            (self.augment in AUGMENT_PRESETS, f"--augment: {self.augment!r} is not one of "
                                              f"{', '.join(AUGMENT_PRESETS)}"),
            (self.optimizer in OPTIMIZER_NAMES, f"--optimizer: {self.optimizer!r} is not one of "
                                                f"{', '.join(OPTIMIZER_NAMES)}"),
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.batch_size >= 2, "-b/--batch-size must be at least 2"),
            (self.n_views >= 2, "--n-views must be at least 2"),
            (self.temperature > 0, "--temperature must be positive"),
            (8 <= self.image_size <= 512, "--image-size must be between 8 and 512"),
            (self.time_budget is None or self.time_budget > 0, "--time-budget must be positive"),
            (self.checkpoint_every >= 1, "--checkpoint-every must be at least 1"),
            (self.log_every_n_steps >= 1, "--log-every-n-steps must be at least 1"),
            (self.lr is None or self.lr > 0, "--lr must be positive"),
            (self.knn_every >= 0, "--knn-every must be 0 or more"),
            (self.warmup >= 0, "--warmup must be 0 or more"),
        ]
        for ok, message in checks:
            if not ok:
                raise FfclrError(message)
        if self.run_name is not None:
            check_name(self.run_name, "--run-name")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "PretrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})
