"""Damaged `.npz` files: an artifact (probe, detector) is refused in one line naming the file;
a cache (embeddings, UMAP layout) is recomputed and rewritten."""
from __future__ import annotations

import numpy as np
import pytest

from eval_helpers import clusters, write_checkpoint, write_folder
from ffclr.errors import FfclrError


def _damaged(path, how: str) -> None:
    if how == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


@pytest.fixture
def probe_file(tmp_path):
    from ffclr.eval.probe import fit_probe

    features, labels = clusters([6, 6, 6])
    return fit_probe(features, labels, ["a", "b", "c"]).save(tmp_path / "probe")


def test_a_probe_is_found_by_the_name_it_was_saved_under(probe_file, tmp_path):
    from ffclr.eval.probe import Probe

    assert probe_file == tmp_path / "probe.npz"
    assert Probe.load(tmp_path / "probe").class_names == ["a", "b", "c"]


@pytest.mark.parametrize("how", ["empty", "truncated"])
def test_a_damaged_probe_is_a_one_line_error(probe_file, how):
    from ffclr.eval.probe import Probe

    _damaged(probe_file, how)
    with pytest.raises(FfclrError, match="probe.npz: not a probe saved by ffclr") as error:
        Probe.load(probe_file)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("how", ["empty", "truncated"])
def test_a_damaged_detector_is_a_one_line_error(probe_file, tmp_path, how):
    from ffclr.detection import load_detector

    detector = tmp_path / "detector.npz"
    detector.write_bytes(probe_file.read_bytes())
    _damaged(detector, how)
    with pytest.raises(FfclrError, match="detector.npz: not a detector saved by ffclr") as error:
        load_detector(detector)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("how", ["empty", "truncated"])
def test_a_damaged_embedding_cache_is_recomputed(tmp_path, how):
    from ffclr.data.cropset import load_crop_set
    from ffclr.eval.embedding import embed_crop_set
    from ffclr.workspace import Workspace

    workspace = Workspace(tmp_path / "ws")
    checkpoint = write_checkpoint(tmp_path / "ckpt.pth.tar")
    crops = load_crop_set(write_folder(tmp_path / "crops", {"red": 2, "blue": 1}), workspace)
    first = embed_crop_set(crops, checkpoint, workspace)
    _damaged(first.cache_file, how)
    again = embed_crop_set(crops, checkpoint, workspace)
    assert not again.cached and np.allclose(again.features, first.features, atol=1e-5)
    assert embed_crop_set(crops, checkpoint, workspace).cached
    # three crops: the layout is computed without UMAP itself, so the test stays fast
    layout_file = again.cache_file.with_suffix(".umap.npy")
    layout_file.write_bytes(b"\x93NUMPY truncated")
    assert again.umap(workspace).shape == (len(crops), 2)
    assert np.load(layout_file).shape == (len(crops), 2)
