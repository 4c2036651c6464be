"""The extraction core on real tar archives: hostile members, malformed archives, caps."""

from __future__ import annotations

import errno
import gzip
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from builder.errors import (
    ExtractionLimitError,
    MalformedArchiveError,
    MuslPbsError,
    UnsafeArchiveError,
    UnwritableOutputError,
)
from builder.lowlevel.extract import extract
from builder.lowlevel.tarstream import ARCHIVE_LIMITS, ROOTFS_LIMITS, Limits
from builder.stages.acquire import export_transform, rootfs_transform, skip_in_export

MiB = 1 << 20


def _tar_bytes(members: list[tarfile.TarInfo], data: bytes = b"x",
               fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for m in members:
            if m.isreg():
                m.size = len(data)
                tar.addfile(m, io.BytesIO(data))
            else:
                tar.addfile(m)
    return buf.getvalue()


def _tar(tmp_path: Path, members: list[tarfile.TarInfo], data: bytes = b"x") -> Path:
    path = tmp_path / "export.tar"
    path.write_bytes(_tar_bytes(members, data))
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644
            ) -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type = kind
    m.linkname = link
    m.mode = mode
    m.mtime = 1_700_000_000
    return m


def _no_partial(parent: Path) -> None:
    assert [p.name for p in parent.iterdir() if ".partial-" in p.name] == []


def _rootfs(archive: Path, dest: Path) -> None:
    extract(archive, dest, ROOTFS_LIMITS, transform=rootfs_transform)


# -- what stays from the old filter --------------------------------------------------------
def test_absolute_symlinks_keep_their_meaning_inside_the_root(tmp_path: Path) -> None:
    archive = _tar(tmp_path, [
        _member("bin", tarfile.DIRTYPE, mode=0o755),
        _member("bin/busybox", mode=0o755),
        _member("bin/sh", tarfile.SYMTYPE, "/bin/busybox"),
        _member("lib", tarfile.DIRTYPE, mode=0o755),
        _member("lib/libc.musl-x86_64.so.1", tarfile.SYMTYPE, "ld-musl-x86_64.so.1"),
        _member("etc", tarfile.DIRTYPE, mode=0o755),
        _member("etc/mtab", tarfile.SYMTYPE, "/../../proc/mounts"),
    ])
    dest = tmp_path / "root"
    _rootfs(archive, dest)
    assert os.readlink(dest / "bin/sh") == "busybox"
    assert (dest / "bin/sh").resolve() == (dest / "bin/busybox").resolve()
    assert os.readlink(dest / "lib/libc.musl-x86_64.so.1") == "ld-musl-x86_64.so.1"
    assert os.readlink(dest / "etc/mtab") == "../proc/mounts"  # `..` stops at the root


@pytest.mark.parametrize("member", [
    _member("../evil"),
    _member("etc/../../evil"),
    _member("etc/../evil"),  # lands inside, but a name never needs `..`
    _member("/evil"),
    _member("etc/passwd", tarfile.SYMTYPE, "../../../etc/shadow"),
    _member("etc/hard", tarfile.LNKTYPE, "../outside"),
])
def test_escaping_members_are_refused(tmp_path: Path, member: tarfile.TarInfo) -> None:
    archive = _tar(tmp_path, [_member("etc", tarfile.DIRTYPE, mode=0o755), member])
    with pytest.raises(UnsafeArchiveError):
        extract(archive, tmp_path / "root", ARCHIVE_LIMITS)
    assert not (tmp_path / "evil").exists()
    assert not (tmp_path / "root").exists()
    _no_partial(tmp_path)


def test_devices_are_dropped_and_setuid_cleared(tmp_path: Path) -> None:
    dev = _member("dev/null", tarfile.CHRTYPE, mode=0o666)
    dev.devmajor, dev.devminor = 1, 3
    archive = _tar(tmp_path, [
        _member("dev", tarfile.DIRTYPE, mode=0o755),
        dev,
        _member("dev/fifo", tarfile.FIFOTYPE),
        _member("bin", tarfile.DIRTYPE, mode=0o755),
        _member("bin/su", mode=0o4755),
        _member("bin/w", mode=0o666),
    ])
    dest = tmp_path / "root"
    _rootfs(archive, dest)
    assert not os.path.lexists(dest / "dev/null")
    assert not os.path.lexists(dest / "dev/fifo")
    mode = (dest / "bin/su").stat().st_mode
    assert not mode & (stat.S_ISUID | stat.S_ISGID)
    assert mode & 0o100
    assert stat.S_IMODE((dest / "bin/w").stat().st_mode) == 0o644
    assert (dest / "bin/su").stat().st_mtime == 1_700_000_000


