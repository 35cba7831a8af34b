"""Hostile exports and failed imports never change or lose a dataset or its label edits."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import pytest

import hostile_exports as hostile
from ffclr.cli import main
from ffclr.data import coco_import, export_source
from ffclr.data.coco_import import UpdateNeeded, import_export
from ffclr.data.safe_paths import MAX_NAME_BYTES
from ffclr.errors import FfclrError
from ui.tabs import data


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def snapshot(workspace, name: str) -> tuple:
    """Everything a dataset is: its files' bytes, its store rows, classes and label edits."""
    with workspace.open_store() as store:
        dataset = store.dataset(name)
        rows = (dataset, store.classes(dataset["id"]), store.crops(dataset["id"]),
                store.label_edits(dataset_id=dataset["id"]))
    return tree(workspace.dataset_dir(name)), rows


def scratch_folders(workspace) -> list[str]:
    return [p.name for p in workspace.datasets.iterdir() if p.name.startswith(".")]


def fail_on_call(monkeypatch, module, name: str, call: int) -> None:
    """`module.name` raises OSError on its `call`-th call."""
    original, calls = getattr(module, name), []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise OSError("disk pulled out")
        return original(*args, **kwargs)
    monkeypatch.setattr(module, name, failing)


@pytest.fixture
def imported(demo_export, workspace):
    import_export(demo_export, "d", workspace)
    return workspace


def first_crop(workspace, split="train", name="d") -> dict:
    with workspace.open_store() as store:
        return store.crops(store.dataset(name)["id"], split)[0]


# 4. a failed re-import leaves the previous dataset byte-identical


@pytest.mark.parametrize("where, call", [("read_rgb", 4), ("png_bytes", 7),
                                         ("crop_split", 2)])
def test_a_failed_reimport_leaves_the_dataset_byte_identical(imported, demo_export, tmp_path,
                                                             monkeypatch, where, call):
    with imported.open_store() as store:
        store.relabel(first_crop(imported)["id"], 3)
    before = snapshot(imported, "d")
    changed = hostile.shifted_boxes(demo_export, tmp_path / "changed")
    fail_on_call(monkeypatch, coco_import, where, call)
    with pytest.raises(OSError, match="disk pulled out"):
        import_export(changed, "d", imported, update=True)
    assert snapshot(imported, "d") == before
    assert scratch_folders(imported) == []
    monkeypatch.undo()
    assert import_export(demo_export, "d", imported).unchanged


def test_a_failure_while_swapping_in_rolls_back_files_and_rows(imported, demo_export, tmp_path,
                                                               monkeypatch):
    before = snapshot(imported, "d")
    changed = hostile.shifted_boxes(demo_export, tmp_path / "changed")
    swap = coco_import._FolderSwap.swap

    def swap_then_fail(self):
        swap(self)
        raise OSError("power cut")
    monkeypatch.setattr(coco_import._FolderSwap, "swap", swap_then_fail)
    with pytest.raises(OSError, match="power cut"):
        import_export(changed, "d", imported, update=True)
    assert snapshot(imported, "d") == before
    assert scratch_folders(imported) == []


def test_stale_staging_folders_of_a_killed_import_are_removed(imported, demo_export, tmp_path):
    dead = 2**22 + 12345  # above the default pid_max: no process has it
    for prefix in (coco_import.STAGING_PREFIX, coco_import.REPLACED_PREFIX):
        stale = imported.datasets / f"{prefix}{dead}-d-0123abcd" / "train"
        stale.mkdir(parents=True)
        (stale / "half.png").write_bytes(b"half written")
    mine = imported.datasets / f"{coco_import.STAGING_PREFIX}{os.getpid()}-d-live0000"
    mine.mkdir()
    import_export(demo_export, "d", imported)
    assert scratch_folders(imported) == [mine.name]


# 3. importing under an existing name says what would change and asks


