"""Staging by hard link, and writing a staged file without touching what it was linked to.

stage links the files it selects from the exported root instead of copying them (the
export and the staged tree share a file system: no bytes move). The export must stay as
acquire left it (any stage can be run again alone from it), so whatever changes a staged
file goes through :func:`detach` or :func:`rewrite`: the file gets an inode of its own
first. The tree's files are ours (written by the extraction), so ``link`` fails only across
file systems, on a file system without hard links, or past a link-count limit: then the
file is copied.
"""

from __future__ import annotations

import contextlib
import errno
import locale
import os
import shutil
import uuid
from pathlib import Path

# Why os.link may fail where a copy would do.
_COPY_INSTEAD = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP, errno.EACCES}


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Hard-link ``src`` at ``dst`` (a new name); copy it, metadata included, when the file
    system will not link. (Has :func:`shutil.copy2`'s signature for ``copytree``.)"""
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError as e:
        if e.errno not in _COPY_INSTEAD:
            raise
        shutil.copy2(src, dst, follow_symlinks=False)


def _sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def detach(path: Path) -> None:
    """Give the regular file ``path`` an inode of its own if another name shares it: the
    same bytes, mode and times, copied beside it and renamed over it."""
    st = os.lstat(path)
    if st.st_nlink <= 1:
        return
    tmp = _sibling(path)
    try:
        shutil.copy2(path, tmp, follow_symlinks=False)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def rewrite(path: Path, data: bytes) -> None:
    """Replace the contents of ``path`` with ``data``: a new file beside it, with its mode,
    renamed over it (a file linked elsewhere is left as it was)."""
    mode = os.lstat(path).st_mode & 0o7777
    tmp = _sibling(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def rewrite_text(path: Path, text: str) -> None:
    """:func:`rewrite` with ``text`` encoded as :meth:`Path.write_text` would."""
    rewrite(path, text.encode(locale.getpreferredencoding(False)))
