"""Import a Roboflow COCO export: every annotated symbol cropped to a PNG in its class folder.

Output: `<workspace>/datasets/<name>_individual/<split>/<class folder>/<image stem>_<annotation
id>.png` and one store row per crop. The class index comes from the COCO categories (Roboflow's
placeholder root category dropped), so a class has the same index in every split.

Re-importing the same export changes nothing. A changed export under an existing name is only
applied with `update=True` (else `UpdateNeeded` says what would change). The crops are built in
a staging folder of the workspace and swapped in, with the store rows, only once everything
succeeded: a failed import leaves the previous dataset as it was.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import shutil
import uuid
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ffclr.errors import FfclrError
from ffclr.data.export_source import (ANNOTATIONS, ExportFolder, open_export,
                                      process_alive, read_annotation_json,
                                      source_fingerprint)
from ffclr.data.safe_paths import (check_name, inside, is_utf8, relative_parts, safe_name,
                                   unique_safe_names, utf8_text)
from ffclr.workspace import Workspace

Progress = Callable[[int, int, str], None]

IMPORT_FORMAT = 2
"""Part of the fingerprint: bump when the same export would give different crops."""

MISSING_IMAGE = "missing image"
UNREADABLE_IMAGE = "unreadable image"
IMAGE_TOO_LARGE = "image too large (Pillow's decompression-bomb guard)"
UNSAFE_FILE_NAME = "file_name outside the split folder"
NOT_UTF8_NAME = "file_name not valid UTF-8"
OUTSIDE_EXPORT = "image links to a file outside the export"
MALFORMED_IMAGE = "malformed image entry"
BOX_ON_SKIPPED_IMAGE = "box on a skipped image"
UNKNOWN_IMAGE = "unknown image id"
UNKNOWN_CATEGORY = "unknown category id"
MALFORMED_BOX = "malformed box"
ZERO_AREA = "zero-area box"
OUTSIDE_IMAGE = "box outside the image"
DUPLICATE_ID = "duplicate or missing annotation id"
ID_OUT_OF_RANGE = "annotation id not a 64-bit integer"
LABELLED_DRAWING = "image is a drawing labelled in ffclr (its crops are kept from there)"
_INT64 = range(-2**63, 2**63)


STAGING_PREFIX = ".staging-"
REPLACED_PREFIX = ".replaced-"


class UpdateNeeded(FfclrError):
    """Importing would change an existing dataset and no update was asked for; nothing changed."""

    def __init__(self, name: str, changes: list[str]):
        self.changes = changes
        super().__init__(f"dataset {name!r} exists and this export would change it: "
                         + "; ".join(changes) + ". Nothing was changed: import again with "
                         "--update (in the app: tick 'Replace the existing dataset') to apply it")


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
    edits_set_aside: int = 0
    """Label edits kept aside because their crop's box or image changed or left the export."""

    @property
    def crops(self) -> int:
        return sum(s.crops for s in self.splits.values())

    def summary(self) -> dict:
        return {"dataset": self.name, "root": str(self.root), "unchanged": self.unchanged,
                "crops": self.crops, "splits": {k: asdict(v) for k, v in self.splits.items()},
                "refused_entries": self.refused_entries, "removed_splits": self.removed_splits,
                "edits_set_aside": self.edits_set_aside}

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
        if self.edits_set_aside:
            out.append(f"{self.edits_set_aside} label edits set aside, not applied: their crop's "
                       "box or image changed or left the export (kept in the store)")
        out.append(f"imported {self.crops} crops into {self.root} (dataset {self.name!r})")
        return out


def fingerprint(source_print: str, padding: float) -> str:
    """The dataset's fingerprint: its export's files and what shapes the crops."""
    text = f"ffclr-import {IMPORT_FORMAT} padding={padding!r} {source_print}"
    return hashlib.sha256(text.encode()).hexdigest()


def load_coco(path: Path, label: str):
    """The annotation file read with pycocotools, or a one-line FfclrError naming it."""
    from pycocotools.coco import COCO

    data = read_annotation_json(path, label)
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
    supers = {c.get("supercategory") for i, c in cats.items()
              if i != cat_id and isinstance(c.get("supercategory"), str)}
    name, parent = cat.get("name"), cat.get("supercategory")
    return (isinstance(name, str) and name in supers) or (
        cat_id == 0 and (parent is None or parent in ("", "none")))


