"""Checkpoint files: a failed write leaves the previous file as it was, a run's store row always
names a checkpoint that exists, and files being written are never offered as checkpoints."""
from __future__ import annotations

import pytest
import torch

from ffclr.model import checkpoint as checkpoint_module
from ffclr.model.checkpoint import load_checkpoint, save_checkpoint
from ffclr.workspace import Workspace


def _state(value: float) -> dict:
    return {"epoch": 1, "arch": "resnet18", "state_dict": {"w": torch.full((4,), value)}}


def test_a_write_that_fails_midway_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "run" / "checkpoint_0001.pth.tar", _state(1.0))
    before = path.read_bytes()

    def torn_save(state, handle):
        handle.write(b"PK half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", torn_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _state(2.0))
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_the_store_names_the_new_checkpoint_before_the_old_one_goes(tmp_path, monkeypatch):
    from ffclr.train.monitor import Recorder

    workspace = Workspace(tmp_path / "ws")
    with workspace.open_store() as store:
        run_id = store.create_run("pretrain", status="running")
    previous = save_checkpoint(workspace.checkpoints / "r" / "checkpoint_0001.pth.tar",
                               _state(1.0))
    recorder = Recorder(workspace, run_id, "r", total=2, initial=1, progress=None,
                        enabled=True, last_checkpoint=previous)
    try:
        def store_unavailable(*args, **kwargs):
            raise RuntimeError("store unavailable")

        monkeypatch.setattr(recorder.store, "update_run", store_unavailable)
        with pytest.raises(RuntimeError):
            recorder.save_checkpoint({**_state(2.0), "epoch": 2})
        assert previous.is_file()
        monkeypatch.undo()
        saved = recorder.save_checkpoint({**_state(2.0), "epoch": 2})
        assert not previous.is_file() and load_checkpoint(saved)["epoch"] == 2
        with workspace.open_store() as store:
            assert store.run(run_id)["checkpoint"] == str(saved)
    finally:
        recorder.close()


def test_files_being_written_are_not_offered_as_checkpoints(tmp_path):
    from ui.common import checkpoint_choices

    workspace = Workspace(tmp_path / "ws")
    real = save_checkpoint(workspace.checkpoints / "r" / "checkpoint_0002.pth.tar", _state(1.0))
    for orphan in (".checkpoint_0003.pth.tar.4242.tmp", "checkpoint_0003.pth.tar.tmp"):
        (real.parent / orphan).write_bytes(b"partial")
    assert [path for _, path in checkpoint_choices(workspace)] == [str(real.resolve())]