# -- judged by where it lands --------------------------------------------------------------
def test_a_chain_through_a_link_to_dot_is_refused(tmp_path: Path) -> None:
    """The attack of issue 9: every name looks inside, the real path is not."""
    depth = 6
    archive = _tar(tmp_path, [
        _member("d", tarfile.DIRTYPE, mode=0o755),
        _member("d/a", tarfile.SYMTYPE, "."),
        _member("d/b", tarfile.SYMTYPE, "a/" * depth + "../" * depth),
        _member("d/b/evil"),
    ])
    (tmp_path / "box").mkdir()
    with pytest.raises(UnsafeArchiveError, match="leads out of the tree"):
        extract(archive, tmp_path / "box" / "root", ARCHIVE_LIMITS)
    assert sorted(p.name for p in (tmp_path / "box").iterdir()) == []
    assert not list(tmp_path.rglob("evil"))


def test_nothing_is_written_through_a_symlink_even_inside(tmp_path: Path) -> None:
    archive = _tar(tmp_path, [
        _member("sub", tarfile.DIRTYPE, mode=0o755),
        _member("link", tarfile.SYMTYPE, "sub"),
        _member("link/file"),
    ])
    with pytest.raises(UnsafeArchiveError, match="'link': it is a symlink"):
        extract(archive, tmp_path / "root", ARCHIVE_LIMITS)
    _no_partial(tmp_path)


def test_a_later_link_that_makes_an_earlier_one_leave_is_caught(tmp_path: Path) -> None:
    archive = _tar(tmp_path, [
        _member("x", tarfile.SYMTYPE, "d/.."),  # `.` while d does not exist...
        _member("d", tarfile.SYMTYPE, "."),  # ... `..` once d leads to `.`
    ])
    with pytest.raises(UnsafeArchiveError, match="'x'"):
        extract(archive, tmp_path / "root", ARCHIVE_LIMITS)
    assert not (tmp_path / "root").exists()


def test_a_symlink_under_a_symlinked_directory_is_refused(tmp_path: Path) -> None:
    """Found by the long property run: ``b/a -> a/..``, then a link ``b/a/a/a``."""
    archive = _tar(tmp_path, [
        _member("b/a", tarfile.SYMTYPE, "a/../"),
        _member("a"),
        _member("b/a/a/a", tarfile.SYMTYPE, "../sib/victim"),
    ])
    with pytest.raises(UnsafeArchiveError, match="write through 'b/a'"):
        extract(archive, tmp_path / "root", ARCHIVE_LIMITS)


def test_symlink_loops_are_a_malformed_archive(tmp_path: Path) -> None:
    archive = _tar(tmp_path, [
        _member("a", tarfile.SYMTYPE, "b"),
        _member("b", tarfile.SYMTYPE, "a"),
    ])
    with pytest.raises(MalformedArchiveError, match="loop"):
        extract(archive, tmp_path / "root", ARCHIVE_LIMITS)


# -- hard links ------------------------------------------------------------------------------
def test_hard_links_and_chains_of_them_to_regular_files(tmp_path: Path) -> None:
    archive = _tar(tmp_path, [
        _member("f"),
        _member("g", tarfile.LNKTYPE, "f"),
        _member("h", tarfile.LNKTYPE, "./g"),
    ])
    dest = tmp_path / "root"
    extract(archive, dest, ARCHIVE_LIMITS)
    assert (dest / "f").stat().st_ino == (dest / "h").stat().st_ino
    assert (dest / "f").stat().st_nlink == 3


