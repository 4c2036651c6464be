"""Extracting tar archives safely, on every Python 3.11 (``tarfile`` filters, PEP 706,
arrived in 3.11.4: Debian 12's and some Alpine Pythons are older).

The rules are those of ``tarfile.data_filter``: no absolute or escaping names, no links
pointing out of the destination, no device nodes or FIFOs, no setuid/setgid/sticky bits
or group/other write, no ownership taken from the archive.
"""

from __future__ import annotations

import copy
import os
import posixpath
import tarfile
from collections.abc import Callable
from pathlib import Path

from builder.errors import UnsafeArchiveError

# A transform sees each member first; it returns the member to extract (maybe changed)
# or None to skip it, and raises UnsafeArchiveError to refuse the whole archive.
Transform = Callable[[tarfile.TarInfo], tarfile.TarInfo | None]


def inside(path: str) -> bool:
    """Is the relative path ``path`` inside the directory it is relative to?"""
    norm = posixpath.normpath(path)
    return not (norm == ".." or norm.startswith("../") or norm.startswith("/"))


def check_member(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """The data-filter rules; returns a sanitised copy, None to skip, or raises."""
    name = member.name
    if name.startswith("/") or not inside(name):
        raise UnsafeArchiveError(f"refusing {name!r}: it escapes the destination")
    if member.ischr() or member.isblk() or member.isfifo():
        return None
    if member.issym():
        if member.linkname.startswith("/") or not inside(
            posixpath.join(posixpath.dirname(name), member.linkname)
        ):
            raise UnsafeArchiveError(
                f"refusing symlink {name!r} -> {member.linkname!r}: it points out of the tree"
            )
    elif member.islnk() and (member.linkname.startswith("/") or not inside(member.linkname)):
        raise UnsafeArchiveError(
            f"refusing hard link {name!r} -> {member.linkname!r}: it points out of the tree"
        )
    safe = copy.copy(member)
    if safe.isreg() or safe.islnk():
        safe.mode = (safe.mode & 0o755) | 0o600
        if not safe.mode & 0o100:
            safe.mode &= ~0o011
    elif safe.isdir():
        safe.mode = (safe.mode & 0o755) | 0o700
    safe.uid, safe.gid = os.getuid(), os.getgid()
    safe.uname = safe.gname = ""
    return safe


def extract_all(tar: tarfile.TarFile, dest: Path, transform: Transform | None = None) -> None:
    """Extract every member of ``tar`` into ``dest`` under the rules above."""
    dest.mkdir(parents=True, exist_ok=True)
    for member in tar:
        candidate = transform(member) if transform is not None else member
        if candidate is None:
            continue
        safe = check_member(candidate)
        if safe is None:
            continue
        if not safe.issym() and not safe.islnk():
            target = Path(dest, safe.name).resolve()
            if not target.is_relative_to(dest.resolve()):
                # A symlink extracted earlier leads out of the tree.
                raise UnsafeArchiveError(f"refusing {safe.name!r}: its path leaves the tree")
        tar.extract(safe, dest, set_attrs=True, numeric_owner=True)
