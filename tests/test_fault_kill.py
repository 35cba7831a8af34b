"""SIGKILL at random points of training and checkpointing, again and again: every time the store
names a checkpoint that loads, the run is not left "running", and resuming continues from it to
the end of the planned run."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import torch

from ffclr.model.checkpoint import load_checkpoint
from ffclr.train.config import PretrainConfig
from ffclr.train.loop import pretrain
from ffclr.workspace import is_checkpoint_file
from test_pretrain import REPO, write_crops

KILLS = 4
EPOCHS = 20


def _start_worker(crops, workspace) -> subprocess.Popen:
    command = [sys.executable, "-m", "ffclr", "pretrain", "-data", str(crops), "--image-size", "8",
               "--small-stem", "-b", "8", "--epochs", str(EPOCHS), "--seed", "1", "--no-bf16",
               "--checkpoint-every", "1", "--log-every-n-steps", "1", "--run-name", "faulty",
               "--resume", "auto", "--workspace", str(workspace.root)]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _training_with_a_checkpoint(workspace) -> bool:
    """The worker has (re)started training and the run already has a checkpoint."""
    if not workspace.db_path.exists():
        return False
    with workspace.open_store() as store:
        runs = store.runs(kind="pretrain")
    return bool(runs and runs[0]["checkpoint"] and runs[0]["status"] == "running")


def _kill_after_training_resumed(proc, workspace, rng: random.Random) -> None:
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None and not _training_with_a_checkpoint(workspace):
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _check_state_after_kill(workspace, steps_before: int) -> int:
    with workspace.open_store() as store:
        store.mark_interrupted_runs()
        (run,) = store.runs(kind="pretrain")
    assert run["status"] == "interrupted", run["status"]
    state = load_checkpoint(run["checkpoint"])
    assert state["run_name"] == "faulty" and state["step"] >= steps_before
    folder = workspace.checkpoints / "faulty"
    assert [p.name for p in folder.iterdir() if is_checkpoint_file(p)] == \
        [os.path.basename(run["checkpoint"])]
    return int(state["step"])


def test_killed_again_and_again_a_run_resumes_to_the_end(tmp_path):
    from ffclr.workspace import Workspace

    crops = write_crops(tmp_path / "crops" / "train")
    workspace = Workspace(tmp_path / "ws")
    rng = random.Random(0)
    step = 0
    for _ in range(KILLS):
        proc = _start_worker(crops, workspace)
        _kill_after_training_resumed(proc, workspace, rng)
        step = _check_state_after_kill(workspace, step)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = pretrain(PretrainConfig(resume="auto", epochs=1), workspace)
    finally:
        torch.set_num_threads(threads)
    assert result.status == "finished" and result.run_name == "faulty"
    assert result.steps == EPOCHS * 3 and result.steps > step
    assert load_checkpoint(result.checkpoint)["step"] == EPOCHS * 3