@pytest.mark.parametrize("members, message", [
    ([_member("g", tarfile.LNKTYPE, "missing")], "not an earlier member"),
    ([_member("d", tarfile.DIRTYPE), _member("g", tarfile.LNKTYPE, "d")], "a directory"),
    ([_member("f"), _member("s", tarfile.SYMTYPE, "f"), _member("g", tarfile.LNKTYPE, "s")],
     "a symlink"),
])
def test_hard_links_to_anything_but_an_extracted_file(
    tmp_path: Path, members: list[tarfile.TarInfo], message: str
) -> None:
    with pytest.raises(MalformedArchiveError, match=message):
        extract(_tar(tmp_path, members), tmp_path / "root", ARCHIVE_LIMITS)


def test_a_hard_link_through_a_symlinked_directory_is_refused(tmp_path: Path) -> None:
    archive = _tar(tmp_path, [
        _member("d", tarfile.DIRTYPE), _member("d/f"),
        _member("e", tarfile.SYMTYPE, "d"),
        _member("g", tarfile.LNKTYPE, "e/f"),
    ])
    with pytest.raises(MalformedArchiveError):
        extract(archive, tmp_path / "root", ARCHIVE_LIMITS)


# -- duplicates --------------------------------------------------------------------------------
def test_duplicates_the_later_entry_wins_and_directories_stay(tmp_path: Path) -> None:
    first = _member("f")
    archive = tmp_path / "dup.tar"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        first.size = 5
        tar.addfile(first, io.BytesIO(b"first"))
        tar.addfile(_member("d", tarfile.DIRTYPE, mode=0o700))
        keep = _member("d/keep")
        keep.size = 1
        tar.addfile(keep, io.BytesIO(b"k"))
        tar.addfile(_member("d", tarfile.DIRTYPE, mode=0o755))
        second = _member("f")
        second.size = 6
        tar.addfile(second, io.BytesIO(b"second"))
        tar.addfile(_member("s", tarfile.SYMTYPE, "f"))
        tar.addfile(_member("s", tarfile.SYMTYPE, "d"))
    archive.write_bytes(buf.getvalue())
    dest = tmp_path / "root"
    extract(archive, dest, ARCHIVE_LIMITS)
    assert (dest / "f").read_bytes() == b"second"
    assert (dest / "d/keep").read_bytes() == b"k"
    assert stat.S_IMODE((dest / "d").stat().st_mode) == 0o755
    assert os.readlink(dest / "s") == "d"


@pytest.mark.parametrize("members", [
    [_member("x"), _member("x", tarfile.DIRTYPE)],
    [_member("x", tarfile.DIRTYPE), _member("x")],
    [_member("x", tarfile.DIRTYPE), _member("x", tarfile.SYMTYPE, ".")],
])
def test_a_file_and_a_directory_of_the_same_name(tmp_path: Path,
                                                 members: list[tarfile.TarInfo]) -> None:
    with pytest.raises(MalformedArchiveError, match="both a directory and a non-directory"):
        extract(_tar(tmp_path, members), tmp_path / "root", ARCHIVE_LIMITS)


# -- malformed archives ------------------------------------------------------------------------
def _good(tmp_path: Path) -> bytes:
    return _tar_bytes([_member("d", tarfile.DIRTYPE), _member("d/f")], data=os.urandom(50_000))


@pytest.mark.parametrize("mangle", [
    lambda b: b[:700],  # truncated inside the data
    lambda b: b[:100],  # truncated inside a header
    lambda b: os.urandom(4096),  # garbage
    lambda b: b"",  # empty
    lambda b: gzip.compress(b)[:300],  # truncated gzip
    lambda b: b"\x1f\x8b" + os.urandom(500),  # a gzip magic, then garbage
    lambda b: b"\x28\xb5\x2f\xfd" + os.urandom(500),  # a zstd magic, then garbage
])
def test_malformed_archives_are_typed_errors(tmp_path: Path, mangle: object) -> None:
    archive = tmp_path / "bad.tar"
    archive.write_bytes(mangle(_good(tmp_path)))  # type: ignore[operator]
    with pytest.raises(MalformedArchiveError) as e:
        extract(archive, tmp_path / "root", ARCHIVE_LIMITS)
    assert e.value.hint
    assert not (tmp_path / "root").exists()
    _no_partial(tmp_path)


def test_a_directory_given_as_archive(tmp_path: Path) -> None:
    with pytest.raises(MalformedArchiveError):
        extract(tmp_path, tmp_path / "root", ARCHIVE_LIMITS)


