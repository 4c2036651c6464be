"""3.14's ``_sysconfig_vars_*.json``: relocated like the sysconfig data, audited by key.

CPython 3.14 writes it with ``json.dump(sysconfig.get_config_vars(), f, indent=2)`` at build
time (Lib/sysconfig/__main__.py), beside ``_sysconfigdata_*.py``; the input here is written
that way from an Alpine-like set of variables (``--prefix=/usr``).
"""

from __future__ import annotations

import json
from pathlib import Path

from builder.stages.audit import audit_text
from builder.stages.relocate import (
    PLACEHOLDER,
    relocate_sysconfig_json,
    relocate_sysconfigdata,
)

VARS: dict[str, object] = {
    "ABIFLAGS": "",
    "BINDIR": "/usr/bin",
    "CONFIG_ARGS": "'--prefix=/usr' '--enable-shared'",
    "INCLUDEPY": "/usr/include/python3.14",
    "LIBDIR": "/usr/lib",
    "LIBPC": "/usr/lib/pkgconfig",
    "LIBPL": "/usr/lib/python3.14/config-3.14-x86_64-linux-musl",
    "LDFLAGS": "-Wl,--as-needed -L/usr/lib",
    "TZPATH": "/usr/share/zoneinfo:/usr/lib/zoneinfo",
    "Py_ENABLE_SHARED": 1,
    "prefix": "/usr",
    "exec_prefix": "/usr",
    "installed_base": "/usr",
    "base": "/usr",
    "platbase": "/usr",
    "projectbase": "/usr/bin",
    "srcdir": "/usr/lib/python3.14/config-3.14-x86_64-linux-musl",
    "userbase": "/root/.local",
    "WITH_NAMES": "/usrx/lib",
    "py_version_short": "3.14",
}
NAME = "_sysconfig_vars__linux_x86_64-linux-musl.json"


def _tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    tree = tmp_path / "python"
    stdlib = tree / "lib" / "python3.14"
    stdlib.mkdir(parents=True)
    (tree / "bin").mkdir()
    as_json = stdlib / NAME
    as_json.write_text(json.dumps(VARS, indent=2))
    as_py = stdlib / "_sysconfigdata__linux_x86_64-linux-musl.py"
    as_py.write_text("build_time_vars = " + repr(VARS) + "\n")
    return tree, as_json, as_py


def test_the_json_gets_exactly_the_sysconfigdata_values(tmp_path: Path) -> None:
    tree, as_json, as_py = _tree(tmp_path)
    relocate_sysconfig_json(as_json, "/usr")
    relocate_sysconfigdata(as_py, "/usr")
    data = json.loads(as_json.read_text())
    assert list(data) == list(VARS)  # same keys, CPython's order kept
    code = as_py.read_text().split("\n# musl-pbs:")[0]  # the data, without the import hook
    namespace: dict[str, object] = {}
    exec(compile(code, str(as_py), "exec"), namespace)  # our own output
    assert data == namespace["build_time_vars"]
    assert data["LIBDIR"] == f"{PLACEHOLDER}/lib" and data["prefix"] == PLACEHOLDER
    assert data["LDFLAGS"] == f"-Wl,--as-needed -L{PLACEHOLDER}/lib"
    assert data["TZPATH"] == VARS["TZPATH"]  # a system location: left alone
    assert data["userbase"] == "/root/.local"
    assert data["WITH_NAMES"] == "/usrx/lib"
    assert [f for f in audit_text(tree, "3.14") if NAME in f.path] == []


def test_a_json_with_usr_left_fails_the_audit_naming_file_and_key(tmp_path: Path) -> None:
    tree, _, as_py = _tree(tmp_path)
    relocate_sysconfigdata(as_py, "/usr")  # the .py relocated, the JSON forgotten
    findings = [f for f in audit_text(tree, "3.14") if f.path.endswith(NAME)]
    assert {f.check for f in findings} == {"prefix"}
    assert {f.path for f in findings} == {f"python/lib/python3.14/{NAME}"}
    named = {f.message.split(" ", 1)[0] for f in findings}
    assert {"BINDIR", "LIBDIR", "LIBPL", "INCLUDEPY", "prefix", "LDFLAGS"} <= named
    assert "TZPATH" not in named and "WITH_NAMES" not in named  # /usrx is not /usr
    one = next(f for f in findings if f.message.startswith("LIBDIR "))
    assert one.message.startswith("LIBDIR names /usr: '/usr/lib'")


def test_many_keys_are_counted_not_listed_and_garbage_is_a_finding(tmp_path: Path) -> None:
    tree, as_json, _ = _tree(tmp_path)
    as_json.write_text(json.dumps({f"K{i}": f"/usr/lib/{i}" for i in range(30)}))
    findings = [f for f in audit_text(tree, "3.14") if f.path.endswith(NAME)]
    assert len(findings) == 13 and findings[-1].message.startswith("and 18 more keys")
    as_json.write_text("[1]")
    assert [f.message for f in audit_text(tree, "3.14") if f.path.endswith(NAME)] == [
        "not a JSON object of sysconfig variables"]
