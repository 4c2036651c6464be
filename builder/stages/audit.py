"""Static audit of an unpacked archive: ELF facts and text files, nothing executed."""

from __future__ import annotations

import ast
import json
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from builder.errors import MuslPbsError, VerifyFailedError
from builder.lowlevel.boundedio import MIB, read_capped_text
from builder.lowlevel.elf import (
    ARM_FP_ARCH_NAMES,
    ARM_THUMB2,
    ElfInfo,
    arm_attributes,
    arm_cpu_arch_name,
    is_elf,
    read_elf,
)
from builder.platforms import Arch, is_glibc_only_name, is_musl_libc_name
from builder.stages.build_details import BUILD_DETAILS, build_details_problems
from builder.stages.closure import Requester, find_library
from builder.stages.launcher import configured_libpython
from builder.stages.relocate import PLACEHOLDER, SYSTEM_VARS, prefix_pattern

# Every rule of the audit, in report order (Finding.check is one of these).
AUDIT_RULES = ("elf-machine", "elf-interpreter", "elf-segments", "elf-arm-level", "rpath",
               "needed",
               "needed-path", "glibc", "symlink", "prefix", "build-details", "shebang",
               "externally-managed", "layout", "launcher")


def rules_for(arch: Arch) -> tuple[str, ...]:
    """The rules that apply to ``arch`` (the ARM code level only to the ARM ports)."""
    return tuple(r for r in AUDIT_RULES if r != "elf-arm-level" or arch.arm_level is not None)


@dataclass(frozen=True)
class Finding:
    check: str
    path: str  # relative to the archive's top directory's parent (python/...)
    message: str


_BUILD_PREFIX = prefix_pattern("/usr")
CAP_TEXT = 16 * MIB  # a text file audited (sysconfigdata is ~50 KiB)
# sysconfig values that say where things are installed: relocate puts them at PLACEHOLDER.
_INSTALL_DIRS = ("prefix", "exec_prefix", "BINDIR", "LIBDIR", "INCLUDEDIR", "INCLUDEPY",
                 "CONFINCLUDEPY", "LIBDEST", "BINLIBDEST", "DESTSHARED", "LIBPL", "LIBPC",
                 "datarootdir")


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
        if arch.arm_level is not None and info.machine == "EM_ARM":
            findings += arm_level_findings(rel, path, arch)
        for entry in info.rpath + info.runpath:
            if "$" in entry.replace("${ORIGIN}", "").replace("$ORIGIN", ""):
                findings.append(Finding("rpath", rel, f"RPATH/RUNPATH entry {entry!r} holds a "
                                        "$ token other than $ORIGIN: musl then ignores the "
                                        "whole RPATH"))
            elif not entry.startswith(("$ORIGIN", "${ORIGIN}")):
                findings.append(Finding("rpath", rel, f"RPATH/RUNPATH entry {entry!r} is not "
                                        "$ORIGIN-relative"))
        findings += _glibc_findings(rel, info)
        me = Requester(_in_root(tree, path), info)
        # dlopen counts the main program as a requester: its rpath is searched too.
        chain = [me] + [r for r in interpreters if r.path != me.path]
        for name in info.needed:
            if "/" in name:
                findings.append(Finding("needed-path", rel, f"DT_NEEDED {name!r} is a path, "
                                        "not a library name: the loader opens exactly that "
                                        "file, wherever the archive is"))
                continue
            if is_glibc_only_name(name) or is_musl_libc_name(name):
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


