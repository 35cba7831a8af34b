"""The schematic a crop came from, read back from the export the dataset was imported from."""
from __future__ import annotations

import json
import zipfile
from io import BytesIO
from pathlib import Path, PurePosixPath

from PIL import Image, ImageDraw


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def _from_folder(root: Path, split: str, relative: str) -> Image.Image | None:
    parts = PurePosixPath(relative).parts
    if not parts or any(p in ("..", "") for p in parts) or PurePosixPath(relative).is_absolute():
        return None
    candidates = [root / split / Path(*parts)]
    candidates += [top / split / Path(*parts) for top in sorted(root.iterdir()) if top.is_dir()]
    for candidate in candidates:
        if candidate.is_file() and _inside(candidate, root):
            with Image.open(candidate) as image:
                return image.convert("RGB")
    return None


def _from_zip(archive: Path, split: str, relative: str) -> Image.Image | None:
    suffix = f"{split}/{relative}"
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            if name == suffix or name.endswith("/" + suffix):
                with Image.open(BytesIO(zf.read(name))) as image:
                    return image.convert("RGB")
    return None


def source_image(dataset: dict, crop: dict) -> Image.Image | None:
    """The crop's source schematic as RGB, or None when the export is no longer where it was."""
    source = Path(dataset.get("source") or "")
    if not str(source) or not source.exists():
        return None
    try:
        if source.is_dir():
            return _from_folder(source, crop["split"], crop["source_image"])
        if zipfile.is_zipfile(source):
            return _from_zip(source, crop["split"], crop["source_image"])
    except (OSError, Image.DecompressionBombError, zipfile.BadZipFile):
        return None
    return None


def crop_in_context(dataset: dict, crop: dict, colour: str = "#ff2d55") -> Image.Image | None:
    """The source schematic with the crop's box drawn on it."""
    image = source_image(dataset, crop)
    if image is None:
        return None
    x, y, w, h = json.loads(crop["bbox"]) if isinstance(crop["bbox"], str) else crop["bbox"]
    width = max(2, round(max(image.size) / 300))
    draw = ImageDraw.Draw(image)
    pad = width * 2
    draw.rectangle([x - pad, y - pad, x + w + pad, y + h + pad], outline=colour, width=width)
    return image
