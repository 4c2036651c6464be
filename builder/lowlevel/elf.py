"""Read-only ELF facts (pyelftools). Nothing here executes or changes a file."""

from __future__ import annotations

import contextlib
import io
import itertools
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.enums import ENUM_SH_TYPE_BASE
from elftools.elf.gnuversions import GNUVerNeedSection
from elftools.elf.sections import ARMAttributesSection, Section, SymbolTableSection

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
    # PT_GNU_STACK's p_memsz (-z stack-size; musl's default thread stack for a main
    # program); None without the header
    stack_size: int | None = None

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


_Identity = tuple[int, int, int, int, int]
_FACTS: dict[Path, tuple[_Identity, ElfInfo | None]] = {}
_FACTS_MAX = 8192


def read_elf(path: Path) -> ElfInfo | None:
    """Return the facts of an ELF file, or None when it is not a readable ELF.

    A build reads each ELF file in stage, relocate and the musl floor: the facts are kept
    for the file as it is (device, inode, size, mtime, ctime). Whatever rewrites an ELF in
    place calls forget() (the patcher does): a timestamp may not tick between two writes."""
    try:
        st = path.stat()
    except OSError:
        return None
    identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    known = _FACTS.get(path)
    if known is not None and known[0] == identity:
        return known[1]
    info = _read_elf(path)
    if len(_FACTS) >= _FACTS_MAX:
        _FACTS.clear()
    _FACTS[path] = (identity, info)
    return info


def forget(path: Path) -> None:
    """Drop what read_elf() keeps about ``path`` (call after changing the file)."""
    _FACTS.pop(path, None)


_DYNAMIC_TYPES = frozenset(("SHT_DYNAMIC", "SHT_GNU_verneed"))
_DYNSYM_TYPE = frozenset(("SHT_DYNSYM",))
_MAX_TABLE = 64 * 1024 * 1024  # a table (section headers, .dynsym, its strings) larger: not read


def _section_type_codes(elf: ELFFile) -> list[int] | None:
    """Each section's ``sh_type``, read from the section header table in one read (the
    field lies 4 bytes into an Elf32_Shdr and an Elf64_Shdr alike); None when the table
    is not whole in the file."""
    count, size = elf.num_sections(), elf["e_shentsize"]
    if count == 0:
        return []
    if size < 8 or count * size > _MAX_TABLE:
        return None
    elf.stream.seek(elf["e_shoff"])
    table = elf.stream.read(count * size)
    if len(table) != count * size:
        return None
    field = struct.Struct("<I" if elf.little_endian else ">I")
    return [field.unpack_from(table, i * size + 4)[0] for i in range(count)]


def _sections_of_type(elf: ELFFile, types: frozenset[str]) -> Iterator[Any]:
    """The sections of ``elf`` whose type is in ``types``; only those are made.

    ``iter_sections`` makes every section (its name looked up, its object built): in a
    library with debug info, dozens per file, most of stage's ELF reading. The types
    come from the raw header table; pyelftools parses the sections wanted."""
    codes = _section_type_codes(elf)
    if codes is None:  # not whole: pyelftools says what is wrong (ELFError)
        yield from (s for s in elf.iter_sections() if s["sh_type"] in types)
        return
    wanted = {ENUM_SH_TYPE_BASE[t] for t in types}
    for i, code in enumerate(codes):
        if code in wanted:
            yield elf.get_section(i)


def _segment_headers(elf: ELFFile) -> Iterator[Any]:
    """The program headers of ``elf``, as parsed structs.

    ``iter_segments`` makes a segment object of each; for PT_DYNAMIC that object looks
    for the dynamic section's string table by making every section (dozens in a file with
    debug info): most of a read. The headers alone say all :func:`read_elf` needs."""
    header = getattr(elf, "_get_segment_header", None)
    if header is None:  # pragma: no cover - pyelftools >= 0.31 has it
        yield from (seg.header for seg in elf.iter_segments())
        return
    for i in range(elf.num_segments()):
        yield header(i)


_MAX_INTERP = 4096


def _interpreter(elf: ELFFile, seg: Any) -> str:
    """PT_INTERP's path: the segment's bytes up to the first NUL."""
    size = int(seg["p_filesz"])
    if size > _MAX_INTERP:
        raise ValueError(f"PT_INTERP of {size} bytes")
    elf.stream.seek(int(seg["p_offset"]))
    return bytes(elf.stream.read(size)).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _read_elf(path: Path) -> ElfInfo | None:
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
            stack_size: int | None = None
            for seg in _segment_headers(elf):
                if seg["p_type"] == "PT_GNU_STACK":
                    stack_size = int(seg["p_memsz"])
                if seg["p_type"] == "PT_LOAD":
                    loads.append((seg["p_offset"], seg["p_vaddr"], seg["p_align"]))
                if seg["p_type"] == "PT_INTERP":
                    interp = _interpreter(elf, seg)
            version_needs: list[tuple[str, str]] = []
            for sec in _sections_of_type(elf, _DYNAMIC_TYPES):
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
                stack_size=stack_size,
            )
    except (ELFError, OSError, ValueError, KeyError):
        return None


