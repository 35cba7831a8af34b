"""Two Gloo processes (as torchrun starts them) train like one process on the same global batch."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ffclr.model.checkpoint import load_checkpoint
from tests.test_pretrain import write_crops

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(data: Path, workspace: Path, batch: int) -> list[str]:
    return [sys.executable, "-m", "ffclr", "pretrain", "-data", str(data), "--workspace",
            str(workspace), "--image-size", "8", "--small-stem", "-b", str(batch), "--epochs", "1",
            "--seed", "5", "--no-bf16", "--optimizer", "sgd", "--lr", "0.05", "--warmup", "0",
            "--n-views", "3", "--temperature", "0.5", "--run-name", "r", "--log-every-n-steps",
            "1", "--disable-cuda"]


def _loss(workspace: Path) -> float:
    from store import Store

    with Store(workspace / "ffclr.sqlite") as store:
        (run,) = store.runs(kind="pretrain")
        assert run["status"] == "finished", run["error"]
        (metric,) = store.metrics(run["id"], "loss")
        return metric["value"]


def test_two_gloo_processes_equal_one_process(tmp_path):
    data = write_crops(tmp_path / "crops", per_class=3)
    base = {**os.environ, "OMP_NUM_THREADS": "1"}
    port = str(_free_port())
    procs = [subprocess.Popen(_command(data, tmp_path / "two", 4),
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**base, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
                                   "WORLD_SIZE": "2", "RANK": str(r), "LOCAL_RANK": str(r)})
             for r in range(2)]
    from ffclr.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(_command(data, tmp_path / "one", 8)[3:]) == 0
    finally:
        torch.set_num_threads(threads)
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
    assert _loss(tmp_path / "two") == pytest.approx(_loss(tmp_path / "one"), rel=1e-4)
    one = load_checkpoint(tmp_path / "one" / "checkpoints" / "r" / "checkpoint_0001.pth.tar")
    two = load_checkpoint(tmp_path / "two" / "checkpoints" / "r" / "checkpoint_0001.pth.tar")
    assert one["step"] == two["step"] == 1
    from ffclr.model.networks import SimCLRModel

    torch.manual_seed(5)
    initial = SimCLRModel("resnet18", 128, small_stem=True).state_dict()
    moved = 0
    for key, value in one["state_dict"].items():
        if value.is_floating_point():
            other = two["state_dict"][key]
            update = value - initial[key]
            error = (other - value).norm() / (update.norm() + 1e-12)
            detail = f"{key}: max diff {(other - value).abs().max():.2e}, relative {error:.2e}"
            assert torch.allclose(value, other, atol=1e-4), detail
            assert error <= 5e-3, detail
            moved += bool(update.norm() > 1e-3)
    assert moved > 50
