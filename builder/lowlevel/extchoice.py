"""Which extension wheel verify installs: one the archive's interpreter can load.

A musllinux wheel's tags say nothing of the names of its compiled modules, and some are
named for glibc: PyPI's ``markupsafe-3.0.4-cp39-cp39-musllinux_1_2_armv7l.whl`` ships
``_speedups.cpython-39-arm-linux-gnueabihf.so``, which Alpine's Python 3.9 never imports
(its ``EXTENSION_SUFFIXES`` are ``.cpython-39-arm-linux-musleabihf.so``, ``.abi3.so``,
``.so``). Installing it would fail verify on the wheel, not on the archive. So a candidate
qualifies only when every compiled module it ships loads by one of the archive's suffixes
(:func:`builder.extensions.loads_as_module`); otherwise the next project is tried, and
after the last one verify cross-builds its probe extension. Every wheel passed over is
reported with the reason.

What counts as a compiled module: a ``.so`` file at an importable place of the wheel (each
directory a Python identifier, after a ``*.data/platlib/`` or ``purelib/`` prefix).
Libraries bundled beside the packages (``numpy.libs/libgfortran-....so.5``, a versioned
``.so.N``) are loaded by the dynamic loader, not imported, and do not count.

Wheels are hostile input (a user's ``--wheelhouse``): only the zip's directory is read,
under caps; an unreadable wheel is passed over with the reason, never a traceback.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import struct
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from builder.errors import MalformedArchiveError, MuslPbsError
from builder.extensions import extension_suffixes, loads_as_module
from builder.lowlevel.sysconfigdata import CAP_SYSCONFIG, build_time_vars
from builder.lowlevel.tarstream import ARCHIVE_LIMITS, OPEN_ERRORS, open_tar
from builder.lowlevel.wheelhouse import EXTENSION_PROJECTS, is_compiled_wheel, project_wheels
from builder.platforms import Arch

CAP_WHEEL_BYTES = 1 << 30  # a wheel file (numpy's: ~15 MiB)
CAP_WHEEL_MEMBERS = 100_000
CAP_WHEEL_DIRECTORY = 16 << 20  # its zip directory (numpy's: ~150 KiB)
_EOCD = struct.Struct("<4s4H2LH")
CAP_NAME = 1024
_DATA_PREFIX = re.compile(r"^[^/]+\.data/(?:purelib|platlib)/")


@dataclass(frozen=True)
class Skipped:
    project: str
    wheel: str  # file name
    reason: str


@dataclass(frozen=True)
class Choice:
    """The project and wheel verify installs (None: none qualifies), and the passed-over."""

    project: str | None
    wheel: Path | None
    skipped: tuple[Skipped, ...]
    suffixes: tuple[str, ...] | None  # the archive's EXTENSION_SUFFIXES judged by

    def why_none(self) -> str:
        """Why no wheel was chosen, for the report of the cross-built probe."""
        if not self.skipped:
            return ""
        names = ", ".join(s.project for s in self.skipped)
        return (f"no wheel of {names} loads in the archive (its EXTENSION_SUFFIXES: "
                f"{', '.join(self.suffixes or ())})")

    def wheelhouse(self, source: Path, dest: Path) -> Path:
        """``dest`` made to hold what pip installs from offline: ``source``'s files except
        the wheels of the extension projects, plus the chosen wheel and the files beside
        it (its dependencies), so that pip finds only that one."""
        dest.mkdir(parents=True, exist_ok=True)
        for path in sorted(source.iterdir()):
            if path.is_file() and not path.is_symlink() and not _project_of(path.name):
                _link_or_copy(path, dest / path.name)
        if self.wheel is not None:
            for path in sorted(self.wheel.parent.glob("*.whl")):
                if path == self.wheel or not _project_of(path.name):
                    _link_or_copy(path, dest / path.name)
        return dest


def compiled_modules(wheel: Path) -> list[str]:
    """The compiled modules ``wheel`` installs (member names), read from its zip
    directory under caps. Raises :class:`MalformedArchiveError` for an unreadable one."""
    try:
        # O_NONBLOCK: a FIFO named *.whl must not hang the open; then only a regular file
        fd = os.open(wheel, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise MalformedArchiveError(f"{wheel.name}: not a regular file")
            if st.st_size > CAP_WHEEL_BYTES:
                raise MalformedArchiveError(f"{wheel.name}: {st.st_size} bytes, over the cap "
                                            f"of {CAP_WHEEL_BYTES}")
            _check_directory(f, wheel.name, st.st_size)
            with zipfile.ZipFile(f) as z:
                infos = z.infolist()
    except OSError as e:
        raise MalformedArchiveError(f"{wheel.name}: not a readable wheel "
                                    f"({e.strerror or e})") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as e:
        raise MalformedArchiveError(f"{wheel.name}: not a readable wheel ({e})") from None
    if len(infos) > CAP_WHEEL_MEMBERS:  # the directory's own count may lie
        raise MalformedArchiveError(f"{wheel.name}: {len(infos)} members, over the cap of "
                                    f"{CAP_WHEEL_MEMBERS}")
    found = []
    for info in infos:
        name = info.filename
        if len(name) > CAP_NAME or info.is_dir() or not name.endswith(".so"):
            continue
        place = _DATA_PREFIX.sub("", name)
        *dirs, _base = place.split("/")
        if all(d.isidentifier() for d in dirs):
            found.append(name)
    return sorted(found)


def _check_directory(f: BinaryIO, name: str, size: int) -> None:
    """The zip's end-of-central-directory record, read before ``zipfile`` loads the whole
    directory into memory: its member count and byte size under the caps (no ZIP64: the
    wheels of these projects never need it)."""
    tail = min(size, _EOCD.size + 0xFFFF)  # the record, then a comment of up to 64 KiB
    f.seek(size - tail)
    data = f.read(tail)
    at = data.rfind(b"PK\x05\x06")
    if at < 0 or len(data) - at < _EOCD.size:
        raise MalformedArchiveError(f"{name}: not a readable wheel (no end of a zip "
                                    "directory)")
    _sig, _disk, _start, _here, count, dir_size, _offset, _comment = _EOCD.unpack_from(
        data, at)
    if count == 0xFFFF or dir_size == 0xFFFFFFFF:
        raise MalformedArchiveError(f"{name}: a ZIP64 archive, which no wheel tried needs")
    if count > CAP_WHEEL_MEMBERS or dir_size > CAP_WHEEL_DIRECTORY:
        raise MalformedArchiveError(
            f"{name}: {count} members in a {dir_size}-byte directory, over the caps of "
            f"{CAP_WHEEL_MEMBERS} members and {CAP_WHEEL_DIRECTORY} bytes")
    f.seek(0)


def judge(wheel: Path, suffixes: Iterable[str] | None) -> str | None:
    """None when ``wheel`` qualifies; else why not."""
    try:
        modules = compiled_modules(wheel)
    except MuslPbsError as e:
        return e.message
    if not modules:
        return f"{wheel.name} ships no compiled module: it proves no C extension"
    if suffixes is None:
        return None
    wanted = tuple(suffixes)
    bad = [m for m in modules if not loads_as_module(m.rsplit("/", 1)[-1], wanted)]
    if not bad:
        return None
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    return (f"{wheel.name} ships {bad[0]}{more}, a name the archive's interpreter never "
            f"imports: its EXTENSION_SUFFIXES are {', '.join(wanted)}")


def candidates(wheelhouse: Path, fetch: Callable[[str], Path | None] | None
               ) -> Iterator[tuple[str, Path]]:
    """(project, wheel) in :data:`EXTENSION_PROJECTS` order: the compiled wheels in
    ``wheelhouse`` first, then, through ``fetch`` (a project -> the directory holding its
    wheel, or None), the projects the wheelhouse has none of."""
    present: set[str] = set()
    for project in EXTENSION_PROJECTS:
        for wheel in _wheels_of(wheelhouse, project):
            present.add(project)
            yield project, wheel
    if fetch is None:
        return
    for project in EXTENSION_PROJECTS:
        if project in present:
            continue
        directory = fetch(project)
        for wheel in _wheels_of(directory, project) if directory else []:
            yield project, wheel


def choose(found: Iterable[tuple[str, Path]], suffixes: Iterable[str] | None) -> Choice:
    """The first candidate that qualifies; every one before it, with the reason."""
    wanted = tuple(suffixes) if suffixes is not None else None
    skipped: list[Skipped] = []
    for project, wheel in found:
        reason = judge(wheel, wanted)
        if reason is None:
            return Choice(project, wheel, tuple(skipped), wanted)
        skipped.append(Skipped(project, wheel.name, reason))
    return Choice(None, None, tuple(skipped), wanted)


def choose_for_archive(archive: Path, info: Mapping[str, Any], minor: str, arch: Arch,
                       wheelhouse: Path, *, download: bool) -> Choice:
    """verify's choice for ``archive``: among ``wheelhouse``'s wheels, then (``download``:
    the wheelhouse is the cached one, not the user's) the other projects' from PyPI."""
    fetch = (lambda project: project_wheels(minor, arch, project)) if download else None
    return choose(candidates(wheelhouse, fetch), archive_suffixes(info, archive, minor))


def archive_suffixes(info: Mapping[str, Any], archive: Path, minor: str
                     ) -> tuple[str, ...] | None:
    """The archive's ``EXTENSION_SUFFIXES``: as its build info records them (archives
    from this version on), else derived from its ``_sysconfigdata_*.py`` read from the
    archive, else from the ``ext_suffix`` it records; None when nothing tells."""
    recorded = info.get("extension_suffixes")
    if (isinstance(recorded, list) and recorded
            and all(isinstance(s, str) and s.endswith(".so") for s in recorded)):
        return tuple(recorded)
    derived = extension_suffixes(_sysconfig_in(archive, minor) or {})
    if derived is None:
        ext = info.get("ext_suffix")
        derived = extension_suffixes({"EXT_SUFFIX": ext}) if isinstance(ext, str) else None
    return tuple(derived) if derived else None


def _sysconfig_in(archive: Path, minor: str) -> dict[str, object] | None:
    """``build_time_vars`` of the archive's ``_sysconfigdata_*.py`` (one streamed pass)."""
    prefix = f"python/lib/python{minor}/_sysconfigdata_"
    try:
        with open_tar(archive, ARCHIVE_LIMITS, archive.name) as tar:
            for member in tar:
                if not (member.name.startswith(prefix) and member.name.endswith(".py")
                        and "/" not in member.name[len(prefix):] and member.isfile()
                        and member.size <= CAP_SYSCONFIG):
                    continue
                f = tar.extractfile(member)
                text = f.read(CAP_SYSCONFIG).decode("utf-8", "replace") if f else ""
                found = build_time_vars(text)
                if found is not None:
                    return found
    except OPEN_ERRORS:
        return None
    except MuslPbsError:
        return None
    return None


def _project_of(filename: str) -> str | None:
    """The extension project a compiled wheel's file name belongs to, if any."""
    lower = filename.lower()
    return next((p for p in EXTENSION_PROJECTS
                 if lower.startswith(f"{p}-") and is_compiled_wheel(filename)), None)


def _wheels_of(directory: Path, project: str) -> list[Path]:
    """The compiled wheels of ``project`` in ``directory`` (by name)."""
    return sorted(w for w in directory.glob("*.whl") if _project_of(w.name) == project)


def _link_or_copy(src: Path, dest: Path) -> None:
    if dest.exists():  # the chosen wheel's directory is the wheelhouse itself
        return
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)
