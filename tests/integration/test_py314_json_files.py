"""3.14's two JSON files, relocated by a real build and checked at a random path.

**What is synthetic.** CPython 3.12 and 3.14 sources cannot be had here, so the test ground
has no 3.14. This test takes a test-ground CPython 3.11 build (x86_64, the first target
the test ground builds; its 3.13 would do as well) (real musl ELFs, real
sysconfig data) and, in its staged tree *before relocate*, writes the two files CPython 3.14
installs beside the sysconfig data, the way 3.14 writes them:

- ``_sysconfig_vars_<name>.json``: ``json.dump(get_config_vars(), f, indent=2)`` of the
  build (CPython's Lib/sysconfig/__main__.py). Here it is made from that archive's own
  ``_sysconfigdata_*.py`` (still naming ``/usr``) plus the keys sysconfig adds at run time
  whose build-time value follows from the prefix: ``base``, ``platbase``,
  ``installed_base``, ``installed_platbase`` (the prefix), ``projectbase`` (``BINDIR``) and
  ``srcdir`` (``LIBPL``), as __main__.py fixes them, ``abiflags``, ``platlibdir``,
  ``py_version_short``/``_nodot``/``_nodot_plat``, and ``userbase`` (the build user's
  home: CPython's own test ignores it). Run-time keys whose value is not fixed by the build
  (``py_version``) are left out, so the JSON is a subset of the live variables.
- ``build-details.json``: what ``Tools/build/generate-build-details.py`` writes for an
  installation configured ``--prefix=/usr`` (absolute paths), from the same variables.

Everything after that is the real pipeline: relocate, pack, ``verify`` at a random path in
the base image (its static rules and runtime checks), and the live
``sysconfig.get_config_vars()`` of the relocated interpreter, read in a container with the
archive unpacked at another random path, compared with the JSON key by key.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest

import builder.build
from builder.cli import main
from builder.lowlevel.container import Container, docker_client
from builder.lowlevel.sysconfigdata import build_time_vars
from builder.progress import Reporter
from builder.stages.relocate import PLACEHOLDER, Relocated, prefix_pattern
from builder.stages.verify import tar_for_put

from .conftest import images_for

pytestmark = pytest.mark.docker
SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "data" / "pep739"
                     / "python-build-info-v1.0.schema.json").read_text())
PLACEHOLDER_TOKEN = prefix_pattern(PLACEHOLDER)
MINOR = "3.11"


def _sysconfig_vars(build_vars: dict[str, Any], prefix: str) -> dict[str, Any]:
    out = dict(build_vars)
    version = str(build_vars["VERSION"])
    out.update(base=prefix, platbase=prefix, installed_base=prefix, installed_platbase=prefix,
               projectbase=build_vars["BINDIR"], srcdir=build_vars["LIBPL"],
               abiflags=build_vars.get("ABIFLAGS", ""),
               platlibdir=build_vars.get("PLATLIBDIR", "lib"), py_version_short=version,
               py_version_nodot=version.replace(".", ""), py_version_nodot_plat="",
               userbase="/home/buildozer/.local")
    return out


def _build_details(v: dict[str, Any], patchlevel: str) -> dict[str, Any]:
    """generate-build-details.py's document (schema 1.0, absolute paths) for these vars."""
    version = re.search(r'#define PY_VERSION\s+"(\d+)\.(\d+)\.(\d+)"', patchlevel)
    assert version is not None
    major, minor, micro = map(int, version.groups())
    info = {"major": major, "minor": minor, "micro": micro, "releaselevel": "final",
            "serial": 0}
    libdir = str(v["LIBDIR"])
    libpython: dict[str, Any] = {"dynamic": f"{libdir}/{v['LDLIBRARY']}"}
    if v.get("PY3LIBRARY"):
        libpython["dynamic_stableabi"] = f"{libdir}/{v['PY3LIBRARY']}"
    libpython["link_extensions"] = bool(v.get("LIBPYTHON"))
    if v.get("STATIC_LIBPYTHON"):
        libpython["static"] = f"{libdir}/{v['LIBRARY']}"
    return {
        "schema_version": "1.0",
        "base_prefix": v["prefix"],
        "base_interpreter": f"{v['BINDIR']}/python{v['VERSION']}",
        "platform": f"linux-{v['MULTIARCH'].split('-')[0]}",
        "language": {"version": v["VERSION"], "version_info": info},
        "implementation": {"name": "cpython", "cache_tag": f"cpython-{major}{minor}",
                           "version": info,
                           "hexversion": (major << 24) | (minor << 16) | (micro << 8) | 0xF0,
                           "_multiarch": v["MULTIARCH"]},
        "abi": {"flags": list(str(v.get("ABIFLAGS", ""))),
                "extension_suffix": v["EXT_SUFFIX"], "stable_abi_suffix": ".abi3.so"},
        "suffixes": {"source": [".py"], "bytecode": [".pyc"],
                     "extensions": [v["EXT_SUFFIX"], ".abi3.so", ".so"]},
        "libpython": libpython,
        "c_api": {"headers": v["INCLUDEPY"], "pkgconfig_path": v["LIBPC"]},
    }


