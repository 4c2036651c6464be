"""Which libc does a system use, for which architecture, and which archive fits it?

Nothing here executes a file from the inspected tree. The answer comes from what the
system's own programs ask for: the ELF interpreter (PT_INTERP) of well-known programs
(``/bin/sh``, ``/usr/bin/env``, ...), resolved *inside* the root, and the bytes of that
loader (musl embeds its version string, glibc its release banner). The architecture comes
from the ELF header of the program whose interpreter was used, never from ``uname``: a
32-bit userland on a 64-bit kernel is a 32-bit system.

Rules, in order:

1. The first well-known program that is dynamically linked and whose loader is present
   decides. Other loaders in the tree (e.g. Debian's ``musl`` package beside glibc) are
   mentioned in the evidence, never chosen.
2. If no well-known program is dynamically linked, the usual program directories are
   scanned and the interpreter used by most dynamically linked programs decides.
3. If there is no dynamically linked program at all (distroless base, a static busybox
   beside a loader), a loader in the usual library directories decides, but only when
   all the loaders present are of one libc and one machine.
4. Otherwise the result is undecided (``libc`` None): nothing is guessed.

The fitting archive is given as a glob, ``cpython-*-linux-<arch>-musl.tar.gz``: the Python
version is not a property of the system.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from builder.errors import MuslPbsError
from builder.lowlevel.apkdb import parse_installed
from builder.lowlevel.apkversion import compare, upstream_version
from builder.lowlevel.elf import ElfInfo, arm_attributes, arm_cpu_arch_name, is_elf, read_elf
from builder.lowlevel.rootfs import APK_DB_CAP, link_chain, read_in_root, resolve_in_root
from builder.platforms import ARCHES, Arch

Libc = Literal["musl", "glibc"]

WELL_KNOWN_PROGRAMS: tuple[str, ...] = (
    "/bin/sh", "/usr/bin/env", "/bin/dash", "/bin/ls", "/bin/busybox",
)
SCAN_DIRS: tuple[str, ...] = (
    "/bin", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin",
)
LOADER_DIRS: tuple[str, ...] = (
    "/lib", "/lib64", "/lib32", "/libx32", "/usr/lib", "/usr/lib64", "/usr/lib32",
)
APK_INSTALLED = "/lib/apk/db/installed"

_SCAN_MAX_FILES = 3000  # directory entries looked at in rule 2
_SCAN_MAX_DYNAMIC = 25  # dynamically linked programs enough to vote
_MAX_READ = 64 * 1024 * 1024  # bytes read from a loader or libc

# musl: ldso/dynlink.c prints "musl libc (ARCH)"; src/internal/version.c holds VERSION alone.
_MUSL_MARKER = re.compile(rb"musl libc \(([A-Za-z0-9_]+)\)")
_MUSL_VERSION = re.compile(rb"(?<=\x00)(\d+\.\d+\.\d+(?:[-_+~][0-9A-Za-z.+~_-]*)?)(?=\x00)")
# glibc: ld.so and libc.so.6 both carry "... release version X.Y"; libc.so.6 also
# "GNU C Library (...) stable release version X.Y.".
_GLIBC_BANNER = re.compile(
    rb"(?:GNU C Library|ld\.so) \([^)\x00\n]*\)[^\x00\n]*?release version (\d+\.\d+(?:\.\d+)?)"
)
_GLIBC_PRIVATE = b"GLIBC_PRIVATE"
_GLIBC_FILE_VERSION = re.compile(r"^(?:ld|libc)-(\d+\.\d+(?:\.\d+)?)\.so$")
_GLIBC_LOADER_NAME = re.compile(r"^(?:ld-linux[-.].*|ld64\.so\.\d+|ld\.so\.\d+|ld-\d+\.\d+.*\.so)$")
_MUSL_LOADER_NAME = re.compile(r"^ld-musl-([A-Za-z0-9_]+)\.so\.1$")
_LOADER_GLOB = ("ld-musl-*.so.1", "ld-linux*.so*", "ld64.so.*", "ld.so.1", "ld-[0-9]*.so")

# ARM build attribute Tag_CPU_arch values (elf.ARM_CPU_ARCH_NAMES) that count as ARMv7-A or
# later (Alpine armv7) versus ARMv6 (Alpine armhf) when choosing a port for a userland.
_ARM_V7_OR_LATER = {10, 14, 15, 18, 19, 20, 22}
_ARM_V6 = {6, 7, 8, 9}


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Detection:
    """What :func:`detect` found. ``libc`` is None when it could not decide."""

    root: Path
    libc: Libc | None
    version: str | None
    arch: str | None  # Alpine's spelling; None when no Alpine arch fits the ELF header
    machine: str | None  # the ELF identity in words, whether or not an Alpine arch fits
    loader: str | None  # the interpreter path as the programs name it (PT_INTERP)
    loader_resolved: str | None  # where that path leads inside the root
    program: str | None  # the program whose interpreter decided
    archive: str | None  # glob of the fitting archive name, or None
    archive_note: str | None  # why no archive fits (None when one does)
    evidence: tuple[str, ...]
    undecided_reason: str | None = None

    @property
    def decided(self) -> bool:
        return self.libc is not None

    def to_json(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "libc": self.libc,
            "version": self.version,
            "arch": self.arch,
            "machine": self.machine,
            "loader": self.loader,
            "loader_resolved": self.loader_resolved,
            "program": self.program,
            "archive": self.archive,
            "archive_note": self.archive_note,
            "decided": self.decided,
            "undecided_reason": self.undecided_reason,
            "evidence": list(self.evidence),
        }


def archive_glob(arch: Arch) -> str:
    """The archive names that fit ``arch``, any Python version."""
    return f"cpython-*-linux-{arch.archive_arch}-musl.tar.gz"


# --------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class _Program:
    path: PurePosixPath  # as asked for
    chain: tuple[PurePosixPath, ...]  # link chain inside the root
    host: Path | None  # resolved host path, None when missing
    elf: ElfInfo | None
    script: str | None = None  # the #! line when it is a script

    @property
    def interpreter(self) -> str | None:
        return self.elf.interpreter if self.elf is not None else None

    def describe(self) -> str:
        shown = " -> ".join(str(p) for p in self.chain) or str(self.path)
        if self.host is None:
            return f"{shown}: missing (or a dangling link) in the tree"
        if self.script is not None:
            return f"{shown}: a script ({self.script}), not an ELF program"
        if self.elf is None:
            return f"{shown}: not an ELF file"
        kind = f"PT_INTERP {self.elf.interpreter}" if self.elf.interpreter else (
            "statically linked (no PT_INTERP)"
        )
        return f"{shown}: {_elf_words(self.elf)}, {kind}"


@dataclass(frozen=True)
class _Loader:
    path: PurePosixPath  # as named (PT_INTERP, or where it was found)
    chain: tuple[PurePosixPath, ...]
    host: Path | None
    libc: Libc | None
    version: str | None
    elf: ElfInfo | None
    notes: tuple[str, ...] = field(default_factory=tuple)
    resolved: PurePosixPath | None = None  # the real file, as an in-root path

    def shown(self) -> str:
        return " -> ".join(str(p) for p in self.chain) or str(self.path)


def _unique(lines: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(lines))


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _in_root(root: Path, host: Path) -> PurePosixPath:
    rel = host.relative_to(root).as_posix()
    return PurePosixPath("/") if rel == "." else PurePosixPath("/", rel)


def _elf_words(elf: ElfInfo) -> str:
    endian = "little-endian" if elf.little_endian else "big-endian"
    words = f"ELF {elf.elf_class}-bit {endian} {elf.machine}"
    if elf.machine == "EM_ARM":
        float_abi = {True: "hard-float", False: "soft-float", None: "float ABI not in e_flags"}
        words += f" ({float_abi[elf.arm_hard_float]})"
    return words


def _shebang(host: Path) -> str | None:
    try:
        with host.open("rb") as f:
            head = f.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    return head.split(b"\n", 1)[0].decode("utf-8", "replace").strip()


def _program(root: Path, path: PurePosixPath) -> _Program:
    chain = tuple(link_chain(root, path))
    host = resolve_in_root(root, path)
    if host is None or not host.is_file():
        return _Program(path, chain, None, None)
    if not is_elf(host):
        return _Program(path, chain, host, None, script=_shebang(host))
    return _Program(path, chain, host, read_elf(host))


def _read_bytes(host: Path) -> bytes:
    try:
        with host.open("rb") as f:
            return f.read(_MAX_READ)
    except OSError:
        return b""


def _name_libc(name: str) -> Libc | None:
    if _MUSL_LOADER_NAME.match(name):
        return "musl"
    if _GLIBC_LOADER_NAME.match(name):
        return "glibc"
    return None


def _musl_version_strings(data: bytes) -> list[str]:
    return sorted({m.group(1).decode() for m in _MUSL_VERSION.finditer(data)})


def _loader(root: Path, path: PurePosixPath) -> _Loader:
    """Identify the loader at ``path`` (an in-root path) by its name and its bytes."""
    chain = tuple(link_chain(root, path))
    host = resolve_in_root(root, path)
    if host is None or not host.is_file():
        return _Loader(path, chain, None, None, None, None,
                       (f"{path} is missing (or a dangling link) in the tree",))
    notes: list[str] = []
    data = _read_bytes(host)
    elf = read_elf(host)
    by_name = _name_libc(path.name) or _name_libc(host.name)
    musl = _MUSL_MARKER.search(data)
    glibc = _GLIBC_BANNER.search(data)
    libc: Libc | None
    version: str | None = None
    if musl is not None:
        libc = "musl"
        found = _musl_version_strings(data)
        if len(found) == 1:
            version = found[0]
            notes.append(f"musl loader (contains {musl.group(0).decode()!r}), "
                         f"version string {version!r}")
        else:
            notes.append(f"musl loader (contains {musl.group(0).decode()!r}); "
                         f"version strings found: {found or 'none'}")
    elif glibc is not None or _GLIBC_PRIVATE in data:
        libc = "glibc"
        if glibc is not None:
            version = glibc.group(1).decode()
            notes.append(f"glibc loader (contains {glibc.group(0).decode()!r})")
        else:
            notes.append("glibc loader (defines GLIBC_PRIVATE)")
    else:
        libc = by_name
        if by_name is not None:
            notes.append(f"no libc marker in its bytes; the name {path.name!r} says {by_name}")
        else:
            notes.append("neither a musl nor a glibc loader (no marker, unknown name)")
    if by_name is not None and libc is not None and by_name != libc:
        notes.append(f"its name suggests {by_name}, its contents say {libc}")
    return _Loader(path, chain, host, libc, version, elf, tuple(notes), _in_root(root, host))


def _glibc_version_from_libc(root: Path, loader: _Loader) -> tuple[str | None, str | None]:
    """Look for libc.so.6 beside the loader (Debian multiarch dir, /lib64, a Nix store dir)."""
    assert loader.host is not None
    beside = _in_root(root, loader.host.parent) / "libc.so.6"
    for cand in (beside, *(PurePosixPath(d, "libc.so.6") for d in ("/lib64", "/usr/lib64",
                                                                     "/lib", "/usr/lib"))):
        real = resolve_in_root(root, cand)
        if real is None or not real.is_file():
            continue
        m = _GLIBC_BANNER.search(_read_bytes(real))
        if m is not None:
            return m.group(1).decode(), f"{_in_root(root, real)}: {m.group(0).decode()!r}"
    return None, None


def _apk_musl_version(root: Path) -> str | None:
    """``V:`` of the ``P:musl`` record in Alpine's installed database, if any."""
    try:
        text = read_in_root(root, APK_INSTALLED, cap=APK_DB_CAP)
    except MuslPbsError:
        return None  # unreadable or absurdly large: no evidence
    return next((p.version.strip() for p in parse_installed(text or "")
                 if p.name == "musl" and p.version), None)


