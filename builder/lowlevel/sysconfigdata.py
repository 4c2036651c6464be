"""Reading ``_sysconfigdata_*.py``: its ``build_time_vars`` dictionary, parsed, never run.

One reader for relocate (which rewrites the file), the cross-built probe extension
(which needs ``EXT_SUFFIX``) and the manifest's ``extension_suffixes``. The file comes
from an image or an archive: anything that is not a plain literal dictionary is "none
found", never an exception.
"""

from __future__ import annotations

import ast
from pathlib import Path

from builder.errors import MuslPbsError, StageError
from builder.lowlevel.boundedio import read_capped_text

_PARSE_ERRORS = (SyntaxError, ValueError, TypeError, RecursionError, MemoryError)


def build_time_vars(text: str) -> dict[str, object] | None:
    """The last ``build_time_vars = {...}`` of ``text`` as a dictionary, or None."""
    try:
        module = ast.parse(text)
    except _PARSE_ERRORS:
        return None
    found: dict[str, object] | None = None
    for node in module.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "build_time_vars"):
            try:
                value = ast.literal_eval(node.value)
            except _PARSE_ERRORS:
                return None
            found = value if isinstance(value, dict) else None
    return found


CAP_SYSCONFIG = 4 * 1024 * 1024  # a _sysconfigdata_*.py: ~50 KiB


def read_build_time_vars(stdlib: Path) -> dict[str, object] | None:
    """``build_time_vars`` of the first regular ``_sysconfigdata_*.py`` in ``stdlib``
    (``lib/pythonX.Y`` of a tree), read under a cap and parsed, never run; None when there
    is none that parses."""
    for path in sorted(stdlib.glob("_sysconfigdata_*.py")):
        if path.is_symlink():
            continue
        try:
            text = read_capped_text(path, cap=CAP_SYSCONFIG, what="sysconfig data",
                                    error=StageError, follow_symlinks=False)
        except MuslPbsError:
            continue
        found = build_time_vars(text)
        if found is not None:
            return found
    return None
