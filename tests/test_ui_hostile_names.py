"""Names from data are text in every tab: an export whose class, image file and folder are named
like HTML (`<img src=x onerror=...>`) shows those names and never their markup.

Markdown and plotly outputs must hold the name escaped (`&lt;img src=x`) and never `<img`;
Dataframes, dropdowns and gallery captions render text, so they hold the name as it is.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ffclr.errors import FfclrError

HOSTILE = """<img src=x onerror="document.title='XSS'">"""
ESCAPED = "&lt;img src=x"
MISSING_IMAGE = f"{HOSTILE}-missing.jpg"
ANNOTATIONS = "_annotations.coco.json"


def most_common_category(export: Path) -> int:
    """The category id with most boxes in the train split (the majority class)."""
    coco = json.loads((export / "train" / ANNOTATIONS).read_text())
    return Counter(a["category_id"] for a in coco["annotations"]).most_common(1)[0][0]


def write_hostile_export(out: Path, images: int = 12, seed: int = 0,
                         missing_image: bool = True) -> int:
    """The demo export at `out` with its majority class named `HOSTILE` in every split, one train
    image file renamed to `HOSTILE.jpg`, and (with `missing_image`) a train box on a missing
    image named like HTML.

    Returns the hostile category's id.
    """
    from ffclr.demo.export import write_demo_export

    write_demo_export(out, images=images, seed=seed)
    category = most_common_category(out)
    for split in ("train", "valid", "test"):
        path = out / split / ANNOTATIONS
        coco = json.loads(path.read_text())
        for entry in coco["categories"]:
            if entry["id"] == category:
                entry["name"] = HOSTILE
        if split == "train":
            _rename_first_image(out / split, coco)
            if missing_image:
                _add_missing_image(coco, category)
        path.write_text(json.dumps(coco))
    return category


def _rename_first_image(folder: Path, coco: dict) -> None:
    image = coco["images"][0]
    (folder / image["file_name"]).rename(folder / f"{HOSTILE}.jpg")
    image["file_name"] = f"{HOSTILE}.jpg"


def _add_missing_image(coco: dict, category: int) -> None:
    image_id = max(i["id"] for i in coco["images"]) + 1
    coco["images"].append({"id": image_id, "file_name": MISSING_IMAGE, "width": 64,
                           "height": 64})
    coco["annotations"].append({"id": max(a["id"] for a in coco["annotations"]) + 1,
                                "image_id": image_id, "category_id": category,
                                "bbox": [1, 1, 10, 10], "area": 100, "iscrowd": 0})


def assert_text_only(markup: str) -> None:
    """`markup` (Markdown, HTML or plotly text) shows the hostile name escaped, never as HTML."""
    assert "<img" not in markup and "onerror=\"" not in markup, markup
    assert ESCAPED in markup, markup


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A workspace with the hostile export imported as `hostile` and a tiny random checkpoint."""
    import torch

    from ffclr.model.checkpoint import save_checkpoint
    from ffclr.model.networks import SimCLRModel
    from ffclr.workspace import resolve_workspace
    from ui.tabs import data

    base = tmp_path_factory.mktemp("hostile")
    export = base / HOSTILE / "export"
    write_hostile_export(export)
    workspace = resolve_workspace(base / "ws")
    result = data.import_dataset(workspace, None, str(export), "hostile")
    torch.manual_seed(0)
    model = SimCLRModel("resnet18", out_dim=32, small_stem=True)
    checkpoint = save_checkpoint(workspace.checkpoints / "tiny" / "checkpoint_0001.pth.tar",
                                 {"epoch": 1, "arch": "resnet18", "image_size": 32,
                                  "state_dict": model.state_dict()})
    return workspace, str(checkpoint), result


@pytest.fixture(scope="module")
def hostile_map(hostile):
    from test_ui_probe import one_c
    from ui.tabs import explore

    workspace, checkpoint, _ = hostile
    with pytest.MonkeyPatch.context() as patch:
        one_c(patch)
        return explore.compute_map(workspace, checkpoint, "hostile")


def hostile_class(workspace) -> int:
    with workspace.open_store() as store:
        classes = store.classes(store.dataset("hostile")["id"])
    return next(c["class_index"] for c in classes if c["name"] == HOSTILE)


def test_data_tab_shows_names_from_the_export_as_text(hostile):
    from ui.tabs import data

    workspace, _, result = hostile
    assert_text_only(data.import_summary_markdown(result))
    summary, rows = data.dataset_overview(workspace, "hostile")
    assert_text_only(summary)
    assert HOSTILE in [row[1] for row in rows]
    index = hostile_class(workspace)
    assert (HOSTILE, index) in data.class_choices(workspace, "hostile")
    captions = [caption for _, caption in data.class_gallery(workspace, "hostile", index)]
    assert captions and not any("<" in caption for caption in captions)


