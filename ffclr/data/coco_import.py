"""Import a Roboflow COCO export: every annotated symbol cropped to a PNG in its class folder.

Output: `<workspace>/datasets/<name>_individual/<split>/<class folder>/<image stem>_<annotation
id>.png` and one store row per crop. The class index comes from the COCO categories (Roboflow's
placeholder root category dropped), so a class has the same index in every split. Re-importing
the same export changes nothing; a changed export updates the dataset in place.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ffclr.errors import FfclrError
from ffclr.data.export_source import ANNOTATIONS, ExportFolder, open_export
from ffclr.data.safe_paths import (check_name, inside, relative_parts, safe_name,
                                   unique_safe_names)
from ffclr.workspace import Workspace

Progress = Callable[[int, int, str], None]

IMPORT_FORMAT = 1
"""Part of the fingerprint: bump when the same export would give different crops."""

MISSING_IMAGE = "missing image"
UNREADABLE_IMAGE = "unreadable image"
IMAGE_TOO_LARGE = "image too large (Pillow's decompression-bomb guard)"
UNSAFE_FILE_NAME = "file_name outside the split folder"
MALFORMED_IMAGE = "malformed image entry"
BOX_ON_SKIPPED_IMAGE = "box on a skipped image"
UNKNOWN_IMAGE = "unknown image id"
UNKNOWN_CATEGORY = "unknown category id"
MALFORMED_BOX = "malformed box"
ZERO_AREA = "zero-area box"
OUTSIDE_IMAGE = "box outside the image"
DUPLICATE_ID = "duplicate or missing annotation id"


@dataclass
class SplitSummary:
    images: int = 0
    """Images listed in the annotation file."""
    crops: int = 0
    clipped: int = 0
    """Boxes partly outside their image, clipped to it."""
    converted: int = 0
    """Images that were not RGB (L, P, RGBA, CMYK, 16-bit), converted."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Reason → number of images or boxes skipped for it."""
    skipped_files: dict[str, list[str]] = field(default_factory=dict)
    """Reason → the image files skipped for it."""
    error: str | None = None
    """Why the whole split could not be read (its annotation file), else None."""
    changes: dict[str, int] = field(default_factory=dict)
    """Crops added, updated, unchanged and removed in the store."""

    def skip(self, reason: str, count: int = 1, file: str | None = None) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + count
        if file is not None:
            self.skipped_files.setdefault(reason, []).append(file)


@dataclass
class ImportResult:
    name: str
    dataset_id: int | None
    run_id: int
    root: Path
    splits: dict[str, SplitSummary]
    unchanged: bool = False
    refused_entries: list[str] = field(default_factory=list)
    removed_splits: list[str] = field(default_factory=list)

    @property
    def crops(self) -> int:
        return sum(s.crops for s in self.splits.values())

    def summary(self) -> dict:
        return {"dataset": self.name, "root": str(self.root), "unchanged": self.unchanged,
                "crops": self.crops, "splits": {k: asdict(v) for k, v in self.splits.items()},
                "refused_entries": self.refused_entries, "removed_splits": self.removed_splits}

    def lines(self) -> list[str]:
        """The summary as text, one line per split plus one per skip reason."""
        if self.unchanged:
            return [f"dataset {self.name!r} is already imported from this export: nothing "
                    f"changed ({self.crops} crops in {self.root})"]
        out = []
        for split, s in self.splits.items():
            if s.error:
                out.append(f"{split}: not imported: {s.error}")
                continue
            changes = ", ".join(f"{k} {v}" for k, v in s.changes.items() if v)
            extra = "".join(f", {n} {what}" for n, what in ((s.clipped, "boxes clipped"),
                            (s.converted, "images converted to RGB")) if n)
            out.append(f"{split}: {s.images} images, {s.crops} crops{extra}"
                       + (f" ({changes})" if changes else ""))
            for reason, count in s.skipped.items():
                files = s.skipped_files.get(reason, [])
                named = f": {', '.join(files[:10])}" + (" ..." if len(files) > 10 else "")
                out.append(f"  skipped {count} × {reason}" + (named if files else ""))
        if self.refused_entries:
            out.append(f"refused {len(self.refused_entries)} unsafe zip entries: "
                       + ", ".join(self.refused_entries[:10]))
        if self.removed_splits:
            out.append(f"removed splits no longer in the export: {', '.join(self.removed_splits)}")
        out.append(f"imported {self.crops} crops into {self.root} (dataset {self.name!r})")
        return out


