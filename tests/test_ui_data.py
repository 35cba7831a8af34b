"""Data tab handlers: demo data, import from zip/folder, refusals, overview and gallery."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ffclr.errors import FfclrError
from ui.tabs import data


def test_load_demo_data_imports_synthetic_export_into_workspace(workspace):
    seen = []
    result = data.load_demo_data(workspace, progress=lambda d, t, m: seen.append((d, t)))
    assert result.crops > 0 and not result.unchanged
    assert data.demo_export_dir(workspace).is_dir()
    assert seen and seen[-1][0] == seen[-1][1]
    summary, rows = data.dataset_overview(workspace, "demo")
    assert f"{result.crops} crops" in summary
    assert sum(r[-1] for r in rows) == result.crops
    headers = data.overview_headers(workspace, "demo")
    assert headers[:2] == ["index", "class"] and headers[-1] == "total"
    markdown = data.import_summary_markdown(result)
    assert "train:" in markdown and "crops" in markdown
    again = data.load_demo_data(workspace)
    assert again.unchanged


def test_import_zip_upload_and_folder(workspace, demo_export, tmp_path):
    archive = shutil.make_archive(str(tmp_path / "export"), "zip", demo_export)
    result = data.import_dataset(workspace, archive, "", "zipped")
    assert result.crops > 0
    kept = workspace.root / "exports" / "zipped.zip"
    with workspace.open_store() as store:
        assert store.dataset("zipped")["source"] == str(kept.resolve())
    assert kept.read_bytes() == Path(archive).read_bytes()
    from PIL import Image

    from ui.sources import crop_in_context
    with workspace.open_store() as store:
        dataset = store.dataset("zipped")
        crop = store.crops(dataset["id"], "valid")[0]
    drawn = crop_in_context(dataset, crop)
    source = Image.open(demo_export / "valid" / crop["source_image"])
    assert drawn is not None and drawn.size == source.size
    result = data.import_dataset(workspace, None, str(demo_export), "folder")
    assert result.crops > 0
    assert {"zipped", "folder"} <= set(data.dataset_choices(workspace))
    classes = data.class_choices(workspace, "folder")
    gallery = data.class_gallery(workspace, "folder", classes[0][1])
    assert gallery and all(Path(path).is_file() for path, _ in gallery)
    assert all(caption.split(" · ")[0] in ("train", "valid", "test") for _, caption in gallery)


def test_import_refuses_bad_uploads_with_a_reason(workspace, tmp_path):
    text = tmp_path / "export.zip"
    text.write_text("not a zip at all")
    with pytest.raises(FfclrError, match="not a zip archive"):
        data.import_dataset(workspace, str(text), "", "x")
    with pytest.raises(FfclrError, match="no such file"):
        data.import_dataset(workspace, None, str(tmp_path / "missing"), "x")
    with pytest.raises(FfclrError, match="dataset name"):
        data.import_dataset(workspace, None, str(tmp_path), "../evil")
    with pytest.raises(FfclrError, match="drop an export"):
        data.import_dataset(workspace, None, "", "x")
    with pytest.raises(FfclrError, match="not a Roboflow COCO export"):
        data.import_dataset(workspace, None, str(tmp_path), "x")


def test_the_import_endpoint_asks_before_replacing_and_unticks_replace(workspace, demo_export,
                                                                       tmp_path):
    from gradio_client import Client

    from ui.serve import start_app

    changed = tmp_path / "changed"
    shutil.copytree(demo_export, changed)
    annotations = changed / "train" / "_annotations.coco.json"
    coco = json.loads(annotations.read_text())
    for ann in coco["annotations"]:
        ann["bbox"][2] += 1
    annotations.write_text(json.dumps(coco))
    data.import_dataset(workspace, None, str(demo_export), "d")
    app, url = start_app(workspace)
    try:
        client = Client(url, verbose=False)
        asked = client.predict(None, str(changed), "d", 0.05, False, api_name="/import_export")
        assert "would change" in str(asked[0]) and "Replace the existing dataset" in str(asked[0])
        with workspace.open_store() as store:
            assert store.dataset("d")["source"] == str(demo_export.resolve())
        done = client.predict(None, str(changed), "d", 0.05, True, api_name="/import_export")
        assert "train: " in str(done[0]).replace("\\", "") and "updated" in str(done[0])
        assert done[-1] is False
        with workspace.open_store() as store:
            assert store.dataset("d")["source"] == str(changed.resolve())
    finally:
        app.close()


def test_split_filter_follows_the_dataset_and_says_when_it_matches_nothing(workspace,
                                                                           demo_export, tmp_path):
    """A filter on `valid` left over from another dataset used to empty a train-only
    dataset's gallery without a word; the blank choice had no label."""
    from ui.build import build_app
    from ui_wiring import call, component

    train_only = tmp_path / "train_only"
    shutil.copytree(demo_export / "train", train_only / "train")
    data.import_dataset(workspace, None, str(demo_export), "full")
    data.import_dataset(workspace, None, str(train_only), "trainonly")
    demo = build_app(workspace)
    assert component(demo, "data-split").choices == [(data.ALL_SPLITS, "")]
    full = call(demo, "data-dataset", "change", "full")
    assert full["data-split"]["choices"] == [(data.ALL_SPLITS, ""), ("train", "train"),
                                             ("valid", "valid"), ("test", "test")]
    first = full["data-class"]["value"]
    valid = call(demo, "data-split", "change", "full", first, "valid")
    assert valid["data-gallery"] and "in split valid" in valid["data-gallery-note"]
    shown = call(demo, "data-dataset", "change", "trainonly")
    assert shown["data-split"]["value"] == ""
    assert shown["data-split"]["choices"] == [(data.ALL_SPLITS, ""), ("train", "train")]
    assert shown["data-gallery"] and shown["data-gallery-note"].startswith("Showing")
    stale = call(demo, "data-split", "change", "trainonly", shown["data-class"]["value"],
                 "valid")
    assert stale["data-gallery"] == []
    assert stale["data-gallery-note"].startswith("No crops of class")
    assert "crops in train" in stale["data-gallery-note"]


