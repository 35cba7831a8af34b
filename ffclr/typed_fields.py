"""Typed dataclass configs read back from files: each value checked against its field's type.

A config saved by ffclr and read back (a detector's settings) is untrusted once it is a file: a
string where a number belongs would surface later as a traceback deep in the pipeline. This
checks every field against its annotation (int, float, bool, str, `tuple[X, ...]`, `X | None`,
nested dataclasses) and requires numbers to be between 0 and `LARGEST`.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing

LARGEST = 1e6
"""No setting of ffclr's configs is a number above this."""


def check_fields(config, where: str = "") -> None:
    """ValueError naming the first field of dataclass `config` whose value does not fit."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        _check(getattr(config, field.name), hints[field.name], f"{where}{field.name}")


def _check(value, hint, name: str) -> None:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, hint):
            raise ValueError(f"{name}: expected settings, got {type(value).__name__}")
        check_fields(value, f"{name}.")
        return
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        hint = next(a for a in args if a is not type(None))
        _check(value, hint, name)
        return
    if origin is tuple:
        if not isinstance(value, tuple):
            raise ValueError(f"{name}: expected a list, got {type(value).__name__}")
        for item in value:
            _check(item, args[0], name)
        return
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= LARGEST
    elif hint is float:
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and math.isfinite(value) and 0 <= value <= LARGEST)
    else:
        ok = isinstance(value, hint)
    if not ok:
        bounds = f" from 0 to {LARGEST:g}" if hint in (int, float) else ""
        raise ValueError(f"{name}: {value!r} is not a {getattr(hint, '__name__', hint)}{bounds}")
