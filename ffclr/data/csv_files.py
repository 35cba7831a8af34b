"""CSV files of tables that hold names from data (class, file and tag names), safe to open in a
spreadsheet and written aside, then swapped in."""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Iterable, Mapping

from ffclr.derived_files import write_aside

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def spreadsheet_text(value):
    """A text cell that a spreadsheet would run as a formula (`=HYPERLINK(...)`, `+cmd|...`)
    gets a leading apostrophe, as OWASP advises; numbers and other values pass unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _is_number(value):
        return "'" + value
    return value


def write_csv(path: str | os.PathLike, columns: list[str], rows: Iterable[Mapping]) -> Path:
    """Write `rows` (missing columns empty, extra keys ignored) to `path` atomically."""
    def write(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: spreadsheet_text(v) for k, v in row.items()})

    path = Path(path)
    write_aside(path, write)
    return path