def fingerprint(export: ExportFolder, padding: float) -> str:
    """Hash of the splits' annotation files and images, and of what shapes the crops."""
    digest = hashlib.sha256(f"ffclr-import {IMPORT_FORMAT} padding={padding!r}\n".encode())
    for split, folder in sorted(export.splits.items()):
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(f"{split}/{path.relative_to(folder).as_posix()}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def load_coco(path: Path, label: str):
    """The annotation file read with pycocotools, or a one-line FfclrError naming it."""
    from pycocotools.coco import COCO

    if not path.is_file():
        raise FfclrError(f"{label}: missing annotation file")
    try:
        data = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise FfclrError(f"{label}: malformed JSON ({exc.msg} at line {exc.lineno})") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise FfclrError(f"{label}: cannot read ({exc})") from None
    if not isinstance(data, dict):
        raise FfclrError(f"{label}: not a COCO annotation file (top level is not an object)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise FfclrError(f"{label}: not a COCO annotation file ({key!r} missing or not a list)")
    coco = COCO()
    coco.dataset = data
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
    except KeyError as exc:
        raise FfclrError(f"{label}: not a COCO annotation file (an entry lacks {exc})") from None
    except TypeError as exc:
        raise FfclrError(f"{label}: not a COCO annotation file ({exc})") from None
    return coco


def _id_key(value) -> tuple:
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def _is_placeholder(cat_id, cat: dict, cats: dict, used: set) -> bool:
    """Roboflow's root category: unused, and the supercategory of the others (id 0 there)."""
    if cat_id in used:
        return False
    supers = {c.get("supercategory") for i, c in cats.items() if i != cat_id}
    return cat.get("name") in supers or (cat_id == 0 and cat.get("supercategory") in
                                         (None, "", "none"))


def build_classes(cocos: dict[str, object], labels: dict[str, str]) -> list[dict]:
    """One class list for all splits: the COCO categories by id, placeholder dropped."""
    cats: dict = {}
    seen_in: dict = {}
    for split, coco in cocos.items():
        for cat_id, cat in coco.cats.items():
            name = str(cat.get("name", cat_id)) if isinstance(cat, dict) else str(cat_id)
            if cat_id in cats and str(cats[cat_id].get("name", cat_id)) != name:
                raise FfclrError(f"{labels[split]}: category id {cat_id} is {name!r} here but "
                                 f"{cats[cat_id].get('name')!r} in {labels[seen_in[cat_id]]}")
            cats.setdefault(cat_id, cat if isinstance(cat, dict) else {})
            seen_in.setdefault(cat_id, split)
    used = {a.get("category_id") for coco in cocos.values() for a in coco.anns.values()}
    kept = [i for i in sorted(cats, key=_id_key) if not _is_placeholder(i, cats[i], cats, used)]
    names = [str(cats[i].get("name", i)) for i in kept]
    return [{"class_index": index, "coco_id": cat_id, "name": name, "folder": folder}
            for index, (cat_id, name, folder) in enumerate(zip(kept, names,
                                                                unique_safe_names(names)))]


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB for any mode; 16- and 32-bit grey is scaled to 8 bits, not clipped."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        grey = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or grey.max(initial=0) > 255:
            grey = grey / 257.0
        return Image.fromarray(np.clip(grey.round(), 0, 255).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def read_rgb(path: Path) -> tuple[Image.Image | None, str | None, bool]:
    """(image as RGB, None, converted) or (None, skip reason, False)."""
    if not path.is_file():
        return None, MISSING_IMAGE, False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return to_rgb(image), None, image.mode != "RGB"
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None, IMAGE_TOO_LARGE, False
    except Exception:  # noqa: BLE001 - Pillow raises many kinds on broken files; skip the image
        return None, UNREADABLE_IMAGE, False


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def crop_box(bbox, size: tuple[int, int], padding: float) -> tuple[str | None, bool, tuple]:
    """(skip reason or None, clipped?, padded pixel box (left, top, right, bottom)).

    The box is clipped to the image, padded by `padding` × its size on each side, and the
    padded box clipped again.
    """
    values = [_number(v) for v in bbox] if isinstance(bbox, (list, tuple)) else []
    if len(values) != 4 or None in values:
        return MALFORMED_BOX, False, ()
    x, y, w, h = values
    if w <= 0 or h <= 0:
        return ZERO_AREA, False, ()
    width, height = size
    left, top, right, bottom = max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height)
    if right <= left or bottom <= top:
        return OUTSIDE_IMAGE, False, ()
    clipped = (left, top, right, bottom) != (x, y, x + w, y + h)
    pad_x, pad_y = padding * (right - left), padding * (bottom - top)
    box = (max(0, math.floor(round(left - pad_x, 6))), max(0, math.floor(round(top - pad_y, 6))),
           min(width, math.ceil(round(right + pad_x, 6))),
           min(height, math.ceil(round(bottom + pad_y, 6))))
    return None, clipped, box


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class _SplitJob:
    split: str
    folder: Path
    coco: object
    class_of: dict
    """COCO category id → class dict."""
    root: Path
    padding: float
    folders_made: set[Path] = field(default_factory=set)


def crop_split(job: _SplitJob, summary: SplitSummary, tick: Callable[[str], None]) -> list[dict]:
    """Write the split's crops under `job.root`; returns their store rows."""
    coco, rows, seen_ids = job.coco, [], set()
    summary.images = len(coco.imgs)
    for image_id, anns in coco.imgToAnns.items():
        if image_id not in coco.imgs:
            summary.skip(UNKNOWN_IMAGE, len(anns))
    for image_id in sorted(coco.imgs, key=_id_key):
        info, anns = coco.imgs[image_id], coco.imgToAnns.get(image_id, [])
        file_name = info.get("file_name") if isinstance(info, dict) else None
        tick(f"{job.split}: {file_name}")
        if not anns:
            continue
        parts = relative_parts(file_name) if isinstance(file_name, str) else None
        if parts is None:
            reason = UNSAFE_FILE_NAME if isinstance(file_name, str) else MALFORMED_IMAGE
            summary.skip(reason, file=str(file_name))
            summary.skip(BOX_ON_SKIPPED_IMAGE, len(anns))
            continue
        image, reason, converted = read_rgb(job.folder.joinpath(*parts))
        if image is None:
            summary.skip(reason, file=file_name)
            summary.skip(BOX_ON_SKIPPED_IMAGE, len(anns))
            continue
        summary.converted += converted
        stem = safe_name(Path(parts[-1]).stem, fallback="image")
        for ann in anns:
            row = _crop_annotation(job, ann, image, stem, "/".join(parts), seen_ids, summary)
            if row:
                rows.append(row)
    summary.crops = len(rows)
    return rows


def _crop_annotation(job: _SplitJob, ann: dict, image: Image.Image, stem: str, source: str,
                     seen_ids: set, summary: SplitSummary) -> dict | None:
    ann_id = ann.get("id")
    if not isinstance(ann_id, int) or isinstance(ann_id, bool) or ann_id in seen_ids:
        summary.skip(DUPLICATE_ID)
        return None
    seen_ids.add(ann_id)
    cls = job.class_of.get(ann.get("category_id"))
    if cls is None:
        summary.skip(UNKNOWN_CATEGORY)
        return None
    reason, clipped, box = crop_box(ann.get("bbox"), image.size, job.padding)
    if reason:
        summary.skip(reason)
        return None
    summary.clipped += clipped
    folder = job.root / job.split / cls["folder"]
    if folder not in job.folders_made:
        inside(job.root, folder)
        folder.mkdir(parents=True, exist_ok=True)
        job.folders_made.add(folder)
    data = png_bytes(image.crop(box))
    (folder / f"{stem}_{ann_id}.png").write_bytes(data)
    relative = f"{job.split}/{cls['folder']}/{stem}_{ann_id}.png"
    left, top, right, bottom = box
    return {"class_index": cls["class_index"], "source_image": source,
            "image_id": ann.get("image_id"), "annotation_id": ann_id, "bbox": ann["bbox"],
            "crop_bbox": [left, top, right - left, bottom - top], "path": relative,
            "sha256": hashlib.sha256(data).hexdigest()}


def remove_stale_files(root: Path, folder: Path, keep: set[Path]) -> int:
    """Delete the PNGs under `folder` not in `keep`, then empty folders; returns files deleted."""
    if not folder.is_dir():
        return 0
    removed = 0
    for directory, _, files in os.walk(folder, topdown=False):
        for name in files:
            path = Path(directory) / name
            if path.suffix == ".png" and path not in keep:
                inside(root, path).unlink()
                removed += 1
        if not os.listdir(directory):
            os.rmdir(directory)
    return removed


def _crops_present(store, dataset: dict, root: Path) -> bool:
    if Path(dataset["root"]) != root:
        return False
    rows = store.crops(dataset["id"])
    return bool(rows) and all((root / r["path"]).is_file() for r in rows)


def import_export(source: Path, name: str, workspace: Workspace, padding: float = 0.05,
                  progress: Progress | None = None) -> ImportResult:
    """Import the export at `source` (folder or .zip) as dataset `name` of `workspace`.

    Raises FfclrError when nothing could be imported; problems with single images or boxes
    are skipped and counted in the result instead.
    """
    check_name(name)
    if not (isinstance(padding, (int, float)) and 0 <= padding <= 1):
        raise FfclrError(f"padding {padding!r}: must be a fraction of the box size in [0, 1]")
    source = Path(source).expanduser().resolve()
    root = workspace.dataset_dir(name)
    workspace.datasets.mkdir(parents=True, exist_ok=True)
    inside(workspace.datasets, root)
    with workspace.open_store() as store:
        existing = store.dataset(name)
        run_id = store.create_run("import", {"source": str(source), "name": name,
                                             "padding": padding}, name=name,
                                  dataset_id=existing["id"] if existing else None)
        store.mark_running(run_id)
        try:
            with open_export(source) as export:
                result = _import(export, source, name, root, padding, store, existing, run_id,
                                 progress)
        except BaseException as exc:
            cancelled = isinstance(exc, KeyboardInterrupt)
            store.finish_run(run_id, "cancelled" if cancelled else "failed",
                             error=str(exc) or type(exc).__name__)
            raise
        store.finish_run(run_id, "finished", summary=result.summary())
        return result


def _import(export: ExportFolder, source: Path, name: str, root: Path, padding: float, store,
            existing: dict | None, run_id: int, progress: Progress | None) -> ImportResult:
    export_fingerprint = fingerprint(export, padding)
    result = ImportResult(name=name, dataset_id=existing["id"] if existing else None,
                          run_id=run_id, root=root, splits={},
                          refused_entries=export.refused_entries)
    if (existing and existing["fingerprint"] == export_fingerprint
            and _crops_present(store, existing, root)):
        result.unchanged = True
        for split in store.splits(existing["id"]):
            result.splits[split] = SplitSummary(crops=len(store.crops(existing["id"], split)))
        return result
    labels = {split: export.label(folder / ANNOTATIONS) for split, folder in export.splits.items()}
    cocos = {}
    for split, folder in export.splits.items():
        result.splits[split] = SplitSummary()
        try:
            cocos[split] = load_coco(folder / ANNOTATIONS, labels[split])
        except FfclrError as exc:
            result.splits[split].error = str(exc)
    if not cocos:
        raise FfclrError("nothing imported: " + "; ".join(s.error for s in result.splits.values()))
    classes = build_classes(cocos, labels)
    class_of = {c["coco_id"]: c for c in classes}
    total, done = sum(len(c.imgs) for c in cocos.values()), 0

    def tick(message: str) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total, message)

    rows = {}
    for split, coco in cocos.items():
        rows[split] = crop_split(_SplitJob(split, export.splits[split], coco, class_of, root,
                                           padding), result.splits[split], tick)
    if not any(rows.values()):
        raise FfclrError(f"nothing imported from {source}: no box gave a crop ("
                         + "; ".join(line.strip() for line in result.lines()[:-1]) + ")")
    dataset_id = store.upsert_dataset(name, str(root), str(source), fingerprint=None)
    result.dataset_id = dataset_id
    store.update_run(run_id, dataset_id=dataset_id)
    store.set_classes(dataset_id, classes)
    previous_splits = store.splits(dataset_id)
    for split, split_rows in rows.items():
        result.splits[split].changes = store.sync_crops(dataset_id, split, split_rows)
        remove_stale_files(root, root / split, {root / r["path"] for r in split_rows})
    for split in previous_splits:
        if split not in export.splits:
            store.sync_crops(dataset_id, split, [])
            remove_stale_files(root, root / split, set())
            result.removed_splits.append(split)
    store.upsert_dataset(name, str(root), str(source), fingerprint=export_fingerprint)
    return result
