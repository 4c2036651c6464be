"""Output directories (--out, --dir, --work): refuse early, and clearly, where nothing can
be written, instead of failing half-way with an OSError.

The up-front check does not trust permission bits (root passes ``os.access`` for ``/proc``,
``/sys`` and read-only mounts alike): it creates a real probe file in the directory itself,
then removes it. What still goes wrong later
(the disk fills up, the directory is removed) is turned into the same typed error where
the outputs are written (:func:`writing`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from builder.errors import MuslPbsError, UnwritableOutputError

# OSErrors that can only come from writing: the CLI reports them wherever they happen.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})
PROBE_PREFIX = ".musl-pbs-probe-"


def check_writable_dir(path: Path, what: str) -> None:
    """``path`` is (or can be created as) a directory we can write into, proven by creating
    and removing a probe file in it. Creates nothing that stays: the directories made for
    the probe are removed again (the command makes them when it writes)."""
    if path.exists() and not path.is_dir():
        raise UnwritableOutputError(f"{what} {path}: exists and is not a directory")
    for attempt in range(3):
        try:
            _check_once(path, what)
            return
        except UnwritableOutputError:
            # Another command probing the same new directory may have removed it under
            # us (it made it, we found it there): look again, as it is now.
            if attempt == 2 or path.exists():
                raise


def _check_once(path: Path, what: str) -> None:
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        if probe.is_symlink():  # a dangling link: mkdir would fail on it
            raise UnwritableOutputError(f"{what} {path}: {probe} is a dangling symbolic link")
        missing.append(probe)
        probe = probe.parent
    if not probe.is_dir():
        raise UnwritableOutputError(f"{what} {path}: {probe} is not a directory")
    created: list[Path] = []
    try:
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:  # made meanwhile by someone else: theirs, not ours
                continue
            except OSError as e:
                raise UnwritableOutputError(
                    f"{what} {path}: cannot create {d}: {_why(d.parent, e)}") from None
            created.append(d)
        _probe_file(path, what)
    finally:
        for d in reversed(created):
            with contextlib.suppress(OSError):
                d.rmdir()


def _probe_file(directory: Path, what: str) -> None:
    """Create, write, and remove a file in ``directory``."""
    try:
        fd, name = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=directory)
    except OSError as e:
        raise UnwritableOutputError(
            f"{what} {directory}: cannot write there: {_why(directory, e)}") from None
    try:
        try:
            os.write(fd, b"musl-pbs\n")
        finally:
            os.close(fd)
    except OSError as e:
        raise UnwritableOutputError(
            f"{what} {directory}: cannot write there: {_why(directory, e)}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


def unwritable(e: OSError, what: str) -> UnwritableOutputError:
    """An OSError met while writing an output, as the typed error that names the file."""
    where = f" {e.filename}" if e.filename else ""
    return UnwritableOutputError(f"cannot write {what}:{where}: {e.strerror or e}")


@contextlib.contextmanager
def writing(what: str) -> Iterator[None]:
    """Around the final writes and renames of an output: any OSError is the typed error
    naming ``what`` and the file (our own errors pass through unchanged)."""
    try:
        yield
    except MuslPbsError:
        raise
    except OSError as e:
        raise unwritable(e, what) from None


def _why(path: Path, e: OSError) -> str:
    """The reason, in words: a read-only file system said as such (EACCES and EPERM are
    what some read-only places answer), else the system's message."""
    try:
        st = os.statvfs(path)
    except OSError:
        return e.strerror or str(e)
    if st.f_flag & os.ST_RDONLY:
        return "read-only file system"
    if e.errno == errno.ENOENT:  # /proc and friends: the directory cannot hold new files
        return "the file system there does not take new files (No such file or directory)"
    return e.strerror or str(e)
