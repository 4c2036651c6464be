"""JSON files as musl-pbs writes them (indented, newline-terminated, renamed into place)
and reads them (capped, typed errors)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from builder.errors import MuslPbsError
from builder.lowlevel.boundedio import read_capped


def dumps(data: Any, *, sort_keys: bool = True) -> str:
    return json.dumps(data, indent=2, sort_keys=sort_keys) + "\n"


def write_json(path: Path, data: Any, *, sort_keys: bool = True) -> None:
    """Write under a temporary name beside ``path``, then rename: never half-written."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(dumps(data, sort_keys=sort_keys))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def parse_json(data: bytes | str, source: str, what: str, error: type[MuslPbsError]) -> Any:
    """Parse JSON text; invalid or absurdly nested JSON is ``error`` naming ``source``."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        detail = str(e) if not isinstance(e, RecursionError) else "nested too deeply"
        raise error(f"{source}: {what} is not valid JSON: {detail}") from None


def read_json(
    path: Path,
    *,
    cap: int,
    what: str,
    error: type[MuslPbsError],
    follow_symlinks: bool = True,
) -> Any:
    """A JSON file read whole, at most ``cap`` bytes (see :func:`read_capped`)."""
    raw = read_capped(path, cap=cap, what=what, error=error, follow_symlinks=follow_symlinks)
    return parse_json(raw, str(path), what, error)


def read_json_object(
    path: Path,
    *,
    cap: int,
    what: str,
    error: type[MuslPbsError],
    follow_symlinks: bool = True,
) -> dict[str, Any]:
    """:func:`read_json` of a file that must hold a JSON object (see :func:`expect_object`)."""
    data = read_json(path, cap=cap, what=what, error=error, follow_symlinks=follow_symlinks)
    return expect_object(data, str(path), what, error)


def expect_object(data: Any, source: str, what: str, error: type[MuslPbsError]) -> dict[str, Any]:
    """``data`` if it is a JSON object, else ``error`` saying what it is instead."""
    if not isinstance(data, dict):
        raise error(f"{source}: {what} must be a JSON object, not {_kind(data)}")
    return data


def _kind(data: Any) -> str:
    return {list: "a list", str: "a string", type(None): "null", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(data), type(data).__name__)