def arm_level_findings(rel: str, path: Path, arch: Arch) -> list[Finding]:
    """The ARM code level the file's build attributes declare, against the arch's
    (platforms.ArmLevel): armhf and armv7 share the loader, only these tell them apart."""
    level = arch.arm_level
    if level is None:
        return []
    attrs = arm_attributes(path)
    what = f"{arch.alpine} ({level.name})"
    if attrs is None or attrs.cpu_arch is None:
        if not level.attributes_required:
            return []
        missing = "no ARM build attributes (.ARM.attributes)" if attrs is None else (
            "no Tag_CPU_arch in its ARM build attributes")
        return [Finding("elf-arm-level", rel, f"{missing}: its code level cannot be shown "
                        f"to fit {what}")]
    out = []
    if attrs.cpu_arch not in level.cpu_arch:
        allowed = "/".join(arm_cpu_arch_name(v) for v in sorted(level.cpu_arch)[-2:])
        out.append(Finding("elf-arm-level", rel,
                           f"Tag_CPU_arch {arm_cpu_arch_name(attrs.cpu_arch)}: not code for "
                           f"{what}, whose files say {allowed}"))
    if not level.thumb2 and attrs.thumb_isa == ARM_THUMB2:
        out.append(Finding("elf-arm-level", rel, f"Tag_THUMB_ISA_use Thumb-2: {what} CPUs "
                           "have no Thumb-2"))
    if level.max_fp_arch is not None and (attrs.fp_arch or 0) > level.max_fp_arch:
        fp = ARM_FP_ARCH_NAMES.get(attrs.fp_arch or 0, str(attrs.fp_arch))
        out.append(Finding("elf-arm-level", rel, f"Tag_FP_arch {fp}: above "
                           f"{ARM_FP_ARCH_NAMES[level.max_fp_arch]}, the floating point of "
                           f"{what} CPUs"))
    if not level.simd and attrs.simd_arch:
        out.append(Finding("elf-arm-level", rel, f"Tag_Advanced_SIMD_arch {attrs.simd_arch}: "
                           f"NEON code, which {what} CPUs lack"))
    return out


def _glibc_findings(rel: str, info: ElfInfo) -> list[Finding]:
    """glibc's sonames and symbol versions: such an object was linked against glibc."""
    out = [Finding("glibc", rel, f"needs {name}, a glibc library: this object was "
                   "linked against glibc, not musl")
           for name in info.needed if is_glibc_only_name(name)]
    versions = sorted({v for _lib, v in info.version_needs if v.startswith("GLIBC_")})
    if versions:
        out.append(Finding("glibc", rel, "needs glibc symbol versions "
                           f"{', '.join(versions[:4])}{' ...' if len(versions) > 4 else ''} "
                           "(.gnu.version_r): musl has none of them"))
    return out


def audit_links(tree: Path) -> list[Finding]:
    """Every symbolic link stays inside python/ (judged by its target, not followed)."""
    root = tree.parent
    findings: list[Finding] = []
    for dirpath, dirs, files in os.walk(tree):
        for name in sorted(dirs + files):
            p = Path(dirpath, name)
            if not p.is_symlink():
                continue
            rel = p.relative_to(root).as_posix()
            target = os.readlink(p)
            lands = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
            if target.startswith("/") or not (lands == tree.name
                                              or lands.startswith(tree.name + "/")):
                findings.append(Finding("symlink", rel, f"points to {target!r}, outside "
                                        f"{tree.name}/: it breaks (or leaks) once unpacked"))
    return findings


def _read(p: Path) -> str | None:
    try:
        return read_capped_text(p, cap=CAP_TEXT, what="a text file", error=VerifyFailedError,
                                follow_symlinks=False)
    except MuslPbsError:
        return None


def _sysconfig_findings(rel: str, text: str) -> list[Finding]:
    """The relocatable form relocate writes: prefixes at the placeholder, and the hook."""
    data = None
    try:
        for node in ast.parse(text).body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)
                    and node.targets[0].id == "build_time_vars"):
                data = ast.literal_eval(node.value)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        data = None
    if not isinstance(data, dict):
        return [Finding("prefix", rel, "no build_time_vars dictionary that can be read")]
    out = []
    for key in _INSTALL_DIRS:
        value = data.get(key)
        if isinstance(value, str) and value != PLACEHOLDER and not value.startswith(
            PLACEHOLDER + "/"
        ):
            out.append(Finding("prefix", rel, f"{key} is {value[:80]!r}: a build prefix, "
                               f"not the relocatable {PLACEHOLDER}"))
    if "_musl_pbs_relocate" not in text:
        out.append(Finding("prefix", rel, "lacks the relocation code relocate appends"))
    return out


_MAX_KEYS = 12  # keys named one by one per file; the rest counted


