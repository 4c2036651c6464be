"""The cross-built probe extension: zig cc against an archive's headers, packed as a
musllinux wheel pip accepts. The headers here are this host's CPython's (a real
``include/python3.X``); the archive's own are used end to end in
tests/integration/test_c_extension.py."""

from __future__ import annotations

import base64
import hashlib
import shutil
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

import builder.lowlevel.crossext as crossext
from builder.errors import MissingToolError, StageError
from builder.lowlevel.crossext import PROJECT, build_probe_wheel, ext_suffix, wheel_name
from builder.lowlevel.elf import read_elf
from builder.lowlevel.wheelhouse import is_compiled_wheel
from builder.platforms import get_arch
from builder.progress import NullReporter
from builder.stages import verify
from builder.stages.verify import ArchiveIdentity, CheckResult

HOST_INCLUDE = Path(sysconfig.get_paths()["include"])
MINOR = sysconfig.get_python_version()


def make_tree(base: Path, multiarch: str, suffix: str | None) -> Path:
    """A python/ tree with real headers and a sysconfig data file (EXT_SUFFIX ``suffix``)."""
    tree = base / "python"
    shutil.copytree(HOST_INCLUDE, tree / "include" / f"python{MINOR}")
    stdlib = tree / "lib" / f"python{MINOR}"
    stdlib.mkdir(parents=True)
    entry = f" 'EXT_SUFFIX': {suffix!r},\n" if suffix else ""
    (stdlib / f"_sysconfigdata__linux_{multiarch}.py").write_text(
        "# system configuration\nbuild_time_vars = {'ABIFLAGS': '',\n" + entry
        + " 'SOABI': 'x'}\n_musl_pbs_relocate = 1\n")
    return tree


@pytest.mark.parametrize(("alpine", "machine", "multiarch"), [
    ("x86_64", "EM_X86_64", "x86_64-linux-musl"),
    ("loongarch64", "EM_LOONGARCH", "loongarch64-linux-musl"),
])
def test_the_wheel_holds_a_module_for_the_arch(alpine: str, machine: str, multiarch: str,
                                               tmp_path: Path) -> None:
    arch = get_arch(alpine)
    tag = "cp" + MINOR.replace(".", "")
    suffix = f".cpython-{tag}-{multiarch}.so"
    tree = make_tree(tmp_path / "a", multiarch, suffix)
    wheel = build_probe_wheel(tree, arch, MINOR, tmp_path)
    assert wheel.name == f"{PROJECT}-1.0-{tag}-{tag}-musllinux_1_2_{arch.wheel_arch}.whl"
    assert is_compiled_wheel(wheel.name)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert names[0] == PROJECT + suffix
        assert f"Tag: {tag}-{tag}-musllinux_1_2_{arch.wheel_arch}" in zf.read(
            f"{PROJECT}-1.0.dist-info/WHEEL").decode()
        record = zf.read(f"{PROJECT}-1.0.dist-info/RECORD").decode().splitlines()
        for line in record:  # every file's hash and size, as pip checks them
            name, digest, size = line.split(",")
            if name.endswith("RECORD"):
                continue
            data = zf.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert (digest, int(size)) == (f"sha256={expected.decode()}", len(data))
        (tmp_path / "m.so").write_bytes(zf.read(PROJECT + suffix))
    info = read_elf(tmp_path / "m.so")
    assert info is not None and info.machine == machine and info.elf_type == "ET_DYN"
    assert info.interpreter is None and info.needed == ("libc.so",)  # musl's loader answers


def test_the_same_inputs_give_the_same_wheel(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "a", "x86_64-linux-musl", ".cpython-3x-x86_64-linux-musl.so")
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    one = build_probe_wheel(tree, get_arch("x86_64"), MINOR, tmp_path / "1")
    two = build_probe_wheel(tree, get_arch("x86_64"), MINOR, tmp_path / "2")
    assert one.read_bytes() == two.read_bytes()


def test_ext_suffix_comes_from_the_archive(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, "arm-linux-musleabihf", ".cpython-311-arm-linux-musleabihf.so")
    assert ext_suffix(tree, MINOR) == ".cpython-311-arm-linux-musleabihf.so"
    bare = make_tree(tmp_path / "b", "arm-linux-musleabihf", None)
    with pytest.raises(StageError, match="no _sysconfigdata_"):
        ext_suffix(bare, MINOR)


def test_no_headers_is_a_typed_error(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, "x86_64-linux-musl", ".so")
    (tree / "include" / f"python{MINOR}" / "Python.h").unlink()
    with pytest.raises(StageError, match=r"Python\.h is missing"):
        build_probe_wheel(tree, get_arch("x86_64"), MINOR, tmp_path)


def test_without_zig_the_error_says_how_to_get_it(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    tree = make_tree(tmp_path, "x86_64-linux-musl", ".so")
    monkeypatch.setattr(crossext, "zig_command", lambda: None)
    with pytest.raises(MissingToolError) as e:
        build_probe_wheel(tree, get_arch("x86_64"), MINOR, tmp_path)
    assert "musl-pbs[cross]" in e.value.hint
    assert not list(tmp_path.glob("*.whl"))


def test_armhf_wheel_name_and_a_pure_wheel_is_not_an_extension() -> None:
    assert wheel_name(get_arch("armhf"), "3.11") == (
        f"{PROJECT}-1.0-cp311-cp311-musllinux_1_2_armv6l.whl")
    assert not is_compiled_wheel("multidict-7.2.1-py3-none-any.whl")
    assert is_compiled_wheel("multidict-7.2.1-cp311-cp311-musllinux_1_2_s390x.whl")


def _archive_of(tree: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(str(tree), arcname="python")
    return dest


def test_verify_builds_the_probe_from_the_archive_or_says_why_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """verify's path where PyPI has no wheel: the probe from the archive's own headers; no
    zig: SKIPPED naming the fix; broken headers: a failed check, never a traceback."""
    arch = get_arch("loongarch64")
    tree = make_tree(tmp_path / "t", "loongarch64-linux-musl",
                     ".cpython-3x-loongarch64-linux-musl.so")
    archive = _archive_of(tree, tmp_path / "a.tar.gz")
    ident = ArchiveIdentity(None, {}, None, arch, MINOR + ".0", MINOR)
    (tmp_path / "out").mkdir()
    wheel = verify.cross_probe(archive, ident, tmp_path / "out", NullReporter())
    assert isinstance(wheel, Path) and wheel.name.endswith("musllinux_1_2_loongarch64.whl")

    (tree / "include" / f"python{MINOR}" / "Python.h").write_text("#error broken\n")
    broken = verify.cross_probe(_archive_of(tree, tmp_path / "b.tar.gz"), ident,
                                tmp_path / "out", NullReporter())
    assert isinstance(broken, CheckResult)
    assert (broken.check, broken.ok, broken.level) == ("cross-extension", False, "error")
    assert "zig cc for loongarch64-linux-musl failed" in broken.detail

    monkeypatch.setattr(crossext, "zig_command", lambda: None)
    skipped = verify.cross_probe(archive, ident, tmp_path / "out", NullReporter())
    assert isinstance(skipped, CheckResult)
    assert (skipped.check, skipped.ok, skipped.level) == ("cross-extension", False, "skipped")
    assert "PyPI publishes no musllinux wheel" in skipped.detail
    assert "musl-pbs[cross]" in skipped.detail