def test_sparse_members_are_refused(tmp_path: Path) -> None:
    sparse = _member("holes")
    sparse.type = tarfile.GNUTYPE_SPARSE
    archive = tmp_path / "sparse.tar"
    archive.write_bytes(_tar_bytes([sparse], fmt=tarfile.GNU_FORMAT))
    with pytest.raises(UnsafeArchiveError, match="sparse"):
        extract(archive, tmp_path / "root", ARCHIVE_LIMITS)


# -- caps --------------------------------------------------------------------------------------
def test_caps_on_names(tmp_path: Path) -> None:
    long_name = "/".join(["d" * 200] * 6)
    with pytest.raises(ExtractionLimitError, match="characters long"):
        extract(_tar(tmp_path, [_member(long_name)]), tmp_path / "r1", ARCHIVE_LIMITS)
    with pytest.raises(ExtractionLimitError, match="255 bytes"):
        extract(_tar(tmp_path, [_member("x" * 300)]), tmp_path / "r2", ARCHIVE_LIMITS)


def test_caps_on_members_and_bytes(tmp_path: Path) -> None:
    many = _tar(tmp_path, [_member(f"f{i}") for i in range(20)])
    with pytest.raises(ExtractionLimitError, match="more than 10 members"):
        extract(many, tmp_path / "r1", Limits(max_bytes=MiB, max_members=10))
    big = _tar(tmp_path, [_member("a"), _member("b")], data=b"y" * 600)
    with pytest.raises(ExtractionLimitError, match="MiB of file data"):
        extract(big, tmp_path / "r2", Limits(max_bytes=1000, max_members=10))
    _no_partial(tmp_path)


def test_a_decompression_bomb_stops_at_the_ratio(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz") as tar:
        info = tarfile.TarInfo("python/zeros")
        info.size = 64 * MiB
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    assert bomb.stat().st_size < MiB
    limits = Limits(max_bytes=1 << 40, max_members=10, max_ratio=40, ratio_floor=4 * MiB)
    with pytest.raises(ExtractionLimitError, match="decompression bomb"):
        extract(bomb, tmp_path / "root", limits)
    _no_partial(tmp_path)


# -- sources, hooks, interruption -------------------------------------------------------------
def test_a_stream_with_a_transform_and_a_skip_predicate(tmp_path: Path) -> None:
    data = _tar_bytes([
        _member("./proc", tarfile.DIRTYPE), _member("./proc/x"),
        _member("./usr", tarfile.DIRTYPE), _member("./usr/share/man/man1/ls.1"),
        _member("./usr/lib/libz.so.1"),
        _member("./usr/lib/libz-hard", tarfile.LNKTYPE, "./usr/share/man/man1/ls.1"),
    ])
    dest = tmp_path / "root"
    result = extract(io.BytesIO(data), dest, ROOTFS_LIMITS, transform=rootfs_transform,
                     skip=skip_in_export)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "usr", "usr/lib", "usr/lib/libz.so.1"]
    assert result.skipped == 4  # proc, proc/x, the man page and the link to it


def test_the_export_drops_busybox_applet_links_and_keeps_the_rest(tmp_path: Path) -> None:
    data = _tar_bytes([
        _member("bin", tarfile.DIRTYPE), _member("bin/busybox"),
        _member("bin/sh", tarfile.SYMTYPE, "/bin/busybox"),
        _member("usr/bin/[", tarfile.SYMTYPE, "../../bin/busybox"),
        _member("usr/bin/python3.12"),
        _member("usr/bin/python3", tarfile.SYMTYPE, "python3.12"),
        _member("usr/lib/libz.so.1", tarfile.SYMTYPE, "/usr/lib/libz.so.1.3"),
        _member("usr/lib/libz.so.1.3"),
    ])
    dest = tmp_path / "root"
    result = extract(io.BytesIO(data), dest, ROOTFS_LIMITS, transform=export_transform)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "bin", "bin/busybox", "usr", "usr/bin", "usr/bin/python3", "usr/bin/python3.12",
        "usr/lib", "usr/lib/libz.so.1", "usr/lib/libz.so.1.3"]
    assert os.readlink(dest / "usr/lib/libz.so.1") == "libz.so.1.3"
    assert result.skipped == 2


