"""Which wheel proves a C extension: a platform wheel only. multidict publishes a
``py3-none-any`` wheel that pip takes for any platform (armv6l, loongarch64), which has no C
module to import. pip is replaced by a stand-in that answers as PyPI did for armv6l."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import builder.lowlevel.wheelhouse as wheelhouse
from builder.lowlevel.wheelhouse import MARKER, extension_wheel, wheelhouse_extension
from builder.platforms import Arch, get_arch

PURE = "multidict-7.2.1-py3-none-any.whl"
S390X = "multidict-7.2.1-cp311-cp311-musllinux_1_2_s390x.whl"


def _pypi_for_armv6l(minor: str, arch: Arch, dest: Path, *args: str
                     ) -> subprocess.CompletedProcess[str]:
    """What `pip download --platform musllinux_1_2_armv6l` answered (2026-11-27): no
    numpy/markupsafe/msgpack, multidict's pure-Python wheel."""
    if args[-1] == "multidict":
        (dest / PURE).write_bytes(b"")
        return subprocess.CompletedProcess([], 0, "", "")
    return subprocess.CompletedProcess(
        [], 1, "", f"ERROR: No matching distribution found for {args[-1]}")


def test_a_pure_wheel_is_no_extension(tmp_path: Path) -> None:
    (tmp_path / PURE).write_bytes(b"")
    (tmp_path / "pip-26.3-py3-none-any.whl").write_bytes(b"")
    assert wheelhouse_extension(tmp_path) is None
    (tmp_path / S390X).write_bytes(b"")
    assert wheelhouse_extension(tmp_path) == "multidict"


@pytest.mark.parametrize("stale", [False, True])
def test_no_extension_for_armv6l_even_with_a_stale_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stale: bool) -> None:
    monkeypatch.setattr(wheelhouse, "CACHE", tmp_path)
    monkeypatch.setattr(wheelhouse, "_pip_download", _pypi_for_armv6l)
    arch = get_arch("armhf")
    cached = tmp_path / "wheelhouse" / "ext-cp311-musllinux-armv6l"
    if stale:  # what the cache held when the pure wheel counted
        cached.mkdir(parents=True)
        (cached / PURE).write_bytes(b"")
        (cached / MARKER).write_text("multidict")
    assert extension_wheel("3.11", arch) is None
    assert (cached / MARKER).read_text() == ""
    assert not list(cached.glob("*.whl"))
    assert extension_wheel("3.11", arch) is None  # from the cache now
