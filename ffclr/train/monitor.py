"""What a pretraining run reports while it trains.

`knn_monitor` scores the backbone between epochs: a weighted cosine kNN (Wu et al. 2018) of
held-out labelled crops, or leave-one-out on the training crops, against the training crops.
`Recorder` is rank 0's outputs: the run's store row, its checkpoint files, TensorBoard scalars
and the progress bar.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ffclr.data.cropset import load_crop_set
from ffclr.eval.knn import KnnClassifier, leave_one_out_accuracy
from ffclr.model.checkpoint import save_checkpoint
from ffclr.model.embed import embed_uint8
from ffclr.model.networks import FeatureExtractor, SimCLRModel
from ffclr.train.config import TORCHVISION_DATASETS, PretrainConfig
from ffclr.train.data import TrainingData, from_crop_set, knn_split_dir
from ffclr.workspace import Workspace

Progress = Callable[[int, int, str], None]
KNN_K = 20
KNN_TEMPERATURE = 0.07


def knn_accuracy(memory: np.ndarray, memory_labels: np.ndarray, queries: np.ndarray | None = None,
                 query_labels: np.ndarray | None = None, *, k: int = KNN_K,
                 temperature: float = KNN_TEMPERATURE) -> float:
    """Top-1 accuracy of the weighted kNN of `queries` against `memory`; without queries,
    leave-one-out on `memory` (every row classified by the others)."""
    memory_labels = np.asarray(memory_labels, dtype=np.int64)
    if queries is None:
        return leave_one_out_accuracy(memory, memory_labels, int(memory_labels.max()) + 1, k,
                                      temperature)
    query_labels = np.asarray(query_labels, dtype=np.int64)
    n_classes = int(max(memory_labels.max(), query_labels.max())) + 1
    classifier = KnnClassifier.fit(memory, memory_labels, n_classes, k=k, temperature=temperature)
    return float(np.mean(classifier.predict(queries) == query_labels))


def knn_queries(config: PretrainConfig, workspace: Workspace) -> TrainingData | None:
    """The monitor's labelled queries (`--knn-data`, else the `valid` split beside the training
    folder); None: leave-one-out on the training crops."""
    folder = knn_split_dir(config.data, config.knn_data)
    if folder is None or config.dataset_name in TORCHVISION_DATASETS:
        return None
    return from_crop_set(load_crop_set(folder, workspace), config.image_size, config.workers,
                         str(folder), workspace)


def knn_monitor(model: SimCLRModel, data: TrainingData, queries: TrainingData | None,
                device: torch.device, dtype: torch.dtype | None) -> float:
    """kNN top-1 of the model's L2-normalised backbone features (see `knn_accuracy`)."""
    backbone = FeatureExtractor(model).train(model.training)

    def embed(images: torch.Tensor) -> np.ndarray:
        return embed_uint8(backbone, images, device=device, dtype=dtype, normalise=True).numpy()

    memory = embed(data.images)
    if queries is None:
        return knn_accuracy(memory, data.labels.numpy())
    return knn_accuracy(memory, data.labels.numpy(), embed(queries.images),
                        queries.labels.numpy())


class Recorder:
    """Rank 0's outputs of a run: the store row, checkpoint files, TensorBoard scalars and the
    progress bar. Disabled (on other ranks) it records nothing."""

    def __init__(self, workspace: Workspace, run_id: int | None, run_name: str, total: int,
                 initial: int, progress: Progress | None, enabled: bool,
                 last_checkpoint: Path | None = None):
        self.enabled = enabled
        self.run_id, self.run_name, self.progress = run_id, run_name, progress
        self.checkpoint_dir = workspace.checkpoints / run_name
        self.last_checkpoint = last_checkpoint
        """The run's newest checkpoint (at first the one it resumed from)."""
        self.store = workspace.open_store() if enabled else None
        self.writer = None
        self.bar = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter
            from tqdm import tqdm

            self.writer = SummaryWriter(str(workspace.runs / run_name))
            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                            desc=f"pretrain {run_name}")

    def metrics(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        if self.run_id is not None:
            self.store.log_metrics(self.run_id, step, values)

    def tick(self, step: int, total: int, message: str, postfix: dict) -> None:
        if not self.enabled:
            return
        if self.bar.total != total:
            self.bar.total = total
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix(postfix, refresh=False)
        if self.progress:
            self.progress(step, total, message)

    def cancel_requested(self) -> bool:
        return bool(self.enabled and self.run_id is not None
                    and self.store.cancel_requested(self.run_id))

    def save_checkpoint(self, state: dict) -> Path:
        """Write `checkpoint_{epoch:04d}.pth.tar`, point the store row at it, and only then drop
        the run's previous one: at every moment the store names a checkpoint that exists."""
        path = save_checkpoint(self.checkpoint_dir / f"checkpoint_{state['epoch']:04d}.pth.tar",
                               state)
        previous = self.last_checkpoint
        self.store.update_run(self.run_id, checkpoint=str(path))
        self.last_checkpoint = path
        if previous and previous != path and previous.parent == self.checkpoint_dir:
            previous.unlink(missing_ok=True)
        return path

    def finish(self, status: str, summary: dict, error: str | None = None) -> None:
        """Mark the store row ended, with the last checkpoint written."""
        if self.enabled:
            self.store.finish_run(self.run_id, status, error=error, summary=summary,
                                  checkpoint=str(self.last_checkpoint)
                                  if self.last_checkpoint else None)

    def close(self) -> None:
        if self.enabled:
            self.bar.close()
            self.writer.close()
            self.store.close()
