"""What every tab shares: store access, error handling, choices for dropdowns, formatting."""
from __future__ import annotations

import functools
import html
import logging
import re
import shutil
import tempfile
import traceback
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote

import gradio as gr
from PIL import Image, UnidentifiedImageError

from ffclr.errors import FfclrError
from ffclr.workspace import Workspace, is_checkpoint_file

log = logging.getLogger("ffclr.ui")

GALLERY_COLUMNS = 6
"""Columns of the crop galleries: Gradio's tiles are at least 100 px wide, and more columns
than fit the gallery's half of the page run off its right edge."""
MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass
class Context:
    """The workspace the app serves and the components tabs wire to each other."""
    workspace: Workspace
    components: dict[str, Any] = field(default_factory=dict)


@contextmanager
def open_store(workspace: Workspace) -> Iterator[Any]:
    store = workspace.open_store()
    try:
        yield store
    finally:
        store.close()


def user_message(exc: BaseException) -> str:
    """One readable line for any error, never a traceback."""
    if isinstance(exc, FfclrError):
        return str(exc)
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_MARKDOWN_SYNTAX = re.compile(
    r"[\\`*\[\]~|$@]"                    # escapes, code, emphasis, links, tables, maths
    r"|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])"  # underscores that could open or close emphasis
    r"|:(?=/)|(?<=\bwww)\.", re.IGNORECASE)  # autolinks (http://, www.)
_BLOCK_START = re.compile(r"^(?:([#+=-])|(\d+)([.)]))")
_PLOTLY_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "%": "&#37;"}


def md_text(value: Any) -> str:
    """`value` (a name, path or message that came from data) as Markdown that shows it verbatim.

    Markdown syntax is backslash-escaped (a leading `#`, `-`, `1.` too, so the text never starts
    a block) and `<`, `>`, `&` and quotes become HTML entities, so neither Markdown nor HTML in
    a class or file name is interpreted; line breaks become spaces, outer spaces are dropped.
    """
    text = " ".join(str(value).splitlines()).strip()
    text = _MARKDOWN_SYNTAX.sub(lambda match: "\\" + match.group(0), text)
    text = _BLOCK_START.sub(lambda m: f"\\{m.group(1)}" if m.group(1)
                            else f"{m.group(2)}\\{m.group(3)}", text)
    return html.escape(text)


def md_code(value: Any) -> str:
    """`value` from data in monospace: `md_text` inside `<code>` (a backtick span would show
    the escapes)."""
    return f"<code>{md_text(value)}</code>"


def plotly_text(value: Any) -> str:
    """`value` from data as plotly text (names, hover templates, titles, tick labels).

    plotly.js renders a subset of HTML there and decodes entities; `%` becomes an entity so a
    name cannot add `%{...}` fields to a hover template.
    """
    return "".join(_PLOTLY_ENTITIES.get(char, char) for char in str(value))


def warn(message: str) -> None:
    """A warning toast showing `message` as text (Gradio renders toasts as HTML)."""
    gr.Warning(html.escape(message))


def info(message: str) -> None:
    """An information toast showing `message` as text, seen wherever the page is scrolled."""
    gr.Info(html.escape(message))


def short_text(value: Any, limit: int = 40) -> str:
    """`value` as text of at most `limit` characters: a longer one keeps its start and its end
    (where a path's file name is) around an ellipsis, so a table column stays narrow."""
    text = " ".join(str(value).split())
    if len(text) <= limit:
        return text
    head = (limit - 1) // 3
    return f"{text[:head]}…{text[len(text) - (limit - 1 - head):]}"


def error_md(message: str) -> str:
    """An error line for a `gr.Markdown`, `message` shown as text."""
    text = "<br>".join(html.escape(line) for line in str(message).splitlines())
    return f"<div class='ffclr-error'>⚠ {text}</div>"


def ok_md(message: str) -> str:
    """A success message (Markdown); data inside `message` must already be `md_text`."""
    return f"✓ {message}"


def guard(n_outputs: int, status_at: int | None = 0) -> Callable:
    """Turn any exception in a Gradio callback into a warning toast and a message in the tab.

    The other outputs are left as they were (`gr.skip()`).
    """
    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - every error becomes a message
                if not isinstance(exc, FfclrError):
                    log.error("%s failed:\n%s", fn.__name__, traceback.format_exc())
                message = user_message(exc)
            warn(message)
            outputs = [gr.skip()] * n_outputs
            if status_at is not None:
                outputs[status_at] = error_md(message)
            return outputs[0] if n_outputs == 1 else tuple(outputs)
        return wrapper
    return decorate


def file_url(path: str | Path) -> str:
    """URL under which Gradio serves a file inside a folder given to `gr.set_static_paths`."""
    return "/gradio_api/file=" + quote(str(Path(path).resolve()))


# dropdown choices


