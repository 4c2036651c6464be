"""Alpine versions in apk's order, checked against a real apk-tools and real Alpine data."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from builder.lowlevel.apkdb import parse_installed
from builder.lowlevel.apkversion import ApkVersion, at_least, compare, is_valid, upstream_version
from tests.minirootfs import FACTS

DATA = Path(__file__).resolve().parent.parent / "data" / "apk"
OPS = {-1: "<", 0: "=", 1: ">"}


def _pairs() -> list[tuple[str, str, str]]:
    out = []
    for line in (DATA / "version-pairs.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            a, op, b = line.split()
            out.append((a, op, b))
    return out


def _leading_zero(version: str) -> bool:
    """A dotted number with a leading zero: apk 2 compares it as a number, apk 3 (and we)
    as text (apk-tools test/version.data: 8.2.0015 < 8.2.002)."""
    parts = upstream_version(version).split("_")[0].split(".")[1:]
    return any(len(p) > 1 and p.startswith("0") for p in parts)


def test_agrees_with_real_apk_on_real_alpine_versions() -> None:
    """3,350 comparisons `apk version -t` of apk-tools 2.14.4 (the 3.20.3 minirootfs's)
    made over every version in the real v3.22 APKINDEX and three real installed databases
    (tools/apk_version_pairs.py)."""
    pairs = _pairs()
    assert len(pairs) > 3000
    differ = [(a, op, b) for a, op, b in pairs if OPS[compare(a, b)] != op]
    # Only the documented apk 2 / apk 3 difference: numbers with a leading zero.
    assert all(_leading_zero(a) or _leading_zero(b) for a, _op, b in differ), differ
    assert len(differ) < 30
    for a, _op, b in pairs:
        assert is_valid(a) and is_valid(b), (a, b)


@pytest.mark.parametrize(("a", "b"), [
    ("1.2.4", "1.2.4_git20230717"),
    ("1.2.4_git20230717", "1.2.5"),
    ("1.2.5", "1.2.5_git20240512"),
    ("1.2.5_git20240512", "1.2.6"),
    ("1.2.4_git20230717-r4", "1.2.4_git20230718"),
    ("1.2.4_git20230717", "1.2.4_git20230717-r4"),
    ("1.0_alpha", "1.0_beta"), ("1.0_beta2", "1.0_pre1"), ("1.0_pre1", "1.0_rc1"),
    ("1.0_rc1", "1.0"), ("1.0", "1.0_cvs"), ("1.0_cvs", "1.0_svn"), ("1.0_svn", "1.0_git"),
    ("1.0_git", "1.0_hg"), ("1.0_hg", "1.0_p1"), ("1.0_p1", "1.0_p2"), ("1.0_p9", "1.0_p10"),
    ("1.0-r9", "1.0-r10"), ("1.0a", "1.0b"), ("1.0z", "1.0.1"), ("1.2", "1.2.0"),
    ("3.12.9-r1", "3.12.12-r0"), ("3.21.0_alpha20240923", "3.21.0"),
    ("8.2.0015", "8.2.002"),  # apk 3: leading zeros compare as text
])
def test_order(a: str, b: str) -> None:
    assert compare(a, b) == -1
    assert compare(b, a) == 1
    assert ApkVersion(a) < ApkVersion(b)
    assert at_least(b, a) and not at_least(a, b)


def test_equal_and_invalid() -> None:
    assert compare("1.2.5", "1.2.5") == 0
    assert ApkVersion("1.2.5-r0") == ApkVersion("1.2.5-r0")
    assert hash(ApkVersion("1.2.5")) == hash(ApkVersion("1.2.5"))
    for bad in ("", "abc", "1.2..3", "1.2-3", "1.2_foo", "1.2-r", "1.0~", "1.0-r1-r2", "1.0_"):
        assert not is_valid(bad), bad
    assert is_valid("1.0_rc-r1") and is_valid("1.0~1a2b-r3")


def _versions(text: str, name: str) -> list[str]:
    return [p.version for p in parse_installed(text) if p.name == name]


@pytest.mark.skipif(not FACTS.is_dir(), reason="the real Alpine facts")
def test_musl_python3_openssl_of_real_alpine_in_order() -> None:
    """The versions of real releases (3.18.3's installed db, 3.19.4's and 3.20.3's
    minirootfs db as recorded in version-pairs' sources, v3.22's APKINDEX) sort by release."""
    db = (FACTS / "alpine-3.18.3-x86_64-lib-apk-db-installed").read_text()
    musl = ["1.2.3-r4", _versions(db, "musl")[0], "1.2.4_git20230717-r4", "1.2.5-r0",
            "1.2.5-r10", "1.2.6-r0"]
    python3 = [_versions(db, "python3")[0], "3.12.3-r1", "3.12.12-r0", "3.14.5-r0"]
    openssl = [_versions(db, "libcrypto3")[0], "3.3.2-r0", "3.5.4-r0"]
    for chain in (musl, python3, openssl):
        shuffled = list(reversed(chain))
        assert sorted(shuffled, key=functools.cmp_to_key(compare)) == chain
        assert sorted(map(ApkVersion, shuffled)) == list(map(ApkVersion, chain))
    assert musl[1] == "1.2.4-r1" and python3[0] == "3.11.6-r0"
