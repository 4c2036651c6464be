"""A full CPython build's extension modules per minor, checked against real Alpine."""

from __future__ import annotations

import pytest

from builder.extensions import full_build, lacking
from builder.lowlevel.apkdb import parse_installed
from tests.minirootfs import FACTS

DB = FACTS / "alpine-3.18.3-x86_64-lib-apk-db-installed"
TEST_MODULE_PREFIXES = ("_test", "_ctypes_test", "_xxtestfuzz", "xxlimited", "xxsubtype")


def test_minors_follow_cpythons_history() -> None:
    for minor in ("3.11", "3.12", "3.13", "3.14"):
        full = full_build(minor)
        assert full is not None and {"zlib", "_ctypes", "_ssl", "_uuid"} <= set(full)
    assert "audioop" in (full_build("3.12") or []) and "audioop" not in (full_build("3.13") or [])
    assert "_zstd" in (full_build("3.14") or []) and "_zstd" not in (full_build("3.13") or [])
    assert "_sha2" in (full_build("3.12") or []) and "_sha256" in (full_build("3.11") or [])
    assert full_build("3.9") is None and lacking("3.9", []) is None


@pytest.mark.skipif(not DB.is_file(), reason="the real Alpine installed database")
def test_real_alpine_3_18_python3() -> None:
    """Real Alpine 3.18.3's python3 3.11.6 (its files in the installed database): every
    module it ships is in the reference, and it lacks what its subpackages hold."""
    modules = {f.name.split(".", 1)[0] for p in parse_installed(DB.read_text())
               for f in p.files if "lib-dynload" in str(f) and f.name.endswith(".so")}
    shipped = {m for m in modules if not m.startswith(TEST_MODULE_PREFIXES)}
    assert shipped <= set(full_build("3.11") or [])
    assert lacking("3.11", modules) == ["_gdbm", "_tkinter", "_uuid", "nis"]
