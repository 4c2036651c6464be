"""Reading ``_sysconfigdata_*.py``: its ``build_time_vars`` dictionary, parsed, never run.

One reader for relocate (which rewrites the file) and the cross-built probe extension
(which needs ``EXT_SUFFIX``). The file comes from an image or an archive: anything that is
not a plain literal dictionary is "none found", never an exception.
"""

from __future__ import annotations

import ast

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
