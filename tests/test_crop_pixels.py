"""The crop pixel cache: one decode per crop file, every split cached, direct decode elsewhere."""
import os

import numpy as np
import pytest
from PIL import Image

import ffclr.data.crop_pixels as cp
from eval_helpers import write_checkpoint, write_folder
from ffclr.data.coco_import import import_export
from ffclr.data.cropset import load_crop_set, load_dataset_split
from ffclr.eval.embedding import embed_crop_set, embed_images
from ffclr.train.data import from_crop_set

SIZE = 16


@pytest.fixture
def demo(demo_export, workspace):
    import_export(demo_export, "demo", workspace)
    return workspace


@pytest.fixture
def decoded(monkeypatch):
    """The paths the decoder is asked for, call by call."""
    calls = []
    real = cp._decode_one

    def counting(image, image_size):
        calls.append(os.fspath(image))
        return real(image, image_size)

    monkeypatch.setattr(cp, "_decode_one", counting)
    return calls


def cache_files(workspace):
    (folder,) = (workspace.cache / "crops").iterdir()
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_first_request_caches_every_split_and_the_next_decodes_nothing(demo, decoded):
    everything = load_dataset_split("demo", None, demo)
    train = load_dataset_split("demo", "train", demo)
    first = cp.crop_pixels(train, SIZE, demo)
    assert sorted(decoded) == sorted(str(p) for p in everything.paths)
    assert first.cached and first.kept == list(range(len(train))) and not first.errors
    assert set(cache_files(demo)) == {f"{SIZE}.npy", f"{SIZE}.index.npz"}
    decoded.clear()
    for split in ("train", "valid", "test"):
        crops = load_dataset_split("demo", split, demo)
        pixels = cp.crop_pixels(crops, SIZE, demo)
        direct, kept, errors = cp.decode_images(crops.paths, SIZE)
        assert pixels.cached and kept == pixels.kept and not errors
        assert np.array_equal(pixels.read(), direct)
        assert np.array_equal(pixels.read(3, 7), direct[3:7])
    assert sorted(decoded) == sorted(str(p) for p in everything.paths)
    assert isinstance(np.load(demo.cache / "crops" / "1" / f"{SIZE}.npy", mmap_mode="r"),
                      np.memmap)


def test_a_changed_and_a_new_crop_are_the_only_ones_decoded(demo, decoded):
    cp.crop_pixels(load_dataset_split("demo", "train", demo), SIZE, demo)
    crops = load_dataset_split("demo", "test", demo)
    changed = crops.paths[1]
    Image.new("RGB", (10, 6), (200, 10, 10)).save(changed)
    with demo.open_store() as store:
        dataset_id = store.dataset("demo")["id"]
        rows = [{c: r[c] for c in store.CROP_COLUMNS} for r in store.crops(dataset_id, "test")]
        new = {**rows[0], "annotation_id": 10_000, "path": "test/new_crop.png"}
        Image.new("RGB", (7, 12), (10, 200, 10)).save(crops.paths[0].parents[1] / "new_crop.png")
        assert store.sync_crops(dataset_id, "test", rows + [new])["added"] == 1
    decoded.clear()
    crops = load_dataset_split("demo", "test", demo)
    pixels = cp.crop_pixels(crops, SIZE, demo)
    new_path = crops.paths[0].parents[1] / "new_crop.png"
    assert sorted(decoded) == sorted([str(changed), str(new_path)])
    assert np.array_equal(pixels.read(), cp.decode_images(crops.paths, SIZE)[0])
    assert pixels.read()[1, 8, 8].tolist() == [200, 10, 10]


