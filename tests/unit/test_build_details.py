"""PEP 739's build-details.json: relocate makes its paths relative, the audit checks them.

The input documents are written the way CPython 3.14's Tools/build/generate-build-details.py
writes one for an installation configured ``--prefix=/usr`` (Alpine's python3: absolute
paths); relocated documents are validated against PEP 739's JSON schema
(tests/data/pep739/README.md says where it comes from).
"""

from __future__ import annotations

import copy
import json
import os
import posixpath
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from builder.errors import StageError
from builder.stages.audit import AUDIT_RULES, audit_text
from builder.stages.build_details import (
    BUILD_DETAILS,
    PATH_KEYS,
    build_details_problems,
    relocate_build_details,
)
from builder.stages.relocate import prefix_pattern

SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "data" / "pep739"
                     / "python-build-info-v1.0.schema.json").read_text())
USR = prefix_pattern("/usr")

# What generate-build-details.py writes for Alpine's 3.14.5 on x86_64 (absolute paths).
ALPINE_314: dict[str, Any] = {
    "schema_version": "1.0",
    "base_prefix": "/usr",
    "base_interpreter": "/usr/bin/python3.14",
    "platform": "linux-x86_64",
    "language": {
        "version": "3.14",
        "version_info": {"major": 3, "minor": 14, "micro": 5, "releaselevel": "final",
                         "serial": 0},
    },
    "implementation": {
        "name": "cpython",
        "cache_tag": "cpython-314",
        "version": {"major": 3, "minor": 14, "micro": 5, "releaselevel": "final", "serial": 0},
        "hexversion": 51250672,
        "_multiarch": "x86_64-linux-musl",
        "supports_isolated_interpreters": True,
    },
    "abi": {"flags": [], "extension_suffix": ".cpython-314-x86_64-linux-musl.so",
            "stable_abi_suffix": ".abi3.so"},
    "suffixes": {"source": [".py"], "bytecode": [".pyc"],
                 "extensions": [".cpython-314-x86_64-linux-musl.so", ".abi3.so", ".so"]},
    "libpython": {
        "dynamic": "/usr/lib/libpython3.14.so.1.0",
        "dynamic_stableabi": "/usr/lib/libpython3.so",
        "link_extensions": False,
        "static": "/usr/lib/python3.14/config-3.14-x86_64-linux-musl/libpython3.14.a",
    },
    "c_api": {"headers": "/usr/include/python3.14", "pkgconfig_path": "/usr/lib/pkgconfig"},
}


def staged(tmp_path: Path, doc: dict[str, Any] | None = None, *, headers: bool = True,
           libpython: bool = True) -> Path:
    """A staged python/ tree of a 3.14 build, without libpython3.14.a (python3-dev's)."""
    tree = tmp_path / "stage" / "python"
    stdlib = tree / "lib" / "python3.14"
    (stdlib / "config-3.14-x86_64-linux-musl").mkdir(parents=True)
    (tree / "bin").mkdir()
    (tree / "bin" / "python3.14").write_bytes(b"\x7fELF")
    if libpython:
        (tree / "lib" / "libpython3.14.so.1.0").write_bytes(b"\x7fELF")
    (tree / "lib" / "libpython3.so").write_bytes(b"\x7fELF")
    (tree / "lib" / "pkgconfig").mkdir()
    (tree / "lib" / "pkgconfig" / "python-3.14.pc").write_text("prefix=/usr\n")
    if headers:
        (tree / "include" / "python3.14").mkdir(parents=True)
        (tree / "include" / "python3.14" / "Python.h").write_text("/* */\n")
    (stdlib / BUILD_DETAILS).write_text(json.dumps(doc or ALPINE_314, indent=2) + "\n")
    return tree


def _get(doc: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        doc = doc[part]
    return doc


def test_the_alpine_like_input_is_what_the_schema_describes() -> None:
    jsonschema.validate(ALPINE_314, SCHEMA)  # the test input is itself a valid document
    broken = copy.deepcopy(ALPINE_314)
    broken["c_api"]["include"] = broken["c_api"].pop("headers")  # not the schema's key
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)


def test_relocated_paths_are_relative_valid_and_resolve_anywhere(tmp_path: Path) -> None:
    tree = staged(tmp_path)
    path = tree / "lib" / "python3.14" / BUILD_DETAILS
    dropped = relocate_build_details(path, tree, "/usr")
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, SCHEMA)
    assert dropped == ["libpython.static"]  # the archive has no libpython3.14.a
    assert doc["base_prefix"] == "../.."
    assert doc["base_interpreter"] == "./bin/python3.14"
    assert doc["libpython"] == {"dynamic": "./lib/libpython3.14.so.1.0",
                                "dynamic_stableabi": "./lib/libpython3.so",
                                "link_extensions": False}
    assert doc["c_api"] == {"headers": "./include/python3.14",
                            "pkgconfig_path": "./lib/pkgconfig"}
    assert {k: v for k, v in doc.items() if k not in ("base_prefix", "base_interpreter",
                                                      "libpython", "c_api")} == {
        k: v for k, v in ALPINE_314.items() if k not in ("base_prefix", "base_interpreter",
                                                        "libpython", "c_api")}
    assert not USR.search(path.read_text())
    # The way CPython's test_build_details round-trips: each relative path joined to
    # base_prefix is the absolute one, here below wherever the tree is unpacked.
    for where in (tmp_path / "a" / "python", tmp_path / "deeper" / "b" / "c" / "python"):
        shutil.copytree(tree, where, symlinks=True)
        file = where / "lib" / "python3.14" / BUILD_DETAILS
        base = os.path.normpath(os.path.join(file.parent, doc["base_prefix"]))
        assert base == str(where)
        for key in PATH_KEYS:
            if key == "libpython.static":
                continue
            resolved = os.path.normpath(os.path.join(base, _get(doc, key)))
            assert resolved == str(where) + _get(ALPINE_314, key).removeprefix("/usr")
            assert os.path.exists(resolved), key
    assert build_details_problems(path, tree, USR) == []