@contextmanager
def result_folder(workspace: Workspace, kind: str, keep: int = 8) -> Iterator[Path]:
    """A new folder under `cache/<kind>/` for one request's output files, removing all but the
    `keep` newest earlier ones (Gradio copies returned files to its own cache, and a few recent
    folders outlive a slow download). A request that fails inside the `with` leaves no folder
    (an empty one would push a real result out)."""
    parent = workspace.cache / kind
    parent.mkdir(parents=True, exist_ok=True)
    earlier = sorted((p for p in parent.iterdir() if p.is_dir() and not p.is_symlink()),
                     key=lambda p: p.stat().st_mtime)
    for old in earlier[:max(len(earlier) - keep + 1, 0)]:
        shutil.rmtree(old, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(dir=parent))
    try:
        yield folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def dataset_choices(workspace: Workspace) -> list[str]:
    if not workspace.db_path.exists():
        return []
    with open_store(workspace) as store:
        return [d["name"] for d in store.datasets()]


def split_choices(workspace: Workspace, dataset: str | None) -> list[str]:
    if not dataset or not workspace.db_path.exists():
        return []
    with open_store(workspace) as store:
        row = store.dataset(dataset)
        return store.splits(row["id"]) if row else []


def checkpoint_and_dataset_updates(workspace: Workspace, checkpoint: str | None,
                                   dataset: str | None) -> tuple[dict, dict, str | None]:
    """Fresh checkpoint and dataset dropdowns keeping the current picks where they still exist
    (else the first); the third item is the dataset now picked."""
    choices = checkpoint_choices(workspace)
    paths = [p for _, p in choices]
    names = dataset_choices(workspace)
    dataset = dataset if dataset in names else (names[0] if names else None)
    return (gr.update(choices=choices, value=checkpoint if checkpoint in paths
                      else (paths[0] if paths else None)),
            gr.update(choices=names, value=dataset), dataset)


def checkpoint_choices(workspace: Workspace) -> list[tuple[str, str]]:
    """(label, path) of every checkpoint: the latest of each pretraining run, then loose files."""
    choices: list[tuple[str, str]] = []
    seen: set[str] = set()
    if workspace.db_path.exists():
        with open_store(workspace) as store:
            runs = store.runs(kind="pretrain")
        for run in runs:
            path = run.get("checkpoint")
            if path and Path(path).is_file():
                arch = run["config"].get("arch", "")
                choices.append((f"run {run['id']} · {run.get('name') or ''} {arch} · "
                                f"{run['status']} · {Path(path).name}", str(Path(path).resolve())))
                seen.add(str(Path(path).resolve()))
    if workspace.checkpoints.is_dir():
        files = sorted((p for p in workspace.checkpoints.rglob("*.pth*") if is_checkpoint_file(p)),
                       key=lambda p: p.stat().st_mtime, reverse=True)
        for path in files:
            resolved = str(path.resolve())
            if resolved not in seen:
                choices.append((str(path.relative_to(workspace.checkpoints)), resolved))
                seen.add(resolved)
    return choices


def run_label(run: dict) -> str:
    name = f" {run['name']}" if run.get("name") else ""
    return f"#{run['id']} {run['kind']}{name} · {run['status']}"


def run_dataset(run: dict, workspace: Workspace, names: dict[int, str]) -> str:
    """The dataset a run used: its dataset id, else the dataset folder its config points into."""
    if run.get("dataset_id") in names:
        return names[run["dataset_id"]]
    data = run["config"].get("data") or (run["config"].get("train") or {}).get("dataset")
    if not data:
        return ""
    path = Path(data)
    for part in (path, *path.parents):
        if part.parent == workspace.datasets and part.name.endswith("_individual"):
            return part.name.removesuffix("_individual")
    return str(data) if not path.is_absolute() else path.name


def imported_dataset(store, name: str) -> dict:
    """The store's row of dataset `name`; FfclrError when there is none."""
    row = store.dataset(name)
    if row is None:
        raise FfclrError(f"no imported dataset named {name!r}")
    return row


def dataset_root(workspace: Workspace, name: str) -> Path:
    with open_store(workspace) as store:
        return Path(imported_dataset(store, name)["root"])


# uploads


def check_image_upload(path: str | Path) -> None:
    """Refuse files that are not images, or are too large to handle, with a reason."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise FfclrError(f"{name}: file not found")
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        raise FfclrError(f"{name}: {size / 1e6:.0f} MB is too large (limit "
                         f"{MAX_IMAGE_BYTES // 1_000_000} MB)")
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise FfclrError(f"{name}: {width}×{height} pixels is too large (limit "
                                 f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels)")
            image.verify()
    except FfclrError:
        raise
    except Image.DecompressionBombError:
        raise FfclrError(f"{name}: image is too large (decompression-bomb guard)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise FfclrError(f"{name}: not an image (or a corrupt one)") from None


def check_zip_upload(path: str | Path) -> None:
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise FfclrError(f"{path.name}: not a zip archive (drop the Roboflow COCO export .zip, "
                         "or give the export's folder path)")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def run_duration(run: dict) -> float | None:
    start = run.get("started_at") or run.get("created_at")
    if not start:
        return None
    end = run.get("ended_at")
    t0 = datetime.fromisoformat(start)
    t1 = datetime.fromisoformat(end) if end else datetime.now(timezone.utc)
    return max(0.0, (t1 - t0).total_seconds())