# --------------------------------------------------------------------------- arch


@dataclass(frozen=True)
class _ArchAnswer:
    arch: Arch | None
    machine: str
    notes: tuple[str, ...]
    no_arch_reason: str | None = None


def _arch_from_elf(elf: ElfInfo, source: PurePosixPath) -> _ArchAnswer:
    machine = _elf_words(elf)
    same = [
        a for a in ARCHES.values()
        if a.elf_machine == elf.machine and a.elf_class == elf.elf_class
        and a.little_endian == elf.little_endian
    ]
    head = f"ELF header of {source}: {machine}, e_flags {elf.flags:#x}"
    if not same:
        reason = f"no Alpine architecture is {machine}"
        return _ArchAnswer(None, machine, (f"{head} -> {reason}",), reason)
    if elf.machine != "EM_ARM":
        return _ArchAnswer(same[0], machine, (f"{head} -> Alpine arch {same[0].alpine}",))

    attrs = arm_attributes(elf.path)
    hard = elf.arm_hard_float
    if hard is None and attrs is not None and attrs.vfp_args == 1:
        hard = True
        machine += ", VFP argument passing (Tag_ABI_VFP_args)"
    if hard is not True:
        reason = ("soft-float ARM userland: Alpine's 32-bit ARM ports (armhf, armv7) are "
                  "hard-float, so no musl archive fits")
        return _ArchAnswer(None, machine, (f"{head} -> {reason}",), reason)
    cpu = attrs.cpu_arch if attrs is not None else None
    if cpu is not None and cpu in _ARM_V7_OR_LATER:
        arch, why = ARCHES["armv7"], f"Tag_CPU_arch {arm_cpu_arch_name(cpu)} (ARMv7 or later)"
    elif cpu is not None and cpu in _ARM_V6:
        arch, why = ARCHES["armhf"], f"Tag_CPU_arch {arm_cpu_arch_name(cpu)} (ARMv6)"
    elif cpu is not None:
        name = arm_cpu_arch_name(cpu)
        arch, why = ARCHES["armhf"], (
            f"Tag_CPU_arch {name}: older than ARMv7; armhf (ARMv6) is the nearest port"
        )
    else:
        arch, why = ARCHES["armv7"], (
            "no Tag_CPU_arch build attribute: armv7 (ARMv7) or armhf (ARMv6) cannot be told "
            "apart; assuming armv7 — use the armhf archive on an ARMv6 CPU"
        )
    if cpu is not None:
        machine += f", Tag_CPU_arch {arm_cpu_arch_name(cpu)}"
    return _ArchAnswer(arch, machine, (f"{head}, {why} -> Alpine arch {arch.alpine}",))