def test_interrupted_extraction_leaves_no_tree(tmp_path: Path) -> None:
    seen = []

    def interrupt(member: tarfile.TarInfo) -> tarfile.TarInfo:
        seen.append(member.name)
        if len(seen) == 3:
            raise KeyboardInterrupt
        return member

    archive = _tar(tmp_path, [_member(f"f{i}") for i in range(5)])
    with pytest.raises(KeyboardInterrupt):
        extract(archive, tmp_path / "root", ARCHIVE_LIMITS, transform=interrupt)
    assert not (tmp_path / "root").exists()
    _no_partial(tmp_path)


def test_zstd_archives(tmp_path: Path) -> None:
    import zstandard

    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(zstandard.ZstdCompressor().compress(_good(tmp_path)))
    extract(archive, tmp_path / "root", ARCHIVE_LIMITS)
    assert (tmp_path / "root/d/f").stat().st_size == 50_000


def test_every_refusal_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(MuslPbsError):
        extract(tmp_path / "missing.tar", tmp_path / "root", ARCHIVE_LIMITS)


# -- data read straight from the stream, names used again --------------------------------
def _tree(root: Path) -> dict[str, tuple[str, int, int]]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        what = (f"-> {os.readlink(p)}" if p.is_symlink() else "dir" if p.is_dir()
                else p.read_bytes().decode())
        out[p.relative_to(root).as_posix()] = (what, stat.S_IMODE(st.st_mode),
                                               int(st.st_mtime) if not p.is_symlink() else 0)
    return out


def _busy_archive() -> bytes:
    """Many files read straight from the stream, one larger than a read: a duplicate, a
    hard link to it, a symlink over a file, a file later used as a directory's name (refused
    in the last member, so the whole is checked on a copy without it)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "",
                mode: int = 0o644) -> None:
            m = _member(name, kind, link, mode)
            m.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(m, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        for i in range(200):
            add(f"d{i % 7}/f{i}", f"first {i}".encode(), mode=0o755 if i % 3 else 0o600)
        add("d1/f1", b"second")
        add("d1/h", kind=tarfile.LNKTYPE, link="d1/f1")
        add("d2/f2", b"then a link", kind=tarfile.REGTYPE)
        add("d2/f2", kind=tarfile.SYMTYPE, link="f9")
        add("big", bytes(3 * MiB))
        add("d3/f3/under", b"not through a file")
    return buf.getvalue()


def test_many_files_names_used_again_and_a_large_file(tmp_path: Path) -> None:
    data = _busy_archive()
    with pytest.raises(UnsafeArchiveError, match="'d3/f3': it is not a directory"):
        extract(io.BytesIO(data), tmp_path / "bad", ROOTFS_LIMITS)
    _no_partial(tmp_path)
    # the same members without the last one
    with tarfile.open(fileobj=io.BytesIO(data)) as src:
        members = src.getmembers()[:-1]
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for m in members:
                tar.addfile(m, src.extractfile(m) if m.isreg() else None)
    extract(io.BytesIO(buf.getvalue()), tmp_path / "root", ROOTFS_LIMITS)
    tree = _tree(tmp_path / "root")
    assert tree["d1/f1"] == ("second", 0o644, 1_700_000_000)
    assert tree["d1/h"] == tree["d1/f1"] and (tmp_path / "root/d1/h").stat().st_nlink == 2
    assert tree["d2/f2"][0] == "-> f9"
    assert tree["d0/f0"] == ("first 0", 0o600, 1_700_000_000)
    assert tree["d4/f4"] == ("first 4", 0o755, 1_700_000_000)
    assert len(tree) == 7 + 200 + 1 + 1  # directories, files, d1/h, big
    assert (tmp_path / "root/big").read_bytes() == bytes(3 * MiB)


def test_a_full_disk_is_a_typed_error_and_leaves_no_tree(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builder.lowlevel.extract as ex

    def full(fd: int, data: bytes | memoryview) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ex.os, "write", full)
    archive = _tar(tmp_path, [_member(f"f{i}") for i in range(50)])
    with pytest.raises(UnwritableOutputError, match="No space left on device"):
        extract(archive, tmp_path / "root", ARCHIVE_LIMITS)
    assert not (tmp_path / "root").exists()
    _no_partial(tmp_path)
