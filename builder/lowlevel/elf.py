"""Read-only ELF facts (pyelftools). Nothing here executes or changes a file."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection
from elftools.elf.sections import SymbolTableSection

ELF_MAGIC = b"\x7fELF"
EF_ARM_ABI_FLOAT_HARD = 0x400
EF_ARM_ABI_FLOAT_SOFT = 0x200


@dataclass(frozen=True)
class ElfInfo:
    path: Path
    machine: str  # pyelftools e_machine, e.g. "EM_X86_64"
    elf_class: int  # 32 or 64
    little_endian: bool
    elf_type: str  # "ET_EXEC", "ET_DYN", ...
    interpreter: str | None  # PT_INTERP
    needed: tuple[str, ...]
    soname: str | None
    rpath: tuple[str, ...]  # DT_RPATH entries
    runpath: tuple[str, ...]  # DT_RUNPATH entries
    flags: int  # e_flags (ARM float ABI lives here)
    loads: tuple[tuple[int, int, int], ...] = ()  # PT_LOAD (p_offset, p_vaddr, p_align)
    # .gnu.version_r: (library, version) pairs, e.g. ("libc.so.6", "GLIBC_2.34")
    version_needs: tuple[tuple[str, str], ...] = ()

    @property
    def search_path(self) -> tuple[str, ...]:
        """What musl searches for this object's dependencies: RUNPATH wins over RPATH."""
        return self.runpath or self.rpath

    @property
    def arm_hard_float(self) -> bool | None:
        if self.machine != "EM_ARM":
            return None
        if self.flags & EF_ARM_ABI_FLOAT_HARD:
            return True
        if self.flags & EF_ARM_ABI_FLOAT_SOFT:
            return False
        return None


def is_elf(path: Path) -> bool:
    """True for a regular file (not a symlink) that starts with the ELF magic."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with path.open("rb") as f:
            return f.read(4) == ELF_MAGIC
    except OSError:
        return False


@contextlib.contextmanager
def _elf_file(path: Path) -> Iterator[ELFFile | None]:
    """``path`` opened as an ELFFile (None when it does not start with the ELF magic)."""
    with path.open("rb") as f:
        if f.read(4) != ELF_MAGIC:
            yield None
            return
        f.seek(0)
        yield ELFFile(f)


def _split(value: str) -> tuple[str, ...]:
    return tuple(p for p in value.split(":") if p)


def read_elf(path: Path) -> ElfInfo | None:
    """Return the facts of an ELF file, or None when it is not a readable ELF."""
    try:
        with _elf_file(path) as elf:
            if elf is None:
                return None
            interp: str | None = None
            needed: list[str] = []
            rpath: tuple[str, ...] = ()
            runpath: tuple[str, ...] = ()
            soname: str | None = None
            loads: list[tuple[int, int, int]] = []
            for seg in elf.iter_segments():
                if seg["p_type"] == "PT_LOAD":
                    loads.append((seg["p_offset"], seg["p_vaddr"], seg["p_align"]))
                if seg["p_type"] == "PT_INTERP":
                    interp = str(seg.get_interp_name())  # type: ignore[attr-defined]
            version_needs: list[tuple[str, str]] = []
            for sec in elf.iter_sections():
                if isinstance(sec, GNUVerNeedSection):
                    for verneed, auxiliaries in sec.iter_versions():
                        version_needs += [(str(verneed.name), str(aux.name))
                                          for aux in auxiliaries]
                if not isinstance(sec, DynamicSection):
                    continue
                for tag in sec.iter_tags():
                    kind = tag.entry.d_tag
                    if kind == "DT_NEEDED":
                        needed.append(tag.needed)  # type: ignore[attr-defined]
                    elif kind == "DT_RPATH":
                        rpath = _split(tag.rpath)  # type: ignore[attr-defined]
                    elif kind == "DT_RUNPATH":
                        runpath = _split(tag.runpath)  # type: ignore[attr-defined]
                    elif kind == "DT_SONAME":
                        soname = tag.soname  # type: ignore[attr-defined]
            return ElfInfo(
                path=path,
                machine=elf["e_machine"],
                elf_class=elf.elfclass,
                little_endian=elf.little_endian,
                elf_type=elf["e_type"],
                interpreter=interp,
                needed=tuple(needed),
                soname=soname,
                rpath=rpath,
                runpath=runpath,
                flags=elf["e_flags"],
                loads=tuple(loads),
                version_needs=tuple(version_needs),
            )
    except (ELFError, OSError, ValueError, KeyError):
        return None


@dataclass(frozen=True)
class DynamicSymbols:
    """The dynamic symbol table of one ELF file: what it exports and what it imports."""

    defined: frozenset[str]  # global/weak symbols it exports
    undefined: frozenset[str]  # global symbols it needs from its DT_NEEDED (not weak ones)


_MAX_DYNSYM = 200_000


def dynamic_symbols(path: Path) -> DynamicSymbols | None:
    """Read ``.dynsym``: exported names, and the names it imports (strong references only:
    a weak undefined symbol may be absent at run time). None when not a readable ELF."""
    defined: set[str] = set()
    undefined: set[str] = set()
    try:
        with _elf_file(path) as elf:
            if elf is None:
                return None
            section = elf.get_section_by_name(".dynsym")
            if not isinstance(section, SymbolTableSection):
                return DynamicSymbols(frozenset(), frozenset())
            for i, sym in enumerate(section.iter_symbols()):
                if i > _MAX_DYNSYM:
                    break
                name = sym.name
                bind = sym["st_info"]["bind"]
                if not name or bind not in ("STB_GLOBAL", "STB_WEAK", "STB_GNU_UNIQUE"):
                    continue
                if sym["st_shndx"] == "SHN_UNDEF":
                    if bind == "STB_GLOBAL":
                        undefined.add(name)
                elif sym["st_other"]["visibility"] in ("STV_DEFAULT", "STV_PROTECTED"):
                    defined.add(name)
    except (ELFError, OSError, ValueError, KeyError):
        return None
    return DynamicSymbols(frozenset(defined), frozenset(undefined))
