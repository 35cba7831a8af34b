"""New drawings added to a dataset: images, folders, zips, or the unannotated images of an export,
copied into the workspace under `drawings/<dataset>/`, named by their content's hash."""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ffclr.annotate.boxes import replay
from ffclr.annotate.export_images import ExportImages, export_images
from ffclr.data.coco_import import load_coco, read_rgb
from ffclr.data.cropset import IMAGE_SUFFIXES
from ffclr.data.export_source import (ANNOTATIONS, EXTRACT_PREFIX, SPLITS, extract_zip,
                                      remove_stale_extractions)
from ffclr.data.safe_paths import check_name, inside, is_utf8, relative_parts, utf8_text
from ffclr.detection.images import check_size
from ffclr.errors import FfclrError
from ffclr.workspace import Workspace

DRAWINGS_FOLDER = "drawings"
_IGNORED_FOLDERS = {"__MACOSX"}
"""Folders of resource forks a macOS zip carries beside the images (not images)."""


@dataclass
class AddedDrawings:
    added: list[dict] = field(default_factory=list)
    """The new drawings' store rows."""
    skipped: list[str] = field(default_factory=list)
    """One line per file not added, naming it and why."""

    def lines(self) -> list[str]:
        return [f"added {len(self.added)} drawings", *(f"skipped {s}" for s in self.skipped)]


@dataclass
class _Candidate:
    path: Path
    name: str
    """As the user knows it (untrusted text)."""
    split: str


def drawings_dir(workspace: Workspace, dataset: str) -> Path:
    return workspace.root / DRAWINGS_FOLDER / check_name(dataset)


def dataset_row(store, dataset: str) -> dict:
    row = store.dataset(dataset)
    if row is None:
        raise FfclrError(f"no imported dataset named {dataset!r}: import an export first")
    return row


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise FfclrError(f"split {split!r}: choose one of {', '.join(SPLITS)}")
    return split


def add_drawings(workspace: Workspace, dataset: str, sources: list, split: str = "train"
                 ) -> AddedDrawings:
    """Add the images of `sources` (image files, folders, .zip files; an export's images without
    annotations, in their own split) to `dataset` as drawings to label, in `split`."""
    check_split(split)
    with workspace.open_store() as store:
        row = dataset_row(store, dataset)
    dataset_id, known = row["id"], export_images(row["source"])
    result = AddedDrawings()
    for source in sources:
        path = Path(source).expanduser()
        if path.is_file() and zipfile.is_zipfile(path):
            remove_stale_extractions()
            with tempfile.TemporaryDirectory(prefix=f"{EXTRACT_PREFIX}{os.getpid()}-") as tmp:
                refused = extract_zip(path, Path(tmp))
                result.skipped += [f"{utf8_text(e)}: unsafe zip entry, not extracted"
                                   for e in refused]
                _add_all(workspace, dataset, dataset_id,
                         _folder_candidates(Path(tmp), split, result, path.name), result, known)
        elif path.is_dir():
            _add_all(workspace, dataset, dataset_id,
                     _folder_candidates(path, split, result, path.name), result, known)
        elif path.is_file():
            _add_all(workspace, dataset, dataset_id,
                     [_Candidate(path, utf8_text(path.name), split)], result, known)
        else:
            result.skipped.append(f"{utf8_text(path)}: no such file or folder")
    return result


def _folder_candidates(folder: Path, split: str, result: AddedDrawings, label: str
                       ) -> list[_Candidate]:
    """The images under `folder`, or, when it is an export, its images without annotations."""
    roots = [folder] + [p for p in sorted(folder.iterdir()) if p.is_dir()][:1]
    for root in roots:
        if any((root / s / ANNOTATIONS).is_file() for s in SPLITS):
            return _export_candidates(root, result, label)
    found = []
    for directory, folders, names in sorted(os.walk(folder)):
        folders[:] = [f for f in folders if f not in _IGNORED_FOLDERS and not f.startswith(".")]
        for name in sorted(names):
            path = Path(directory) / name
            shown = utf8_text(f"{label}/{path.relative_to(folder).as_posix()}")
            if path.suffix.lower() not in IMAGE_SUFFIXES or name.startswith("."):
                continue
            if path.is_symlink() and folder.resolve() not in path.resolve().parents:
                result.skipped.append(f"{shown}: links outside the folder")
                continue
            found.append(_Candidate(path, shown, split))
    return found


def _export_candidates(root: Path, result: AddedDrawings, label: str) -> list[_Candidate]:
    found, annotated = [], 0
    for split in SPLITS:
        path = root / split / ANNOTATIONS
        if not path.is_file():
            continue
        coco = load_coco(path, f"{label}/{split}/{ANNOTATIONS}")
        for image_id, info in coco.imgs.items():
            if coco.imgToAnns.get(image_id):
                annotated += 1
                continue
            file_name = info.get("file_name") if isinstance(info, dict) else None
            parts = relative_parts(file_name) if isinstance(file_name, str) and \
                is_utf8(file_name) else None
            shown = utf8_text(f"{label}/{split}/{file_name}")
            if parts is None:
                result.skipped.append(f"{shown}: file_name outside the split folder")
                continue
            image = root / split / Path(*parts)
            if root.resolve() not in image.resolve().parents:
                result.skipped.append(f"{shown}: links outside the export")
                continue
            found.append(_Candidate(image, shown, split))
    if annotated:
        result.skipped.append(f"{annotated} images of {utf8_text(label)} that have annotations: "
                              "import the export to crop them")
    return found


