"""The one way musl-pbs unpacks a tar: each member judged by where it really lands.

Used for the streamed ``docker export`` (acquire), ``install``, ``verify`` and tests.
The source is a path or a stream, read once through :func:`builder.lowlevel.tarstream.open_tar`.

Rules:

- Names lose a leading ``./``; absolute names, ``..`` components and NUL bytes are refused.
- Nothing is created through a symlink: each parent directory is opened with
  ``O_NOFOLLOW`` relative to the one before (an ``openat`` walk from the destination), so
  a symlink or a file on the way is an error, wherever it points.
- A symlink's target is resolved against what is already on disk, earlier links included,
  and must land inside the destination. Once the tree is complete every symlink is
  resolved again (a later link can change where an earlier dangling one leads).
- A hard link may only name a regular file this extraction already wrote.
- Duplicate names: a later file, hard link or symlink replaces the earlier entry (tar's
  rule, applied in archive order); a directory over a directory keeps it (the later mode
  wins); a directory and a non-directory of the same name are an error.
- Device nodes and FIFOs are skipped; sparse members are refused; setuid, setgid, sticky
  and group/other write bits are dropped; ownership is never taken from the archive.
- Caps (:class:`Limits`): member count, name length, bytes written, and expanded bytes per
  compressed byte once past a floor (a decompression bomb stops early).
- The tree is built under a hidden sibling of the destination and renamed into place only
  when complete; on any failure (Ctrl-C included) it is removed.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from builder.errors import (
    ExtractionLimitError,
    MalformedArchiveError,
    UnsafeArchiveError,
    UnwritableOutputError,
)
from builder.lowlevel.tarreader import Member, TarReader
from builder.lowlevel.tarstream import CHUNK, ByteStream, Limits, MiB, open_stream

_MAX_HOPS = 40  # symlinks followed while resolving one target (Linux's MAXSYMLINKS)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_OPEN_DIRS = 256  # directory fds kept open while writing (then all are closed)
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

# A transform sees each member first and returns it (maybe changed, in place or a copy) or
# None to skip it.
Transform = Callable[[Member], Member | None]
# A skip predicate sees each normalised name; True drops the member unread.
Skip = Callable[[str], bool]


@dataclass(frozen=True)
class Extracted:
    members: int  # members read
    written: int  # regular-file bytes written
    skipped: int  # members dropped by the skip predicate, the transform or the rules


# -- names --------------------------------------------------------------------------------
def _parts(name: str, label: str, limits: Limits, what: str = "name") -> tuple[str, ...]:
    """``name`` split into components, or an error saying why it cannot land inside."""
    if "\0" in name:
        raise UnsafeArchiveError(f"{label}: refusing {what} {name!r}: it holds a NUL byte")
    if len(name.encode("utf-8", "surrogateescape")) > limits.max_name:
        raise ExtractionLimitError(
            f"{label}: a member {what} is {len(name)} characters long "
            f"(the cap is {limits.max_name}): {name[:80]!r}..."
        )
    if name.startswith("/"):
        raise UnsafeArchiveError(f"{label}: refusing {name!r}: an absolute {what}")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafeArchiveError(f"{label}: refusing {name!r}: its {what} climbs with '..'")
    for p in parts:
        if len(p.encode("utf-8", "surrogateescape")) > 255:
            raise ExtractionLimitError(
                f"{label}: a path component of {name[:80]!r}... is longer than 255 bytes"
            )
    return parts


def _check_link_text(target: str, label: str, limits: Limits) -> None:
    """A symlink target's text: no NUL, not absurdly long (``..`` is judged on disk)."""
    if "\0" in target or not target:
        raise MalformedArchiveError(f"{label}: a symlink target is empty or holds a NUL byte")
    if len(target.encode("utf-8", "surrogateescape")) > limits.max_name:
        raise ExtractionLimitError(
            f"{label}: a symlink target is {len(target)} characters long "
            f"(the cap is {limits.max_name})"
        )