# --------------------------------------------------------------------------- discovery


def _dir_entries(root: Path, dirs: Iterable[str]) -> Iterator[tuple[PurePosixPath, Path]]:
    """(in-root path, host dir) for each existing directory, each real directory once."""
    seen: set[Path] = set()
    for d in dirs:
        host = resolve_in_root(root, d)
        if host is None or not host.is_dir() or host in seen:
            continue
        seen.add(host)
        yield PurePosixPath(d), host


def _scan_programs(root: Path) -> tuple[list[_Program], int, int]:
    """Dynamically linked programs in the usual directories (rule 2).

    Returns (dynamic programs, ELF files seen, static ELF files seen).
    """
    dynamic: list[_Program] = []
    seen_files: set[Path] = set()
    looked = elves = static = 0
    for shown_dir, host_dir in _dir_entries(root, SCAN_DIRS):
        try:
            names = sorted(os.listdir(host_dir))
        except OSError:
            continue
        for name in names:
            looked += 1
            if looked > _SCAN_MAX_FILES or len(dynamic) >= _SCAN_MAX_DYNAMIC:
                return dynamic, elves, static
            path = shown_dir / name
            host = resolve_in_root(root, path)
            if host is None or host in seen_files or not host.is_file():
                continue
            seen_files.add(host)
            if not is_elf(host):
                continue
            elves += 1
            prog = _program(root, path)
            if prog.interpreter:
                dynamic.append(prog)
            elif prog.elf is not None:
                static += 1
    return dynamic, elves, static