def build_classes(cocos: dict[str, object], labels: dict[str, str]) -> list[dict]:
    """One class list for all splits: the COCO categories by id, placeholder dropped; a category
    whose id the store cannot hold (not text or a 64-bit integer) is left out, so its boxes are
    skipped as of an unknown category."""
    cats: dict = {}
    seen_in: dict = {}
    for split, coco in cocos.items():
        for cat_id, cat in coco.cats.items():
            if _storable_id(cat_id) is None:
                continue
            name = utf8_text(cat.get("name", cat_id) if isinstance(cat, dict) else cat_id)
            if cat_id in cats and str(cats[cat_id].get("name", cat_id)) != name:
                raise FfclrError(f"{labels[split]}: category id {cat_id} is {name!r} here but "
                                 f"{cats[cat_id].get('name')!r} in {labels[seen_in[cat_id]]}")
            cats.setdefault(cat_id, cat if isinstance(cat, dict) else {})
            seen_in.setdefault(cat_id, split)
    used = {a.get("category_id") for coco in cocos.values() for a in coco.anns.values()}
    kept = [i for i in sorted(cats, key=_id_key) if not _is_placeholder(i, cats[i], cats, used)]
    names = [utf8_text(cats[i].get("name", i)) for i in kept]
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
    try:
        if not path.is_file():
            return None, MISSING_IMAGE, False
    except OSError:  # a name too long for the file system, say
        return None, UNREADABLE_IMAGE, False
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
    export: ExportFolder
    folders_made: set[Path] = field(default_factory=set)
    drawing_shas: frozenset = frozenset()
    """SHA-256 of the dataset's finished drawings of this split: an export written with them
    holds them there, and their crops are kept from the drawings."""


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
        tick(f"{job.split}: {utf8_text(file_name)}")
        if not anns:
            continue
        parts, reason = _image_parts(file_name)
        if parts is None:
            summary.skip(reason, file=utf8_text(file_name))
            summary.skip(BOX_ON_SKIPPED_IMAGE, len(anns))
            continue
        image, reason, converted = _read_image(job, parts)
        if image is None:
            summary.skip(reason, file=file_name)
            summary.skip(BOX_ON_SKIPPED_IMAGE, len(anns))
            continue
        if job.drawing_shas and _file_sha(job.folder.joinpath(*parts)) in job.drawing_shas:
            summary.skip(LABELLED_DRAWING, file=utf8_text(file_name))
            continue
        summary.converted += converted
        stem = safe_name(Path(parts[-1]).stem, fallback="image")
        for ann in anns:
            row = _crop_annotation(job, ann, image, stem, "/".join(parts), seen_ids, summary)
            if row:
                rows.append(row)
    summary.crops = len(rows)
    return rows


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _storable_id(value):
    """An image or category id as the store can hold it: a 64-bit integer or text, else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value in _INT64 else None
    return utf8_text(value) if isinstance(value, str) else None


def _read_image(job: _SplitJob, parts: tuple[str, ...]) -> tuple[Image.Image | None, str | None,
                                                                 bool]:
    """`read_rgb` of the image, unless it links out of the export or its path is unusable."""
    path = job.folder.joinpath(*parts)
    try:
        if not job.export.contains(path):
            return None, OUTSIDE_EXPORT, False
    except (OSError, RuntimeError):  # a name too long, a loop of links
        return None, UNREADABLE_IMAGE, False
    return read_rgb(path)


def _image_parts(file_name) -> tuple[tuple[str, ...] | None, str | None]:
    """The image's path components inside its split, or (None, why it is skipped)."""
    if not isinstance(file_name, str):
        return None, MALFORMED_IMAGE
    if not is_utf8(file_name):
        return None, NOT_UTF8_NAME
    parts = relative_parts(file_name)
    return (parts, None) if parts else (None, UNSAFE_FILE_NAME)


def _crop_annotation(job: _SplitJob, ann: dict, image: Image.Image, stem: str, source: str,
                     seen_ids: set, summary: SplitSummary) -> dict | None:
    ann_id = ann.get("id")
    if not isinstance(ann_id, int) or isinstance(ann_id, bool) or ann_id in seen_ids:
        summary.skip(DUPLICATE_ID)
        return None
    if ann_id not in _INT64:
        summary.skip(ID_OUT_OF_RANGE)
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
            "image_id": _storable_id(ann.get("image_id")), "annotation_id": ann_id,
            "bbox": ann["bbox"],
            "crop_bbox": [left, top, right - left, bottom - top], "path": relative,
            "sha256": hashlib.sha256(data).hexdigest()}


def _crops_present(store, dataset: dict, root: Path) -> bool:
    if Path(dataset["root"]) != root:
        return False
    rows = store.crops(dataset["id"])
    return bool(rows) and all((root / r["path"]).is_file() for r in rows)


