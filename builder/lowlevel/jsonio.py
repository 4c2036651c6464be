"""JSON files as musl-pbs writes them: indented, newline-terminated, renamed into place."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


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