def _find_loaders(root: Path) -> list[_Loader]:
    """Every loader-looking file in the usual library dirs and their multiarch subdirs."""
    dirs: list[str] = []
    for d in LOADER_DIRS:
        dirs.append(d)
        host = resolve_in_root(root, d)
        if host is not None and host.is_dir():
            try:
                subs = sorted(os.listdir(host))
            except OSError:
                subs = []
            dirs += [f"{d}/{s}" for s in subs if "-linux-" in s and (host / s).is_dir()]
    found: dict[Path, _Loader] = {}
    for shown_dir, host_dir in _dir_entries(root, dirs):
        names: set[str] = set()
        for pattern in _LOADER_GLOB:
            names.update(p.name for p in host_dir.glob(pattern))
        for name in sorted(names):
            loader = _loader(root, shown_dir / name)
            if loader.host is not None and loader.libc is not None:
                found.setdefault(loader.host, loader)
    return list(found.values())


def _other_loaders(chosen: _Loader, present: list[_Loader]) -> list[str]:
    lines = []
    for other in present:
        if chosen.host is not None and other.host == chosen.host:
            continue
        ver = f" {other.version}" if other.version else ""
        lines.append(f"also present, not used by the system's programs: {other.shown()} "
                     f"({other.libc}{ver})")
    return lines


