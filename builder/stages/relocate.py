"""relocate: make the staged tree work wherever it is unpacked.

- every ELF finds bundled libraries through an ``$ORIGIN``-relative RPATH;
- ``_sysconfigdata_*.py`` names the placeholder prefix ``/install`` (the prefix uv rewrites
  on install, as for python-build-standalone) and, when imported, points those values at
  the tree it lives in; 3.14's JSON twin ``_sysconfig_vars_*.json`` gets the same values;
- PEP 739's ``build-details.json`` (3.14) names paths relative to itself
  (:mod:`builder.stages.build_details`);
- ``python3.X-config``, pkg-config files, the config Makefile and script shebangs stop
  naming the build prefix.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import posixpath
import pprint
import re
from dataclasses import dataclass, field
from pathlib import Path

from builder.errors import StageError
from builder.lowlevel.boundedio import MIB
from builder.lowlevel.elf import is_elf, read_elf
from builder.lowlevel.jsonio import read_json_object
from builder.lowlevel.links import rewrite, rewrite_text
from builder.lowlevel.patcher import ElfPatcher
from builder.lowlevel.sysconfigdata import build_time_vars
from builder.platforms import is_musl_libc_name
from builder.progress import Reporter
from builder.stages.build_details import BUILD_DETAILS, relocate_build_details

PLACEHOLDER = "/install"
SYSCONFIG_HEADER = "# system configuration generated and used by the sysconfig module\n"
# Values that name system locations, not the build prefix: left alone.
SYSTEM_VARS = frozenset({"TZPATH"})

_RELOCATE_CODE = '''
# musl-pbs: the values above name the placeholder prefix /install (uv rewrites it on
# install). Without uv, point them at the tree this file lives in.
def _musl_pbs_relocate():
    import os
    import re
    prefix = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    token = re.compile(r"""(?:^|(?<=[\\s'"=:,(])|(?<=-[LIR]))/install(?=/|\\s|$|['":;,)])""")
    for key, value in build_time_vars.items():
        if isinstance(value, str) and "/install" in value:
            build_time_vars[key] = token.sub(lambda _: prefix, value)


_musl_pbs_relocate()
del _musl_pbs_relocate
'''

# Appended to tkinter/__init__.py when the archive has _tkinter. Tcl looks for init.tcl in
# TCL_LIBRARY, its compiled-in /usr/lib/tclX.Y, then <executable>/../lib/tclX.Y: a virtual
# environment's python is not in the archive's bin/, so Tcl is told where lib/tclX.Y is
# (Tk then finds lib/tkX.Y beside it). Only when the executable-relative search would fail.
_TCL_LIBRARY_MARK = "# musl-pbs: Tcl's script library"
_TCL_LIBRARY_CODE = _TCL_LIBRARY_MARK + ''' for interpreters outside the archive's bin/ (venvs)


def _musl_pbs_tcl_library():
    import os
    name = "tcl" + _tkinter.TCL_VERSION
    own = os.path.join(sys.base_prefix, "lib", name)
    beside = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(sys.executable))),
                          "lib", name)
    if "TCL_LIBRARY" not in os.environ and not os.path.isdir(beside) and os.path.isdir(own):
        os.environ["TCL_LIBRARY"] = own


_musl_pbs_tcl_library()
del _musl_pbs_tcl_library
'''

TRAMPOLINE = (
    "#!/bin/sh\n"
    "'''exec' \"$(dirname -- \"$(readlink -f -- \"$0\")\")/{exe}\" \"$0\" \"$@\"\n"
    "' '''\n"
)


@dataclass
class Relocated:
    patched_elves: list[str] = field(default_factory=list)
    rewritten: list[str] = field(default_factory=list)


def prefix_pattern(prefix: str) -> re.Pattern[str]:
    """``prefix`` as a path of its own: at the start of a value, after a separator or
    ``=``, or glued to ``-L``/``-I``/``-R`` — never inside a longer path."""
    return re.compile(
        r"""(?:^|(?<=[\s'"=:,(])|(?<=-[LIR]))"""
        + re.escape(prefix.rstrip("/"))
        + r"""(?=/|\s|$|['":;,)])"""
    )


