"""Read-only ELF facts (pyelftools). Nothing here executes or changes a file."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection
from elftools.elf.sections import ARMAttributesSection, SymbolTableSection

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


# ARM build attribute Tag_CPU_arch values (ARM IHI 0045, "Addenda to, and errata in, the
# ABI for the Arm architecture"): the architecture the code was built for.
ARM_CPU_ARCH_NAMES = {
    0: "pre-v4", 1: "v4", 2: "v4T", 3: "v5T", 4: "v5TE", 5: "v5TEJ", 6: "v6", 7: "v6KZ",
    8: "v6T2", 9: "v6K", 10: "v7", 11: "v6-M", 12: "v6S-M", 13: "v7E-M", 14: "v8-A",
    15: "v8-R", 16: "v8-M.baseline", 17: "v8-M.mainline", 18: "v8.1-A", 19: "v8.2-A",
    20: "v8.3-A", 21: "v8.1-M.mainline", 22: "v9-A",
}
# Tag_FP_arch values: the floating-point instructions the code uses.
ARM_FP_ARCH_NAMES = {
    0: "none", 1: "VFPv1", 2: "VFPv2", 3: "VFPv3", 4: "VFPv3-D16", 5: "VFPv4",
    6: "VFPv4-D16", 7: "FP-ARMv8", 8: "FP-ARMv8-D16",
}
ARM_THUMB2 = 2  # Tag_THUMB_ISA_use: 1 Thumb-1, 2 Thumb-2, 3 "as the architecture allows"
_MAX_ATTRIBUTES = 1000  # attributes read from one file


def arm_cpu_arch_name(value: int) -> str:
    return ARM_CPU_ARCH_NAMES.get(value, f"unknown ({value})")


@dataclass(frozen=True)
class ArmAttributes:
    """The file-scope ``aeabi`` build attributes of an ARM ELF that say its code level."""

    cpu_arch: int | None  # Tag_CPU_arch (see ARM_CPU_ARCH_NAMES)
    thumb_isa: int | None  # Tag_THUMB_ISA_use
    fp_arch: int | None  # Tag_FP_arch (1 VFPv1, 2 VFPv2, 3/4 VFPv3, 5/6 VFPv4, ...)
    simd_arch: int | None  # Tag_Advanced_SIMD_arch (NEON when non-zero)
    vfp_args: int | None  # Tag_ABI_VFP_args (1: arguments in VFP registers, hard-float)

    @property
    def cpu_arch_name(self) -> str | None:
        return None if self.cpu_arch is None else arm_cpu_arch_name(self.cpu_arch)


def _file_attributes(elf: ELFFile) -> Iterator[tuple[str, object]]:
    for sec in elf.iter_sections():
        if not isinstance(sec, ARMAttributesSection):
            continue
        for sub in sec.iter_subsections("aeabi"):
            for subsub in sub.iter_subsubsections():
                if subsub.header.tag == "TAG_FILE":
                    for attr in subsub.iter_attributes():
                        yield str(attr.tag), attr.value


def arm_attributes(path: Path) -> ArmAttributes | None:
    """Read the ``aeabi`` file attributes of an ARM ELF; None when it has none (or is not
    a readable ELF). The first value of each tag wins; at most 1000 attributes are read."""
    found: dict[str, int] = {}
    seen = 0
    try:
        with _elf_file(path) as elf:
            if elf is None:
                return None
            for tag, value in itertools.islice(_file_attributes(elf), _MAX_ATTRIBUTES):
                seen += 1
                if isinstance(value, int):
                    found.setdefault(tag, value)
    except (ELFError, OSError, ValueError, KeyError, AttributeError, TypeError):
        return None
    if not seen:
        return None
    return ArmAttributes(
        cpu_arch=found.get("TAG_CPU_ARCH"),
        thumb_isa=found.get("TAG_THUMB_ISA_USE"),
        fp_arch=found.get("TAG_FP_ARCH"),
        simd_arch=found.get("TAG_ADVANCED_SIMD_ARCH"),
        vfp_args=found.get("TAG_ABI_VFP_ARGS"),
    )
