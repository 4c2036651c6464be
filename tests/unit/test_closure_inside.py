"""The closure copies only inside the tree: DT_NEEDED must be a plain file name, and every
copy's source and destination lie inside their roots. A real musl ELF (libz of the official
minirootfs) with its DT_NEEDED string rewritten, no Docker."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path, PurePosixPath

import pytest

from builder.errors import UnsafeElfError
from builder.lowlevel.elf import read_elf
from builder.stages.closure import DEFAULT_MUSL_PATH, check_needed_name, compute_closure
from builder.stages.stage import _copy_entry, _copy_tree
from tests.minirootfs import release

LIBC = b"libc.musl-x86_64.so.1"


def _libz(tmp_path: Path, needed: bytes) -> Path:
    """libz.so.1.3.1 of Alpine 3.20 whose DT_NEEDED (libc.musl-x86_64.so.1) now says ``needed``."""
    with tarfile.open(release("3.20.3", "x86_64")) as tar:
        f = tar.extractfile("./lib/libz.so.1.3.1")
        assert f is not None
        data = f.read()
    assert len(needed) <= len(LIBC) and data.count(LIBC + b"\0") >= 1
    path = tmp_path / "root/usr/lib/libz.so.1"
    path.parent.mkdir(parents=True)
    path.write_bytes(data.replace(LIBC + b"\0", needed.ljust(len(LIBC), b"\0") + b"\0"))
    return path


@pytest.mark.parametrize("needed", [b"../../../etc/hosts", b"/etc/passwd", b"..", b"a/b"])
def test_a_needed_entry_that_is_a_path_names_the_elf(tmp_path: Path, needed: bytes) -> None:
    lib = _libz(tmp_path, needed)
    info = read_elf(lib)
    assert info is not None and info.needed == (needed.decode(),)
    with pytest.raises(UnsafeElfError, match=r"/usr/lib/libz\.so\.1 needs") as e:
        compute_closure(tmp_path / "root", {PurePosixPath("/usr/lib/libz.so.1"): lib},
                        DEFAULT_MUSL_PATH)
    assert repr(needed.decode()) in e.value.message


def test_a_plain_needed_entry_still_resolves(tmp_path: Path) -> None:
    lib = _libz(tmp_path, b"libfoo.so.1")
    (tmp_path / "root/lib").mkdir()
    (tmp_path / "root/lib/libfoo.so.1").write_bytes(b"not an ELF, still a file")
    closure = compute_closure(tmp_path / "root", {PurePosixPath("/usr/lib/libz.so.1"): lib},
                              DEFAULT_MUSL_PATH)
    assert closure.libraries["libfoo.so.1"][0] == PurePosixPath("/lib/libfoo.so.1")


@pytest.mark.parametrize("name", ["", ".", "..", "x/y", "x\0y", "l" * 256])
def test_names_that_are_not_plain(name: str) -> None:
    with pytest.raises(UnsafeElfError):
        check_needed_name(name, PurePosixPath("/usr/bin/python3"))


def test_copies_stay_inside_their_roots(tmp_path: Path) -> None:
    root, tree = tmp_path / "root", tmp_path / "tree"
    (root / "usr/lib").mkdir(parents=True)
    (tree / "lib").mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.write_text("host file")
    (root / "usr/lib/libok.so").write_text("ok")
    os.symlink(tmp_path, root / "usr/lib/out")  # a directory link leaving the root
    _copy_entry(root, root / "usr/lib/libok.so", tree, tree / "lib/libok.so")
    assert (tree / "lib/libok.so").read_text() == "ok"
    with pytest.raises(UnsafeElfError, match="not inside"):
        _copy_entry(root, root / "usr/lib/out/secret", tree, tree / "lib/secret")
    with pytest.raises(UnsafeElfError, match="not inside"):
        _copy_entry(root, root / "usr/lib/libok.so", tree, tree / "lib/../../planted")
    with pytest.raises(UnsafeElfError, match="not inside"):
        _copy_tree(root, root / "usr/lib/out", tree, tree / "lib/x")
    assert not (tmp_path / "planted").exists() and not (tree / "lib/secret").exists()
    # A link already in the tree is replaced, not written through.
    os.symlink(secret, tree / "lib/libz.so.1")
    _copy_entry(root, root / "usr/lib/libok.so", tree, tree / "lib/libz.so.1")
    assert secret.read_text() == "host file"
    assert not (tree / "lib/libz.so.1").is_symlink()
