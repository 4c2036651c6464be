"""The oldest musl an archive can run on, proven from symbols.

An archive's ELF files import symbols; those no file of the archive defines are resolved
by musl (the loader is libc). ``builder/data/musl_symbols.json`` (made by
``tools/musl_symbols.py`` from real Alpine loaders) says which names each musl release
exports on each arch. The floor is the oldest release from which on every known release
exports all of them; the symbols the release below it lacks are what set the floor.
A host (install) or image (verify) whose loader is at hand is judged on its own exports.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from builder.lowlevel.apkversion import ApkVersion, compare
from builder.lowlevel.elf import dynamic_symbols, is_elf, read_elf
from builder.platforms import is_musl_libc_name

TABLE = "data/musl_symbols.json"
_REFERENCE_ARCH = "x86_64"  # the arch whose history stands in where an arch has less


@dataclass(frozen=True)
class SymbolSet:
    """What one real musl loader exports."""

    musl: str
    arch: str
    source: str  # where the set was read from
    exports: frozenset[str]
    lfs64: frozenset[str]  # `foo64` resolves to `foo` for these (musl >= 1.2.4's loader)

    def lacks(self, names: Iterable[str]) -> list[str]:
        return lacking(names, self.exports, self.lfs64)


def lacking(names: Iterable[str], exports: frozenset[str], lfs64: frozenset[str]) -> list[str]:
    """The names a loader with ``exports`` (and LFS64 aliases ``lfs64``) cannot resolve."""
    return sorted(n for n in names if n not in exports
                  and not (n.endswith("64") and n[:-2] in lfs64 and n[:-2] in exports))


@dataclass(frozen=True)
class Floor:
    version: str  # the oldest musl the archive needs
    set_by: tuple[str, ...]  # the symbols the release below the floor lacks
    built_on: str  # the musl of the build root
    needed: tuple[str, ...]  # every symbol the archive takes from musl
    missing_by_version: dict[str, list[str]]  # known releases -> what they would lack
    unknown: tuple[str, ...] = ()  # needed, yet exported by no known release
    method: str = "symbols"

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "set_by": list(self.set_by),
                "built_on": self.built_on, "method": self.method,
                "missing_by_version": self.missing_by_version,
                "unknown_symbols": list(self.unknown), "needed": list(self.needed)}


@dataclass(frozen=True)
class MuslTable:
    versions: tuple[str, ...]  # ascending, in apk's order
    sets: tuple[SymbolSet, ...]

    def set_for(self, arch: str, version: str) -> SymbolSet | None:
        return next((s for s in self.sets if s.arch == arch and s.musl == version), None)

    def missing_by_version(self, arch: str, needed: Iterable[str]) -> dict[str, list[str]]:
        """For each known release: the needed names it lacks. Where ``arch`` has no set
        of a release, x86_64's history judges the arch-independent names."""
        needed = sorted(set(needed))
        out: dict[str, list[str]] = {}
        ref_newest = self.set_for(_REFERENCE_ARCH, self.versions[-1])
        for version in self.versions:
            own = self.set_for(arch, version)
            if own is not None:
                out[version] = own.lacks(needed)
                continue
            ref = self.set_for(_REFERENCE_ARCH, version)
            if ref is None or ref_newest is None:
                continue
            generic = [n for n in needed if not ref_newest.lacks([n])]
            out[version] = ref.lacks(generic)
        return out

    def floor(self, arch: str, needed: Iterable[str], built_on: str) -> Floor:
        needed = tuple(sorted(set(needed)))
        missing = self.missing_by_version(arch, needed)
        known = [s for s in self.sets if s.arch == arch] or [
            s for s in self.sets if s.arch == _REFERENCE_ARCH]
        unknown = tuple(n for n in needed if all(s.lacks([n]) for s in known))
        ordered = sorted(missing, key=ApkVersion)
        if unknown or not ordered or missing[ordered[-1]]:
            # Names no known release exports: only the build's own musl is proven.
            return Floor(built_on, unknown, built_on, needed, missing, unknown,
                         method="build-release")
        k = len(ordered) - 1
        while k > 0 and not missing[ordered[k - 1]]:
            k -= 1
        version = ordered[k]
        set_by = tuple(missing[ordered[k - 1]]) if k > 0 else ()
        if built_on and compare(built_on, version) < 0:
            version = built_on  # it ran where it was built
        return Floor(version, set_by, built_on, needed, missing)


@functools.lru_cache(maxsize=1)
def load_table() -> MuslTable:
    data = json.loads(resources.files("builder").joinpath(TABLE).read_text())
    common = frozenset(data["common"])
    sets = tuple(
        SymbolSet(str(s["musl"]), str(s["arch"]), f"{s['distribution']}: {s['file']}",
                  common | frozenset(s["extra"]), frozenset(s["lfs64"]))
        for s in data["sets"]
    )
    versions = tuple(sorted({s.musl for s in sets}, key=ApkVersion))
    return MuslTable(versions, sets)


def imported_from_libc(tree: Path) -> frozenset[str]:
    """The symbols the ELF files under ``tree`` import that none of them defines: musl's to
    provide. A file with a non-libc DT_NEEDED missing from the tree is left out (what it
    imports may be that library's; the static audit reports the missing library)."""
    defined: set[str] = set()
    files: list[tuple[tuple[str, ...], frozenset[str]]] = []
    provided: set[str] = set()
    for dirpath, _dirs, names in os.walk(tree):
        for name in names:
            path = Path(dirpath, name)
            if path.is_symlink():
                provided.add(name)  # links name libraries too (libz.so.1 -> libz.so.1.3.1)
                continue
            if not is_elf(path):
                continue
            info, syms = read_elf(path), dynamic_symbols(path)
            if info is None or syms is None:
                continue
            provided.update(n for n in (name, info.soname) if n)
            defined |= syms.defined
            files.append((info.needed, syms.undefined))
    undefined: set[str] = set()
    for needed, imports in files:
        if all(is_musl_libc_name(n) or n in provided for n in needed):
            undefined |= imports
    return frozenset(undefined - defined)


def loader_symbols(path: Path) -> tuple[frozenset[str], frozenset[str]] | None:
    """A real musl loader's exports and LFS64 alias list, read from the file."""
    syms = dynamic_symbols(path)
    if syms is None or not syms.defined:
        return None
    try:
        with path.open("rb") as f:
            data = f.read(16 * 1024 * 1024)
    except OSError:
        return None
    return syms.defined, frozenset(lfs64_names(data))


_LFS64_START = b"aio_cancel\x00aio_error\x00"


def lfs64_names(data: bytes) -> list[str]:
    """musl >= 1.2.4's loader keeps the names whose ``64`` twins it still resolves as one
    NUL-separated list (ldso/dynlink.c); empty for older loaders."""
    start = data.find(_LFS64_START)
    if start < 0:
        return []
    names = []
    for raw in data[start:start + 4096].split(b"\x00"):
        if not raw or not raw.replace(b"_", b"").isalnum():
            break
        names.append(raw.decode())
    return names
