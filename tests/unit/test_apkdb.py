from __future__ import annotations

from pathlib import PurePosixPath

from builder.lowlevel.apkdb import parse_installed
from builder.lowlevel.apkversion import upstream_version

DB = """C:Q1abc=
P:musl
V:1.2.5-r0
A:x86_64
L:MIT
o:musl
t:1712000000
F:lib
R:ld-musl-x86_64.so.1
R:libc.musl-x86_64.so.1

C:Q1def=
P:python3
V:3.12.8-r1
A:x86_64
L:PSF-2.0
o:python3
t:1733000000
D:so:libc.musl-x86_64.so.1
F:usr/bin
R:python3.12
F:usr/lib/python3.12
R:os.py
"""


def test_parse_installed_records_and_files() -> None:
    musl, python = parse_installed(DB)
    assert (musl.name, musl.version, musl.license, musl.build_time) == (
        "musl", "1.2.5-r0", "MIT", 1712000000)
    assert PurePosixPath("/lib/ld-musl-x86_64.so.1") in musl.files
    assert python.files == (PurePosixPath("/usr/bin/python3.12"),
                            PurePosixPath("/usr/lib/python3.12/os.py"))
    assert python.to_json()["license"] == "PSF-2.0"


def test_upstream_version() -> None:
    assert upstream_version("1.2.5-r0") == "1.2.5"
    assert upstream_version("3.12.8-r12") == "3.12.8"
    assert upstream_version("1.0") == "1.0"
    assert upstream_version("1.2.4_git20230717-r4") == "1.2.4_git20230717"


def test_empty_and_garbage() -> None:
    assert parse_installed("") == []
    assert parse_installed("hello\nworld\n") == []