def rpath_for(rel: str) -> str:
    """``$ORIGIN``-relative path from the directory of ``rel`` to ``lib/``."""
    here = posixpath.dirname(rel) or "."
    up = posixpath.relpath("lib", here)
    return "$ORIGIN" if up == "." else f"$ORIGIN/{up}"


def _walk(tree: Path) -> list[Path]:
    out = []
    for dirpath, _dirs, files in os.walk(tree):
        for name in files:
            out.append(Path(dirpath, name))
    return sorted(out)


def _drop_pyc(py: Path) -> None:
    cache = py.parent / "__pycache__"
    if cache.is_dir():
        for pyc in cache.glob(f"{py.stem}.*.pyc"):
            pyc.unlink()


def relocate_elves(tree: Path, patcher: ElfPatcher) -> list[str]:
    """Give every ELF that needs bundled libraries the ``$ORIGIN`` RPATH; drop others."""
    bundled = {p.name for p in (tree / "lib").iterdir() if p.is_file() or p.is_symlink()}
    patched: list[str] = []
    todo: list[tuple[Path, str]] = []
    for path in _walk(tree):
        if not is_elf(path):
            continue
        info = read_elf(path)
        if info is None:
            continue
        rel = path.relative_to(tree).as_posix()
        wants = any(n in bundled for n in info.needed if not is_musl_libc_name(n))
        want = rpath_for(rel) if wants else ""
        if info.search_path == ((want,) if want else ()):
            continue
        if not wants and not info.search_path:
            continue
        todo.append((path, want))
        patched.append(rel)
    # One patchelf process per file, each a few milliseconds: as many at once as there are
    # cores (each writes its own file; the first error is raised, and on any error or Ctrl-C
    # nothing queued is started).
    workers = max(1, min(len(todo), len(os.sched_getaffinity(0))))
    pool = concurrent.futures.ThreadPoolExecutor(workers, "patchelf")
    try:
        for done in [pool.submit(patcher.set_rpath, path, want) for path, want in todo]:
            done.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return patched


def relocate_sysconfigdata(path: Path, prefix: str) -> None:
    data = build_time_vars(path.read_text())
    if data is None:
        raise StageError(f"{path.name}: no build_time_vars dictionary found")
    token = prefix_pattern(prefix)
    for key, value in data.items():
        if isinstance(value, str) and key not in SYSTEM_VARS:
            data[key] = token.sub(PLACEHOLDER, value)
    body = pprint.pformat(data, indent=1, width=80, sort_dicts=True)
    rewrite_text(path, SYSCONFIG_HEADER + "build_time_vars = " + body + "\n" + _RELOCATE_CODE)
    _drop_pyc(path)


CAP_SYSCONFIG_JSON = 16 * MIB  # CPython's is ~60 KiB


def relocate_sysconfig_json(path: Path, prefix: str) -> None:
    """``_sysconfig_vars_*.json`` (CPython 3.14 writes ``json.dump`` of the build's
    ``sysconfig.get_config_vars()`` beside ``_sysconfigdata_*.py``): the same keys made the
    same as in the sysconfig data, the build prefix replaced by :data:`PLACEHOLDER`."""
    data = read_json_object(path, cap=CAP_SYSCONFIG_JSON, what="sysconfig variables",
                            error=StageError, follow_symlinks=False)
    token = prefix_pattern(prefix)
    for key, value in data.items():
        if isinstance(value, str) and key not in SYSTEM_VARS:
            data[key] = token.sub(PLACEHOLDER, value)
    rewrite_text(path, json.dumps(data, indent=2) + "\n")


def relocate_pkgconfig(path: Path, prefix: str) -> bool:
    lines = path.read_text().splitlines(keepends=True)
    token = prefix_pattern(prefix)
    changed = False
    for i, line in enumerate(lines):
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_.]*)=(.*)$", line.rstrip("\n"))
        if m and token.match(m.group(2)):
            rest = m.group(2)[len(prefix.rstrip("/")):]
            lines[i] = f"{m.group(1)}=${{pcfiledir}}/../..{rest}\n"
            changed = True
    if changed:
        rewrite_text(path, "".join(lines))
    return changed


