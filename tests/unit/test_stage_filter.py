"""The extraction filter on real tar archives with hostile members."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from builder.errors import UnsafeArchiveError
from builder.stages.stage import safe_extract


def _tar(tmp_path: Path, members: list[tarfile.TarInfo], data: bytes = b"x") -> Path:
    path = tmp_path / "export.tar"
    with tarfile.open(path, "w") as tar:
        for m in members:
            if m.isreg():
                m.size = len(data)
                tar.addfile(m, io.BytesIO(data))
            else:
                tar.addfile(m)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644
            ) -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type = kind
    m.linkname = link
    m.mode = mode
    return m


def test_absolute_symlinks_keep_their_meaning_inside_the_root(tmp_path: Path) -> None:
    archive = _tar(tmp_path, [
        _member("bin", tarfile.DIRTYPE, mode=0o755),
        _member("bin/busybox", mode=0o755),
        _member("bin/sh", tarfile.SYMTYPE, "/bin/busybox"),
        _member("lib", tarfile.DIRTYPE, mode=0o755),
        _member("lib/libc.musl-x86_64.so.1", tarfile.SYMTYPE, "ld-musl-x86_64.so.1"),
    ])
    dest = tmp_path / "root"
    safe_extract(archive, dest)
    assert os.readlink(dest / "bin/sh") == "busybox"
    assert (dest / "bin/sh").resolve() == (dest / "bin/busybox").resolve()
    assert os.readlink(dest / "lib/libc.musl-x86_64.so.1") == "ld-musl-x86_64.so.1"


@pytest.mark.parametrize("member", [
    _member("../evil"),
    _member("etc/../../evil"),
    _member("etc/passwd", tarfile.SYMTYPE, "../../../etc/shadow"),
    _member("etc/hard", tarfile.LNKTYPE, "../outside"),
])
def test_escaping_members_are_refused(tmp_path: Path, member: tarfile.TarInfo) -> None:
    archive = _tar(tmp_path, [_member("etc", tarfile.DIRTYPE, mode=0o755), member])
    with pytest.raises(UnsafeArchiveError):
        safe_extract(archive, tmp_path / "root")
    assert not (tmp_path / "evil").exists()


def test_devices_are_dropped_and_setuid_cleared(tmp_path: Path) -> None:
    dev = _member("dev/null", tarfile.CHRTYPE, mode=0o666)
    dev.devmajor, dev.devminor = 1, 3
    archive = _tar(tmp_path, [
        _member("dev", tarfile.DIRTYPE, mode=0o755),
        dev,
        _member("dev/fifo", tarfile.FIFOTYPE),
        _member("bin", tarfile.DIRTYPE, mode=0o755),
        _member("bin/su", mode=0o4755),
    ])
    dest = tmp_path / "root"
    safe_extract(archive, dest)
    assert not os.path.lexists(dest / "dev/null")
    assert not os.path.lexists(dest / "dev/fifo")
    mode = (dest / "bin/su").stat().st_mode
    assert not mode & (stat.S_ISUID | stat.S_ISGID)
    assert mode & 0o100