def _file_mode(mode: int) -> int:
    mode = (mode & 0o755) | 0o600
    return mode if mode & 0o100 else mode & ~0o011


# -- writing ------------------------------------------------------------------------------
def _umask() -> int | None:
    """The process's umask, read without changing it (``os.umask`` can only swap it, a race
    with other threads); None where ``/proc`` does not say."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _Writer:
    """Creates entries under ``root_fd`` without following any symlink."""

    def __init__(self, top: Path, label: str, limits: Limits) -> None:
        self.top = top
        self.label = label
        self.limits = limits
        self.root_fd = os.open(top, _DIR_FLAGS)
        self.kinds: dict[tuple[str, ...], str] = {}  # "reg", "dir", "sym" by real name
        self.skipped_files: set[tuple[str, ...]] = set()
        self.links: dict[tuple[str, ...], str] = {}  # the symlinks there now -> targets
        self.dirs: dict[tuple[str, ...], tuple[int, float]] = {}
        self._fds: dict[tuple[str, ...], int] = {}  # open directories below the top
        self.umask = _umask()

    def close(self) -> None:
        self._uncache()
        os.close(self.root_fd)

    def _uncache(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def _where(self, parts: tuple[str, ...]) -> str:
        return "/".join(parts) or "."

    def _walk(self, parts: tuple[str, ...], create: bool) -> int:
        """An fd of the real directory ``parts`` (the caller must not close it).

        Directories once made stay directories (a non-directory over one is an error), so
        their fds are kept open and a walk starts from the deepest one already open."""
        if not parts:
            return self.root_fd
        fd = self._fds.get(parts)
        if fd is not None:
            return fd
        if len(self._fds) >= _MAX_OPEN_DIRS:
            self._uncache()
        start = len(parts) - 1
        while start > 0 and parts[:start] not in self._fds:
            start -= 1
        fd = self._fds[parts[:start]] if start else self.root_fd
        for i in range(start, len(parts)):
            part = parts[i]
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                self._write_call(os.mkdir, parts[: i + 1], part, 0o755, dir_fd=fd)
                self.kinds[parts[: i + 1]] = "dir"
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
                raise UnsafeArchiveError(
                    f"{self.label}: refusing to write through "
                    f"{self._where(parts[: i + 1])!r}: it is {what}"
                ) from None
            self._fds[parts[: i + 1]] = nfd
            fd = nfd
        return fd

    def _write_call(self, fn: Callable[..., object], parts: tuple[str, ...], *args: object,
                    **kwargs: object) -> None:
        try:
            fn(*args, **kwargs)
        except OSError as e:
            raise UnwritableOutputError(
                f"{self.label}: cannot write {self._where(parts)} under {self.top}: {e.strerror}"
            ) from None

    def _make_room(self, parts: tuple[str, ...], pfd: int, is_dir: bool) -> bool:
        """Apply the duplicate-name rule; True when a directory is already there.
        (``kinds`` knows every entry: the tree is new and only this writer writes to it.)"""
        kind = self.kinds.get(parts)
        if kind is None:
            return False
        if (kind == "dir") != is_dir:
            raise MalformedArchiveError(
                f"{self.label}: {self._where(parts)!r} is both a directory and a "
                "non-directory in the archive"
            )
        if not is_dir:
            self._write_call(os.unlink, parts, parts[-1], dir_fd=pfd)
            self.links.pop(parts, None)
        return is_dir

    def directory(self, parts: tuple[str, ...], mode: int, mtime: float) -> None:
        pfd = self._walk(parts[:-1], create=True)
        if not self._make_room(parts, pfd, is_dir=True):
            self._write_call(os.mkdir, parts, parts[-1], 0o700, dir_fd=pfd)
        self.kinds[parts] = "dir"
        self.dirs[parts] = ((mode & 0o755) | 0o700, mtime)

    def regular(self, parts: tuple[str, ...], mode: int, mtime: float, data: TarReader,
                size: int) -> None:
        pfd = self._walk(parts[:-1], create=True)
        self._make_room(parts, pfd, is_dir=False)
        final = _file_mode(mode)
        try:
            # Created with its final mode when the umask leaves it whole (one fchmod less
            # per file; the bits were never more than 0o755).
            fd = os.open(parts[-1], _FILE_FLAGS, final if self.umask_clear_of(final) else 0o600,
                         dir_fd=pfd)
        except OSError as e:
            raise UnwritableOutputError(
                f"{self.label}: cannot create {self._where(parts)} under {self.top}: "
                f"{e.strerror}"
            ) from None
        try:
            left = size
            while left > 0:
                chunk = data.read(min(CHUNK, left))  # errors: typed, by the reader
                if not chunk:
                    raise MalformedArchiveError(
                        f"{self.label}: {self._where(parts)}: the archive ends inside it"
                    )
                if len(chunk) > left:  # cannot happen: a stream's read gives what is asked
                    raise MalformedArchiveError(f"{self.label}: {self._where(parts)}: "
                                                "more data than its size")
                self._write_call(_write_all, parts, fd, chunk)
                left -= len(chunk)
            if not self.umask_clear_of(final):
                self._write_call(os.fchmod, parts, fd, final)
            self._write_call(os.utime, parts, fd, (mtime, mtime))
        finally:
            os.close(fd)
        self.kinds[parts] = "reg"

    def umask_clear_of(self, mode: int) -> bool:
        return self.umask is not None and not self.umask & mode

    def hardlink(self, parts: tuple[str, ...], target: tuple[str, ...]) -> bool:
        """Link ``parts`` to the regular file ``target``; False when the target was skipped."""
        if self.kinds.get(target) != "reg":
            if target in self.skipped_files:
                return False
            kind = self.kinds.get(target)
            raise MalformedArchiveError(
                f"{self.label}: hard link {self._where(parts)!r} names "
                f"{self._where(target)!r}, which is "
                + (f"a {'directory' if kind == 'dir' else 'symlink'}" if kind
                   else "not an earlier member of the archive")
            )
        src_fd = os.dup(self._walk(target[:-1], create=False))
        try:
            st = os.stat(target[-1], dir_fd=src_fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):  # cannot happen: kinds says "reg"
                raise UnsafeArchiveError(f"{self.label}: {self._where(target)} changed kind")
            pfd = self._walk(parts[:-1], create=True)
            self._make_room(parts, pfd, is_dir=False)
            self._write_call(os.link, parts, target[-1], parts[-1], src_dir_fd=src_fd,
                             dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(src_fd)
        self.kinds[parts] = "reg"
        return True

    def symlink(self, parts: tuple[str, ...], target: str) -> None:
        pfd = self._walk(parts[:-1], create=True)  # first: its directory is a real one
        self.check_lands_inside(parts, target)
        self._make_room(parts, pfd, is_dir=False)
        self._write_call(os.symlink, parts, target, parts[-1], dir_fd=pfd)
        self.kinds[parts] = "sym"
        self.links[parts] = target

    def check_lands_inside(self, parts: tuple[str, ...], target: str) -> None:
        """Resolve the link ``parts -> target`` against the tree as it is now (every entry
        is known: the tree is new and only this writer writes to it); an error unless it
        stays inside."""
        where = list(parts[:-1])
        pending = [c for c in target.split("/") if c not in ("", ".")]
        hops = 0
        while pending:
            c = pending.pop(0)
            if c == "..":
                if not where:
                    raise UnsafeArchiveError(
                        f"{self.label}: refusing symlink {self._where(parts)!r} -> {target!r}: "
                        "it leads out of the tree"
                    )
                where.pop()
                continue
            link = self.links.get((*where, c))
            if link is not None:
                hops += 1
                if hops > _MAX_HOPS:
                    raise MalformedArchiveError(
                        f"{self.label}: symlink {self._where(parts)!r} -> {target!r} "
                        "goes round a loop of links"
                    )
                pending = [x for x in link.split("/") if x not in ("", ".")] + pending
                continue
            where.append(c)  # a directory, a file, or nothing yet (judged by name for now)

    def finish(self) -> None:
        """Check every symlink again, then give directories their modes and times."""
        for parts, target in self.links.items():
            self.check_lands_inside(parts, target)
        self._uncache()
        for parts, (mode, mtime) in sorted(self.dirs.items(), key=lambda d: -len(d[0])):
            fd = os.dup(self._walk(parts, create=False))
            try:
                self._write_call(os.fchmod, parts, fd, mode)
                self._write_call(os.utime, parts, fd, (mtime, mtime))
            finally:
                os.close(fd)
        self._uncache()


def normalise_name(name: str) -> str:
    """A member name or hard-link target without its leading ``./``."""
    while name.startswith("./"):
        name = name[2:]
    return name


def _unpack(tar: TarReader, writer: _Writer, limits: Limits,
            transform: Transform | None, skip: Skip | None) -> Extracted:
    label = writer.label
    members = written = skipped = 0
    for member in tar:
        members += 1
        if members > limits.max_members:
            raise ExtractionLimitError(f"{label}: more than {limits.max_members} members")
        candidate = transform(member) if transform is not None else member
        if candidate is None:
            skipped += 1
            continue
        name = normalise_name(candidate.name)
        parts = _parts(name, label, limits)
        if not parts or (skip is not None and skip("/".join(parts))):
            if candidate.isreg():
                writer.skipped_files.add(parts)
            skipped += 1
            continue
        if candidate.issparse():
            raise UnsafeArchiveError(f"{label}: refusing sparse member {name!r}")
        if candidate.ischr() or candidate.isblk() or candidate.isfifo():
            skipped += 1
            continue
        if candidate.isdir():
            writer.directory(parts, candidate.mode, candidate.mtime)
        elif candidate.issym():
            _check_link_text(candidate.linkname, label, limits)
            if candidate.linkname.startswith("/"):
                raise UnsafeArchiveError(
                    f"{label}: refusing symlink {name!r} -> {candidate.linkname!r}: "
                    "an absolute target"
                )
            writer.symlink(parts, candidate.linkname)
        elif candidate.islnk():
            target = _parts(normalise_name(candidate.linkname), label, limits, "link target")
            if not writer.hardlink(parts, target):
                writer.skipped_files.add(parts)  # its target was skipped: so is the link
                skipped += 1
        elif candidate.isreg():
            if written + candidate.size > limits.max_bytes:
                raise ExtractionLimitError(
                    f"{label}: more than {limits.max_bytes // MiB} MiB of file data "
                    f"(at {name!r}, {members} members in)"
                )
            writer.regular(parts, candidate.mode, candidate.mtime, tar, candidate.size)
            written += candidate.size
        else:
            raise MalformedArchiveError(
                f"{label}: {name!r} is of an unknown member type {candidate.type!r}"
            )
    writer.finish()
    return Extracted(members, written, skipped)


def extract(
    source: Path | ByteStream,
    dest: Path,
    limits: Limits,
    *,
    transform: Transform | None = None,
    skip: Skip | None = None,
    label: str = "",
) -> Extracted:
    """Unpack ``source`` into the new directory ``dest`` (which must not exist yet)."""
    label = label or str(source)
    partial = dest.with_name(f".{dest.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(partial, 0o700)
    except OSError as e:
        raise UnwritableOutputError(f"cannot create {partial}: {e.strerror}") from None
    try:
        writer = _Writer(partial, label, limits)
        try:
            with open_stream(source, limits, label) as stream:
                try:
                    result = _unpack(TarReader(stream, label), writer, limits, transform,
                                     skip)
                except (MalformedArchiveError, ExtractionLimitError) as e:
                    if e.message.startswith(label):
                        raise
                    raise type(e)(f"{label}: {e.message}", e.hint) from None
        finally:
            writer.close()
        os.chmod(partial, 0o755)
        os.rename(partial, dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return result

