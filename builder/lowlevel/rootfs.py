"""Paths inside a root filesystem on disk, resolved as that system would see them.

Symlinks are followed *inside* the root: an absolute link target means the root's own
path, never the host's, and ``..`` cannot climb above the root. Nothing is executed.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from builder.errors import StageError
from builder.lowlevel.boundedio import read_capped

_MAX_LINKS = 40
# Caps on the files the build reads from an export (a real one is far below each).
SMALL_FILE = 64 * 1024  # /etc/alpine-release, /etc/os-release, /etc/ld-musl-*.path
APK_DB_CAP = 64 << 20  # /lib/apk/db/installed: ~1 MB with a thousand packages


def resolve_in_root(root: Path, path: PurePosixPath | str) -> Path | None:
    """Resolve ``path`` (as seen from inside ``root``) to a host path under ``root``.

    Returns None when a component is missing, cannot be looked at (permissions) or the
    chain of links loops.
    The result is not itself a symlink.
    """
    pending = list(PurePosixPath("/", path).parts[1:])
    parts: list[str] = []
    links = 0
    while pending:
        name = pending.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            if parts:
                parts.pop()
            continue
        host = root.joinpath(*parts, name)
        if _is_link(host):
            links += 1
            if links > _MAX_LINKS:
                return None
            try:
                target = os.readlink(host)
            except OSError:
                return None
            if target.startswith("/"):
                parts = []
            pending = list(PurePosixPath(target).parts) + pending
            if target.startswith("/"):
                pending = pending[1:]
            continue
        if not os.path.lexists(host):
            return None
        parts.append(name)
    return root.joinpath(*parts)


def link_chain(root: Path, path: PurePosixPath | str) -> list[PurePosixPath]:
    """The in-root paths visited while resolving ``path`` (first the path itself)."""
    seen: list[PurePosixPath] = []
    current = PurePosixPath("/", path)
    for _ in range(_MAX_LINKS):
        seen.append(current)
        parent = resolve_in_root(root, current.parent)
        if parent is None:
            break
        host = parent / current.name
        if not _is_link(host):
            break
        try:
            target = PurePosixPath(os.readlink(host))
        except OSError:
            break
        rel_parent = PurePosixPath("/", parent.relative_to(root).as_posix())
        current = target if target.is_absolute() else rel_parent / target
    return seen


def read_in_root(root: Path, path: PurePosixPath | str, *, cap: int) -> str | None:
    """The text of the regular file ``path`` as seen inside ``root`` (links followed inside
    it), or None when there is none; :class:`InputTooLargeError` past ``cap`` bytes."""
    host = resolve_in_root(root, path)
    if host is None or not host.is_file():
        return None
    data = read_capped(host, cap=cap, what=f"{path} of the exported filesystem",
                       error=StageError)
    return data.decode("utf-8", errors="replace")


def _is_link(host: Path) -> bool:
    """``host.is_symlink()``, False too when it cannot be looked at (an unreadable dir)."""
    try:
        return host.is_symlink()
    except OSError:
        return False