def gnu_stack_field(data: bytes) -> tuple[int, int, int] | None:
    """Where PT_GNU_STACK's p_memsz lies in the ELF ``data``: (file offset, width in
    bytes, value); None without the header."""
    try:
        elf = ELFFile(io.BytesIO(data))
        for i, seg in enumerate(_segment_headers(elf)):
            if seg["p_type"] == "PT_GNU_STACK":
                # Elf64_Phdr: p_memsz at 40 (8 bytes); Elf32_Phdr: at 20 (4 bytes).
                where = 40 if elf.elfclass == 64 else 20
                return (elf["e_phoff"] + i * elf["e_phentsize"] + where, elf.elfclass // 8,
                        int(seg["p_memsz"]))
    except (ELFError, ValueError, KeyError):
        return None
    return None


@dataclass(frozen=True)
class DynamicSymbols:
    """The dynamic symbol table of one ELF file: what it exports and what it imports."""

    defined: frozenset[str]  # global/weak symbols it exports
    undefined: frozenset[str]  # global symbols it needs from its DT_NEEDED (not weak ones)


_MAX_DYNSYM = 200_000
# Elf32_Sym / Elf64_Sym: (st_name, st_info, st_other, st_shndx) are what is read.
_SYM32, _SYM64 = struct.Struct("IIIBBH"), struct.Struct("IBBHQQ")
_STB_GLOBAL, _STB_WEAK, _STB_GNU_UNIQUE = 1, 2, 10
_STV_DEFAULT, _STV_PROTECTED = 0, 3


def _section_bytes(elf: ELFFile, section: Section, size_of_file: int) -> bytes:
    offset, size = section["sh_offset"], section["sh_size"]
    if size > _MAX_TABLE or offset + size > size_of_file:
        raise ValueError(f"section {section.name} lies outside the file or is too large")
    elf.stream.seek(offset)
    return bytes(elf.stream.read(size))


def dynamic_symbols(path: Path) -> DynamicSymbols | None:
    """Read ``.dynsym``: exported names, and the names it imports (strong references only:
    a weak undefined symbol may be absent at run time). None when not a readable ELF.

    pyelftools finds the table and its string table; the entries, thousands in libpython,
    are unpacked with ``struct`` (pyelftools' per-symbol parsing was most of a build's
    musl-floor time)."""
    defined: set[str] = set()
    undefined: set[str] = set()
    try:
        with _elf_file(path) as elf:
            if elf is None:
                return None
            section = next(_sections_of_type(elf, _DYNSYM_TYPE), None)
            if not isinstance(section, SymbolTableSection):
                return DynamicSymbols(frozenset(), frozenset())
            size_of_file = path.stat().st_size
            table = _section_bytes(elf, section, size_of_file)
            strtab = _section_bytes(elf, elf.get_section(section["sh_link"]), size_of_file)
            entry = _SYM64 if elf.elfclass == 64 else _SYM32
            fmt = struct.Struct(("<" if elf.little_endian else ">") + entry.format)
            usable = len(table) - len(table) % fmt.size
            for i, fields in enumerate(fmt.iter_unpack(table[:usable])):
                if i > _MAX_DYNSYM:
                    break
                if elf.elfclass == 64:
                    st_name, st_info, st_other, st_shndx = fields[:4]
                else:
                    st_name, st_info, st_other, st_shndx = fields[0], *fields[3:6]
                bind = st_info >> 4
                if not st_name or bind not in (_STB_GLOBAL, _STB_WEAK, _STB_GNU_UNIQUE):
                    continue
                end = strtab.find(b"\0", st_name)
                name = strtab[st_name:end if end >= 0 else len(strtab)].decode(
                    "utf-8", "replace")
                if not name:
                    continue
                if st_shndx == 0:  # SHN_UNDEF
                    if bind == _STB_GLOBAL:
                        undefined.add(name)
                elif st_other & 3 in (_STV_DEFAULT, _STV_PROTECTED):
                    defined.add(name)
    except (ELFError, OSError, ValueError, KeyError, struct.error):
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
