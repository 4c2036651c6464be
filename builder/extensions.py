"""The stdlib extension modules of a full CPython build, per minor, and what an archive
lacks compared with it (builder/data/cpython_extensions.json says where each list is from)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from importlib import resources

REFERENCE = "data/cpython_extensions.json"


@functools.lru_cache(maxsize=1)
def _reference() -> dict[str, list[str]]:
    data = json.loads(resources.files("builder").joinpath(REFERENCE).read_text())
    return {str(k): list(v) for k, v in data["minors"].items()}


def full_build(minor: str) -> list[str] | None:
    """A full build's extension modules for ``minor``; None when there is no reference."""
    return _reference().get(minor)


def lacking(minor: str, present: Iterable[str]) -> list[str] | None:
    """The modules of a full build of ``minor`` not in ``present`` (shared or built in)."""
    full = full_build(minor)
    if full is None:
        return None
    have = set(present)
    return sorted(m for m in full if m not in have)


def extension_suffixes(build_vars: Mapping[str, object]) -> list[str] | None:
    """``importlib.machinery.EXTENSION_SUFFIXES`` of the interpreter whose sysconfig
    ``build_time_vars`` these are, derived as CPython's ``Python/dynload_shlib.c`` lists
    them: ``.SOABI.so`` (``EXT_SUFFIX``), ``.ALT_SOABI.so`` where defined, ``.abi3.so``
    (not on a free-threaded build), ``.so``. None without an ``EXT_SUFFIX``."""
    ext = build_vars.get("EXT_SUFFIX")
    if not isinstance(ext, str) or not ext.startswith(".") or not ext.endswith(".so"):
        return None
    suffixes = [ext]
    alt = build_vars.get("ALT_SOABI")
    if isinstance(alt, str) and alt:
        suffixes.append(f".{alt}.so")
    if not build_vars.get("Py_GIL_DISABLED"):
        suffixes.append(".abi3.so")
    suffixes.append(".so")
    return list(dict.fromkeys(suffixes))


def loads_as_module(name: str, suffixes: Iterable[str]) -> bool:
    """Would an interpreter with these ``EXTENSION_SUFFIXES`` import the file ``name``
    (a base name) as a module? Only as ``<identifier><suffix>``: the glibc-named
    ``_speedups.cpython-39-arm-linux-gnueabihf.so`` ends in ``.so`` too, but no import
    looks for a module named ``_speedups.cpython-39-arm-linux-gnueabihf``."""
    return any(name.endswith(s) and name[: -len(s)].isidentifier() for s in suffixes)


# The stdlib package that stands on an extension module: verify imports it too where the
# recipe requires or expects the extension (3.14's ``compression.zstd`` needs ``_zstd`` and,
# through it, the bundled libzstd).
PACKAGE_IMPORTS = {"_zstd": "compression.zstd"}


def package_imports(extensions: Iterable[str]) -> list[dict[str, str]]:
    """``{"module", "extension"}`` for each of ``extensions`` that has a package to import."""
    return [{"module": PACKAGE_IMPORTS[e], "extension": e}
            for e in dict.fromkeys(extensions) if e in PACKAGE_IMPORTS]