def remove_stale_staging(datasets: Path) -> list[Path]:
    """Remove staging and replaced folders left by an import whose process is gone (killed)."""
    removed = []
    if not datasets.is_dir():
        return removed
    for path in datasets.iterdir():
        if not path.name.startswith((STAGING_PREFIX, REPLACED_PREFIX)):
            continue
        pid = path.name.split("-")[1] if path.name.count("-") >= 2 else ""
        if not (pid.isdigit() and process_alive(int(pid))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _scratch_dir(datasets: Path, prefix: str, name: str) -> Path:
    """`<datasets>/<prefix><pid>-<name>-<random>`: on the same file system as the dataset, so it
    can be renamed into place, and named by its process so a stale one can be found."""
    return datasets / f"{prefix}{os.getpid()}-{name}-{uuid.uuid4().hex[:8]}"


class _FolderSwap:
    """Put `staging` in the place of `root`, keeping the old `root` aside until `finish`."""

    def __init__(self, staging: Path, root: Path, name: str):
        self.staging, self.root = staging, root
        self.aside = _scratch_dir(root.parent, REPLACED_PREFIX, name)
        self.moved_old = self.moved_new = False

    def swap(self) -> None:
        if self.root.exists():
            os.rename(self.root, self.aside)
            self.moved_old = True
        os.rename(self.staging, self.root)
        self.moved_new = True

    def undo(self) -> None:
        if self.moved_new:
            os.rename(self.root, self.staging)
        if self.moved_old:
            os.rename(self.aside, self.root)
        self.moved_old = self.moved_new = False

    def finish(self) -> None:
        if self.moved_old:
            shutil.rmtree(self.aside, ignore_errors=True)


def import_export(source: Path, name: str, workspace: Workspace, padding: float = 0.05,
                  progress: Progress | None = None, update: bool = False,
                  recorded_source: Path | None = None) -> ImportResult:
    """Import the export at `source` (folder or .zip) as dataset `name` of `workspace`.

    An existing dataset of that name is changed only with `update` (else `UpdateNeeded`, and
    nothing changes, so no run is recorded). `recorded_source` is where the store says the
    export lives (default: `source`). Raises FfclrError when nothing could be imported;
    problems with single images or boxes are skipped and counted in the result instead.
    """
    check_name(name)
    if not (isinstance(padding, (int, float)) and 0 <= padding <= 1):
        raise FfclrError(f"padding {padding!r}: must be a fraction of the box size in [0, 1]")
    source = Path(source).expanduser().resolve()
    recorded = Path(recorded_source).expanduser().resolve() if recorded_source else source
    root = workspace.dataset_dir(name)
    workspace.datasets.mkdir(parents=True, exist_ok=True)
    inside(workspace.datasets, root)
    remove_stale_staging(workspace.datasets)
    with workspace.open_store() as store:
        existing = store.dataset(name)
        run_id = store.create_run("import", {"source": str(recorded), "name": name,
                                             "padding": padding}, name=name,
                                  dataset_id=existing["id"] if existing else None)
        store.mark_running(run_id)
        job = _Import(name=name, root=root, source=recorded, padding=padding, store=store,
                      existing=existing, run_id=run_id, progress=progress, update=update)
        try:
            with open_export(source) as export:
                result = job.run(export)
        except UpdateNeeded:
            store.delete_run(run_id)
            raise
        except BaseException as exc:
            cancelled = isinstance(exc, KeyboardInterrupt)
            store.finish_run(run_id, "cancelled" if cancelled else "failed",
                             error=str(exc) or type(exc).__name__)
            raise
        store.finish_run(run_id, "finished", summary=result.summary())
        return result


@dataclass
class _Import:
    name: str
    root: Path
    source: Path
    """The export's path as recorded in the store."""
    padding: float
    store: object
    existing: dict | None
    run_id: int
    progress: Progress | None
    update: bool

    def run(self, export: ExportFolder) -> ImportResult:
        source_print = source_fingerprint(export)
        export_fingerprint = fingerprint(source_print, self.padding)
        result = ImportResult(name=self.name, run_id=self.run_id, root=self.root, splits={},
                              dataset_id=self.existing["id"] if self.existing else None,
                              refused_entries=export.refused_entries)
        if (self.existing and self.existing["fingerprint"] == export_fingerprint
                and _crops_present(self.store, self.existing, self.root)):
            return self._unchanged(result)
        cocos = self._load_splits(export, result)
        classes = build_classes(cocos, {s: export.label(f / ANNOTATIONS)
                                        for s, f in export.splits.items()})
        staging = _scratch_dir(self.root.parent, STAGING_PREFIX, self.name)
        try:
            rows = self._crop_all(export, cocos, classes, staging, result)
            kept = [s for s, summary in result.splits.items() if summary.error]
            self._check_update(classes, rows, kept)
            self._copy_kept_splits(staging, kept)
            self._copy_drawing_crops(staging)
            self._commit(result, staging, classes, rows, kept,
                         (export_fingerprint, source_print))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return result

    def _unchanged(self, result: ImportResult) -> ImportResult:
        result.unchanged = True
        for split in self.store.splits(self.existing["id"]):
            result.splits[split] = SplitSummary(
                crops=len(self.store.crops(self.existing["id"], split)))
        return result

    def _load_splits(self, export: ExportFolder, result: ImportResult) -> dict:
        cocos = {}
        for split, folder in export.splits.items():
            result.splits[split] = SplitSummary()
            path, label = folder / ANNOTATIONS, export.label(folder / ANNOTATIONS)
            try:
                if path.exists() and not export.contains(path):
                    raise FfclrError(f"{label}: links to a file outside the export; not read")
                cocos[split] = load_coco(path, label)
            except FfclrError as exc:
                result.splits[split].error = str(exc)
        if not cocos:
            raise FfclrError("nothing imported: "
                             + "; ".join(s.error for s in result.splits.values()))
        return cocos

    def _crop_all(self, export: ExportFolder, cocos: dict, classes: list[dict], staging: Path,
                  result: ImportResult) -> dict[str, list[dict]]:
        """Every split's crops written under `staging`; their store rows by split."""
        class_of = {c["coco_id"]: c for c in classes}
        total, done = sum(len(c.imgs) for c in cocos.values()), 0

        def tick(message: str) -> None:
            nonlocal done
            done += 1
            if self.progress:
                self.progress(done, total, message)

        staging.mkdir()
        drawings = self.store.drawings(self.existing["id"], "annotated") if self.existing else []
        rows = {split: crop_split(_SplitJob(split, export.splits[split], coco, class_of, staging,
                                            self.padding, export, drawing_shas=frozenset(
                                                d["sha256"] for d in drawings
                                                if d["split"] == split)),
                                  result.splits[split], tick)
                for split, coco in cocos.items()}
        if not any(rows.values()):
            raise FfclrError(f"nothing imported from {self.source}: no box gave a crop ("
                             + "; ".join(line.strip() for line in result.lines()[:-1]) + ")")
        return rows

    def _check_update(self, classes: list[dict], rows: dict, kept: list[str]) -> None:
        """UpdateNeeded when this import would change an existing dataset without `update`."""
        if self.existing is None or self.update:
            return
        plan = self.store.plan_import(self.existing["id"], classes, rows, kept)
        changes = describe_plan(plan)
        if changes:
            raise UpdateNeeded(self.name, changes)

    def _copy_kept_splits(self, staging: Path, kept: list[str]) -> None:
        """Splits whose annotation file could not be read keep their previous crops."""
        for split in kept:
            if (self.root / split).is_dir():
                shutil.copytree(self.root / split, staging / split)

    def _copy_drawing_crops(self, staging: Path) -> None:
        """The crops of drawings labelled in ffclr are not in the export: they stay."""
        if self.existing is None:
            return
        for crop in self.store.drawing_crops(self.existing["id"]):
            source, target = self.root / crop["path"], staging / crop["path"]
            if source.is_file() and not target.exists():
                inside(staging, target).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)

    def _commit(self, result: ImportResult, staging: Path, classes: list[dict], rows: dict,
                kept: list[str], prints: tuple[str, str]) -> None:
        """Store rows and crop folder swapped together: either both change or neither."""
        swap = _FolderSwap(staging, self.root, self.name)
        try:
            dataset_id, done = self.store.apply_import(
                self.name, str(self.root), str(self.source), prints[0], prints[1], classes, rows,
                kept, before_commit=swap.swap)
        except BaseException:
            swap.undo()
            raise
        swap.finish()
        result.dataset_id = dataset_id
        self.store.update_run(self.run_id, dataset_id=dataset_id)
        for split, counts in done["splits"].items():
            result.splits[split].changes = counts
        result.removed_splits = done["removed_splits"]
        result.edits_set_aside = done["edits_set_aside"]


def describe_plan(plan: dict) -> list[str]:
    """What an import would change, in short phrases; empty when it changes nothing."""
    phrases = []
    for split, counts in plan["splits"].items():
        parts = [f"{counts[k]} {word}" for k, word in (("added", "crops added"),
                 ("updated", "changed"), ("removed", "removed")) if counts.get(k)]
        if parts and split not in plan["removed_splits"]:
            phrases.append(f"{split}: " + ", ".join(parts))
    if plan["removed_splits"]:
        phrases.append("splits removed: " + ", ".join(
            f"{s} ({plan['splits'][s]['removed']} crops)" for s in plan["removed_splits"]))
    if plan["classes_changed"]:
        phrases.append("the class list changes")
    if plan["edits_set_aside"]:
        phrases.append(f"{plan['edits_set_aside']} label edits set aside (their crop's box or "
                       "image changed or left the export)")
    return phrases