def test_dropped_paths_take_what_depends_on_them(tmp_path: Path) -> None:
    """No headers: no c_api section (it requires headers); no libpython3.14.so: no
    dynamic, dynamic_stableabi or link_extensions. Still a valid document."""
    tree = staged(tmp_path, headers=False, libpython=False)
    path = tree / "lib" / "python3.14" / BUILD_DETAILS
    dropped = relocate_build_details(path, tree, "/usr")
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, SCHEMA)
    assert set(dropped) == {"libpython.dynamic", "libpython.dynamic_stableabi",
                            "libpython.link_extensions", "libpython.static",
                            "c_api.headers", "c_api"}
    assert "libpython" not in doc and "c_api" not in doc


def test_relative_input_stays_relative(tmp_path: Path) -> None:
    """A document already written with --relative-paths (base_prefix relative to the
    file): kept, in CPython's ./ form."""
    doc = copy.deepcopy(ALPINE_314)
    doc["base_prefix"] = "../.."
    doc["base_interpreter"] = "bin/python3.14"
    doc["c_api"] = {"headers": "./include/python3.14"}
    del doc["libpython"]
    tree = staged(tmp_path, doc)
    path = tree / "lib" / "python3.14" / BUILD_DETAILS
    assert relocate_build_details(path, tree, "/usr") == []
    out = json.loads(path.read_text())
    assert (out["base_prefix"], out["base_interpreter"], out["c_api"]["headers"]) == (
        "../..", "./bin/python3.14", "./include/python3.14")


@pytest.mark.parametrize(("change", "needle"), [
    (lambda d: d.update(base_prefix="/opt/python"), "is not the build prefix '/usr'"),
    (lambda d: d.update(base_prefix=7), "base_prefix is 7"),
    (lambda d: d.update(base_prefix="../../.."), "does not lead from lib/python3.14"),
    (lambda d: d["c_api"].update(headers="/opt/include"), "outside the build prefix"),
    (lambda d: d["libpython"].update(dynamic=["x"]), "libpython.dynamic is ['x']"),
])
def test_unexpected_documents_are_stage_errors(tmp_path: Path, change: Any, needle: str
                                               ) -> None:
    doc = copy.deepcopy(ALPINE_314)
    change(doc)
    tree = staged(tmp_path, doc)
    with pytest.raises(StageError, match=needle.replace("[", r"\[").replace("(", r"\(")):
        relocate_build_details(tree / "lib" / "python3.14" / BUILD_DETAILS, tree, "/usr")


def test_not_json_is_a_stage_error(tmp_path: Path) -> None:
    tree = staged(tmp_path)
    path = tree / "lib" / "python3.14" / BUILD_DETAILS
    for text, needle in (("{nope", "not valid JSON"), ("[1, 2]", "must be a JSON object")):
        path.write_text(text)
        with pytest.raises(StageError, match=needle):
            relocate_build_details(path, tree, "/usr")


def test_audit_names_the_file_and_every_key_left_absolute(tmp_path: Path) -> None:
    """An archive shipping the document untouched (as the issue found 3.14's): the
    build-details rule fails, naming the file and the keys."""
    tree = staged(tmp_path)
    findings = [f for f in audit_text(tree, "3.14") if f.check == "build-details"]
    assert "build-details" in AUDIT_RULES
    assert {f.path for f in findings} == {"python/lib/python3.14/build-details.json"}
    text = "\n".join(f.message for f in findings)
    for key in ("base_prefix", "base_interpreter", "libpython.dynamic", "c_api.headers",
                "c_api.pkgconfig_path"):
        assert f"{key}: names the build prefix" in text, key
    assert "base_prefix: '/usr' is absolute" in text


def test_audit_catches_paths_that_leave_or_miss(tmp_path: Path) -> None:
    tree = staged(tmp_path)
    path = tree / "lib" / "python3.14" / BUILD_DETAILS
    relocate_build_details(path, tree, "/usr")
    doc = json.loads(path.read_text())
    doc["c_api"]["headers"] = "./../../etc"
    doc["libpython"]["dynamic"] = "./lib/libpython3.14.so.9"
    path.write_text(json.dumps(doc))
    problems = build_details_problems(path, tree, USR)
    assert problems == [
        "libpython.dynamic: './lib/libpython3.14.so.9' names python/lib/libpython3.14.so.9, "
        "which the archive lacks",
        "c_api.headers: './../../etc' leaves python/"]
    doc["base_prefix"] = ".."
    path.write_text(json.dumps(doc))
    assert build_details_problems(path, tree, USR) == [
        "base_prefix: '..' leads from lib/python3.14/ to 'lib', not to the top of python/"]
    path.write_text("[]")
    assert build_details_problems(path, tree, USR)[0].startswith("(document): ")
    assert posixpath.sep == "/"


def test_a_314_archive_relocated_by_relocate_passes_the_audit(tmp_path: Path) -> None:
    tree = staged(tmp_path)
    relocate_build_details(tree / "lib" / "python3.14" / BUILD_DETAILS, tree, "/usr")
    assert [f for f in audit_text(tree, "3.14") if f.check == "build-details"] == []
