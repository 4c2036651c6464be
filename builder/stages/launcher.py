"""The launcher: ``bin/python3.X`` that works copied, under any argv[0] and without /proc.

Alpine's ``python3.X`` is a small program linked against ``libpython3.X.so.1.0``, found
through its ``$ORIGIN/../lib`` RPATH. A copy of it (``python -m venv --copies``,
``venv.create()``, ``cp``) then looks in ``<copy>/../lib`` and exits 127; started under
another argv[0] CPython's getpath falls back to the compiled-in ``/usr``; without /proc musl
cannot expand the main program's ``$ORIGIN`` and loads a system libpython if one exists.

The build replaces that program with a small C launcher (``builder/data/launcher/
launcher.c``, prebuilt per arch by ``tools/build_launchers.py``) that links only libc: it
finds its own path (/proc/self/exe, else AT_EXECFN, else argv[0]), loads libpython by
absolute path from ``<dir>/../lib`` or from the home named by a ``pyvenv.cfg`` beside it,
and calls ``Py_BytesMain`` with an argv[0] that leads to itself. The original program is
not shipped: it is nothing but ``Py_BytesMain`` of the same libpython. Here the launcher is
given the libpython file name (the original's DT_NEEDED) and a thread stack at least the
original's PT_GNU_STACK.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from builder.errors import StageError
from builder.lowlevel.elf import gnu_stack_field, read_elf
from builder.lowlevel.links import rewrite
from builder.platforms import Arch
from builder.progress import Reporter

# struct launcher_config in launcher.c: a 32-byte tag, then the libpython file name.
TAG = b"musl-pbs-launcher-libpython:v1"
TAG_SIZE = 32
NAME_SIZE = 96


@dataclass(frozen=True)
class LauncherFacts:
    libpython: str  # the file name the launcher loads from lib/
    thread_stack_size: int  # its PT_GNU_STACK p_memsz
    original_stack_size: int  # the replaced interpreter's (0: it asked for none)
    sha256: str  # of the prebuilt launcher, before it was set up

    def to_json(self) -> dict[str, Any]:
        return {"kind": "launcher", "libpython": f"lib/{self.libpython}",
                "thread_stack_size": self.thread_stack_size,
                "original_thread_stack_size": self.original_stack_size,
                "launcher_sha256": self.sha256}


def launcher_resource(arch: Arch) -> str:
    return f"data/launcher/python-launcher-{arch.alpine}"


@functools.lru_cache(maxsize=16)
def prebuilt(arch: Arch) -> bytes:
    res = resources.files("builder").joinpath(launcher_resource(arch))
    if not res.is_file():
        raise StageError(f"no launcher for {arch.alpine} in this musl-pbs "
                         f"(builder/{launcher_resource(arch)})",
                         hint="build it: tools/build_launchers.py --arch " + arch.alpine)
    return res.read_bytes()


def _config_offset(data: bytes) -> int:
    tag = TAG + b"\0" * (TAG_SIZE - len(TAG))
    at = data.find(tag)
    if at < 0 or data.find(tag, at + 1) >= 0:
        raise StageError("the prebuilt launcher has no single libpython field "
                         "(builder/data/launcher is damaged)",
                         hint="rebuild it: tools/build_launchers.py")
    return at + TAG_SIZE


def configured_libpython(data: bytes) -> str | None:
    """The libpython name a launcher was given (None: not a launcher; "" not set up)."""
    tag = TAG + b"\0" * (TAG_SIZE - len(TAG))
    at = data.find(tag)
    if at < 0:
        return None
    field = data[at + TAG_SIZE:at + TAG_SIZE + NAME_SIZE]
    return field.split(b"\0", 1)[0].decode("ascii", "replace")


def configure(data: bytes, libpython: str, stack_size: int) -> bytes:
    """The launcher ``data`` set up to load ``libpython`` with a default thread stack of
    at least ``stack_size`` bytes."""
    name = libpython.encode("ascii", "strict") if libpython.isascii() else b""
    if not name or b"/" in name or len(name) >= NAME_SIZE:
        raise StageError(f"libpython name {libpython!r} does not fit the launcher "
                         f"(a plain ASCII file name under {NAME_SIZE} bytes)")
    at = _config_offset(data)
    if data[at:at + NAME_SIZE].strip(b"\0"):
        raise StageError("the launcher's libpython field is already set")
    out = bytearray(data)
    out[at:at + len(name)] = name
    field = gnu_stack_field(data)
    if field is None:
        raise StageError("the prebuilt launcher has no PT_GNU_STACK header")
    offset, width, current = field
    if stack_size > current:
        little = data[5] == 1  # EI_DATA: ELFDATA2LSB
        out[offset:offset + width] = stack_size.to_bytes(width, "little" if little else "big")
    return bytes(out)


def install_launcher(tree: Path, arch: Arch, minor: str, reporter: Reporter
                     ) -> LauncherFacts | None:
    """Replace ``bin/python<minor>`` with the launcher (None: the interpreter links no
    libpython, so a copy of it already works; it is kept)."""
    exe = tree / "bin" / f"python{minor}"
    info = read_elf(exe)
    if info is None:
        raise StageError(f"{exe} is not a readable ELF interpreter")
    libs = [n for n in info.needed if n.startswith("libpython")]
    if not libs:
        reporter.detail(f"bin/python{minor} links no libpython: kept, no launcher")
        return None
    if len(libs) > 1 or not (tree / "lib" / libs[0]).exists():
        raise StageError(f"bin/python{minor} needs {', '.join(libs)}; expected one "
                         "libpython, present in lib/")
    original = info.stack_size or 0
    data = prebuilt(arch)
    new = configure(data, libs[0], original)
    rewrite(exe, new)  # a new inode: the export's copy stays as it was
    exe.chmod(0o755)
    field = gnu_stack_field(new)
    facts = LauncherFacts(libs[0], field[2] if field else 0, original,
                          hashlib.sha256(data).hexdigest())
    reporter.detail(f"bin/python{minor}: the launcher ({len(new)} bytes, loads "
                    f"lib/{libs[0]}, thread stack {facts.thread_stack_size:#x}; the "
                    f"original asked for {original:#x})")
    return facts
