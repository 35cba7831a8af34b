"""The workspace cache: files replaced as their source changes, pruned once their source is gone."""
import os
import shutil
import time

import numpy as np

from eval_helpers import write_checkpoint, write_folder
from ffclr.annotate.evidence_cache import EVIDENCE_FOLDER, EvidenceCache
from ffclr.annotate.queue import DrawingEvidence
from ffclr.cli import main
from ffclr.data.coco_import import import_export
from ffclr.data.crop_pixels import crop_pixels
from ffclr.data.cropset import load_crop_set, load_dataset_split
from ffclr.eval.embedding import embed_crop_set
from ffclr.workspace_cache import prune, usage


def _names(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_prune_removes_embeddings_of_a_deleted_checkpoint_or_dataset_only(
        tmp_path, demo_export, workspace):
    import_export(demo_export, "demo", workspace)
    kept_checkpoint = write_checkpoint(tmp_path / "kept.pth.tar")
    gone_checkpoint = write_checkpoint(tmp_path / "gone.pth.tar", seed=1)
    valid = load_dataset_split("demo", "valid", workspace)
    folder_crops = load_crop_set(write_folder(tmp_path / "crops", {"red": 2, "blue": 2}), workspace)
    kept = embed_crop_set(valid, kept_checkpoint, workspace)
    kept_folder = embed_crop_set(folder_crops, kept_checkpoint, workspace)
    gone = embed_crop_set(valid, gone_checkpoint, workspace)
    folder = workspace.cache / "embeddings"
    legacy = folder / f"{'0' * 24}.npz"
    legacy.write_bytes(b"written by an earlier version")
    writing = folder / f".{kept.key}.{os.getpid()}.tmp.npz"
    writing.write_bytes(b"being written")
    gone_checkpoint.unlink()
    gone_bytes = gone.cache_file.stat().st_size + len(b"written by an earlier version")

    report = prune(workspace)
    assert not gone.cache_file.exists() and not legacy.exists()
    assert kept.cache_file.is_file() and kept_folder.cache_file.is_file() and writing.exists()
    assert report.files == 3 and report.bytes > gone_bytes
    assert embed_crop_set(valid, kept_checkpoint, workspace).cached

    old = time.time() - 2 * 3600
    os.utime(writing, (old, old))
    shutil.rmtree(tmp_path / "crops")
    prune(workspace)
    assert not writing.exists() and not kept_folder.cache_file.exists()
    assert kept.cache_file.is_file()


def test_prune_removes_decoded_crops_of_datasets_no_longer_imported(demo_export, workspace):
    import_export(demo_export, "demo", workspace)
    crop_pixels(load_dataset_split("demo", "valid", workspace), 16, workspace)
    crops = workspace.cache / "crops"
    (live,) = crops.iterdir()
    stale = crops / "9999"
    stale.mkdir()
    (stale / "16.npy").write_bytes(b"\0" * 100)
    before = {p.name: p.read_bytes() for p in live.iterdir()}

    report = prune(workspace)
    assert not stale.exists() and report.folders == ["cache/crops/9999"]
    assert {p.name: p.read_bytes() for p in live.iterdir()} == before


def _evidence(score: float) -> DrawingEvidence:
    from ffclr.detection.detector import Detection

    found = [Detection(bbox=(1.0, 2.0, 3.0, 4.0), class_index=0, class_name="x", category_id=1,
                       score=score)]
    return DrawingEvidence(found, np.array([0.5]), np.ones(4, np.float32))


def test_queue_evidence_of_a_rewritten_detector_file_is_pruned(tmp_path, workspace, detector):
    detector_file = tmp_path / "detector.npz"
    detector_file.write_bytes(b"first version")
    folder = workspace.cache / EVIDENCE_FOLDER
    first = EvidenceCache(folder, detector_file)
    first.save("a" * 64, _evidence(0.9))
    boxes = np.array([[0.0, 0.0, 5.0, 5.0]])
    first.save_point("a" * 64, boxes, np.ones(3, np.float32))
    assert np.array_equal(first.load_point("a" * 64, boxes), np.ones(3, np.float32))
    assert first.load_point("a" * 64, boxes + 1) is None
    first.save_point("a" * 64, boxes + 1, np.zeros(3, np.float32))
    assert first.load_point("a" * 64, boxes) is None, "the point of the earlier boxes is replaced"

    assert prune(workspace).files == 0
    detector_file.write_bytes(b"second version, longer")
    second = EvidenceCache(folder, detector_file)
    assert second.load("a" * 64, detector) is None
    second.save("a" * 64, _evidence(0.8))
    assert prune(workspace).files == 3
    assert _names(folder) == sorted([second.path("a" * 64).name,
                                     f"{second.owner.name}.owner.json"])
    assert second.load("a" * 64, detector).detections[0].score == 0.8


def test_cache_command_reports_usage_and_prunes(tmp_path, workspace, capsys):
    checkpoint = write_checkpoint(tmp_path / "c.pth.tar")
    crops = load_crop_set(write_folder(tmp_path / "crops", {"red": 2, "blue": 2}), workspace)
    embeddings = embed_crop_set(crops, checkpoint, workspace)
    parts = {u.folder: u for u in usage(workspace)}
    assert parts["embeddings"].files == 2
    assert parts["embeddings"].bytes >= embeddings.cache_file.stat().st_size

    assert main(["cache"]) == 0
    assert "cache/embeddings/: 2 files" in capsys.readouterr().out
    checkpoint.unlink()
    assert main(["cache", "--prune"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pruned 2 files") and "cache/embeddings/: 0 files" in out
    assert not embeddings.cache_file.exists()


def test_features_cached_before_files_named_their_source_are_adopted_not_recomputed(
        tmp_path, workspace):
    checkpoint = write_checkpoint(tmp_path / "c.pth.tar")
    crops = load_crop_set(write_folder(tmp_path / "crops", {"red": 2, "blue": 2}), workspace)
    first = embed_crop_set(crops, checkpoint, workspace)
    folder = first.cache_file.parent
    bare = folder / f"{first.key}.npz"
    first.cache_file.rename(bare)
    for owner_file in folder.glob("*.owner.json"):
        owner_file.unlink()
    other = folder / f"{'1' * 24}.npz"
    other.write_bytes(b"features of a checkpoint no file names")

    assert prune(workspace, unowned=False).files == 0 and bare.exists()
    again = embed_crop_set(crops, checkpoint, workspace)
    assert again.cached and again.cache_file == first.cache_file and not bare.exists()
    assert np.array_equal(again.features, first.features)
    assert prune(workspace).files == 1 and not other.exists()
    assert embed_crop_set(crops, checkpoint, workspace).cached