# --------------------------------------------------------------------------- detect


def _undecided(root: Path, reason: str, evidence: list[str]) -> Detection:
    return Detection(root=root, libc=None, version=None, arch=None, machine=None, loader=None,
                     loader_resolved=None, program=None, archive=None,
                     archive_note="undecided: " + reason, evidence=_unique([*evidence, reason]),
                     undecided_reason=reason)


def _conclude(root: Path, loader: _Loader, arch_elf: ElfInfo, arch_source: PurePosixPath,
              program: PurePosixPath | None, evidence: list[str],
              kernel_machine: str | None) -> Detection:
    assert loader.libc is not None
    evidence += [f"{loader.shown()}: {n}" for n in loader.notes]
    version = loader.version
    if loader.libc == "glibc" and version is None:
        version, line = _glibc_version_from_libc(root, loader)
        if line:
            evidence.append(line)
        if version is None:
            for p in loader.chain:
                m = _GLIBC_FILE_VERSION.match(p.name)
                if m:
                    version = m.group(1)
                    evidence.append(f"glibc version {version} from the file name {p}")
                    break
    if loader.libc == "musl":
        apk = _apk_musl_version(root)
        if apk is not None:
            evidence.append(f"{APK_INSTALLED}: P:musl V:{apk}")
            upstream = upstream_version(apk)
            if version is None:
                version = upstream
            elif compare(version, upstream) != 0:
                evidence.append(f"the loader says {version}, the apk database {upstream}")
    ans = _arch_from_elf(arch_elf, arch_source)
    evidence += ans.notes
    if loader.elf is not None and arch_elf.path != loader.elf.path and (
        loader.elf.machine != arch_elf.machine or loader.elf.elf_class != arch_elf.elf_class
    ):
        evidence.append(f"the loader itself is {_elf_words(loader.elf)}: it does not match")
    if ans.arch is not None and loader.libc == "musl":
        m = _MUSL_LOADER_NAME.match(loader.path.name)
        if m and m.group(1) != ans.arch.musl_arch:
            evidence.append(f"loader name says musl arch {m.group(1)!r}, "
                            f"expected {ans.arch.musl_arch!r} for {ans.arch.alpine}")
    if kernel_machine:
        evidence.append(f"kernel reports {kernel_machine} (uname; not used for the userland "
                        "architecture)")
    present = _find_loaders(root)
    evidence += _other_loaders(loader, present)

    archive: str | None = None
    note: str | None = None
    if ans.arch is None:
        note = ans.no_arch_reason
    elif loader.libc == "musl":
        archive = archive_glob(ans.arch)
    else:
        note = ("glibc system: musl-pbs archives are for musl systems; a glibc build for "
                f"{ans.arch.alpine} fits (e.g. python-build-standalone's *-linux-gnu* ones)")
        if any(o.libc == "musl" and o.path == ans.arch.loader for o in present):
            note += (f"; {archive_glob(ans.arch)} would also find its loader "
                     f"{ans.arch.loader} here, but that is not the system's libc")
    resolved = loader.resolved
    return Detection(
        root=root, libc=loader.libc, version=version,
        arch=ans.arch.alpine if ans.arch is not None else None, machine=ans.machine,
        loader=str(loader.path), loader_resolved=str(resolved) if resolved else None,
        program=str(program) if program is not None else None,
        archive=archive, archive_note=note, evidence=_unique(evidence),
    )