def test_gallery_line_counts_the_crops_beyond_the_limit(workspace, demo_export):
    data.import_dataset(workspace, None, str(demo_export), "d")
    with workspace.open_store() as store:
        dataset = store.dataset("d")
        labels = [c["label"] for c in store.crops(dataset["id"])]
    common = max(set(labels), key=labels.count)
    items, note = data.gallery_view(workspace, "d", common, limit=2)
    assert len(items) == 2 and f"crops 1–2 of {labels.count(common)} of class" in note


def _paged_dataset(workspace, demo_export) -> tuple[int, list[dict]]:
    """The demo export as dataset `d`, its most common class with one crop relabelled into it
    and one out of it; returns that class and its crops (id order) from every crop's label."""
    data.import_dataset(workspace, None, str(demo_export), "d")
    with workspace.open_store() as store:
        dataset_id = store.dataset("d")["id"]
        crops = store.crops(dataset_id)
        labels = [c["label"] for c in crops]
        common = max(set(labels), key=labels.count)
        store.relabel(next(c["id"] for c in crops if c["label"] != common), common)
        store.relabel(next(c["id"] for c in crops if c["label"] == common), (common + 1) % 3)
        chosen = [c for c in store.crops(dataset_id) if c["label"] == common]
    return common, chosen


def test_the_gallery_pages_through_a_class_in_id_order(workspace, demo_export):
    common, chosen = _paged_dataset(workspace, demo_export)
    captions = [f"{c['split']} · #{c['id']}" for c in chosen]
    pages = -(-len(chosen) // 3)
    assert pages >= 3
    first = data.gallery_page(workspace, "d", common, limit=3)
    assert [caption for _, caption in first.items] == captions[:3]
    assert (first.page, first.pages) == (1, pages)
    assert first.note.startswith(f"Showing crops 1–3 of {len(chosen)} of class ")
    assert first.note.endswith(f"(page 1 of {pages}).")
    second = data.gallery_page(workspace, "d", common, page=2, limit=3)
    assert [caption for _, caption in second.items] == captions[3:6]
    assert f"crops 4–6 of {len(chosen)}" in second.note
    last = data.gallery_page(workspace, "d", common, page=pages, limit=3)
    assert [caption for _, caption in last.items] == captions[3 * (pages - 1):]
    shown = (f"crop {len(chosen)}" if len(chosen) % 3 == 1 else
             f"crops {3 * pages - 2}–{len(chosen)}")
    assert f"Showing {shown} of {len(chosen)} of class" in last.note
    for past in (pages + 1, 10 ** 9):
        assert data.gallery_page(workspace, "d", common, page=past, limit=3) == last
    for before in (0, -4, None, "", "two"):
        assert data.gallery_page(workspace, "d", common, page=before, limit=3) == first
    whole = data.gallery_page(workspace, "d", common, limit=len(chosen))
    assert whole.pages == 1 and len(whole.items) == len(chosen)
    assert whole.note.startswith(f"Showing {len(chosen)} crops of class ")
    train = [c for c in chosen if c["split"] == "train"]
    in_train = data.gallery_page(workspace, "d", common, "train", page=2, limit=2)
    assert [caption for _, caption in in_train.items] == [
        f"train · #{c['id']}" for c in train[2:4]]
    assert f"of {len(train)} of class" in in_train.note and "in split train" in in_train.note


def test_the_page_buttons_and_number_turn_the_gallery_pages(workspace, demo_export,
                                                           monkeypatch):
    from ui.build import build_app
    from ui_wiring import call

    common, chosen = _paged_dataset(workspace, demo_export)
    monkeypatch.setattr(data, "GALLERY_LIMIT", 4)
    pages = -(-len(chosen) // 4)
    demo = build_app(workspace)
    opened = call(demo, "data-dataset", "change", "d")
    shown = call(demo, "data-class", "change", "d", common, "")
    assert shown["data-page"]["value"] == 1 and shown["data-page"]["visible"]
    assert shown["data-prev"]["interactive"] is False and shown["data-next"]["interactive"]
    assert [c for _, c in shown["data-gallery"]] == [f"{c['split']} · #{c['id']}"
                                                     for c in chosen[:4]]
    after = call(demo, "data-next", "click", "d", common, "", 1)
    assert after["data-page"]["value"] == 2 and after["data-prev"]["interactive"]
    assert [c for _, c in after["data-gallery"]] == [f"{c['split']} · #{c['id']}"
                                                     for c in chosen[4:8]]
    back = call(demo, "data-prev", "click", "d", common, "", 2)
    assert back["data-gallery"] == shown["data-gallery"]
    beyond = call(demo, "data-page", "submit", "d", common, "", pages + 5)
    assert beyond["data-page"]["value"] == pages and beyond["data-next"]["interactive"] is False
    assert call(demo, "data-next", "click", "d", common, "", pages) == beyond
    assert f"(page {pages} of {pages})" in beyond["data-gallery-note"]
    assert opened["data-page"]["value"] == 1
    monkeypatch.setattr(data, "GALLERY_LIMIT", len(chosen))
    single = call(demo, "data-class", "change", "d", common, "")
    assert single["data-page"]["visible"] is False and single["data-next"]["visible"] is False
    assert len(single["data-gallery"]) == len(chosen)


def test_the_overview_counts_each_crop_under_its_latest_label(workspace, demo_export):
    _paged_dataset(workspace, demo_export)
    with workspace.open_store() as store:
        dataset = store.dataset("d")
        crops = store.crops(dataset["id"])
        classes = store.classes(dataset["id"])
    summary, rows = data.dataset_overview(workspace, "d")
    splits = data.ordered_splits(c["split"] for c in crops)
    assert rows == [[cls["class_index"], cls["name"],
                     *[sum(c["label"] == cls["class_index"] and c["split"] == split
                           for c in crops) for split in splits],
                     sum(c["label"] == cls["class_index"] for c in crops)] for cls in classes]
    assert f"{len(crops)} crops" in summary and "2 label edits" in summary
