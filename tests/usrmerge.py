"""Turn a root filesystem on disk into a usr-merged one, as derived images do:
``/lib``, ``/bin`` and ``/sbin`` move into ``/usr`` and links are left behind."""

from __future__ import annotations

import os
from pathlib import Path


def _merge_into(src: Path, dst: Path) -> None:
    """Move the entries of ``src`` into ``dst``; where both have a name, a link gives way
    to the real file or directory."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in sorted(src.iterdir()):
        target = dst / entry.name
        if entry.is_dir() and not entry.is_symlink() and target.is_dir() \
                and not target.is_symlink():
            _merge_into(entry, target)
            entry.rmdir()
            continue
        if os.path.lexists(target):
            if entry.is_symlink():
                entry.unlink()
                continue
            assert target.is_symlink(), f"{entry} and {target} are both real"
            target.unlink()
        entry.rename(target)


def usr_merge(root: Path) -> Path:
    for top in ("lib", "bin", "sbin"):
        if (root / top).is_symlink() or not (root / top).is_dir():
            continue
        _merge_into(root / top, root / "usr" / top)
        (root / top).rmdir()
        os.symlink(f"usr/{top}", root / top)
    return root
