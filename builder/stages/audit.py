"""Static audit of an unpacked archive: ELF facts and text files, nothing executed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from builder.lowlevel.elf import is_elf, read_elf
from builder.platforms import Arch, is_musl_libc_name
from builder.stages.closure import Requester, find_library
from builder.stages.relocate import prefix_pattern


@dataclass(frozen=True)
class Finding:
    check: str
    path: str  # relative to the archive's top directory's parent (python/...)
    message: str


_BUILD_PREFIX = prefix_pattern("/usr")


def _in_root(tree: Path, path: Path) -> PurePosixPath:
    return PurePosixPath("/", path.relative_to(tree.parent).as_posix())


def audit_elves(tree: Path, arch: Arch) -> list[Finding]:
    """ELF machine, interpreter, RPATHs, and that every DT_NEEDED resolves in the archive."""
    root = tree.parent
    findings: list[Finding] = []
    elves = []
    for dirpath, _dirs, files in os.walk(tree):
        for name in sorted(files):
            p = Path(dirpath, name)
            if is_elf(p):
                info = read_elf(p)
                if info is not None:
                    elves.append((p, info))
    interpreters = [
        Requester(_in_root(tree, p), info) for p, info in elves
        if info.interpreter is not None
    ]
    for path, info in sorted(elves, key=lambda e: e[0]):
        rel = path.relative_to(root).as_posix()
        if (info.machine, info.elf_class, info.little_endian) != (
            arch.elf_machine, arch.elf_class, arch.little_endian
        ):
            findings.append(Finding(
                "elf-machine", rel,
                f"is {info.machine}/{info.elf_class}-bit, expected {arch.elf_machine}/"
                f"{arch.elf_class}-bit for {arch.alpine}",
            ))
        if info.interpreter is not None and info.interpreter != str(arch.loader):
            findings.append(Finding(
                "elf-interpreter", rel,
                f"interpreter is {info.interpreter}, expected {arch.loader}",
            ))
        for offset, vaddr, align in info.loads:
            if align and (offset - vaddr) % align:
                findings.append(Finding("elf-segments", rel,
                                        f"PT_LOAD offset {offset:#x} and address {vaddr:#x} "
                                        f"disagree modulo their alignment {align:#x}"))
            elif align and align < arch.max_page_size:
                findings.append(Finding("elf-segments", rel,
                                        f"PT_LOAD aligned to {align:#x}, below the "
                                        f"{arch.max_page_size:#x}-byte pages {arch.alpine} "
                                        "kernels may use"))
        for entry in info.rpath + info.runpath:
            if not entry.startswith(("$ORIGIN", "${ORIGIN}")):
                findings.append(Finding("rpath", rel, f"RPATH/RUNPATH entry {entry!r} is not "
                                        "$ORIGIN-relative"))
        me = Requester(_in_root(tree, path), info)
        # dlopen counts the main program as a requester: its rpath is searched too.
        chain = [me] + [r for r in interpreters if r.path != me.path]
        for name in info.needed:
            if is_musl_libc_name(name):
                continue
            if find_library(root, name, chain, ()) is None:
                searched = ", ".join(info.search_path) or "no RPATH"
                findings.append(Finding(
                    "needed", rel,
                    f"needs {name}, which is not in the archive (searched {searched} "
                    "and the interpreter's RPATH)",
                ))
    if not interpreters:
        findings.append(Finding("elf-interpreter", tree.name, "no executable ELF found"))
    return findings


def audit_text(tree: Path, minor: str) -> list[Finding]:
    """sysconfig data, pkg-config files, python-config and shebangs must not name /usr."""
    root = tree.parent
    findings: list[Finding] = []
    stdlib = tree / "lib" / f"python{minor}"
    candidates = [*stdlib.glob("_sysconfigdata_*.py"), *(tree / "lib" / "pkgconfig").glob("*.pc")]
    for p in candidates:
        if p.is_symlink():
            continue
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
            if _BUILD_PREFIX.search(line) and "TZPATH" not in line:
                findings.append(Finding("prefix", p.relative_to(root).as_posix(),
                                        f"line {n} names /usr: {line.strip()[:100]}"))
                break
    bindir = tree / "bin"
    for p in sorted(bindir.iterdir()) if bindir.is_dir() else []:
        if p.is_symlink() or not p.is_file() or is_elf(p):
            continue
        head = p.read_bytes()[:256].split(b"\n", 1)[0]
        if head.startswith(b"#!") and b"python" in head and head.split()[0] != b"#!/bin/sh":
            findings.append(Finding("shebang", p.relative_to(root).as_posix(),
                                    f"shebang {head.decode(errors='replace')} is not relocatable"))
        text = p.read_text(errors="replace")
        if head.startswith(b"#!/bin/sh") and _BUILD_PREFIX.search(text):
            findings.append(Finding("prefix", p.relative_to(root).as_posix(), "names /usr"))
    if (stdlib / "EXTERNALLY-MANAGED").exists():
        findings.append(Finding("externally-managed",
                                (stdlib / "EXTERNALLY-MANAGED").relative_to(root).as_posix(),
                                "present: pip would refuse to install"))
    for exe in ("python3", f"python{minor}"):
        if not (bindir / exe).exists():
            findings.append(Finding("layout", f"{tree.name}/bin/{exe}", "missing"))
    return findings
