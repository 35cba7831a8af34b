import json

import numpy as np
import pytest

from ffclr.cli import main
from ffclr.data.coco_import import import_export
from ffclr.data.cropset import load_dataset_split


@pytest.fixture
def imported(demo_export, workspace):
    import_export(demo_export, "demo", workspace)
    return workspace


def crops_by_annotation(workspace, name):
    with workspace.open_store() as store:
        dataset = store.dataset(name)
        names = {c["class_index"]: c["name"] for c in store.classes(dataset["id"])}
        return {(c["split"], c["annotation_id"]): (c, names[c["label"]])
                for c in store.crops(dataset["id"])}


def test_splits_share_the_dataset_class_index(imported):
    train = load_dataset_split("demo", "train", imported)
    valid = load_dataset_split("demo", "valid", imported)
    assert train.class_names == valid.class_names
    for crop_set in (train, valid):
        folders = {p.parent.name for p, label in zip(crop_set.paths, crop_set.labels)
                   if crop_set.class_names[label] == crop_set.class_names[crop_set.labels[0]]}
        assert len(folders) == 1


def test_relabel_then_export_then_import_round_trip(imported, demo_export, tmp_path, capsys):
    before = crops_by_annotation(imported, "demo")
    (split, ann_id), (crop, old_name) = next(iter(before.items()))
    second_key, (second, second_name) = list(before.items())[5]
    new_name = next(n for _, n in before.values() if n != old_name)
    with imported.open_store() as store:
        classes = store.classes(store.dataset("demo")["id"])
    new_index = next(c["class_index"] for c in classes if c["name"] != second_name)

    assert main(["relabel", str(crop["id"]), new_name]) == 0
    assert main(["relabel", str(second["id"]), str(new_index)]) == 0
    assert f"{old_name} → {new_name}" in capsys.readouterr().out
    assert main(["relabel", str(crop["id"]), new_name]) == 0
    assert f"is already {new_name}: nothing recorded" in capsys.readouterr().out
    assert main(["relabel", str(crop["id"]), "no-such-class"]) == 1
    assert "not a class of this dataset" in capsys.readouterr().err
    assert main(["relabel", "999999", new_name]) == 1

    out = tmp_path / "corrected"
    assert main(["export-coco", str(out), "--dataset", "demo"]) == 0
    assert "2 category_ids corrected" in capsys.readouterr().out
    for split_dir in demo_export.iterdir():
        if not split_dir.is_dir():
            continue
        original = json.loads((split_dir / "_annotations.coco.json").read_text())
        written = json.loads((out / split_dir.name / "_annotations.coco.json").read_text())
        assert written["images"] == original["images"]
        assert written["categories"] == original["categories"]
        assert len(written["annotations"]) == len(original["annotations"])
        for image in original["images"]:
            assert (out / split_dir.name / image["file_name"]).read_bytes() == \
                (split_dir / image["file_name"]).read_bytes()

    import_export(out, "again", imported)
    after = crops_by_annotation(imported, "again")
    assert after.keys() == before.keys()
    second_new = next(c["name"] for c in classes if c["class_index"] == new_index)
    for key, (row, name) in after.items():
        expected = {(split, ann_id): new_name, second_key: second_new}.get(key, before[key][1])
        assert name == expected, key
        assert row["sha256"] == before[key][0]["sha256"]
    assert np.array_equal(load_dataset_split("again", "train", imported).labels,
                          load_dataset_split("demo", "train", imported).labels)


def test_export_refuses_a_non_empty_folder_and_a_vanished_source(imported, tmp_path, capsys):
    full = tmp_path / "full"
    full.mkdir()
    (full / "x.txt").write_text("keep me")
    assert main(["export-coco", str(full)]) == 1
    assert "not empty" in capsys.readouterr().err and (full / "x.txt").exists()
    with imported.open_store() as store:
        dataset = store.dataset("demo")
        store.upsert_dataset("demo", dataset["root"], str(tmp_path / "moved"), dataset["fingerprint"])
    assert main(["export-coco", str(tmp_path / "new")]) == 1
    assert "is gone" in capsys.readouterr().err
