#!/usr/bin/env python3
"""Build builder/data/launcher/python-launcher-<arch>: the archive's bin/python3.X for
every arch in builder/platforms.py, from builder/data/launcher/launcher.c, with zig cc.

    tools/build_launchers.py [--out DIR] [--arch ARCH ...]

Reproducible: zig is pinned (ZIG_VERSION, the ``ziglang`` wheel), the flags are fixed, no
build id, no debug info; tests/unit/test_launcher.py rebuilds them and compares bytes.
Each launcher is a position-independent executable that links only musl, as Alpine names
it: PT_INTERP the arch's loader and DT_NEEDED ``libc.musl-<arch>.so.1``. zig links its own
stub ``libc.so``, so the launcher is linked twice: once to learn which libc symbols it
imports, then against a stub of exactly those symbols carrying Alpine's soname (the
symbols bind by name at run time, to the loader itself). PT_GNU_STACK asks for a 2 MiB
thread stack (Alpine's ``-Wl,-z,stack-size=0x200000``; musl raises its default thread
stack from the main program's PT_GNU_STACK only); a build raises it further when the
interpreter it replaces asked for more (builder/stages/launcher.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from builder.platforms import ARCHES, Arch

ZIG_VERSION = "0.17.1"
SOURCE = Path(__file__).resolve().parent.parent / "builder" / "data" / "launcher"
STACK_SIZE = 0x200000
CFLAGS = ("-O2", "-g0", "-s", "-fno-sanitize=all", "-Wall", "-Wextra", "-Werror",
          "-fPIE", "-pie", "-dynamic")


def launcher_name(arch: Arch) -> str:
    return f"python-launcher-{arch.alpine}"


def zig() -> list[str]:
    cmd = [sys.executable, "-m", "ziglang"]
    out = subprocess.run([*cmd, "version"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"zig is not installed here (pip install ziglang=={ZIG_VERSION})")
    if out.stdout.strip() != ZIG_VERSION:
        raise SystemExit(f"zig {out.stdout.strip()} found; the launchers are built with "
                         f"{ZIG_VERSION} (pip install ziglang=={ZIG_VERSION})")
    return cmd


def _target(arch: Arch) -> list[str]:
    return ["-target", arch.cross_target, *([f"-mcpu={arch.cross_cpu}"] if arch.cross_cpu
                                            else [])]


def _link_flags(arch: Arch) -> list[str]:
    return [f"-Wl,-z,stack-size={STACK_SIZE:#x}", f"-Wl,--dynamic-linker={arch.loader}",
            "-Wl,--build-id=none", "-Wl,-rpath,$ORIGIN/../lib",
            f"-Wl,-z,max-page-size={arch.max_page_size}", "-Wl,--as-needed"]


def _run(argv: list[str]) -> None:
    r = subprocess.run(argv, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{r.stdout}{r.stderr}")


def imported(path: Path) -> list[tuple[str, bool]]:
    """The symbols ``path`` imports: (name, is a data object), sorted."""
    out = set()
    with path.open("rb") as f:
        sec = ELFFile(f).get_section_by_name(".dynsym")
        assert isinstance(sec, SymbolTableSection)
        for sym in sec.iter_symbols():
            if (sym.name and sym["st_shndx"] == "SHN_UNDEF"
                    and sym["st_info"]["bind"] == "STB_GLOBAL"):
                out.add((sym.name, sym["st_info"]["type"] == "STT_OBJECT"))
    return sorted(out)


def stub_source(symbols: list[tuple[str, bool]]) -> str:
    lines = ["/* libc symbols the launcher imports: a link-time stub only */"]
    for name, is_object in symbols:
        lines.append(f"void *{name};" if is_object else f"void {name}(void) {{}}")
    return "\n".join(lines) + "\n"


def build(arch: Arch, out: Path, zig_cmd: list[str]) -> Path:
    src = SOURCE / "launcher.c"
    dest = out / launcher_name(arch)
    with tempfile.TemporaryDirectory(prefix="musl-pbs-launcher-") as tmp:
        first = Path(tmp, "first")
        _run([*zig_cmd, "cc", *_target(arch), *CFLAGS, *_link_flags(arch), "-o", str(first),
              str(src)])
        stub_c = Path(tmp, "stub.c")
        stub_c.write_text(stub_source(imported(first)))
        stub = Path(tmp, arch.libc_soname)
        _run([*zig_cmd, "cc", *_target(arch), "-shared", "-nostdlib", "-fPIC", "-O2", "-g0",
              "-fno-sanitize=all", "-fno-unwind-tables", "-fno-asynchronous-unwind-tables",
              "-w", f"-Wl,-soname,{arch.libc_soname}", "-o", str(stub), str(stub_c)])
        tmp_out = Path(tmp, "launcher")
        _run([*zig_cmd, "cc", *_target(arch), *CFLAGS, *_link_flags(arch), str(stub),
              "-o", str(tmp_out), str(src)])
        out.mkdir(parents=True, exist_ok=True)
        data = tmp_out.read_bytes()
        part = dest.with_name(dest.name + ".tmp")
        part.write_bytes(data)
        part.chmod(0o755)
        part.replace(dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=SOURCE)
    parser.add_argument("--arch", action="append", choices=sorted(ARCHES))
    args = parser.parse_args(argv)
    zig_cmd = zig()
    for name in args.arch or sorted(ARCHES):
        path = build(ARCHES[name], args.out, zig_cmd)
        print(f"{path}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