def _sysconfig_json_findings(rel: str, text: str) -> list[Finding]:
    """``_sysconfig_vars_*.json`` (3.14): the same relocatable values as the sysconfig data
    (install directories at the placeholder, no value naming /usr), each key named."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        return [Finding("prefix", rel, "not a JSON object of sysconfig variables")]
    bad = [(key, value) for key, value in data.items()
           if isinstance(value, str) and key not in SYSTEM_VARS and _BUILD_PREFIX.search(value)]
    bad.sort(key=lambda kv: kv[0] not in _INSTALL_DIRS)  # the install directories first
    out = [Finding("prefix", rel, f"{key} names /usr: {value[:80]!r} (relocate writes "
                   f"{PLACEHOLDER}, as in the sysconfig data)")
           for key, value in bad[:_MAX_KEYS]]
    if len(bad) > _MAX_KEYS:
        out.append(Finding("prefix", rel, f"and {len(bad) - _MAX_KEYS} more keys name /usr: "
                           + ", ".join(k for k, _ in bad[_MAX_KEYS:])[:300]))
    for key in _INSTALL_DIRS:
        value = data.get(key)
        if (isinstance(value, str) and not _BUILD_PREFIX.search(value)
                and value != PLACEHOLDER and not value.startswith(PLACEHOLDER + "/")):
            out.append(Finding("prefix", rel, f"{key} is {value[:80]!r}: not the relocatable "
                               f"{PLACEHOLDER}"))
    return out


def _makefile_findings(rel: str, text: str) -> list[Finding]:
    out = []
    for m in re.finditer(r"^(prefix|exec_prefix)[ \t]*:?=[ \t]*(.*)$", text, re.M):
        key, value = m.group(1), m.group(2).strip()
        if value.startswith("/"):
            out.append(Finding("prefix", rel, f"{key} is {value[:80]!r}: a build prefix, "
                               "not relative to the Makefile"))
    return out


def _shebang_findings(tree: Path) -> list[Finding]:
    """Scripts that are not Python must name a system interpreter, never a build path."""
    root = tree.parent
    findings = []
    for dirpath, _dirs, files in os.walk(tree):
        for name in sorted(files):
            p = Path(dirpath, name)
            if name.endswith((".py", ".pyc")) or p.is_symlink() or not p.is_file():
                continue
            try:
                with p.open("rb") as f:
                    head = f.read(256).split(b"\n", 1)[0]
            except OSError:
                continue
            words = [w.decode(errors="replace") for w in head[2:].split()]
            if not head.startswith(b"#!") or not words:
                continue
            interp = words[0]
            program = words[1] if interp == "/usr/bin/env" and len(words) > 1 else interp
            if posixpath.basename(program).startswith("python"):
                continue  # Python scripts: relocate gives them a trampoline (bin/ rule)
            if interp.startswith("/bin/") or interp == "/usr/bin/env":
                continue
            findings.append(Finding("shebang", p.relative_to(root).as_posix(),
                                    f"shebang names {interp!r}: a build path, not a system "
                                    "interpreter (/bin/sh)"))
    return findings


def audit_text(tree: Path, minor: str) -> list[Finding]:
    """sysconfig data, pkg-config files, python-config and shebangs must not name /usr."""
    root = tree.parent
    findings: list[Finding] = []
    stdlib = tree / "lib" / f"python{minor}"
    candidates = [*stdlib.glob("_sysconfigdata_*.py"), *(tree / "lib" / "pkgconfig").glob("*.pc")]
    for p in candidates:
        text = None if p.is_symlink() else _read(p)
        if text is None:
            continue
        rel = p.relative_to(root).as_posix()
        for n, line in enumerate(text.splitlines(), 1):
            if _BUILD_PREFIX.search(line) and "TZPATH" not in line:
                findings.append(Finding("prefix", rel,
                                        f"line {n} names /usr: {line.strip()[:100]}"))
                break
        if p.suffix == ".py":
            findings += _sysconfig_findings(rel, text)
        else:
            findings += _makefile_findings(rel, text)  # prefix= of a .pc file: same rule
    for sj in sorted(stdlib.glob("_sysconfig_vars_*.json")):
        text = None if sj.is_symlink() else _read(sj)
        if text is not None:
            findings += _sysconfig_json_findings(sj.relative_to(root).as_posix(), text)
    details = stdlib / BUILD_DETAILS
    if details.exists() or details.is_symlink():
        rel = details.relative_to(root).as_posix()
        if details.is_symlink() or not details.is_file():
            findings.append(Finding("build-details", rel, "not a regular file"))
        else:
            findings += [Finding("build-details", rel, problem)
                         for problem in build_details_problems(details, tree, _BUILD_PREFIX)]
    for mk in sorted(stdlib.glob("config-*/Makefile")):
        text = None if mk.is_symlink() else _read(mk)
        if text is not None:
            findings += _makefile_findings(mk.relative_to(root).as_posix(), text)
    bindir = tree / "bin"
    for p in sorted(bindir.iterdir()) if bindir.is_dir() else []:
        if p.is_symlink() or not p.is_file() or is_elf(p):
            continue
        text = _read(p)
        if text is None:
            continue
        head = text[:256].split("\n", 1)[0]
        if head.startswith("#!") and "python" in head and head.split()[0] != "#!/bin/sh":
            findings.append(Finding("shebang", p.relative_to(root).as_posix(),
                                    f"shebang {head} is not relocatable"))
        if head.startswith("#!/bin/sh") and _BUILD_PREFIX.search(text):
            findings.append(Finding("prefix", p.relative_to(root).as_posix(), "names /usr"))
    findings += _shebang_findings(tree)
    if (stdlib / "EXTERNALLY-MANAGED").exists():
        findings.append(Finding("externally-managed",
                                (stdlib / "EXTERNALLY-MANAGED").relative_to(root).as_posix(),
                                "present: pip would refuse to install"))
    for exe in ("python3", f"python{minor}"):
        if not (bindir / exe).exists():
            findings.append(Finding("layout", f"{tree.name}/bin/{exe}", "missing"))
    return findings


def audit_launcher(tree: Path, minor: str, stack_wanted: int = 0) -> list[Finding]:
    """``bin/python<minor>`` must be the launcher (builder/stages/launcher.py), set up to
    load a libpython present in lib/, with a thread stack of at least ``stack_wanted``
    (what the interpreter it replaced asked for, from the build info): a program linked
    against libpython breaks copied (venv --copies) and without /proc."""
    exe = tree / "bin" / f"python{minor}"
    if not is_elf(exe):
        return []  # missing: the layout rule says so
    rel = exe.relative_to(tree.parent).as_posix()
    info = read_elf(exe)
    if info is None:
        return [Finding("launcher", rel, "not a readable ELF file")]
    libs = [n for n in info.needed if n.startswith("libpython")]
    if libs:
        return [Finding("launcher", rel, f"links {libs[0]} (found through $ORIGIN/../lib): "
                        "a copy of it (python -m venv --copies, venv.create()) exits 127, and "
                        "without /proc musl loads a system libpython; not the musl-pbs "
                        "launcher")]
    try:
        with exe.open("rb") as f:
            data = f.read(CAP_TEXT)
    except OSError as e:
        return [Finding("launcher", rel, f"unreadable: {e.strerror}")]
    name = configured_libpython(data)
    if name is None:
        return []  # links no libpython and is no launcher: a self-contained interpreter
    out = []
    lib = tree / "lib" / name
    if not name:
        out.append(Finding("launcher", rel, "the launcher was never given its libpython"))
    elif "/" in name or not lib.is_file() or not os.path.realpath(lib).startswith(
            os.path.realpath(tree) + os.sep):
        out.append(Finding("launcher", rel, f"loads lib/{name}, which is not in the archive"))
    have = info.stack_size or 0
    if have < stack_wanted:
        out.append(Finding("launcher", rel, f"PT_GNU_STACK asks for a {have:#x}-byte thread "
                           f"stack, below the {stack_wanted:#x} of the interpreter it "
                           "replaced (musl takes the default thread stack from the main "
                           "program only)"))
    return out
