"""Resolve shared libraries inside a root filesystem the way musl's loader would.

Nothing is executed. Search order (musl ldso/dynlink.c): the rpath of the requesting
object and of every object up its needed-by chain (``$ORIGIN`` expanded, RUNPATH winning
over RPATH), then ``/etc/ld-musl-ARCH.path`` or ``/lib:/usr/local/lib:/usr/lib``.
Names of musl's own libc (``libc.musl-*``, ``libc.so``, ``libpthread.so.0``...) are
answered by the loader itself.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from builder.errors import UnsafeElfError
from builder.lowlevel.elf import ElfInfo, read_elf
from builder.lowlevel.rootfs import SMALL_FILE, read_in_root, resolve_in_root
from builder.platforms import Arch, is_musl_libc_name

DEFAULT_MUSL_PATH = tuple(PurePosixPath(d) for d in ("/lib", "/usr/local/lib", "/usr/lib"))


def system_search_dirs(root: Path, arch: Arch) -> tuple[PurePosixPath, ...]:
    """``/etc/ld-musl-ARCH.path`` of the root if present, else musl's built-in default."""
    text = read_in_root(root, f"/etc/ld-musl-{arch.musl_arch}.path", cap=SMALL_FILE)
    if text is not None:
        dirs = [d.strip() for d in text.replace("\n", ":").split(":") if d.strip()]
        return tuple(PurePosixPath(d) for d in dirs if d.startswith("/"))
    return DEFAULT_MUSL_PATH


def check_needed_name(name: str, requester: PurePosixPath) -> None:
    """A DT_NEEDED entry must be a plain file name: it becomes a file name in ``lib/``."""
    if (not name or name in (".", "..") or "/" in name or "\0" in name
            or len(name.encode("utf-8", "surrogateescape")) > 255):
        raise UnsafeElfError(
            f"{requester} needs {name!r}: a DT_NEEDED entry that is not a plain file name"
        )


def expand_rpath(entry: str, origin: PurePosixPath) -> PurePosixPath | None:
    """Expand ``$ORIGIN``/``${ORIGIN}``; None when another ``$`` token makes musl ignore it."""
    value = entry.replace("${ORIGIN}", str(origin)).replace("$ORIGIN", str(origin))
    if "$" in value:
        return None
    return PurePosixPath(posixpath.normpath(value))


@dataclass(frozen=True)
class Requester:
    """An object asking for libraries: where it lives in the root, and its ELF facts."""

    path: PurePosixPath  # in-root path, absolute
    elf: ElfInfo

    def rpath_dirs(self) -> list[PurePosixPath]:
        """The expanded search path; empty when any entry holds a ``$`` token other than
        ``$ORIGIN`` (musl's fixup_rpath then drops the whole path)."""
        out = []
        for entry in self.elf.search_path:
            d = expand_rpath(entry, self.path.parent)
            if d is None:
                return []
            out.append(d)
        return out


@dataclass
class Closure:
    # needed name -> (in-root path of the file it resolves to, host path)
    libraries: dict[str, tuple[PurePosixPath, Path]] = field(default_factory=dict)
    # (needed name, in-root path of the requester) that resolved nowhere
    missing: list[tuple[str, PurePosixPath]] = field(default_factory=list)
    # needed name -> the requesters that asked for it
    needed_by: dict[str, list[PurePosixPath]] = field(default_factory=dict)


def find_library(
    root: Path,
    name: str,
    chain: Sequence[Requester],
    system_dirs: Iterable[PurePosixPath],
) -> tuple[PurePosixPath, Path] | None:
    """Resolve the plain file name ``name`` for the requester ``chain[0]`` (then its
    requesters)."""
    dirs: list[PurePosixPath] = []
    for req in chain:
        dirs.extend(req.rpath_dirs())
    dirs.extend(system_dirs)
    for d in dirs:
        candidate = d / name
        host = resolve_in_root(root, candidate)
        if host is not None and host.is_file():
            return candidate, host
    return None


def compute_closure(
    root: Path,
    objects: Mapping[PurePosixPath, Path],
    system_dirs: Sequence[PurePosixPath],
    *,
    provided: Iterable[str] = (),
) -> Closure:
    """The transitive DT_NEEDED closure of ``objects`` (in-root path -> host file).

    ``provided`` names are satisfied without a lookup (e.g. libpython, kept anyway).
    """
    result = Closure()
    provided_set = set(provided)
    queue: list[tuple[Requester, tuple[Requester, ...]]] = []
    for path, host in sorted(objects.items()):
        info = read_elf(host)
        if info is not None:
            req = Requester(path, info)
            queue.append((req, (req,)))
    seen_files: set[Path] = set()
    while queue:
        req, chain = queue.pop(0)
        for name in req.elf.needed:
            check_needed_name(name, req.path)
            result.needed_by.setdefault(name, []).append(req.path)
            if is_musl_libc_name(name) or name in result.libraries:
                continue
            if name in provided_set:
                continue
            found = find_library(root, name, chain, system_dirs)
            if found is None:
                result.missing.append((name, req.path))
                continue
            result.libraries[name] = found
            in_root, host = found
            real = host.resolve()
            if real in seen_files:
                continue
            seen_files.add(real)
            info = read_elf(host)
            if info is not None:
                child = Requester(in_root, info)
                queue.append((child, (child, *chain)))
    return result