@pytest.fixture(scope="module")
def built_with_314_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A test-ground x86_64 archive whose staged tree got 3.14's two JSON files before
    relocate; and the JSON written (unrelocated)."""
    images = images_for("x86_64", MINOR)
    root = tmp_path_factory.mktemp("py314-json")
    real_relocate = builder.build.relocate
    written: dict[str, Any] = {}

    def relocate_with_314_files(tree: Path, prefix: str, minor: str, patcher: Any,
                                reporter: Reporter) -> Relocated:
        stdlib = tree / "lib" / f"python{minor}"
        sysconfigdata = next(stdlib.glob("_sysconfigdata_*.py"))
        build_vars = build_time_vars(sysconfigdata.read_text())
        assert build_vars is not None and build_vars["prefix"] == prefix
        name = sysconfigdata.stem.replace("_sysconfigdata", "_sysconfig_vars") + ".json"
        written["sysconfig_vars"] = _sysconfig_vars(build_vars, prefix)
        (stdlib / name).write_text(json.dumps(written["sysconfig_vars"], indent=2))
        patchlevel = (tree / "include" / f"python{minor}" / "patchlevel.h").read_text()
        written["build_details"] = _build_details(build_vars, patchlevel)
        jsonschema.validate(written["build_details"], SCHEMA)
        (stdlib / "build-details.json").write_text(
            json.dumps(written["build_details"], indent=2) + "\n")
        return real_relocate(tree, prefix, minor, patcher, reporter)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(builder.build, "relocate", relocate_with_314_files)
        assert main(["build", "--arch", "x86_64", "--image", images[0], "--out",
                     str(root / "dist"), "--work", str(root / "work"), "-q"]) == 0
    return next((root / "dist").glob(f"cpython-{MINOR}.*-linux-x86_64-musl.tar.gz")), written


def _member(archive: Path, suffix: str) -> tuple[str, bytes]:
    with tarfile.open(archive) as tar:
        for m in tar:
            if m.name.endswith(suffix) and m.isfile():
                f = tar.extractfile(m)
                assert f is not None
                return m.name, f.read()
    raise AssertionError(f"no {suffix} in {archive}")


def test_the_archive_holds_them_relocated(built_with_314_files: tuple[Path, dict[str, Any]]
                                          ) -> None:
    archive, written = built_with_314_files
    name, raw = _member(archive, "/build-details.json")
    assert name == f"python/lib/python{MINOR}/build-details.json"
    details = json.loads(raw)
    jsonschema.validate(details, SCHEMA)
    assert details["base_prefix"] == "../.."
    assert details["base_interpreter"] == f"./bin/python{MINOR}"
    assert details["c_api"]["headers"] == f"./include/python{MINOR}"
    assert details["libpython"]["dynamic"].startswith(f"./lib/libpython{MINOR}.so")
    assert "static" not in details["libpython"]  # /usr/lib/libpython3.X.a is not shipped
    names = _names(archive)
    assert len(names) == 1 and names[0].startswith("_sysconfig_vars__linux_x86_64")
    _, raw = _member(archive, f"/{names[0]}")
    data = json.loads(raw)
    assert set(data) == set(written["sysconfig_vars"])
    usr = prefix_pattern("/usr")
    left = [k for k, v in data.items() if isinstance(v, str) and usr.search(v) and k != "TZPATH"]
    assert left == []
    assert data["LIBDIR"] == f"{PLACEHOLDER}/lib" and data["prefix"] == PLACEHOLDER


def _names(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        return [PurePosixPath(m.name).name for m in tar
                if PurePosixPath(m.name).name.startswith("_sysconfig_vars_")]


def test_verify_checks_them_at_a_random_path(
    built_with_314_files: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    archive, _ = built_with_314_files
    base = images_for("x86_64", MINOR)[1]
    code = main(["verify", str(archive), "--image", base, "--json"])
    report = json.loads(capsys.readouterr().out)
    results = {r["check"]: r for r in report["results"]}
    assert code == 0, [r for r in report["results"] if not r["ok"]]
    assert results["static:build-details"]["ok"]
    assert results["build-details"]["ok"], results["build-details"]
    assert results["sysconfig-json"]["ok"], results["sysconfig-json"]
    assert "keys agree" in results["sysconfig-json"]["detail"]


def test_the_json_agrees_with_the_live_config_vars(
    built_with_314_files: tuple[Path, dict[str, Any]]
) -> None:
    """The relocated interpreter's sysconfig.get_config_vars() at a random path, read in
    the base image, against the JSON with /install read as that path: every key but
    userbase (which CPython's test_sysconfigdata_json ignores too) agrees."""
    archive, _ = built_with_314_files
    _, raw = _member(archive, f"/{_names(archive)[0]}")
    data = json.loads(raw)
    prefix = PurePosixPath("/srv") / f"r{uuid.uuid4().hex[:8]}" / "python"
    with Container(docker_client(), images_for("x86_64", MINOR)[1], platform="linux/amd64",
                   network=False, purpose="py314-json") as c:
        c.put_tar(prefix.parent, tar_for_put(archive))
        r = c.call([str(prefix / "bin" / "python3"), "-c",
                    "import json, sysconfig; print(json.dumps(sysconfig.get_config_vars()))"],
                   env={"LD_LIBRARY_PATH": ""})
    assert r.exit_code == 0, r.output
    live = json.loads(r.output.strip().splitlines()[-1])
    differ = {}
    for key, value in data.items():
        if key == "userbase":
            continue
        expect = (PLACEHOLDER_TOKEN.sub(lambda _: str(prefix), value)
                  if isinstance(value, str) else value)
        if live.get(key) != expect:
            differ[key] = (expect, live.get(key))
    assert differ == {}
    assert live["LIBDIR"] == f"{prefix}/lib" and live["prefix"] == str(prefix)
    assert len(data) > 100


def test_usr_left_in_either_file_fails_verify_naming_file_and_key(
    built_with_314_files: tuple[Path, dict[str, Any]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same archive with the two files as 3.14 installs them (unrelocated): the static
    audit fails, naming each file and its keys."""
    archive, written = built_with_314_files
    broken = tmp_path / archive.name
    replace = {"build-details.json": json.dumps(written["build_details"], indent=2) + "\n",
               _names(archive)[0]: json.dumps(written["sysconfig_vars"], indent=2)}
    with tarfile.open(archive) as src, gzip.open(broken, "wb") as raw, \
            tarfile.open(fileobj=raw, mode="w") as dst:
        for m in src:
            new = replace.get(PurePosixPath(m.name).name)
            if new is not None and m.isfile():
                data = new.encode()
                m.size = len(data)
                dst.addfile(m, io.BytesIO(data))
            else:
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    code = main(["verify", str(broken), "--static-only", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 12
    failed = [r for r in report["results"] if not r["ok"]]
    details = [r for r in failed if r["check"] == "static:build-details"]
    assert {r["path"] for r in details} == {f"python/lib/python{MINOR}/build-details.json"}
    text = " ".join(r["detail"] for r in details)
    assert "base_prefix" in text and "c_api.headers" in text and "libpython.dynamic" in text
    prefix = [r for r in failed if r["check"] == "static:prefix"]
    assert {r["path"] for r in prefix} == {f"python/lib/python{MINOR}/{_names(archive)[0]}"}
    assert any(r["detail"].startswith("LIBDIR names /usr") for r in prefix)
