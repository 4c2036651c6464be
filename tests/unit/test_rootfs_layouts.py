"""Reading an exported root the way the loader would: the real Alpine minirootfs, as is,
usr-merged (``/lib``, ``/bin``, ``/sbin`` moved into ``/usr``, links left behind), and with
libz/libcrypto/libssl in ``/usr/lib`` as on Alpine 3.23. No Docker."""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

import pytest

from builder.errors import InputTooLargeError
from builder.lowlevel.elf import read_elf
from builder.lowlevel.extract import extract
from builder.lowlevel.rootfs import read_in_root, resolve_in_root
from builder.lowlevel.tarstream import ROOTFS_LIMITS
from builder.platforms import get_arch
from builder.stages.acquire import installed_packages, release_of, rootfs_transform
from builder.stages.closure import compute_closure, system_search_dirs
from tests.minirootfs import release
from tests.usrmerge import usr_merge

X86_64 = get_arch("x86_64")


@pytest.fixture(scope="module")
def minirootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mini") / "root"
    extract(release("3.20.3", "x86_64"), root, ROOTFS_LIMITS, transform=rootfs_transform)
    return root


def _usr_merged(minirootfs: Path, dest: Path) -> Path:
    shutil.copytree(minirootfs, dest, symlinks=True)
    return usr_merge(dest)


def _closure_of_apk(root: Path) -> dict[str, PurePosixPath]:
    apk = PurePosixPath("/sbin/apk")
    host = resolve_in_root(root, apk)
    assert host is not None
    closure = compute_closure(root, {apk: host}, system_search_dirs(root, X86_64))
    assert closure.missing == []
    return {name: in_root for name, (in_root, _host) in closure.libraries.items()}


def test_the_minirootfs_as_is(minirootfs: Path) -> None:
    assert release_of(minirootfs) == "3.20.3"
    names = {p.name for p in installed_packages(minirootfs)}
    assert {"musl", "busybox", "apk-tools", "zlib"} <= names
    libs = _closure_of_apk(minirootfs)
    assert libs["libz.so.1"] == PurePosixPath("/lib/libz.so.1")


def test_a_usr_merged_root(minirootfs: Path, tmp_path: Path) -> None:
    root = _usr_merged(minirootfs, tmp_path / "merged")
    assert os.readlink(root / "lib") == "usr/lib"
    assert not (root / "lib/apk").is_symlink() and (root / "usr/lib/apk/db/installed").is_file()
    # The apk database, the release, the loader and the libraries, all through the links.
    packages = installed_packages(root)
    assert {"musl", "busybox", "apk-tools"} <= {p.name for p in packages}
    assert release_of(root) == "3.20.3"
    loader = resolve_in_root(root, X86_64.loader)
    assert loader == root / "usr/lib" / X86_64.loader.name
    libs = _closure_of_apk(root)
    assert libs["libz.so.1"] == PurePosixPath("/lib/libz.so.1")  # found at /lib, first in the path
    assert libs["libcrypto.so.3"] == PurePosixPath("/lib/libcrypto.so.3")
    info = read_elf(root / "usr/sbin/apk")
    assert info is not None and info.interpreter == str(X86_64.loader)


def test_a_loader_path_and_release_reached_through_links(minirootfs: Path,
                                                         tmp_path: Path) -> None:
    root = _usr_merged(minirootfs, tmp_path / "merged")
    (root / "usr/lib/os-release").write_text('NAME="Alpine Linux"\nVERSION_ID=3.23.0\n')
    (root / "etc/os-release").unlink()
    os.symlink("../usr/lib/os-release", root / "etc/os-release")
    (root / "etc/alpine-release").unlink()
    assert release_of(root) == "3.23.0"
    (root / "usr/etc").mkdir()
    (root / "usr/etc/ld-musl-x86_64.path").write_text("/usr/lib\n/lib\n")
    os.symlink("../usr/etc/ld-musl-x86_64.path", root / "etc/ld-musl-x86_64.path")
    assert system_search_dirs(root, X86_64) == (PurePosixPath("/usr/lib"), PurePosixPath("/lib"))
    assert _closure_of_apk(root)["libz.so.1"] == PurePosixPath("/usr/lib/libz.so.1")


def test_libraries_where_alpine_3_23_puts_them(minirootfs: Path, tmp_path: Path) -> None:
    """apk-tools 3 moved libz, libcrypto and libssl to /usr/lib; the loader stays in /lib."""
    root = tmp_path / "r323"
    shutil.copytree(minirootfs, root, symlinks=True)
    for lib in root.joinpath("lib").glob("lib*.so*"):
        if lib.name.startswith(("libz.", "libcrypto.", "libssl.")):
            target = root / "usr/lib" / lib.name
            if target.is_symlink():
                target.unlink()
            lib.rename(target)
    libs = _closure_of_apk(root)
    for name in ("libz.so.1", "libcrypto.so.3", "libssl.so.3"):
        assert libs[name] == PurePosixPath("/usr/lib") / name, libs
    assert resolve_in_root(root, libs["libz.so.1"]) == root / "usr/lib/libz.so.1.3.1"


def test_reads_are_capped(minirootfs: Path, tmp_path: Path) -> None:
    root = tmp_path / "huge"
    shutil.copytree(minirootfs, root, symlinks=True)
    with (root / "etc/alpine-release").open("wb") as f:
        f.truncate(10 << 20)  # a sparse 10 MiB "release"
    with pytest.raises(InputTooLargeError, match="/etc/alpine-release"):
        release_of(root)
    assert read_in_root(root, "/etc/no-such-file", cap=10) is None
