"""The offline wheelhouse verify installs from: pip and the arch's C-extension wheel
(numpy's musllinux wheel where PyPI has one, else markupsafe or msgpack).

Downloaded once from PyPI on the host and cached under ~/.cache/musl-pbs/wheelhouse.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from builder.errors import NetworkError
from builder.platforms import Arch

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "musl-pbs"
MARKER = ".complete"


def wheelhouse_dir(minor: str, arch: Arch) -> Path:
    tag = "cp" + minor.replace(".", "")
    return CACHE / "wheelhouse" / f"{tag}-musllinux-{arch.wheel_arch}"


def _pip_download(
    minor: str, arch: Arch, dest: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """``pip download`` of binary wheels for CPython ``minor`` on musllinux ``arch`` into
    ``dest``; ``args``: further options, then the projects."""
    tag = minor.replace(".", "")
    return subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--only-binary=:all:", "--dest", str(dest),
         "--python-version", minor, "--implementation", "cp", "--abi", f"cp{tag}",
         "--platform", f"musllinux_1_2_{arch.wheel_arch}",
         "--platform", f"musllinux_1_1_{arch.wheel_arch}", *args],
        capture_output=True, text=True, check=False)


def ensure_wheelhouse(minor: str, arch: Arch) -> Path:
    """Return a directory holding a pip wheel and the musllinux wheel of the arch's
    extension project (:func:`extension_wheel`; only pip where PyPI has none)."""
    dest = wheelhouse_dir(minor, arch)
    if (dest / MARKER).exists():
        return dest
    ext = extension_wheel(minor, arch)
    requirements = ("pip", ext[0]) if ext else ("pip",)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    out = _pip_download(minor, arch, tmp, "--abi", "abi3", "--abi", "none",
                        "--platform", "any", *requirements)
    if out.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-8:])
        raise NetworkError(
            f"could not download {', '.join(requirements)} wheels for CPython {minor} "
            f"musllinux {arch.wheel_arch}:\n{tail}",
            hint=f"check PyPI access, or fill {dest} with the {' and '.join(requirements)} "
            f"wheels and create "
            f"{dest / MARKER}; or pass --wheelhouse DIR",
        )
    (tmp / MARKER).write_text("")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def pip_wheel(wheelhouse: Path) -> Path:
    wheels = sorted(wheelhouse.glob("pip-*.whl"))
    if not wheels:
        raise NetworkError(f"{wheelhouse} holds no pip wheel")
    return wheels[-1]


# Compiled projects whose musllinux wheels test a C extension on an arch, in order of
# preference: numpy where PyPI has it for the arch, else smaller ones published for more
# arches (markupsafe: armv7l, i686, ppc64le, riscv64; msgpack: i686, riscv64; multidict:
# s390x, where none of the others is).
EXTENSION_PROJECTS = ("numpy", "markupsafe", "msgpack", "multidict")
# What proves the compiled part loaded (not a pure-Python fallback), per project.
EXTENSION_IMPORTS = {
    "numpy": "import numpy; s = numpy.arange(15).reshape(3, 5).sum(); assert s == 105, s; "
             "print('numpy', numpy.__version__, s)",
    # markupsafe 3 calls the compiled _escape_inner (2.x: _speedups.escape)
    "markupsafe": "import markupsafe, markupsafe._speedups as s; "
                  "f = getattr(s, '_escape_inner', None) or s.escape; "
                  "assert str(f('<a>')) == '&lt;a&gt;', f('<a>'); "
                  "assert markupsafe.escape('<a>') == '&lt;a&gt;'; "
                  "print('markupsafe', s.__file__)",
    # the compiled module has Packer and unpackb (packb is msgpack's Python wrapper)
    "msgpack": "import msgpack, msgpack._cmsgpack as c; "
               "assert c.unpackb(c.Packer().pack([1, 'a'])) == [1, 'a']; "
               "print('msgpack', c.__file__)",
    # the C implementation (the pure-Python fallback is multidict._multidict_py)
    "multidict": "import multidict._multidict as m; d = m.MultiDict([('a', 1), ('a', 2)]); "
                 "assert d.getall('a') == [1, 2], d; assert m.__file__.endswith('.so'), "
                 "m.__file__; print('multidict', m.__file__)",
}


def is_compiled_wheel(filename: str) -> bool:
    """A wheel for one platform (``...-musllinux_1_2_armv7l.whl``), not a pure-Python one
    (``...-py3-none-any.whl``: pip takes it for any platform when a project publishes one,
    as multidict does, and it proves nothing about C extensions)."""
    return filename.endswith(".whl") and not filename.endswith("-any.whl")


def extension_wheel(minor: str, arch: Arch) -> tuple[str, Path] | None:
    """(project, directory holding its wheel) of the first of :data:`EXTENSION_PROJECTS`
    that PyPI publishes as a musllinux wheel for CPython ``minor`` on ``arch``; None when
    none is. Downloaded once, cached under ~/.cache/musl-pbs/wheelhouse/ext-... ."""
    house = wheelhouse_dir(minor, arch)
    dest = house.with_name(f"ext-{house.name}")
    marker = dest / MARKER
    if marker.exists():
        project = marker.read_text().strip()
        if not project:
            return None
        if _compiled_wheel_of(dest, project):
            return project, dest
        # else made before pure-Python wheels were told apart: download again
    tmp = dest.with_name(dest.name + ".tmp")
    found = ""
    for project in EXTENSION_PROJECTS:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        out = _pip_download(minor, arch, tmp, "--no-deps", project)
        if out.returncode == 0 and _compiled_wheel_of(tmp, project):
            found = project
            break
        for pure in tmp.glob("*.whl"):
            pure.unlink()
        if out.returncode != 0 and "No matching distribution" not in out.stderr + out.stdout:
            shutil.rmtree(tmp, ignore_errors=True)
            raise NetworkError(f"pip download {project} for musllinux {arch.wheel_arch} "
                               f"failed:\n{(out.stdout + out.stderr)[-1500:]}")
    (tmp / MARKER).write_text(found)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return (found, dest) if found else None


def _compiled_wheel_of(directory: Path, project: str) -> bool:
    """Does ``directory`` hold a platform wheel of ``project``?"""
    return any(w.name.lower().startswith(f"{project}-") and is_compiled_wheel(w.name)
               for w in directory.glob("*.whl"))


def wheelhouse_extension(wheelhouse: Path) -> str | None:
    """The first of :data:`EXTENSION_PROJECTS` with a platform wheel in ``wheelhouse``
    (a pure-Python one does not count), or None."""
    return next((p for p in EXTENSION_PROJECTS if _compiled_wheel_of(wheelhouse, p)), None)


def project_wheels(minor: str, arch: Arch, project: str) -> Path | None:
    """A directory holding the musllinux wheel of ``project`` for CPython ``minor`` on
    ``arch`` (with its dependencies), when PyPI publishes a compiled one; else None.
    verify asks for the next project here when the wheelhouse's own cannot load in the
    archive. Downloaded once, cached under ~/.cache/musl-pbs/wheelhouse/project-... ."""
    house = wheelhouse_dir(minor, arch)
    dest = house.with_name(f"project-{house.name}") / project
    marker = dest / MARKER
    if marker.exists():
        return dest if marker.read_text().strip() and _compiled_wheel_of(dest, project) else None
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    out = _pip_download(minor, arch, tmp, "--abi", "abi3", "--abi", "none",
                        "--platform", "any", project)
    found = out.returncode == 0 and _compiled_wheel_of(tmp, project)
    if out.returncode != 0 and "No matching distribution" not in out.stderr + out.stdout:
        shutil.rmtree(tmp, ignore_errors=True)
        raise NetworkError(f"pip download {project} for musllinux {arch.wheel_arch} "
                           f"failed:\n{(out.stdout + out.stderr)[-1500:]}")
    if not found:
        for wheel in tmp.glob("*.whl"):
            wheel.unlink()
    (tmp / MARKER).write_text(project if found else "")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest if found else None
