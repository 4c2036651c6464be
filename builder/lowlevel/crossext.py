"""A small C extension cross-built on the host against an archive's own headers, packaged
as a musllinux wheel: verify's C-extension check where PyPI publishes no compiled wheel for
the arch (armhf's armv6l, loongarch64).

The compiler is ``zig cc`` from the ``ziglang`` wheel (the ``cross`` extra): one download
cross-compiles for every Alpine arch, with its own musl to link against. The target and CPU
come from the arch table (``Arch.cross_target``, ``Arch.cross_cpu``); the headers and the
file-name suffix (``EXT_SUFFIX``) from the unpacked archive, so the module is built exactly
for the interpreter it is checked with. Nothing here runs the result.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from builder.errors import MissingToolError, StageError
from builder.lowlevel.boundedio import read_capped_text
from builder.lowlevel.sysconfigdata import build_time_vars
from builder.platforms import Arch

PROJECT = "musl_pbs_probe_ext"
VERSION = "1.0"
# What proves the compiled module loaded and works: libc (snprintf, strlen), libm (sqrt,
# a double through the hard-float ABI on ARM) and the CPython API both ways.
IMPORT_CHECK = (
    f"import {PROJECT} as m; r = m.probe('musl'); "
    "assert r == ('4:musl', 1.4142135623730951, 6), r; "
    f"assert m.__file__.endswith('.so'), m.__file__; print('{PROJECT}', m.__file__)"
)
_SOURCE = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* probe(text) -> ("<len>:<text>", sqrt(2.0), 1 + 2 + 3 summed through a Python list) */
static PyObject *probe(PyObject *self, PyObject *args) {
    const char *text;
    volatile double two = 2.0;
    char buf[128];
    PyObject *list, *item;
    long total = 0;
    Py_ssize_t i;
    (void)self;
    if (!PyArg_ParseTuple(args, "s", &text))
        return NULL;
    snprintf(buf, sizeof buf, "%zu:%s", strlen(text), text);
    list = Py_BuildValue("[iii]", 1, 2, 3);
    if (list == NULL)
        return NULL;
    for (i = 0; i < PyList_Size(list); i++) {
        item = PyList_GetItem(list, i);
        total += PyLong_AsLong(item);
    }
    Py_DECREF(list);
    return Py_BuildValue("(sdl)", buf, sqrt(two), total);
}

static PyMethodDef methods[] = {
    {"probe", probe, METH_VARARGS, "libc, libm and the CPython API from C"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "musl_pbs_probe_ext", "musl-pbs cross-built probe", -1, methods,
};

PyMODINIT_FUNC PyInit_musl_pbs_probe_ext(void) { return PyModule_Create(&module); }
"""
_FIXED_DATE = (2024, 1, 1, 0, 0, 0)  # zip entries' timestamps: the same bytes every time
_CAP_SYSCONFIG = 4 * 1024 * 1024


def zig_command() -> list[str] | None:
    """How to run zig (the ``ziglang`` wheel in this Python), or None when absent."""
    if importlib.util.find_spec("ziglang") is None:
        return None
    return [sys.executable, "-m", "ziglang"]


ZIG_HINT = "install the cross compiler: pip install 'musl-pbs[cross]' (the ziglang wheel)"


def ext_suffix(tree: Path, minor: str) -> str:
    """``EXT_SUFFIX`` from the archive's ``_sysconfigdata_*.py`` (read, never run)."""
    stdlib = tree / "lib" / f"python{minor}"
    for path in sorted(stdlib.glob("_sysconfigdata_*.py")):
        if path.is_symlink():
            continue
        text = read_capped_text(path, cap=_CAP_SYSCONFIG, what="sysconfig data",
                                error=StageError, follow_symlinks=False)
        suffix = (build_time_vars(text) or {}).get("EXT_SUFFIX")
        if isinstance(suffix, str):
            return suffix
    raise StageError(f"{stdlib}: no _sysconfigdata_*.py with an EXT_SUFFIX",
                     hint="the archive lacks its sysconfig data; rebuild it")


def compile_extension(arch: Arch, include: Path, source: Path, out: Path) -> None:
    """``zig cc`` ``source`` into the shared object ``out`` for ``arch``."""
    zig = zig_command()
    if zig is None:
        raise MissingToolError("zig (the ziglang wheel) is not installed", hint=ZIG_HINT)
    if not arch.cross_target:
        raise StageError(f"no cross-compile target for {arch.alpine} in the arch table")
    cpu = [f"-mcpu={arch.cross_cpu}"] if arch.cross_cpu else []
    argv = [*zig, "cc", "-target", arch.cross_target, *cpu, "-shared", "-fPIC", "-O2",
            "-g0", "-s", "-Wall", "-Werror", "-I", str(include), "-o", str(out), str(source)]
    r = subprocess.run(argv, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-12:])
        raise StageError(f"zig cc for {arch.cross_target} failed (exit {r.returncode}):\n"
                         f"{tail}")


def wheel_name(arch: Arch, minor: str) -> str:
    tag = "cp" + minor.replace(".", "")
    return f"{PROJECT}-{VERSION}-{tag}-{tag}-musllinux_1_2_{arch.wheel_arch}.whl"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def write_wheel(module: bytes, suffix: str, arch: Arch, minor: str, dest: Path) -> Path:
    """A wheel (PEP 427) holding the compiled ``module`` as ``PROJECT + suffix``."""
    name = wheel_name(arch, minor)
    tag = name.removesuffix(".whl").split("-", 2)[2]
    info = f"{PROJECT}-{VERSION}.dist-info"
    files = {
        PROJECT + suffix: module,
        f"{info}/METADATA": (f"Metadata-Version: 2.1\nName: {PROJECT}\nVersion: {VERSION}\n"
                             "Summary: musl-pbs cross-built C extension probe\n").encode(),
        f"{info}/WHEEL": ("Wheel-Version: 1.0\nGenerator: musl-pbs\nRoot-Is-Purelib: false\n"
                          f"Tag: {tag}\n").encode(),
    }
    record = "\n".join([*(_record_line(n, d) for n, d in files.items()),
                        f"{info}/RECORD,,", ""]).encode()
    files[f"{info}/RECORD"] = record
    out = dest / name
    tmp = dest / f".{name}.tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in files.items():
            entry = zipfile.ZipInfo(member, _FIXED_DATE)
            entry.external_attr = (0o755 if member == PROJECT + suffix else 0o644) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(entry, data)
    tmp.replace(out)
    return out


def build_probe_wheel(tree: Path, arch: Arch, minor: str, dest: Path) -> Path:
    """Cross-build the probe against the unpacked archive ``tree`` (its ``python/``) and
    write its musllinux wheel into ``dest``; return the wheel's path."""
    include = tree / "include" / f"python{minor}"
    if not (include / "Python.h").is_file():
        raise StageError(f"{include}/Python.h is missing: the archive carries no headers",
                         hint="build the archive with python3-dev (the recipe's apk add)")
    suffix = ext_suffix(tree, minor)
    with tempfile.TemporaryDirectory(prefix="musl-pbs-crossext-") as tmp:
        source = Path(tmp, f"{PROJECT}.c")
        source.write_text(_SOURCE)
        module = Path(tmp, PROJECT + suffix)
        compile_extension(arch, include, source, module)
        return write_wheel(module.read_bytes(), suffix, arch, minor, dest)
