"""PEP 739's ``build-details.json``: made relative by relocate, checked by the audit.

CPython 3.14 installs ``lib/python3.X/build-details.json`` (the standard library directory)
with absolute paths: ``base_prefix`` ``/usr``, ``base_interpreter``, ``libpython.*`` and
``c_api.*`` under it. PEP 739 allows ``base_prefix`` relative to the file's directory and the
other paths relative to ``base_prefix``; relocate writes them the way CPython's
``Tools/build/generate-build-details.py --relative-paths --config-file-path`` does
(``"../.."``, ``"./bin/python3.14"``), so that every path resolves inside the archive
wherever it is unpacked. A path whose file the archive does not ship (``libpython.static``
when the static library was not staged) is dropped, as PEP 739 says an installation without
it leaves it out.

The document comes from an image or an archive: read capped, anything unexpected is a typed
error (relocate) or a finding (audit), never an exception.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from builder.errors import MuslPbsError, StageError
from builder.lowlevel.boundedio import MIB
from builder.lowlevel.jsonio import read_json_object
from builder.lowlevel.links import rewrite_text

BUILD_DETAILS = "build-details.json"
CAP_BUILD_DETAILS = 1 * MIB  # CPython's is ~2 KiB
# The keys PEP 739 makes paths relative to base_prefix (generate-build-details.py's list).
PATH_KEYS = ("base_interpreter", "libpython.dynamic", "libpython.dynamic_stableabi",
             "libpython.static", "c_api.headers", "c_api.pkgconfig_path")
# When these are dropped, what depends on them goes too (PEP 739: dynamic_stableabi and
# link_extensions only with dynamic; c_api requires headers).
_DEPENDENT = {"libpython.dynamic": ("libpython.dynamic_stableabi", "libpython.link_extensions"),
              "c_api.headers": ("c_api",)}


def _slot(data: dict[str, Any], key: str) -> tuple[dict[str, Any], str] | None:
    """The mapping holding dotted ``key`` and the last part, when the key is present."""
    parent, _, child = key.rpartition(".")
    container: Any = data
    for part in parent.split(".") if parent else ():
        container = container.get(part) if isinstance(container, dict) else None
    if isinstance(container, dict) and child in container:
        return container, child
    return None


def _path_slots(doc: dict[str, Any]) -> Iterator[tuple[str, tuple[dict[str, Any], str], Any]]:
    """Each of ``PATH_KEYS`` present in ``doc``: the key, its slot and its value, each looked
    up when the loop reaches it (a key dropped meanwhile is skipped)."""
    for key in PATH_KEYS:
        slot = _slot(doc, key)
        if slot is not None:
            yield key, slot, slot[0][slot[1]]


def _drop(data: dict[str, Any], key: str) -> None:
    slot = _slot(data, key)
    if slot is not None:
        del slot[0][slot[1]]
        parent = key.rpartition(".")[0]
        section = _slot(data, parent) if parent else None
        if section is not None and section[0][section[1]] == {}:
            del section[0][section[1]]


def file_dir(path: Path, tree: Path) -> str:
    """The directory of ``path`` relative to the tree's top (``lib/python3.14``)."""
    return path.parent.relative_to(tree).as_posix()


def relocate_build_details(path: Path, tree: Path, prefix: str) -> list[str]:
    """Rewrite ``path`` (inside ``tree``, the staged ``python/``) with paths relative to
    itself; returns the keys dropped because the archive lacks their files."""
    doc = read_json_object(path, cap=CAP_BUILD_DETAILS, what="PEP 739 build details",
                           error=StageError, follow_symlinks=False)
    here = file_dir(path, tree)
    top = prefix.rstrip("/") or "/"
    base = doc.get("base_prefix")
    if not isinstance(base, str) or not base:
        raise StageError(f"{path}: base_prefix is {base!r}, not a path (PEP 739)")
    if posixpath.isabs(base):
        if posixpath.normpath(base) != top:
            raise StageError(f"{path}: base_prefix {base!r} is not the build prefix {top!r}: "
                             "cannot tell where its paths are in the archive")
    elif posixpath.normpath(posixpath.join(here, base)) != ".":
        raise StageError(f"{path}: base_prefix {base!r} does not lead from {here} to the top "
                         "of the installation")
    dropped: list[str] = []
    for key, slot, value in _path_slots(doc):
        if not isinstance(value, str) or not value:
            raise StageError(f"{path}: {key} is {value!r}, not a path (PEP 739)")
        if posixpath.isabs(value):
            norm = posixpath.normpath(value)
            if norm != top and not norm.startswith(top.rstrip("/") + "/"):
                raise StageError(f"{path}: {key} {value!r} is outside the build prefix {top!r}")
            rel = posixpath.relpath(norm, top)
        else:
            rel = posixpath.normpath(value)
        if rel.startswith("../") or rel == ".." or not (tree / rel).exists():
            dropped.append(key)
            _drop(doc, key)
            for dependent in _DEPENDENT.get(key, ()):
                if _slot(doc, dependent) is not None:
                    dropped.append(dependent)
                    _drop(doc, dependent)
            continue
        slot[0][slot[1]] = "./" + rel if rel != "." else "."
    doc["base_prefix"] = posixpath.relpath(".", here)
    rewrite_text(path, json.dumps(doc, indent=2) + "\n")
    return dropped


def _strings(value: Any, at: str) -> list[tuple[str, str]]:
    """Every string in a JSON value with its dotted key (list items as ``key.N``)."""
    if isinstance(value, str):
        return [(at, value)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, f"{at}.{k}" if at else str(k))]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, f"{at}.{i}")]
    return []


def build_details_problems(path: Path, tree: Path, build_prefix: re.Pattern[str]
                           ) -> list[str]:
    """What is wrong with ``path`` in an unpacked archive: each message starts with the key.
    Paths must be relative (``base_prefix`` to the file's directory, the others to
    ``base_prefix``), lead to the top of the tree and to files inside it; no string may
    name the build prefix."""
    try:
        doc = read_json_object(path, cap=CAP_BUILD_DETAILS, what="PEP 739 build details",
                               error=StageError, follow_symlinks=False)
    except MuslPbsError as e:
        return [f"(document): {e.message}"]
    out = [f"{key}: names the build prefix: {value[:80]!r}"
           for key, value in _strings(doc, "") if build_prefix.search(value)]
    here = file_dir(path, tree)
    base = doc.get("base_prefix")
    if not isinstance(base, str) or not base:
        return [*out, f"base_prefix: {base!r} is not a path"]
    if posixpath.isabs(base):
        return [*out, f"base_prefix: {base!r} is absolute: it holds only where it was built "
                "(PEP 739 allows it relative to the file's directory)"]
    if posixpath.normpath(posixpath.join(here, base)) != ".":
        return [*out, f"base_prefix: {base!r} leads from {here}/ to "
                f"{posixpath.normpath(posixpath.join(here, base))!r}, not to the top of "
                f"{tree.name}/"]
    for key, _, value in _path_slots(doc):
        if not isinstance(value, str) or not value:
            out.append(f"{key}: {value!r} is not a path")
        elif posixpath.isabs(value):
            out.append(f"{key}: {value!r} is absolute: not where the archive is unpacked")
        else:
            rel = posixpath.normpath(value)
            if rel == ".." or rel.startswith("../"):
                out.append(f"{key}: {value!r} leaves {tree.name}/")
            elif not (tree / rel).exists():
                out.append(f"{key}: {value!r} names {tree.name}/{rel}, which the archive "
                           "lacks")
    return out
