"""Output directories (--out, --dir, --work): refuse early, and clearly, where nothing can
be written, instead of failing half-way with an OSError."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from builder.errors import UnwritableOutputError

# OSErrors that can only come from writing: the CLI reports them wherever they happen.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def check_writable_dir(path: Path, what: str) -> None:
    """``path`` is (or can be created as) a directory we can write into. Creates nothing."""
    if path.exists() and not path.is_dir():
        raise UnwritableOutputError(f"{what} {path}: exists and is not a directory")
    probe = path
    while not probe.exists():
        if probe.is_symlink():  # a dangling link: mkdir would fail on it
            raise UnwritableOutputError(f"{what} {path}: {probe} is a dangling symbolic link")
        probe = probe.parent
    if not probe.is_dir():
        raise UnwritableOutputError(f"{what} {path}: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "" if probe == path else f" (its nearest existing parent {probe})"
        raise UnwritableOutputError(f"{what} {path}: cannot write there{where}: "
                                    f"{_why(probe)}")


def unwritable(e: OSError, what: str) -> UnwritableOutputError:
    """An OSError met while writing an output, as the typed error that names the file."""
    where = f" {e.filename}" if e.filename else ""
    return UnwritableOutputError(f"cannot write {what}:{where}: {e.strerror or e}")


def _why(path: Path) -> str:
    try:
        st = os.statvfs(path)
    except OSError:
        return "permission denied"
    if st.f_flag & os.ST_RDONLY:
        return "read-only file system"
    return "permission denied"
