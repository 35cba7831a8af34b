"""Hostile and awkward exports for the import tests: a demo export copied, then edited.

Each builder takes a demo export (from `ffclr.demo.export.write_demo_export`) and a new folder
for the edited copy; it returns that folder, or the name the test looks for where it says so.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

ANNOTATIONS = "_annotations.coco.json"


def copy_export(demo: Path, out: Path) -> Path:
    shutil.copytree(demo, out)
    return out


def edit_json(export: Path, split: str, edit) -> dict:
    path = export / split / ANNOTATIONS
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")
    return data


def shifted_boxes(demo: Path, out: Path, split: str = "train") -> Path:
    """Every box of `split` one pixel wider: every crop of that split changes."""
    export = copy_export(demo, out)

    def widen(data):
        for ann in data["annotations"]:
            ann["bbox"][2] += 1
    edit_json(export, split, widen)
    return export


def renumbered(demo: Path, out: Path, split: str = "train") -> Path:
    """The annotation ids of `split` reversed: each id now names another box."""
    export = copy_export(demo, out)

    def reverse(data):
        ids = [a["id"] for a in data["annotations"]]
        for ann, new_id in zip(data["annotations"], reversed(ids)):
            ann["id"] = new_id
    edit_json(export, split, reverse)
    return export


def image_linked_outside(demo: Path, out: Path, target: Path, split: str = "train") -> str:
    """The split's first image replaced by a link to `target` (outside the export); returns
    that image's file name."""
    copy_export(demo, out)
    first = json.loads((out / split / ANNOTATIONS).read_text())["images"][0]["file_name"]
    shutil.copyfile(out / split / first, target)
    (out / split / first).unlink()
    (out / split / first).symlink_to(target)
    return first


def annotations_linked_outside(demo: Path, out: Path, target: Path, split: str = "valid") -> Path:
    """The split's annotation file replaced by a link to a copy outside the export."""
    export = copy_export(demo, out)
    shutil.copyfile(export / split / ANNOTATIONS, target)
    (export / split / ANNOTATIONS).unlink()
    (export / split / ANNOTATIONS).symlink_to(target)
    return export


def non_utf8_file(demo: Path, out: Path, split: str = "train") -> Path:
    """A stray file whose name is not UTF-8 in the split folder (as some zip tools leave)."""
    export = copy_export(demo, out)
    (export / split / os.fsdecode(b"notes-\xff\xfe.txt")).write_bytes(b"stray")
    return export


def surrogate_file_name(demo: Path, out: Path, split: str = "train") -> str:
    """The split's first image renamed to a non-UTF-8 name, which the JSON names with a lone
    surrogate escape; returns the new file_name."""
    export = copy_export(demo, out)
    name = os.fsdecode(b"image-\xff.jpg")
    data = json.loads((export / split / ANNOTATIONS).read_text())
    old = data["images"][0]["file_name"]
    os.rename(export / split / old, export / split / name)
    data["images"][0]["file_name"] = name
    (export / split / ANNOTATIONS).write_text(json.dumps(data), encoding="utf-8")
    return name


def long_class_name(demo: Path, out: Path, name: str = "🔥" * 100) -> Path:
    """Category 1 renamed, in every split, to `name` (400 bytes in UTF-8 by default)."""
    export = copy_export(demo, out)
    for split in ("train", "valid", "test"):
        if (export / split / ANNOTATIONS).is_file():
            edit_json(export, split, lambda d: d["categories"][1].update(name=name))
    return export


def deeply_nested(demo: Path, out: Path, split: str = "valid", depth: int = 100_000) -> Path:
    """The split's annotation file with an `info` nested `depth` lists deep."""
    export = copy_export(demo, out)
    path = export / split / ANNOTATIONS
    text = path.read_text(encoding="utf-8")
    path.write_text('{"info": ' + "[" * depth + "]" * depth + ", " + text[1:], encoding="utf-8")
    return export
