"""The launcher (builder/stages/launcher.py): the prebuilt binaries, setting them up, the
audit rule, and that tools/build_launchers.py rebuilds the same bytes."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from builder.errors import StageError
from builder.lowlevel.elf import ElfInfo, gnu_stack_field, read_elf
from builder.platforms import ARCHES, Arch
from builder.progress import NullReporter
from builder.stages import launcher as launcher_mod
from builder.stages.audit import arm_level_findings, audit_launcher
from builder.stages.launcher import (
    NAME_SIZE,
    configure,
    configured_libpython,
    install_launcher,
    prebuilt,
)

REPO = Path(__file__).resolve().parents[2]
LIB = "libpython3.11.so.1.0"
MIB2 = 0x200000


def _tools() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_launchers",
                                                  REPO / "tools" / "build_launchers.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("arch", list(ARCHES.values()), ids=list(ARCHES))
def test_prebuilt_launcher_fits_its_arch(arch: Arch, tmp_path: Path) -> None:
    path = tmp_path / "python3.11"
    path.write_bytes(prebuilt(arch))
    info = read_elf(path)
    assert info is not None
    assert (info.machine, info.elf_class, info.little_endian) == (
        arch.elf_machine, arch.elf_class, arch.little_endian)
    assert info.interpreter == str(arch.loader)
    assert info.needed == (arch.libc_soname,)  # libc only, named as Alpine names it
    assert info.elf_type == "ET_DYN"  # position-independent
    assert info.search_path == ("$ORIGIN/../lib",)
    assert info.stack_size == MIB2
    assert all(align >= arch.max_page_size and (off - vaddr) % align == 0
               for off, vaddr, align in info.loads)
    assert arm_level_findings("python3.11", path, arch) == []
    assert configured_libpython(path.read_bytes()) == ""  # not set up yet


def test_configure_writes_the_name_and_raises_the_stack() -> None:
    data = prebuilt(ARCHES["x86_64"])
    out = configure(data, LIB, 0x400000)
    assert len(out) == len(data)
    assert configured_libpython(out) == LIB
    field = gnu_stack_field(out)
    assert field is not None and field[2] == 0x400000
    # A smaller request keeps the launcher's own 2 MiB; big-endian s390x too.
    s390x = configure(prebuilt(ARCHES["s390x"]), LIB, 0x100000)
    assert (gnu_stack_field(s390x) or (0, 0, 0))[2] == MIB2
    big = configure(prebuilt(ARCHES["s390x"]), LIB, 0x300000)
    assert (gnu_stack_field(big) or (0, 0, 0))[1:] == (8, 0x300000)


@pytest.mark.parametrize("name", ["", "../lib/libpython3.11.so", "x" * NAME_SIZE, "libpythön.so"])
def test_configure_refuses_names_that_do_not_fit(name: str) -> None:
    with pytest.raises(StageError):
        configure(prebuilt(ARCHES["x86_64"]), name, 0)


def test_configure_refuses_a_launcher_set_up_twice() -> None:
    once = configure(prebuilt(ARCHES["x86_64"]), LIB, 0)
    with pytest.raises(StageError, match="already set"):
        configure(once, LIB, 0)


def _tree(tmp_path: Path, arch: Arch) -> Path:
    tree = tmp_path / "python"
    (tree / "bin").mkdir(parents=True)
    (tree / "lib").mkdir()
    (tree / "lib" / LIB).write_bytes(b"\x7fELF libpython")
    (tree / "bin" / "python3.11").write_bytes(prebuilt(arch))  # stands in for the original
    return tree


def _original(needed: tuple[str, ...], stack: int | None) -> Callable[[Path], ElfInfo]:
    """read_elf as it answers for Alpine's python3.X: ``needed``, PT_GNU_STACK ``stack``."""
    def fake(path: Path) -> ElfInfo:
        info = read_elf(path)
        assert info is not None
        return dataclasses.replace(info, needed=needed, stack_size=stack)
    return fake