def test_a_changed_export_needs_update_and_changes_nothing_without_it(imported, demo_export,
                                                                      tmp_path, capsys):
    before = snapshot(imported, "d")
    with imported.open_store() as store:
        runs_before = store.runs()
    changed = hostile.shifted_boxes(demo_export, tmp_path / "changed")
    shutil.rmtree(changed / "test")
    with pytest.raises(UpdateNeeded) as refused:
        import_export(changed, "d", imported)
    message = str(refused.value)
    assert "train: " in message and "changed" in message and "splits removed: test" in message
    assert snapshot(imported, "d") == before
    with imported.open_store() as store:
        assert store.runs() == runs_before  # a question, not a failed run
    assert main(["import", str(changed), "--name", "d"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert err.startswith("error: ") and "--update" in err and "would change" in err
    assert snapshot(imported, "d") == before
    assert main(["import", str(changed), "--name", "d", "--update"]) == 0
    out = capsys.readouterr().out
    assert "removed splits no longer in the export: test" in out
    with imported.open_store() as store:
        assert store.splits(store.dataset("d")["id"]) == ["train", "valid"]
    assert main(["import", str(changed), "--name", "d"]) == 0  # unchanged: no --update needed
    assert "nothing changed" in capsys.readouterr().out


def test_the_app_asks_before_replacing_a_dataset(imported, demo_export, tmp_path):
    before = snapshot(imported, "d")
    changed = hostile.shifted_boxes(demo_export, tmp_path / "changed")
    with pytest.raises(UpdateNeeded, match="Replace the existing dataset"):
        data.import_dataset(imported, None, str(changed), "d")
    assert snapshot(imported, "d") == before
    result = data.import_dataset(imported, None, str(changed), "d", replace=True)
    assert result.splits["train"].changes["updated"] > 0


# 5. a failed upload keeps the export the dataset was imported from


def _zip(folder: Path, archive: Path) -> str:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return str(archive)


def test_a_failed_upload_keeps_the_kept_export(workspace, demo_export, tmp_path):
    data.import_dataset(workspace, _zip(demo_export, tmp_path / "first.zip"), "", "z")
    kept = workspace.root / "exports" / "z.zip"
    original = kept.read_bytes()
    before = snapshot(workspace, "z")
    not_an_export = tmp_path / "junk.zip"
    with zipfile.ZipFile(not_an_export, "w") as zf:
        zf.writestr("notes.txt", "no splits here")
    with pytest.raises(FfclrError, match="not a Roboflow COCO export"):
        data.import_dataset(workspace, str(not_an_export), "", "z")
    changed = _zip(hostile.shifted_boxes(demo_export, tmp_path / "changed"), tmp_path / "c.zip")
    with pytest.raises(UpdateNeeded):
        data.import_dataset(workspace, changed, "", "z")
    assert kept.read_bytes() == original and snapshot(workspace, "z") == before
    assert [p.name for p in kept.parent.iterdir()] == ["z.zip"]
    data.import_dataset(workspace, changed, "", "z", replace=True)
    assert kept.read_bytes() == Path(changed).read_bytes()
    assert main(["export-coco", str(tmp_path / "out"), "--dataset", "z"]) == 0


def test_export_coco_refuses_a_source_that_changed(workspace, demo_export, tmp_path, capsys):
    source = hostile.copy_export(demo_export, tmp_path / "source")
    import_export(source, "s", workspace)
    hostile.edit_json(source, "train", lambda d: d["annotations"][0].update(category_id=2))
    assert main(["export-coco", str(tmp_path / "out"), "--dataset", "s"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "changed since dataset 's' was imported" in err
    assert not (tmp_path / "out").exists()


# 6. label edits stay with the symbol they were made on


def test_label_edits_do_not_follow_a_renumbered_annotation_id(imported, demo_export, tmp_path,
                                                              capsys):
    crop = first_crop(imported)
    with imported.open_store() as store:
        classes = store.classes(store.dataset("d")["id"])
    new_class = next(c["class_index"] for c in classes if c["class_index"] != crop["label"])
    with imported.open_store() as store:
        store.relabel(crop["id"], new_class)
    renumbered = hostile.renumbered(demo_export, tmp_path / "renumbered")
    with pytest.raises(UpdateNeeded, match="1 label edits set aside"):
        import_export(renumbered, "d", imported)
    result = import_export(renumbered, "d", imported, update=True)
    assert result.edits_set_aside == 1
    assert any("1 label edits set aside" in line for line in result.lines())
    with imported.open_store() as store:
        dataset_id = store.dataset("d")["id"]
        now = next(c for c in store.crops(dataset_id, "train")
                   if c["annotation_id"] == crop["annotation_id"])
        aside = store.set_aside_edits(dataset_id)
        assert store.label_edits(dataset_id=dataset_id) == []
    assert now["bbox"] != crop["bbox"] and now["label"] == now["imported_class_index"]
    assert [(e["source_image"], e["bbox"], e["new_class_index"]) for e in aside] == [
        (crop["source_image"], crop["bbox"], new_class)]


# 8. links inside an export folder are not followed out of it


def test_images_linked_outside_the_export_are_skipped(demo_export, tmp_path, workspace):
    outside = tmp_path / "private.jpg"
    export = tmp_path / "linked"
    name = hostile.image_linked_outside(demo_export, export, outside)
    result = import_export(export, "l", workspace)
    train = result.splits["train"]
    assert train.skipped_files[coco_import.OUTSIDE_EXPORT] == [name]
    assert result.crops > 0
    outside.write_bytes(b"changed meanwhile")  # not part of the fingerprint
    assert import_export(export, "l", workspace).unchanged
    assert main(["export-coco", str(tmp_path / "out"), "--dataset", "l"]) == 0
    assert not (tmp_path / "out" / "train" / name).exists()


def test_an_annotation_file_linked_outside_is_not_read(demo_export, tmp_path, workspace):
    export = hostile.annotations_linked_outside(demo_export, tmp_path / "linked",
                                                tmp_path / "elsewhere.json")
    result = import_export(export, "a", workspace)
    assert "outside the export" in result.splits["valid"].error
    assert result.splits["train"].crops > 0


def test_links_inside_the_export_are_read(demo_export, tmp_path, workspace):
    export = hostile.copy_export(demo_export, tmp_path / "inner")
    first = json.loads((export / "train" / hostile.ANNOTATIONS).read_text())["images"][0]
    image = export / "train" / first["file_name"]
    (export / "moved.jpg").write_bytes(image.read_bytes())
    image.unlink()
    image.symlink_to(export / "moved.jpg")
    result = import_export(export, "i", workspace)
    assert coco_import.OUTSIDE_EXPORT not in result.splits["train"].skipped


# 9. names and sizes


def test_a_non_utf8_file_name_in_the_export_does_not_stop_the_import(demo_export, tmp_path,
                                                                    workspace, capsys):
    export = hostile.non_utf8_file(demo_export, tmp_path / "bytes")
    assert main(["import", str(export), "--name", "b"]) == 0
    capsys.readouterr()
    named = tmp_path / "named"
    file_name = hostile.surrogate_file_name(demo_export, named)
    result = import_export(named, "n", workspace)
    assert result.splits["train"].skipped[coco_import.NOT_UTF8_NAME] == 1
    assert main(["import", str(named), "--name", "n2"]) == 0
    assert "not valid UTF-8" in capsys.readouterr().out
    assert file_name.encode("utf-8", "surrogateescape") == b"image-\xff.jpg"


def test_long_multibyte_class_names_are_cut_in_bytes(demo_export, tmp_path, workspace):
    export = hostile.long_class_name(demo_export, tmp_path / "long")
    import_export(export, "long", workspace)
    with workspace.open_store() as store:
        classes = store.classes(store.dataset("long")["id"])
    assert classes[0]["name"] == "🔥" * 100
    assert len(classes[0]["folder"].encode()) <= MAX_NAME_BYTES
    assert (workspace.dataset_dir("long") / "train" / classes[0]["folder"]).is_dir()


def test_deeply_nested_annotations_are_a_one_line_error(demo_export, tmp_path, workspace):
    export = hostile.deeply_nested(demo_export, tmp_path / "deep")
    result = import_export(export, "deep", workspace)
    assert "valid/_annotations.coco.json: JSON nested too deeply" in result.splits["valid"].error
    assert result.splits["train"].crops > 0


def test_annotation_files_over_the_size_cap_are_refused(demo_export, tmp_path, workspace,
                                                        monkeypatch, capsys):
    sizes = {s: (demo_export / s / hostile.ANNOTATIONS).stat().st_size
             for s in ("train", "valid", "test")}
    assert sizes["train"] > max(sizes["valid"], sizes["test"])
    monkeypatch.setenv("FFCLR_MAX_ANNOTATION_BYTES", str(max(sizes["valid"], sizes["test"])))
    result = import_export(demo_export, "cap", workspace)
    assert "byte cap on annotation files" in result.splits["train"].error
    assert "FFCLR_MAX_ANNOTATION_BYTES" in result.splits["train"].error
    assert result.splits["valid"].crops > 0
    monkeypatch.setenv("FFCLR_MAX_ANNOTATION_BYTES", "lots")
    assert main(["import", str(demo_export), "--name", "cap2"]) == 1
    assert "FFCLR_MAX_ANNOTATION_BYTES" in capsys.readouterr().err


# 7. zip bombs and the extraction folder


def _zip_with(demo_export: Path, archive: Path, extra: dict[str, bytes]) -> Path:
    _zip(demo_export, archive)
    with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in extra.items():
            zf.writestr(name, content)
    return archive


def test_zip_bombs_are_refused_before_extracting(demo_export, tmp_path, workspace, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    bomb = _zip_with(demo_export, tmp_path / "bomb.zip", {"train/zeros.bin": bytes(8 * 2**20)})
    with pytest.raises(FfclrError, match=r"zeros\.bin.*ratio limit of 200 .*FFCLR_MAX_ZIP_RATIO"):
        import_export(bomb, "b", workspace)
    monkeypatch.setenv("FFCLR_MAX_ZIP_ENTRIES", "5")
    with pytest.raises(FfclrError, match=r"entries, over the limit of 5 \(\$FFCLR_MAX_ZIP_ENTRIES"):
        import_export(_zip(demo_export, tmp_path / "plain.zip"), "b", workspace)
    monkeypatch.delenv("FFCLR_MAX_ZIP_ENTRIES")
    monkeypatch.setenv("FFCLR_MAX_EXTRACT_MB", "1")
    noisy = _zip_with(demo_export, tmp_path / "noisy.zip", {"train/noise.bin": os.urandom(2**21)})
    with pytest.raises(FfclrError, match=r"over the limit of 1 MB \(\$FFCLR_MAX_EXTRACT_MB"):
        import_export(noisy, "b", workspace)
    assert list((tmp_path / "tmp").iterdir()) == []
    with workspace.open_store() as store:
        assert store.dataset("b") is None


def test_extraction_folders_are_removed_on_failure_and_after_a_kill(demo_export, tmp_path,
                                                                    workspace, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    stale = tmp_path / "tmp" / f"{export_source.EXTRACT_PREFIX}{2**22 + 99}-abc"
    (stale / "train").mkdir(parents=True)
    live = tmp_path / "tmp" / f"{export_source.EXTRACT_PREFIX}{os.getpid()}-other"
    live.mkdir()
    archive = _zip(demo_export, tmp_path / "plain.zip")
    fail_on_call(monkeypatch, shutil, "copyfileobj", 3)
    with pytest.raises(FfclrError, match="cannot extract"):
        import_export(archive, "k", workspace)
    assert sorted(p.name for p in (tmp_path / "tmp").iterdir()) == [live.name]


def test_ids_and_names_the_file_system_or_store_cannot_hold_skip_their_box(demo_export,
                                                                          tmp_path, workspace):
    export = hostile.copy_export(demo_export, tmp_path / "odd")

    def edit(d):
        d["annotations"][0]["id"] = 2**70
        d["images"][1]["file_name"] = "é" * 300 + ".jpg"
        old_id, d["images"][3]["id"] = d["images"][3]["id"], 2**70
        for ann in d["annotations"]:
            if ann["image_id"] == old_id:
                ann["image_id"] = 2**70
    data = hostile.edit_json(export, "train", edit)
    (export / "train" / "loop.jpg").symlink_to(export / "train" / "loop.jpg")
    hostile.edit_json(export, "train", lambda d: d["images"][2].update(file_name="loop.jpg"))
    result = import_export(export, "odd", workspace)
    train = result.splits["train"]
    assert train.skipped[coco_import.ID_OUT_OF_RANGE] == 1
    assert train.skipped_files[coco_import.UNREADABLE_IMAGE] == [data["images"][1]["file_name"],
                                                                "loop.jpg"]
    with workspace.open_store() as store:
        crops = store.crops(store.dataset("odd")["id"], "train")
    assert crops and None in {c["image_id"] for c in crops}  # 2**70 does not fit the store
