"""Untrusted names (zip entries, COCO `file_name`s, category names) made safe as paths."""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path, PurePosixPath

from ffclr.errors import FfclrError

MAX_NAME_BYTES = 100
"""A folder or file name made from data is at most this many bytes in UTF-8 (file systems allow
255 bytes per name, and a crop file adds its annotation id and `.png`)."""
_SURROGATES = re.compile("[\ud800-\udfff]")
_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""Names the user gives (datasets, runs): they become one folder of the workspace as they are."""
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                     *(f"LPT{i}" for i in range(1, 10))}


def check_name(name: str | None, what: str = "dataset name") -> str:
    """`name` if it follows `NAME_PATTERN`, else FfclrError naming `what` and the rule."""
    if not NAME_PATTERN.fullmatch(name or ""):
        raise FfclrError(f"{what} {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit")
    return name


def safe_name(name: str, fallback: str = "_") -> str:
    """One path component for `name`: no separators, no `.`/`..`, no reserved device names."""
    text = unicodedata.normalize("NFC", utf8_text(name))
    text = _UNSAFE_CHARS.sub("_", text).strip(" .")
    text = _cut_to_bytes(text, MAX_NAME_BYTES).rstrip(" .")
    if not text:
        return fallback
    if text.split(".")[0].upper() in _WINDOWS_RESERVED:
        text = "_" + text
    return text


def utf8_text(value) -> str:
    """`str(value)` with what UTF-8 cannot hold (lone surrogates, from undecodable file names or
    JSON escapes) replaced by U+FFFD, so it can be stored, printed and used as a name."""
    return _SURROGATES.sub("\ufffd", str(value))


def is_utf8(text: str) -> bool:
    return not _SURROGATES.search(text)


def _cut_to_bytes(text: str, limit: int) -> str:
    """The longest prefix of `text` whose UTF-8 encoding fits in `limit` bytes."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def unique_safe_names(names: list[str]) -> list[str]:
    """`safe_name` of each name, made unique (ignoring case, for case-insensitive file systems)."""
    taken: set[str] = set()
    result = []
    for name in names:
        base = safe_name(name, fallback="class")
        candidate, number = base, 2
        while candidate.lower() in taken:
            candidate = f"{base}_{number}"
            number += 1
        taken.add(candidate.lower())
        result.append(candidate)
    return result


def relative_parts(name: str) -> tuple[str, ...] | None:
    """The components of an untrusted relative path, or None when it is absolute or climbs out.

    Backslashes count as separators, so `..\\x` and `C:\\x` are caught too.
    """
    text = str(name).replace("\\", "/")
    if not text or text.startswith("/") or re.match(r"^[A-Za-z]:", text) or "\x00" in text:
        return None
    parts = tuple(p for p in PurePosixPath(text).parts if p not in ("", "."))
    if not parts or ".." in parts:
        return None
    return parts


def inside(root: Path, path: Path) -> Path:
    """`path` resolved, after checking it lies under `root` (symlinks followed)."""
    resolved_root = root.resolve()
    resolved = path.resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise FfclrError(f"{path}: refused, it is outside {root}")
    return resolved