def test_explore_map_escapes_names_for_plotly_and_draws_the_tooltip_as_text(hostile, hostile_map):
    from ui.plot import SCATTER_JS
    from ui.tabs import explore, explore_tools

    workspace, _, _ = hostile
    spec = json.loads(explore.map_figure(workspace, hostile_map))
    plotly_texts = [trace["name"] for trace in spec["data"]]
    plotly_texts += [trace.get("hovertemplate", "") for trace in spec["data"]]
    assert not any("<img" in text for text in plotly_texts), plotly_texts
    assert any(text.startswith(ESCAPED) for text in plotly_texts)
    assert "<img" not in spec["layout"]["title"]["text"]
    captions = [explore_tools.point_caption(workspace, hostile_map, crop_id, "label")
                for crop_id in hostile_map.crop_ids]
    assert any(HOSTILE in caption for caption in captions)
    assert "innerHTML" not in SCATTER_JS and "caption.textContent = info[1]" in SCATTER_JS


def test_explore_info_and_status_show_class_and_file_names_as_text(hostile, hostile_map):
    from ui.tabs import explore

    workspace, _, _ = hostile
    index = hostile_class(workspace)
    with workspace.open_store() as store:
        crops = store.crops(store.dataset("hostile")["id"])
    in_class = next(c for c in crops if c["label"] == index)
    from_file = next(c for c in crops if c["source_image"] == f"{HOSTILE}.jpg")
    for crop in (in_class, from_file):
        assert_text_only(explore.crop_details(workspace, hostile_map, crop["id"])["info"])
    other = next(i for i in range(len(hostile_map.class_names)) if i != index)
    assert_text_only(explore.relabel(workspace, in_class["id"], other))
    assert_text_only(explore.undo(workspace, in_class["id"]))
    rows = explore.suspicious_rows(workspace, hostile_map, top=len(hostile_map.crop_ids))
    assert HOSTILE in {row[3] for row in rows}


def test_probe_headline_and_confusion_matrix_escape_class_names(hostile, monkeypatch):
    from test_ui_probe import one_c
    from ui.tabs import probe

    workspace, checkpoint, _ = hostile
    one_c(monkeypatch)
    report = probe.run_probe(workspace, checkpoint, "hostile", "train", "valid")
    assert report.metrics["baseline"]["class"] == HOSTILE
    assert_text_only(probe.headline(report))
    figure = probe.confusion_figure(report.metrics)
    assert_text_only(json.dumps(list(figure.data[0].x)))
    assert_text_only(json.dumps(list(figure.data[0].y)))
    assert HOSTILE in [row[0] for row in probe.class_rows(report.metrics)]


def test_classify_names_hostile_uploads_as_text(hostile, tmp_path):
    from ui.common import check_image_upload
    from ui.tabs import classify

    upload = tmp_path / f"{HOSTILE}.png"
    upload.write_text("not a picture")
    with pytest.raises(FfclrError) as refused:
        check_image_upload(upload)
    message = classify.detect_message({"rows": [], "drawn": [], "refused": [str(refused.value)]})
    assert_text_only(message)
    rows = classify.result_rows([{"file": upload.name, "result": None,
                                  "error": str(refused.value)}])
    assert rows[0][0] == upload.name


def test_errors_and_toasts_show_messages_from_data_as_text(monkeypatch):
    import ui.common as common

    toasts = []
    monkeypatch.setattr(common.gr, "Warning", toasts.append)

    @common.guard(2)
    def failing():
        raise FfclrError(f"no class named {HOSTILE}\n\nsecond line {HOSTILE}")

    status, _ = failing()
    assert_text_only(status)
    assert "\n" not in status
    assert toasts and all("<img" not in t for t in toasts) and ESCAPED in toasts[0]


def test_pretrain_status_and_runs_table_show_run_fields_as_text(hostile):
    from ui.tabs import pretrain, runs

    workspace, checkpoint, _ = hostile
    with workspace.open_store() as store:
        run_id = store.create_run("pretrain", {"arch": HOSTILE}, name="hostile-run")
        store.mark_running(run_id)
        store.finish_run(run_id, "failed", error=f"class {HOSTILE} broke it",
                         checkpoint=checkpoint)
    status = pretrain.run_status(workspace, run_id)
    assert_text_only(status)
    assert "**Run #" in status
    table = runs.runs_table(workspace)
    assert any(row[0] == run_id and row[4] == "failed" for row in table)


def test_markdown_helpers_escape_markup_and_keep_the_text():
    from ui.common import md_code, md_text, plotly_text

    assert md_text("a_b *c* _d_ [x](javascript:1)") == r"a_b \*c\* \_d\_ \[x\](javascript:1)"
    assert md_text("see http://x.org, www.x.org") == r"see http\://x.org, www\.x.org"
    assert [md_text(text) for text in ("# a", "- b", "12. c", "e.g. d")] == [
        r"\# a", r"\- b", r"12\. c", "e.g. d"]
    assert md_text(HOSTILE).startswith(ESCAPED) and "\n" not in md_text("a\n\n# b")
    assert md_code("x<y").startswith("<code>") and "&lt;" in md_code("x<y")
    assert plotly_text("<b>50%{x}</b>") == "&lt;b&gt;50&#37;{x}&lt;/b&gt;"
