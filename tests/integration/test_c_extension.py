"""A C extension built against the archive's headers loads in the relocated Python.

python3.X-config and sysconfig are asked *inside* a clean container where the archive is
unpacked at a random path; the module is compiled on the host with musl-gcc against the
same headers (pkg-config finds them through ${pcfiledir}), then imported in the container.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from builder.cli import main
from builder.lowlevel.container import Container, docker_client
from builder.lowlevel.crossext import PROJECT
from builder.lowlevel.extract import extract
from builder.lowlevel.tarstream import ARCHIVE_LIMITS
from builder.lowlevel.wheelhouse import ensure_wheelhouse, pip_wheel
from builder.platforms import get_arch
from builder.stages.verify import CROSS_CHECK, tar_for_put

pytestmark = pytest.mark.docker

SPAM = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
static PyObject *add(PyObject *self, PyObject *args) {
    long a, b;
    if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
    return PyLong_FromLong(a + b);
}
static PyMethodDef methods[] = {{"add", add, METH_VARARGS, "a + b"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "spam", NULL, -1, methods};
PyMODINIT_FUNC PyInit_spam(void) { return PyModule_Create(&module); }
"""


def test_extension_against_the_archive_headers(
    built_x86_64: Path, images_x86_64: tuple[str, str], tmp_path: Path
) -> None:
    if shutil.which("musl-gcc") is None or shutil.which("pkg-config") is None:
        pytest.fail("musl-gcc and pkg-config are needed (.ci/setup installs them)")
    archive = next(built_x86_64.glob("cpython-*-linux-x86_64-musl.tar.gz"))
    extract(archive, tmp_path / "host", ARCHIVE_LIMITS)
    tree = tmp_path / "host" / "python"
    pcs = sorted((tree / "lib" / "pkgconfig").glob("python-3.*-embed.pc"))
    assert pcs, "the archive has no pkg-config files (python3-dev missing?)"
    module = pcs[0].name.removesuffix("-embed.pc")
    cflags = subprocess.run(["pkg-config", "--cflags", module], capture_output=True, text=True,
                            env={"PKG_CONFIG_PATH": str(tree / "lib" / "pkgconfig")},
                            check=True).stdout.split()
    includes = [Path(f[2:]) for f in cflags if f.startswith("-I")]
    assert includes and all((inc / "Python.h").is_file() for inc in includes), cflags

    prefix = PurePosixPath("/srv/x9") / "python"
    with Container(docker_client(), images_x86_64[1], platform="linux/amd64", network=False,
                   purpose="cext") as c:
        c.put_tar(prefix.parent, tar_for_put(archive))
        minor = module.removeprefix("python-")
        r = c.call([str(prefix / "bin" / f"python{minor}-config"), "--includes"])
        assert r.exit_code == 0, r.output
        assert r.output.split() and all(
            f.startswith(f"-I{prefix}/include/") for f in r.output.split()), r.output
        r = c.call([str(prefix / "bin/python3"), "-c",
                    "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))"])
        suffix = r.output.strip()
        assert r.exit_code == 0 and suffix.endswith("-x86_64-linux-musl.so"), r.output

        (tmp_path / "spam.c").write_text(SPAM)
        built = tmp_path / f"spam{suffix}"
        subprocess.run(["musl-gcc", "-shared", "-fPIC", "-O1", *cflags, "-o", str(built),
                        str(tmp_path / "spam.c")], check=True)
        c.put_files(PurePosixPath("/srv/ext"), [(built.name, built)])
        r = c.call([str(prefix / "bin/python3"), "-c",
                    "import sys; sys.path.insert(0, '/srv/ext'); import spam; "
                    "print(spam.add(40, 2))"])
        assert r.exit_code == 0, r.output
        assert r.output.strip() == "42"


def test_verify_cross_builds_the_probe_where_pypi_has_no_wheel(
    built_x86_64: Path, images_x86_64: tuple[str, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """verify's fallback end to end on x86_64 (cheap: no emulation): with a wheelhouse that
    holds pip only, as on armhf and loongarch64, the probe extension is cross-built with
    zig cc against the archive's own headers, pip-installed offline in the venv and
    imported; reported as the cross-built extension, not as a PyPI project."""
    archive = next(built_x86_64.glob("cpython-*-linux-x86_64-musl.tar.gz"))
    minor = ".".join(archive.name.split("-")[1].split(".")[:2])
    house = tmp_path / "wheelhouse"
    house.mkdir()
    shutil.copy2(pip_wheel(ensure_wheelhouse(minor, get_arch("x86_64"))), house)
    capsys.readouterr()
    code = main(["verify", str(archive), "--image", images_x86_64[1], "--wheelhouse",
                 str(house), "--json"])
    report = json.loads(capsys.readouterr().out)
    checks = {r["check"]: r for r in report["results"]}
    assert code == 0, [r for r in report["results"] if not r["ok"]]
    assert checks[f"pip-install-{PROJECT}"]["ok"]
    cross = checks[CROSS_CHECK]
    assert cross["ok"] and cross["detail"].startswith(f"{PROJECT} /tmp/musl-pbs-venv/lib/")
    assert cross["detail"].endswith(f"{PROJECT}.cpython-{minor.replace('.', '')}"
                                    "-x86_64-linux-musl.so"), cross
    assert not any(p in checks for p in ("numpy", "extension-wheel"))