def test_install_replaces_the_interpreter(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    arch = ARCHES["x86_64"]
    tree = _tree(tmp_path, arch)
    exe = tree / "bin" / "python3.11"
    outside = tmp_path / "export-copy"
    outside.hardlink_to(exe)  # the export's file, staged by hard link
    monkeypatch.setattr(launcher_mod, "read_elf",
                        _original(("libpython3.11.so.1.0", "libc.musl-x86_64.so.1"), 0x300000))
    facts = install_launcher(tree, arch, "3.11", NullReporter())
    assert facts is not None
    assert facts.libpython == LIB and facts.original_stack_size == 0x300000
    assert facts.thread_stack_size == 0x300000
    data = exe.read_bytes()
    assert configured_libpython(data) == LIB
    assert exe.stat().st_mode & 0o777 == 0o755
    assert configured_libpython(outside.read_bytes()) == ""  # the export is untouched
    assert facts.to_json()["libpython"] == f"lib/{LIB}"
    monkeypatch.undo()
    assert audit_launcher(tree, "3.11", 0x300000) == []
    low = audit_launcher(tree, "3.11", 0x400000)
    assert [f.check for f in low] == ["launcher"] and "PT_GNU_STACK" in low[0].message


def test_install_keeps_an_interpreter_without_libpython(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = _tree(tmp_path, ARCHES["x86_64"])
    before = (tree / "bin" / "python3.11").read_bytes()
    monkeypatch.setattr(launcher_mod, "read_elf", _original(("libc.musl-x86_64.so.1",), 0))
    assert install_launcher(tree, ARCHES["x86_64"], "3.11", NullReporter()) is None
    assert (tree / "bin" / "python3.11").read_bytes() == before


def test_install_refuses_a_libpython_missing_from_lib(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = _tree(tmp_path, ARCHES["x86_64"])
    (tree / "lib" / LIB).unlink()
    monkeypatch.setattr(launcher_mod, "read_elf", _original((LIB,), 0))
    with pytest.raises(StageError, match="libpython"):
        install_launcher(tree, ARCHES["x86_64"], "3.11", NullReporter())


def test_audit_names_what_is_wrong(tmp_path: Path) -> None:
    tree = _tree(tmp_path, ARCHES["x86_64"])
    exe = tree / "bin" / "python3.11"
    [never] = audit_launcher(tree, "3.11")
    assert "never given" in never.message and never.path == "python/bin/python3.11"
    exe.write_bytes(configure(prebuilt(ARCHES["x86_64"]), "libpython3.12.so.1.0", 0))
    [missing] = audit_launcher(tree, "3.11")
    assert "libpython3.12.so.1.0, which is not in the archive" in missing.message


def test_audit_refuses_an_interpreter_linking_libpython(musl_elves: Path,
                                                        tmp_path: Path) -> None:
    """A real musl program that links a library through its RPATH, as Alpine's python3.X
    links libpython: the rule names it (the copy-in-a-venv defect)."""
    tree = tmp_path / "python"
    (tree / "bin").mkdir(parents=True)
    (tree / "lib").mkdir()
    subprocess.run(["musl-gcc", "-o", str(tree / "bin" / "python3.11"),
                    str(musl_elves / "main.c"), f"-L{musl_elves}", "-l:libfoo.so.1",
                    f"-Wl,-rpath-link,{musl_elves}"], check=True, capture_output=True)
    subprocess.run([sys.executable, "-c", "import sys; p = sys.argv[1]; d = open(p, 'rb')."
                    "read().replace(b'libfoo.so.1\\0', b'libpython3\\0\\0'); open(p, 'wb')."
                    "write(d)", str(tree / "bin" / "python3.11")], check=True)
    [finding] = audit_launcher(tree, "3.11")
    assert "links libpython3" in finding.message and "venv --copies" in finding.message


def test_launchers_rebuild_byte_identical(tmp_path: Path) -> None:
    """tools/build_launchers.py, run again with the pinned zig, gives the committed bytes."""
    tools = _tools()
    if importlib.util.find_spec("ziglang") is None:
        pytest.skip("zig is not installed (pip install ziglang): cannot rebuild the launchers")
    version = subprocess.run([sys.executable, "-m", "ziglang", "version"],
                             capture_output=True, text=True).stdout.strip()
    if version != tools.ZIG_VERSION:
        pytest.skip(f"zig {version} is installed; the launchers are built with "
                    f"{tools.ZIG_VERSION}")
    assert tools.main(["--out", str(tmp_path)]) == 0
    for arch in ARCHES.values():
        name = tools.launcher_name(arch)
        assert (tmp_path / name).read_bytes() == prebuilt(arch), name
