"""acquire's export rule: the subtrees the recipe prunes are never written, and stage makes
the same tree from the smaller export as from the whole one."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from builder.config import default_recipe, find_recipe
from builder.lowlevel.apkdb import ApkPackage
from builder.platforms import get_arch
from builder.progress import NullReporter
from builder.stages.acquire import (
    Acquired,
    PythonFacts,
    extract_export,
    recipe_skip,
    skip_in_export,
)
from builder.stages.stage import stage

FACTS = PythonFacts(
    version="3.11.9", minor="3.11", executable="/usr/bin/python3.11", prefix="/usr",
    stdlib="/usr/lib/python3.11", include="/usr/include/python3.11", libdir="/usr/lib",
    ldlibrary="libpython3.11.so", instsoname="libpython3.11.so.1.0",
    soabi="cpython-311-x86_64-linux-musl", ext_suffix=".cpython-311-x86_64-linux-musl.so",
    multiarch="x86_64-linux-musl",
)
LIB = "usr/lib/python3.11"
PRUNED = [  # the recipe's globs, as stage applies them to lib/python3.11/...
    f"{LIB}/test", f"{LIB}/test/__init__.py", f"{LIB}/test/support/x.py",
    f"{LIB}/lib2to3/tests/data/x.py",  # */tests
    f"{LIB}/ctypes/test/test_x.py", f"{LIB}/a/b/test/t.py",  # '*' crosses '/'
    f"{LIB}/idlelib/idle.py", f"{LIB}/turtledemo/x.py",
    f"{LIB}/lib-dynload/_testcapi.cpython-311-x86_64-linux-musl.so",
    f"{LIB}/lib-dynload/xxlimited.cpython-311-x86_64-linux-musl.so",
    f"{LIB}/site-packages/pkg/tests/t.py",
]
KEPT = [  # what stage, the closure and acquire read, and names that only look pruned
    "etc/alpine-release", "etc/ld-musl-x86_64.path", "lib/apk/db/installed",
    "lib/ld-musl-x86_64.so.1", "usr/lib/libz.so.1", "usr/lib/libpython3.11.so.1.0",
    "usr/lib/pkgconfig/python-3.11.pc", "usr/bin/python3.11", "usr/bin/pydoc3.11",
    "usr/include/python3.11/Python.h", "usr/include/python3.11/test/x.h",
    f"{LIB}/os.py", f"{LIB}/testament.py", f"{LIB}/tests.py", f"{LIB}/json/__init__.py",
    f"{LIB}/json/__pycache__/__init__.cpython-311.pyc", f"{LIB}/a/test.py",
    f"{LIB}/a/testing/t.py", f"{LIB}/lib-dynload/_json.cpython-311-x86_64-linux-musl.so",
    f"{LIB}/unittest/mock.py", "usr/lib/python3.11x/test/t.py", "usr/share/test/t.py",
]
LINKS = {"usr/bin/python3": "python3.11", "usr/lib/libpython3.11.so": "libpython3.11.so.1.0",
         "lib/libz.so.1": "/usr/lib/libz.so.1"}


def _export() -> bytes:
    """A ``docker export``-like tar: every parent directory first, members in tree order."""
    buf = io.BytesIO()
    names = sorted({*PRUNED, *KEPT, *LINKS})
    dirs = sorted({"/".join(n.split("/")[:i]) for n in names
                   for i in range(1, n.count("/") + 1)} - set(PRUNED))
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name in names:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if name in LINKS:
                info.type, info.linkname = tarfile.SYMTYPE, LINKS[name]
                tar.addfile(info)
            elif name == f"{LIB}/test":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                data = f"{name}\n".encode()
                info.size, info.mode = len(data), 0o755 if "/bin/" in name else 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _files(root: Path) -> dict[str, str]:
    """Every entry under ``root``: a file's text, a link's target, or "dir"."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = p.relative_to(root).as_posix()
            out[rel] = (f"-> {os.readlink(p)}" if p.is_symlink()
                        else "dir" if p.is_dir() else p.read_text())
    return out


def test_the_recipe_s_pruned_subtrees_are_never_written(tmp_path: Path) -> None:
    recipe = find_recipe("3.11")
    skip = recipe_skip(recipe, FACTS)
    for name in PRUNED:
        assert skip(name), name
    for name in KEPT + list(LINKS):
        assert not skip(name), name
    assert skip("proc/self") and skip("usr/share/man/man1/x.1")  # skip_in_export's own
    export = _export()
    result = extract_export(io.BytesIO(export), tmp_path / "root", skip=skip)
    written = _files(tmp_path / "root")
    assert not [n for n in written if skip(n)]  # pruned directories and what is under them
    assert [n for n in KEPT if n not in written] == []
    with tarfile.open(fileobj=io.BytesIO(export)) as tar:
        assert result.skipped == sum(skip(n) for n in tar.getnames()) > len(PRUNED)


def test_stage_makes_the_same_tree_from_the_smaller_export(tmp_path: Path) -> None:
    recipe = find_recipe("3.11")
    trees = {}
    for how, skip in (("whole", skip_in_export), ("skipping", recipe_skip(recipe, FACTS))):
        acquired = Acquired(
            directory=tmp_path / how, arch="x86_64", image="i", image_id="sha256:0",
            image_digests=(), platform="linux/amd64", alpine_release="3.19.1",
            musl_version="1.2.4", python=FACTS, packages=(ApkPackage("python3", "3.11.9-r0"),),
            installed=("python3",))
        extract_export(io.BytesIO(_export()), acquired.rootfs, skip=skip)
        staged = stage(acquired, recipe, get_arch("x86_64"), tmp_path / how / "stage",
                       NullReporter())
        trees[how] = _files(staged.tree)
    assert trees["skipping"] == trees["whole"]
    assert "lib/python3.11/os.py" in trees["whole"]
    assert "lib/python3.11/test" not in trees["whole"]


@pytest.mark.parametrize("prune", [(), ("include/python3.11/*", "bin/pydoc*")])
def test_globs_outside_the_standard_library_drop_nothing(prune: tuple[str, ...]) -> None:
    recipe = default_recipe("3.11")
    skip = recipe_skip(type(recipe)(**{**recipe.__dict__, "prune": prune}), FACTS)
    assert not [n for n in [*PRUNED, *KEPT] if skip(n)]
