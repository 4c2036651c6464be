"""Closure, RPATH relocation and the static audit on real musl ELF files.

The relocated program is then run from a fresh directory with the host's musl loader,
LD_LIBRARY_PATH unset: the $ORIGIN RPATHs alone must find its libraries.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from builder.lowlevel.elf import read_elf
from builder.lowlevel.patcher import Patchelf
from builder.platforms import get_arch
from builder.stages.audit import audit_elves
from builder.stages.closure import DEFAULT_MUSL_PATH, compute_closure, system_search_dirs
from builder.stages.relocate import relocate_elves, rpath_for

X86_64 = get_arch("x86_64")


def _root(tmp_path: Path, elves: Path) -> Path:
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/lib").mkdir(parents=True)
    (root / "lib").mkdir()
    shutil.copy2(elves / "prog", root / "usr/bin/prog")
    shutil.copy2(elves / "libfoo.so.1", root / "usr/lib/libfoo.so.1")
    shutil.copy2(elves / "libbar.so.2.0", root / "lib/libbar.so.2.0")
    (root / "lib/libbar.so.2").symlink_to("libbar.so.2.0")
    return root


def test_closure_follows_needed_transitively(tmp_path: Path, musl_elves: Path) -> None:
    root = _root(tmp_path, musl_elves)
    closure = compute_closure(
        root, {PurePosixPath("/usr/bin/prog"): root / "usr/bin/prog"}, DEFAULT_MUSL_PATH
    )
    assert closure.missing == []
    assert {k: str(v[0]) for k, v in closure.libraries.items()} == {
        "libfoo.so.1": "/usr/lib/libfoo.so.1",
        "libbar.so.2": "/lib/libbar.so.2",
    }


def test_closure_reports_what_is_missing(tmp_path: Path, musl_elves: Path) -> None:
    root = _root(tmp_path, musl_elves)
    (root / "lib/libbar.so.2").unlink()
    closure = compute_closure(
        root, {PurePosixPath("/usr/bin/prog"): root / "usr/bin/prog"}, DEFAULT_MUSL_PATH
    )
    assert closure.missing == [("libbar.so.2", PurePosixPath("/usr/lib/libfoo.so.1"))]


def test_ld_musl_path_file_replaces_the_default(tmp_path: Path, musl_elves: Path) -> None:
    root = _root(tmp_path, musl_elves)
    (root / "etc").mkdir()
    (root / "etc/ld-musl-x86_64.path").write_text("/opt/lib\n/usr/lib\n")
    assert [str(d) for d in system_search_dirs(root, X86_64)] == ["/opt/lib", "/usr/lib"]
    closure = compute_closure(
        root, {PurePosixPath("/usr/bin/prog"): root / "usr/bin/prog"},
        system_search_dirs(root, X86_64),
    )
    assert [name for name, _ in closure.missing] == ["libbar.so.2"]


def test_symlinked_lib_dir_resolves_inside_the_root(tmp_path: Path, musl_elves: Path) -> None:
    root = _root(tmp_path, musl_elves)
    # /usr/lib -> /lib style merge, with an absolute link: must stay inside the root.
    shutil.move(root / "usr/lib/libfoo.so.1", root / "lib/libfoo.so.1")
    shutil.rmtree(root / "usr/lib")
    (root / "usr/lib").symlink_to("/lib")
    closure = compute_closure(
        root, {PurePosixPath("/usr/bin/prog"): root / "usr/bin/prog"}, DEFAULT_MUSL_PATH
    )
    assert closure.missing == []
    assert closure.libraries["libfoo.so.1"][1].resolve() == (root / "lib/libfoo.so.1").resolve()


@pytest.mark.parametrize(("rel", "expected"), [
    ("bin/python3.12", "$ORIGIN/../lib"),
    ("lib/python3.12/lib-dynload/_ssl.so", "$ORIGIN/../.."),
    ("lib/libssl.so.3", "$ORIGIN"),
])
def test_rpath_policy(rel: str, expected: str) -> None:
    assert rpath_for(rel) == expected


def test_relocated_tree_runs_anywhere(tmp_path: Path, musl_elves: Path) -> None:
    if not Path(str(X86_64.loader)).exists():
        pytest.skip("the host has no musl loader (apt-get install musl)")
    tree = tmp_path / "python"
    (tree / "bin").mkdir(parents=True)
    (tree / "lib").mkdir()
    shutil.copy2(musl_elves / "prog", tree / "bin/prog")
    shutil.copy2(musl_elves / "libfoo.so.1", tree / "lib/libfoo.so.1")
    shutil.copy2(musl_elves / "libbar.so.2.0", tree / "lib/libbar.so.2")
    patched = relocate_elves(tree, Patchelf())
    assert sorted(patched) == ["bin/prog", "lib/libfoo.so.1"]
    assert read_elf(tree / "bin/prog").rpath == ("$ORIGIN/../lib",)  # type: ignore[union-attr]
    assert read_elf(tree / "lib/libbar.so.2").rpath == ()  # type: ignore[union-attr]
    assert relocate_elves(tree, Patchelf()) == []  # idempotent

    moved = tmp_path / "somewhere" / "else" / "python"
    shutil.copytree(tree, moved, symlinks=True)
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    out = subprocess.run([str(moved / "bin/prog")], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "41"
    assert audit_elves(moved, X86_64) == []

    (moved / "lib/libbar.so.2").unlink()
    findings = audit_elves(moved, X86_64)
    assert [(f.check, f.path) for f in findings] == [("needed", "python/lib/libfoo.so.1")]
    assert "libbar.so.2" in findings[0].message
    out = subprocess.run([str(moved / "bin/prog")], capture_output=True, text=True, env=env)
    assert out.returncode != 0 and "libbar.so.2" in out.stderr


def test_audit_flags_wrong_arch_and_absolute_rpath(tmp_path: Path, musl_elves: Path) -> None:
    tree = tmp_path / "python"
    (tree / "bin").mkdir(parents=True)
    shutil.copy2(musl_elves / "prog", tree / "bin/prog")
    subprocess.run([str(Patchelf().exe), "--set-rpath", "/usr/lib", str(tree / "bin/prog")],
                   check=True)
    checks = {f.check for f in audit_elves(tree, get_arch("aarch64"))}
    # x86_64 segments are 4 KiB-aligned: not enough for aarch64's 64 KiB pages.
    assert {"elf-machine", "elf-interpreter", "elf-segments", "rpath", "needed"} <= checks
    assert audit_elves(tree, X86_64) and "elf-segments" not in {
        f.check for f in audit_elves(tree, X86_64)}


def test_read_elf_sees_each_patch_even_of_the_same_length(musl_elves: Path,
                                                          tmp_path: Path) -> None:
    """read_elf keeps the facts of a file it read; the patcher's rewrite in place (same
    size, possibly the same timestamp tick) must not leave the old RPATH behind."""
    lib = tmp_path / "libfoo.so.1"
    shutil.copy2(musl_elves / "libfoo.so.1", lib)
    patcher = Patchelf()
    first = read_elf(lib)
    assert first is not None and first.rpath == ()
    for rpath in ("$ORIGIN/aa", "$ORIGIN/bb", "$ORIGIN/cc"):
        patcher.set_rpath(lib, rpath)
        info = read_elf(lib)
        assert info is not None and info.rpath == (rpath,)
