"""verify installs only an extension wheel the archive can load.

With PyPI's real wheels (downloaded once, cached like the wheelhouse): markupsafe and
multidict for CPython 3.9 on musllinux armv7l ship modules named for glibc
(``*.cpython-39-arm-linux-gnueabihf.so``), which Alpine's 3.9 never imports; their 3.11
wheels are named for musl. And with a real wheel whose module is renamed to a suffix the
archive lacks (the zip rewritten here)."""

from __future__ import annotations

import io
import os
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

from builder.extensions import extension_suffixes, loads_as_module
from builder.lowlevel.extchoice import (
    Choice,
    archive_suffixes,
    candidates,
    choose,
    compiled_modules,
    judge,
)
from builder.lowlevel.wheelhouse import project_wheels
from builder.platforms import get_arch

ARMV7 = get_arch("armv7")
MUSL_39 = (".cpython-39-arm-linux-musleabihf.so", ".abi3.so", ".so")
MUSL_311 = (".cpython-311-arm-linux-musleabihf.so", ".abi3.so", ".so")


def real_wheel(minor: str, project: str) -> Path:
    """PyPI's musllinux armv7l wheel of ``project`` for CPython ``minor`` (cached)."""
    directory = project_wheels(minor, ARMV7, project)
    assert directory is not None, f"PyPI has no {project} wheel for {minor} armv7l"
    return next(directory.glob(f"{project}-*.whl"))


def renamed(wheel: Path, dest: Path, old: str, new: str) -> Path:
    """``wheel`` rewritten with every member name (and RECORD line) ending in ``old`` now
    ending in ``new``."""
    out = dest / wheel.name
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            data = src.read(info)
            name = info.filename
            if name.endswith(old):
                name = name[: -len(old)] + new
            if name.endswith(".dist-info/RECORD"):
                data = data.decode().replace(old + ",", new + ",").encode()
            z.writestr(name, data)
    return out


def test_the_real_cp39_markupsafe_wheel_is_named_for_glibc_and_skipped() -> None:
    wheel = real_wheel("3.9", "markupsafe")
    assert compiled_modules(wheel) == ["markupsafe/_speedups.cpython-39-arm-linux-gnueabihf.so"]
    reason = judge(wheel, MUSL_39)
    assert reason is not None
    assert "_speedups.cpython-39-arm-linux-gnueabihf.so" in reason
    assert ".cpython-39-arm-linux-musleabihf.so" in reason


def test_no_cp39_armv7l_wheel_loads_so_none_is_chosen(tmp_path: Path) -> None:
    """markupsafe then multidict (the wheelhouse's, then the next project's from PyPI):
    both glibc-named; verify goes on to the cross-built probe, saying why."""
    house = tmp_path / "house"
    house.mkdir()
    first = real_wheel("3.9", "markupsafe")
    (house / first.name).write_bytes(first.read_bytes())
    found = candidates(house, lambda project: project_wheels("3.9", ARMV7, project))
    choice = choose(found, MUSL_39)
    assert (choice.project, choice.wheel) == (None, None)
    assert [s.project for s in choice.skipped] == ["markupsafe", "multidict"]
    assert all("gnueabihf" in s.reason for s in choice.skipped)
    assert "no wheel of markupsafe, multidict loads in the archive" in choice.why_none()


def test_the_real_cp311_wheel_qualifies() -> None:
    wheel = real_wheel("3.11", "markupsafe")
    assert judge(wheel, MUSL_311) is None


def test_a_renamed_module_is_skipped_for_the_next_project(tmp_path: Path) -> None:
    good = real_wheel("3.11", "markupsafe")
    house = tmp_path / "house"
    house.mkdir()
    bad = renamed(good, house, "-arm-linux-musleabihf.so", "-arm-linux-gnueabihf.so")
    (house / "pip-25.0-py3-none-any.whl").write_bytes(b"pip")
    assert compiled_modules(bad) == ["markupsafe/_speedups.cpython-311-arm-linux-gnueabihf.so"]
    multidict = real_wheel("3.11", "multidict").parent
    choice = choose(candidates(house, lambda p: multidict if p == "multidict" else None),
                    MUSL_311)
    assert choice.project == "multidict"
    assert [(s.project, s.wheel) for s in choice.skipped] == [("markupsafe", bad.name)]
    # what pip is given: pip and the chosen wheel, not the skipped one
    given = choice.wheelhouse(house, tmp_path / "given")
    assert sorted(p.name for p in given.iterdir()) == sorted(
        ["pip-25.0-py3-none-any.whl", choice.wheel.name if choice.wheel else ""])