def relocate_makefile(path: Path, prefix: str) -> bool:
    text = path.read_text()
    new = re.sub(
        r"^prefix=[ \t]*" + re.escape(prefix.rstrip("/")) + r"[ \t]*$",
        "prefix:=\t$(abspath $(dir $(lastword $(MAKEFILE_LIST)))../../..)",
        text,
        count=1,
        flags=re.M,
    )
    if new != text:
        rewrite_text(path, new)
    return new != text


def relocate_script(path: Path, prefix: str, exe: str) -> bool:
    """Python scripts get a /bin/sh trampoline; shell scripts stop naming the prefix."""
    data = path.read_bytes()
    if not data.startswith(b"#!"):
        return False
    first, _, rest = data.partition(b"\n")
    if b"python" in first:
        rewrite(path, TRAMPOLINE.format(exe=exe).encode() + rest)
        return True
    if first.split()[0].endswith((b"/sh", b"/bash")) or b"/sh" in first:
        text = rest.decode("utf-8", errors="surrogateescape")
        new = prefix_pattern(prefix).sub(PLACEHOLDER, text)
        if new != text:
            rewrite(path, first + b"\n" + new.encode("utf-8", errors="surrogateescape"))
            return True
    return False


def relocate_tkinter(stdlib: Path) -> bool:
    """tkinter (when _tkinter is there) points Tcl at the archive's script library from a
    virtual environment (:data:`_TCL_LIBRARY_CODE`)."""
    init = stdlib / "tkinter" / "__init__.py"
    if init.is_symlink() or not init.is_file() or \
            not any((stdlib / "lib-dynload").glob("_tkinter.*.so")):
        return False
    text = init.read_text()
    if _TCL_LIBRARY_MARK in text:
        return False
    rewrite_text(init, text.rstrip("\n") + "\n\n\n" + _TCL_LIBRARY_CODE)
    _drop_pyc(init)
    return True


def relocate(tree: Path, prefix: str, minor: str, patcher: ElfPatcher,
             reporter: Reporter) -> Relocated:
    result = Relocated()
    reporter.stage("relocate", "setting $ORIGIN-relative RPATHs")
    result.patched_elves = relocate_elves(tree, patcher)
    reporter.detail(f"patched {len(result.patched_elves)} ELF files")
    stdlib = tree / "lib" / f"python{minor}"
    for sc in sorted(stdlib.glob("_sysconfigdata_*.py")):
        relocate_sysconfigdata(sc, prefix)
        result.rewritten.append(sc.relative_to(tree).as_posix())
    for sj in sorted(stdlib.glob("_sysconfig_vars_*.json")):
        if not sj.is_symlink():
            relocate_sysconfig_json(sj, prefix)
            result.rewritten.append(sj.relative_to(tree).as_posix())
    details = stdlib / BUILD_DETAILS
    if details.is_file() and not details.is_symlink():
        dropped = relocate_build_details(details, tree, prefix)
        result.rewritten.append(details.relative_to(tree).as_posix())
        if dropped:
            reporter.detail(f"{BUILD_DETAILS}: dropped {', '.join(dropped)} (not in the "
                            "archive)")
    for pc in sorted((tree / "lib" / "pkgconfig").glob("*.pc")):
        if not pc.is_symlink() and relocate_pkgconfig(pc, prefix):
            result.rewritten.append(pc.relative_to(tree).as_posix())
    for mk in sorted(stdlib.glob("config-*/Makefile")):
        if relocate_makefile(mk, prefix):
            result.rewritten.append(mk.relative_to(tree).as_posix())
    for script in sorted((tree / "bin").iterdir()):
        if script.is_symlink() or not script.is_file() or is_elf(script):
            continue
        if relocate_script(script, prefix, f"python{minor}"):
            result.rewritten.append(script.relative_to(tree).as_posix())
    if relocate_tkinter(stdlib):
        result.rewritten.append(f"lib/python{minor}/tkinter/__init__.py")
    reporter.detail(f"rewrote {len(result.rewritten)} text files")
    return result