def test_an_unreadable_crop_is_skipped_reported_and_not_decoded_again(demo, decoded, capsys):
    crops = load_dataset_split("demo", "valid", demo)
    crops.paths[2].write_bytes(b"not a png")
    data = from_crop_set(crops, SIZE, 2, "valid", demo)
    warning = capsys.readouterr().err
    assert warning.count("warning: skipped") == 1 and str(crops.paths[2]) in warning
    assert len(data.images) == len(crops) - 1
    assert data.labels.tolist() == np.delete(crops.labels, 2).tolist()
    decoded.clear()
    again = cp.crop_pixels(crops, SIZE, demo)
    assert not decoded and again.cached
    assert 2 not in again.kept and len(again.kept) == len(crops) - 1
    assert list(again.errors) == [2] and "not a readable image" in again.errors[2]
    direct = cp.decode_images(crops.paths, SIZE)[0]
    assert np.array_equal(data.images.permute(0, 2, 3, 1).numpy(), direct)


def test_a_build_that_fails_leaves_the_previous_cache_as_it_was(demo, monkeypatch):
    crops = load_dataset_split("demo", "train", demo)
    before = cp.crop_pixels(crops, SIZE, demo).read()
    files = cache_files(demo)
    Image.new("RGB", (9, 9), (0, 0, 250)).save(crops.paths[0])
    monkeypatch.setattr(cp, "_decode_one", lambda image, size: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        cp.crop_pixels(crops, SIZE, demo)
    assert cache_files(demo) == files
    monkeypatch.undo()
    again = cp.crop_pixels(crops, SIZE, demo).read()
    assert np.array_equal(again[1:], before[1:]) and again[0, 4, 4].tolist() == [0, 0, 250]


def test_a_cache_that_cannot_be_written_falls_back_to_decoding(demo, monkeypatch, capsys):
    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cp.PixelCache, "_write_pixels", full)
    crops = load_dataset_split("demo", "valid", demo)
    pixels = cp.crop_pixels(crops, SIZE, demo)
    assert not pixels.cached
    assert np.array_equal(pixels.read(), cp.decode_images(crops.paths, SIZE)[0])
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith("not written (No space left on device); decoding directly")
    assert not list((demo.cache / "crops" / "1").iterdir())


def test_an_index_is_never_read_with_another_build_s_pixels(demo, decoded):
    crops = load_dataset_split("demo", "train", demo)
    cp.crop_pixels(crops, SIZE, demo)
    folder = demo.cache / "crops" / "1"
    old = (folder / f"{SIZE}.npy").read_bytes()
    Image.new("RGB", (9, 9), (0, 0, 250)).save(crops.paths[0])
    cp.crop_pixels(crops, SIZE, demo)
    (folder / "old.npy").write_bytes(old)
    os.replace(folder / "old.npy", folder / f"{SIZE}.npy")
    decoded.clear()
    pixels = cp.crop_pixels(crops, SIZE, demo)
    assert len(decoded) == len(load_dataset_split("demo", None, demo))
    assert pixels.read()[0, 4, 4].tolist() == [0, 0, 250]


def test_an_image_folder_is_decoded_directly_and_nothing_cached(tmp_path, workspace, decoded):
    crops = load_crop_set(write_folder(tmp_path / "crops", {"red": 3, "blue": 2}), workspace)
    pixels = cp.crop_pixels(crops, SIZE, workspace)
    assert not pixels.cached and len(decoded) == 5
    assert np.array_equal(pixels.read(), cp.decode_images(crops.paths, SIZE)[0])
    data = from_crop_set(crops, SIZE, 2, "folder", workspace)
    assert data.images.shape == (5, 3, SIZE, SIZE) and data.labels.tolist() == [0, 0, 1, 1, 1]
    assert not (workspace.cache / "crops").exists()


def test_embedding_a_dataset_reads_the_cache_in_batches(demo, decoded, tmp_path):
    from ffclr.model.checkpoint import load_encoder

    checkpoint = write_checkpoint(tmp_path / "c.pth.tar", image_size=SIZE)
    encoder = load_encoder(checkpoint)
    cp.crop_pixels(load_dataset_split("demo", "train", demo), SIZE, demo)
    crops = load_dataset_split("demo", "valid", demo)
    decoded.clear()
    embeddings = embed_crop_set(crops, checkpoint, demo, encoder, batch_size=4)
    assert not decoded and not embeddings.cached
    assert np.allclose(embeddings.features, embed_images(crops.paths, encoder), atol=1e-5)