@pytest.mark.parametrize(("name", "ok"), [
    ("_speedups.cpython-311-arm-linux-musleabihf.so", True),
    ("_speedups.abi3.so", True),
    ("_speedups.so", True),
    ("_speedups.cpython-311-arm-linux-gnueabihf.so", False),  # ends in .so, yet no module
    ("_speedups.cpython-311-x86_64-linux-musl.so", False),
    ("_speedups.cpython-310-arm-linux-musleabihf.so", False),
])
def test_loads_as_module(name: str, ok: bool) -> None:
    assert loads_as_module(name, MUSL_311) is ok


def _zip(path: Path, names: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for n in names:
            z.writestr(n, b"\x7fELF")
    return path


def test_bundled_libraries_are_not_modules(tmp_path: Path) -> None:
    wheel = _zip(tmp_path / "numpy-2.0.0-cp311-cp311-musllinux_1_2_armv7l.whl", [
        "numpy/core/_multiarray_umath.cpython-311-arm-linux-musleabihf.so",
        "numpy.libs/libgfortran-daac5196.so.5.0.0",
        "numpy.libs/libscipy_openblas-c128ec02.so",
        "numpy-2.0.0.dist-info/RECORD",
        "numpy-2.0.0.data/platlib/extra/_ext.cpython-311-arm-linux-musleabihf.so",
    ])
    assert compiled_modules(wheel) == [
        "numpy-2.0.0.data/platlib/extra/_ext.cpython-311-arm-linux-musleabihf.so",
        "numpy/core/_multiarray_umath.cpython-311-arm-linux-musleabihf.so"]
    assert judge(wheel, MUSL_311) is None


def test_hostile_wheels_are_passed_over_with_the_reason(tmp_path: Path) -> None:
    garbage = tmp_path / "msgpack-1.0-cp311-cp311-musllinux_1_2_armv7l.whl"
    garbage.write_bytes(b"not a zip")
    empty = _zip(tmp_path / "numpy-2.0-cp311-cp311-musllinux_1_2_armv7l.whl",
                 ["numpy/__init__.py"])
    choice = choose([("numpy", empty), ("msgpack", garbage)], MUSL_311)
    assert choice == Choice(None, None, choice.skipped, MUSL_311)
    reasons = [s.reason for s in choice.skipped]
    assert "ships no compiled module" in reasons[0]
    assert "not a readable wheel" in reasons[1]


def test_extension_suffixes_as_cpython_lists_them() -> None:
    ext = ".cpython-313-x86_64-linux-musl.so"
    assert extension_suffixes({"EXT_SUFFIX": ext}) == [ext, ".abi3.so", ".so"]
    assert extension_suffixes({"EXT_SUFFIX": ".cpython-313t-x86_64-linux-musl.so",
                               "Py_GIL_DISABLED": 1}) == [
        ".cpython-313t-x86_64-linux-musl.so", ".so"]  # free-threaded: no abi3
    assert extension_suffixes({"EXT_SUFFIX": ext, "ALT_SOABI": "cpython-313-x86_64-linux-gnu"}
                              ) == [ext, ".cpython-313-x86_64-linux-gnu.so", ".abi3.so", ".so"]
    assert extension_suffixes({"EXT_SUFFIX": None}) is None


def _archive(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_archive_suffixes_recorded_else_from_its_sysconfig_data(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "a.tar.gz", {
        "python/lib/python3.9/_sysconfigdata__linux_arm-linux-musleabihf.py":
            b"build_time_vars = {'EXT_SUFFIX': '.cpython-39-arm-linux-musleabihf.so'}\n"})
    assert archive_suffixes({"extension_suffixes": list(MUSL_39)}, archive, "3.9") == MUSL_39
    assert archive_suffixes({}, archive, "3.9") == MUSL_39  # an older archive: read
    bare = _archive(tmp_path / "b.tar.gz", {"python/bin/python3": b""})
    assert archive_suffixes({"ext_suffix": MUSL_39[0]}, bare, "3.9") == MUSL_39
    assert archive_suffixes({}, bare, "3.9") is None


def test_what_is_not_a_wheel_file_is_refused_before_zipfile_reads_it(tmp_path: Path) -> None:
    """A link to /dev/zero and a FIFO (zipfile would read forever or hang), a zip whose
    directory claims more than the caps (zipfile would load it whole into memory)."""
    (tmp_path / "zero.whl").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "fifo.whl")
    huge = tmp_path / "huge.whl"
    huge.write_bytes(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 60000, 60000,
                                 64 << 20, 0, 0))
    reasons = {p.name: judge(p, MUSL_311) or "" for p in sorted(tmp_path.iterdir())}
    assert "not a regular file" in reasons["zero.whl"]
    assert "not a regular file" in reasons["fifo.whl"]
    assert "over the caps" in reasons["huge.whl"]
