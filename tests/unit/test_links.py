"""Staging by hard link without touching the export (builder.lowlevel.links)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from builder.lowlevel import links


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "export" / "lib.so"
    src.parent.mkdir()
    src.write_bytes(b"original")
    os.chmod(src, 0o755)
    os.utime(src, (1000, 1000))
    dst = tmp_path / "stage" / "lib.so"
    dst.parent.mkdir()
    links.link_or_copy(src, dst)
    return src, dst


def test_link_shares_the_inode(tmp_path: Path) -> None:
    src, dst = _pair(tmp_path)
    assert src.stat().st_ino == dst.stat().st_ino and dst.stat().st_nlink == 2


@pytest.mark.parametrize("code", [errno.EXDEV, errno.EPERM, errno.EMLINK])
def test_copies_where_the_file_system_will_not_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "link", refuse)
    src, dst = _pair(tmp_path)
    assert dst.read_bytes() == b"original" and dst.stat().st_ino != src.stat().st_ino
    assert dst.stat().st_mtime == 1000 and dst.stat().st_mode & 0o777 == 0o755


def test_other_link_errors_are_not_hidden(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        links.link_or_copy(tmp_path / "absent", tmp_path / "dst")


def test_detach_leaves_the_other_name_alone(tmp_path: Path) -> None:
    src, dst = _pair(tmp_path)
    links.detach(dst)
    assert dst.stat().st_ino != src.stat().st_ino and src.stat().st_nlink == 1
    assert dst.stat().st_mtime == 1000 and dst.stat().st_mode & 0o777 == 0o755
    with dst.open("r+b") as f:  # as patchelf does: in place
        f.write(b"PATCHED!")
    assert src.read_bytes() == b"original"
    assert sorted(p.name for p in dst.parent.iterdir()) == ["lib.so"]  # no temp left
    links.detach(dst)  # its own inode already: nothing to do
    assert dst.read_bytes() == b"PATCHED!"


@pytest.mark.parametrize("as_text", [False, True])
def test_rewrite_keeps_the_mode_and_the_export(tmp_path: Path, as_text: bool) -> None:
    src, dst = _pair(tmp_path)
    if as_text:
        links.rewrite_text(dst, "new text\n")
    else:
        links.rewrite(dst, b"new text\n")
    assert dst.read_bytes() == b"new text\n" and src.read_bytes() == b"original"
    assert dst.stat().st_mode & 0o777 == 0o755
    assert sorted(p.name for p in dst.parent.iterdir()) == ["lib.so"]


def test_a_failed_rewrite_leaves_the_file_and_no_temp(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _, dst = _pair(tmp_path)

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space"):
        links.rewrite(dst, b"new")
    assert dst.read_bytes() == b"original"
    assert sorted(p.name for p in dst.parent.iterdir()) == ["lib.so"]