def _add_all(workspace: Workspace, dataset: str, dataset_id: int, candidates: list[_Candidate],
             result: AddedDrawings, known: ExportImages) -> None:
    folder = drawings_dir(workspace, dataset)
    with workspace.open_store() as store:
        for candidate in candidates:
            row, why = _add_one(store, folder, workspace, dataset, dataset_id, candidate, known)
            if row is None:
                result.skipped.append(f"{candidate.name}: {why}")
            else:
                result.added.append(row)


def _add_one(store, folder: Path, workspace: Workspace, dataset: str, dataset_id: int,
             candidate: _Candidate, known: ExportImages) -> tuple[dict | None, str | None]:
    image, reason, _ = read_rgb(candidate.path)
    if image is None:
        return None, reason
    try:
        check_size(image.size, candidate.name)
    except FfclrError as exc:
        return None, str(exc).removeprefix(f"{candidate.name}: ")
    data = candidate.path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if store.drawing_by_sha(dataset_id, sha):
        return None, f"already in {dataset}"
    twin = known.split_of(data)
    if twin and twin[0] != candidate.split:
        return None, (f"the same image as {twin[0]}/{utf8_text(twin[1])} of {dataset}'s export: "
                      f"in {candidate.split} it would be one drawing in two splits")
    suffix = candidate.path.suffix.lower()
    target = folder / f"{sha[:16]}{suffix if suffix in IMAGE_SUFFIXES else '.png'}"
    folder.mkdir(parents=True, exist_ok=True)
    inside(workspace.root, target)
    if not target.is_file():
        part = target.with_name(f".{target.name}.{os.getpid()}.part")
        part.write_bytes(data)
        os.replace(part, target)
    drawing_id = store.add_drawing(dataset_id, candidate.name,
                                   target.relative_to(workspace.root).as_posix(), sha,
                                   image.size[0], image.size[1], candidate.split)
    if drawing_id is None:
        return None, f"already in {dataset}"
    return store.drawing(drawing_id), None


def drawing_path(workspace: Workspace, drawing: dict) -> Path:
    """The drawing's file, checked to lie inside the workspace."""
    return inside(workspace.root, workspace.root / drawing["path"])


def drawings(workspace: Workspace, dataset: str) -> list[dict]:
    """The dataset's drawings with their number of boxes and of accepted boxes, and whether
    they were edited since they were last finished (`edited_since_finish`)."""
    with workspace.open_store() as store:
        dataset_id = dataset_row(store, dataset)["id"]
        names = [c["name"] for c in store.classes(dataset_id)]
        rows = []
        for row in store.drawings(dataset_id):
            edits = store.annotation_edits(row["id"])
            boxes = replay(edits, names)
            finished = row["annotated_at"]
            rows.append({key: row[key] for key in ("id", "file_name", "path", "sha256", "width",
                                                   "height", "split", "status")}
                        | {"n_boxes": len(boxes), "n_accepted": sum(b.accepted for b in boxes),
                           "edited_since_finish": bool(finished and edits
                                                       and edits[-1]["time"] > finished)})
    return rows


def set_split(workspace: Workspace, drawing_id: int, split: str) -> dict:
    """Choose the split a drawing's crops go to (and that export-coco writes it in); a finished
    drawing's crops move there when it is finished again. Returns the drawing's row."""
    check_split(split)
    with workspace.open_store() as store:
        if store.drawing(drawing_id) is None:
            raise FfclrError(f"no drawing with id {drawing_id}")
        store.set_drawing_split(drawing_id, split)
        return store.drawing(drawing_id)


def remove_drawing(workspace: Workspace, drawing_id: int) -> dict:
    """Take a drawing out of its dataset: its row, edits and the crops it gave (with their label
    edits) leave the store in one transaction, then its image and crop files are deleted (a file
    that cannot be deleted is only left behind). Returns the drawing's file name and the number
    of crops removed."""
    with workspace.open_store() as store:
        drawing = store.drawing(drawing_id)
        if drawing is None:
            raise FfclrError(f"no drawing with id {drawing_id}")
        root = Path(store.dataset_by_id(drawing["dataset_id"])["root"])
        image = drawing_path(workspace, drawing)
        crops = [inside(root, root / row["path"])
                 for row in store.drawing_crops(drawing["dataset_id"], drawing_id)]
        store.remove_drawing(drawing_id)
    for path in [*crops, image]:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
    return {"file_name": drawing["file_name"], "crops": len(crops)}