def _decide_by_programs(root: Path, programs: list[_Program], evidence: list[str],
                        kernel_machine: str | None) -> Detection | None:
    """Rules 1 and 2: the first program whose interpreter is a present, known loader."""
    tried: dict[str, _Loader] = {}
    chosen: tuple[_Program, _Loader] | None = None
    for prog in programs:
        interp = prog.interpreter
        assert interp is not None
        if interp not in tried:
            tried[interp] = _loader(root, PurePosixPath(interp))
        loader = tried[interp]
        if chosen is None and loader.host is not None and loader.libc is not None:
            chosen = (prog, loader)
        elif chosen is not None and interp != chosen[0].interpreter:
            evidence.append(f"{prog.path} uses another interpreter, {interp} "
                            f"({loader.libc or 'unknown'}); {chosen[0].path} wins")
    for interp, loader in tried.items():
        if chosen is None or interp != chosen[0].interpreter:
            evidence += [f"{loader.shown()}: {n}" for n in loader.notes]
    if chosen is None:
        return None
    prog, loader = chosen
    assert prog.elf is not None
    assert prog.host is not None
    return _conclude(root, loader, prog.elf, _in_root(root, prog.host), prog.path, evidence,
                     kernel_machine)


def detect(root: Path, *, kernel_machine: str | None = None) -> Detection:
    """Detect the libc, its version and the userland architecture of the tree at ``root``.

    ``kernel_machine`` (``uname -m`` of the running system) is only reported, never used.
    """
    root = Path(os.path.abspath(root))
    evidence: list[str] = []

    # Rule 1: well-known programs.
    known = [_program(root, PurePosixPath(p)) for p in WELL_KNOWN_PROGRAMS]
    evidence += [p.describe() for p in known]
    dynamic = [p for p in known if p.interpreter]
    if dynamic:
        found = _decide_by_programs(root, dynamic, evidence, kernel_machine)
        if found is not None:
            return found

    # Rule 2: any dynamically linked program in the usual places.
    scanned, elves, static = _scan_programs(root)
    dirs = ", ".join(SCAN_DIRS)
    if scanned:
        counts = Counter(p.interpreter for p in scanned)
        shown = ", ".join(f"{i} ({n})" for i, n in counts.most_common())
        evidence.append(f"scanned {dirs}: {_count(len(scanned), 'dynamically linked program')}"
                        f", interpreters: {shown}")
        ordered = sorted(scanned, key=lambda p: -counts[p.interpreter])
        found = _decide_by_programs(root, ordered, evidence, kernel_machine)
        if found is not None:
            return found
        return _undecided(root, "the interpreters that programs name are missing from the "
                                "tree or are neither musl nor glibc loaders", evidence)
    static += sum(1 for p in known if p.elf is not None and not p.interpreter)
    evidence.append(f"scanned {dirs}: {_count(elves, 'ELF file')}, none dynamically linked")

    # Rule 3: no dynamically linked program at all; a lone loader family decides.
    loaders = _find_loaders(root)
    families = {(ld.libc, ld.elf.machine if ld.elf else None,
                 ld.elf.elf_class if ld.elf else None) for ld in loaders}
    if not loaders:
        what = ("no ELF interpreter found; static binaries only" if static
                else "no ELF interpreter found and no ELF programs at all")
        return _undecided(root, what, evidence)
    listed = ", ".join(f"{ld.shown()} ({ld.libc})" for ld in loaders)
    if len(families) > 1:
        return _undecided(root, f"no dynamically linked program, and loaders of several "
                                f"kinds are present: {listed}", evidence)
    lone = loaders[0]
    if lone.elf is None:
        return _undecided(root, f"{lone.shown()} is not a readable ELF file", evidence)
    evidence.append(f"no dynamically linked program found; the loaders present are all "
                    f"{lone.libc}: {listed}; a dynamically linked program would use them")
    return _conclude(root, lone, lone.elf, lone.resolved or lone.path, None, evidence,
                     kernel_machine)
