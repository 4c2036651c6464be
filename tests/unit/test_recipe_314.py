"""Python 3.14's recipe follows what Alpine 3.24 splits out of python3 (aports'
main/python3-extra for 3.14: python3-gdbm, -ndbm, -tkinter, -uuid, -zstd), expects the
modules 3.14 adds (_remote_debugging in python3, _zstd in python3-zstd), and makes verify
import compression.zstd; _zstd's libzstd comes into the archive through the generic closure."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from importlib import resources
from pathlib import Path, PurePosixPath

from builder.config import load_recipe
from builder.extensions import full_build, package_imports
from builder.stages.closure import DEFAULT_MUSL_PATH, compute_closure
from builder.stages.verify import runtime_imports
from tests.minirootfs import release

LIBC = b"libc.musl-x86_64.so.1"


def test_the_314_recipe_matches_alpine_324() -> None:
    recipe = load_recipe("3.14")
    assert recipe.packages == ("python3",)
    for extra in ("python3-gdbm", "python3-ndbm", "python3-tkinter", "python3-uuid",
                  "python3-zstd"):
        assert extra in recipe.optional_packages, extra
    assert {"_remote_debugging", "_zstd"} <= set(recipe.expected_extensions)
    assert not {"_remote_debugging", "_zstd"} & set(recipe.required_extensions)
    full = full_build("3.14")
    assert full is not None and {"_remote_debugging", "_zstd"} <= set(full)
    # the older minors have neither module
    for minor in ("3.12", "3.13"):
        assert not {"_remote_debugging", "_zstd"} & set(load_recipe(minor).expected_extensions)


def test_verify_imports_compression_zstd_where_zstd_is_expected() -> None:
    recipe = load_recipe("3.14")
    info = {"required_extensions": list(recipe.required_extensions),
            "expected_extensions": list(recipe.expected_extensions)}
    assert runtime_imports(info) == [
        {"module": "compression.zstd", "extension": "_zstd", "level": "warning"}]
    assert runtime_imports({"required_extensions": ["_zstd"]}) == [
        {"module": "compression.zstd", "extension": "_zstd", "level": "error"}]
    thirteen = load_recipe("3.13")
    assert runtime_imports({"expected_extensions": list(thirteen.expected_extensions)}) == []
    assert runtime_imports({"expected_extensions": "garbage"}) == []
    assert package_imports(["_zstd", "_zstd", "zlib"]) == [
        {"module": "compression.zstd", "extension": "_zstd"}]


def test_the_runtime_check_imports_the_package_at_the_recipe_level(tmp_path: Path) -> None:
    """runtime_checks.py run by this interpreter (which has no compression.zstd): the
    import is tried and, without _zstd in lib-dynload, failed at the level given."""
    script = tmp_path / "runtime_checks.py"
    script.write_bytes(resources.files("builder").joinpath("data/runtime_checks.py")
                       .read_bytes())
    config = {"imports": [{"module": "compression.zstd", "extension": "_zstd",
                           "level": "warning"},
                          {"module": "json", "extension": "_json", "level": "warning"}]}
    out = subprocess.run([sys.executable, str(script), sys.prefix, json.dumps(config)],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    results = {r["check"]: r for r in json.loads(out.strip().splitlines()[-1])}
    zstd = results["import:compression.zstd"]
    if sys.version_info < (3, 14):
        assert (zstd["ok"], zstd["level"]) == (False, "warning")
        assert "ModuleNotFoundError" in zstd["detail"]
    assert results["import:json"]["ok"] is True


def _musl_elf(dest: Path, needed: bytes) -> Path:
    """Alpine 3.20's libz.so.1 with its one DT_NEEDED (the libc) renamed to ``needed``."""
    with tarfile.open(release("3.20.3", "x86_64")) as tar:  # found or fetched, SHA-512 checked
        f = tar.extractfile("./lib/libz.so.1.3.1")
        assert f is not None
        data = f.read()
    assert len(needed) <= len(LIBC)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data.replace(LIBC + b"\0", needed.ljust(len(LIBC), b"\0") + b"\0"))
    return dest


def test_zstd_brings_libzstd_into_the_closure(tmp_path: Path) -> None:
    """Nothing names libzstd: _zstd's DT_NEEDED does, and the closure follows it."""
    root = tmp_path / "root"
    module = PurePosixPath("/usr/lib/python3.14/lib-dynload/"
                           "_zstd.cpython-314-x86_64-linux-musl.so")
    host = _musl_elf(root / str(module).lstrip("/"), b"libzstd.so.1")
    _musl_elf(root / "usr/lib/libzstd.so.1", LIBC)
    closure = compute_closure(root, {module: host}, DEFAULT_MUSL_PATH)
    assert closure.libraries["libzstd.so.1"][0] == PurePosixPath("/usr/lib/libzstd.so.1")
    assert not closure.missing
    (root / "usr/lib/libzstd.so.1").unlink()
    closure = compute_closure(root, {module: host}, DEFAULT_MUSL_PATH)
    assert [name for name, _ in closure.missing] == ["libzstd.so.1"]
