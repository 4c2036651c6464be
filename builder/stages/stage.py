"""stage: from the exported root, exactly what the interpreter needs.

The staged tree is ``<out>/python/``: ``bin/``, ``include/``, ``lib/python3.X/``, libpython
and the shared-library closure of the interpreter and every extension module in ``lib/``.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from builder.config import Recipe
from builder.errors import StageError, UnsafeElfError
from builder.lowlevel.boundedio import CAP_MANIFEST
from builder.lowlevel.elf import is_elf
from builder.lowlevel.jsonio import read_json_object, write_json
from builder.lowlevel.links import detach, link_or_copy
from builder.lowlevel.rootfs import resolve_in_root
from builder.platforms import Arch
from builder.progress import Reporter
from builder.stages.acquire import Acquired
from builder.stages.closure import compute_closure, system_search_dirs

TOP = "python"
STAGE_FACTS = "stage.json"
# Programs of the python3 packages kept in bin/ (globs on the file name).
BIN_PATTERNS = ("python*", "pydoc3*", "2to3*")
ALWAYS_PRUNE = ("lib/python*/EXTERNALLY-MANAGED",)
# Script libraries that a bundled shared library reads at run time, found next to it in the
# export and staged in lib/ (name templates filled with its version): Tcl looks for init.tcl
# in <executable>/../lib/tclX.Y (after TCL_LIBRARY and its compiled-in /usr/lib/tclX.Y) and
# its modules in tclX/ beside it; Tk looks for tk.tcl in tkX.Y beside Tcl's library.
# (library name, required directory, optional directories)
SCRIPT_LIBRARIES = (
    (re.compile(r"libtcl(\d+)\.(\d+)\.so"), "tcl{0}.{1}", ("tcl{0}",)),
    (re.compile(r"libtk(\d+)\.(\d+)\.so"), "tk{0}.{1}", ()),
)


# -- selection ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Staged:
    directory: Path  # holds python/ and stage.json
    bundled: dict[str, str]  # library name in lib/ -> in-root path it came from
    origins: dict[str, str]  # archive-relative path -> in-root path, for every ELF kept

    @property
    def tree(self) -> Path:
        return self.directory / TOP

    def save(self) -> None:
        data = {"bundled": self.bundled, "origins": self.origins}
        write_json(self.directory / STAGE_FACTS, data)

    @classmethod
    def load(cls, directory: Path) -> Staged:
        """What :meth:`save` wrote (capped; anything else is a StageError saying to rerun)."""
        path = directory / STAGE_FACTS
        data = read_json_object(path, cap=CAP_MANIFEST, what="stage's facts", error=StageError)
        bundled, origins = _names_to_paths(data.get("bundled")), _names_to_paths(
            data.get("origins"))
        if bundled is None or origins is None:
            raise StageError(f"{path} is not what this musl-pbs writes (bundled and origins "
                             "must map names to paths)", hint="run `musl-pbs build` again")
        return cls(directory, bundled, origins)


def _names_to_paths(value: object) -> dict[str, str] | None:
    if not isinstance(value, dict):
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return None
    return dict(value)


def _inside(path: Path, root: Path, *, follow: bool) -> bool:
    """Does ``path`` lie inside ``root``? Its directories are resolved, and its last part
    too when ``follow`` (a file or tree read through it, not a link copied as a link)."""
    if path.name in ("", ".", ".."):
        return False
    real = Path(os.path.realpath(path)) if follow else Path(
        os.path.realpath(path.parent), path.name)
    return real.is_relative_to(os.path.realpath(root))


def _check_copy(src: Path, src_root: Path, dst: Path, dst_root: Path) -> None:
    for path, root, follow in ((src, src_root, not src.is_symlink()), (dst, dst_root, False)):
        if not _inside(path, root, follow=follow):
            raise UnsafeElfError(
                f"refusing to copy {src} to {dst}: {path} is not inside {root}",
                hint="the exported filesystem (or the facts its python3 printed) "
                "names a path outside the tree; build from another image",
            )


def _copy_entry(src_root: Path, src: Path, dst_root: Path, dst: Path) -> None:
    """Stage one file (a hard link: :mod:`builder.lowlevel.links`) or symlink (symlinks
    stay symlinks, relative since extraction),
    both ends checked to lie inside their roots."""
    _check_copy(src, src_root, dst, dst_root)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    else:
        link_or_copy(src, dst)


def _copy_tree(src_root: Path, src: Path, dst_root: Path, dst: Path) -> None:
    """Stage a directory, its files hard-linked (symlinks inside it stay symlinks; those
    leaving are dropped later)."""
    if src.is_symlink():
        src = Path(os.path.realpath(src))
    _check_copy(src, src_root, dst, dst_root)
    shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True, copy_function=link_or_copy)


def _drop_dangling_links(tree: Path) -> None:
    """Remove links that leave ``tree`` or dangle (e.g. python3-config without -dev)."""
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in filenames + dirnames:
            p = Path(dirpath, name)
            if not p.is_symlink():
                continue
            target = (p.parent / os.readlink(p)).resolve()
            if target.is_relative_to(tree.resolve()) and target.exists():
                continue
            p.unlink()


def _prune(tree: Path, patterns: tuple[str, ...]) -> list[str]:
    if not patterns:  # (an empty expression would match every path)
        return []
    removed = []
    # fnmatchcase against each pattern, as one expression
    matches = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)).match
    for rel in sorted(_walk_rel(tree), key=lambda r: (r.count("/"), r)):
        if not matches(rel):
            continue
        p = tree / rel
        if not os.path.lexists(p):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
        removed.append(rel)
    return removed


def _walk_rel(tree: Path) -> Iterator[str]:
    """Every path under ``tree``, relative to it ("a/b": the host's separator is "/")."""
    top = str(tree)
    for dirpath, dirnames, filenames in os.walk(top):
        lead = "" if dirpath == top else dirpath[len(top) + 1:] + "/"
        for name in dirnames + filenames:
            yield lead + name


def _in_root(root: Path, path: str, what: str) -> Path:
    host = resolve_in_root(root, path)
    if host is None:
        raise StageError(f"the exported filesystem has no {what} at {path}")
    return host


def _stage_script_libraries(root: Path, tree: Path,
                            libraries: dict[str, tuple[PurePosixPath, Path]]) -> list[str]:
    """Stage the script directories of bundled libraries (:data:`SCRIPT_LIBRARIES`) from
    the directory each library was found in; return them as lib/<name>."""
    staged = []
    for name, (in_root, _host) in sorted(libraries.items()):
        for pattern, required, optional in SCRIPT_LIBRARIES:
            m = pattern.fullmatch(name)
            if m is None:
                continue
            for template in (required, *optional):
                dirname = template.format(*m.groups())
                where = in_root.parent / dirname
                src = resolve_in_root(root, str(where))
                if src is None or not src.is_dir():
                    if template == required:
                        raise StageError(
                            f"{name} is bundled but its script library {where} is not in "
                            "the exported filesystem",
                            hint="the package that installs it is incomplete; check the "
                            "image's Tcl/Tk packages")
                    continue
                _copy_tree(root, src, tree, tree / "lib" / dirname)
                staged.append(f"lib/{dirname}")
    return staged


def stage(
    acquired: Acquired, recipe: Recipe, arch: Arch, out_dir: Path, reporter: Reporter
) -> Staged:
    """Copy from ``acquired.rootfs`` exactly what the distribution needs."""
    facts = acquired.python
    if out_dir.exists():
        shutil.rmtree(out_dir)
    root = acquired.rootfs
    if not root.is_dir():
        raise StageError(f"{acquired.directory} holds no exported root ({root.name}/)",
                         hint="run the acquire stage (`musl-pbs build`) again")
    tree = out_dir / TOP
    reporter.stage("stage", f"selecting from {root}")

    prefix = PurePosixPath(facts.prefix)
    minor = facts.minor
    origins: dict[str, str] = {}

    # bin/: the interpreter and the python3 package's programs.
    exe = PurePosixPath(facts.executable)
    exe_host = _in_root(root, str(exe), "interpreter")
    exe_name = f"python{minor}"
    _copy_entry(root, exe_host, tree, tree / "bin" / exe_name)
    origins[f"bin/{exe_name}"] = str(exe)
    bin_host = resolve_in_root(root, prefix / "bin")
    if bin_host is not None:
        for entry in sorted(bin_host.iterdir()):
            if entry.name == exe_name or not any(
                fnmatch.fnmatchcase(entry.name, p) for p in BIN_PATTERNS
            ):
                continue
            if entry.is_symlink() or not is_elf(entry):
                _copy_entry(root, entry, tree, tree / "bin" / entry.name)
    for link in ("python3", "python"):
        p = tree / "bin" / link
        if p.is_symlink() or p.exists():
            p.unlink()
        os.symlink(exe_name, p)

    # lib/python3.X, include/python3.X
    stdlib_host = _in_root(root, facts.stdlib, "standard library")
    _copy_tree(root, stdlib_host, tree, tree / "lib" / f"python{minor}")
    include_host = resolve_in_root(root, facts.include)
    if include_host is not None and include_host.is_dir():
        _copy_tree(root, include_host, tree, tree / "include" / include_host.name)

    # libpython (+ its dev link, the abi3 stub) and pkg-config files.
    libdir = PurePosixPath(facts.libdir or str(prefix / "lib"))
    libdir_host = _in_root(root, str(libdir), "library directory")
    for entry in sorted(libdir_host.glob("libpython3*.so*")):
        _copy_entry(root, entry, tree, tree / "lib" / entry.name)
        if not entry.is_symlink():
            origins[f"lib/{entry.name}"] = str(libdir / entry.name)
    pc_host = libdir_host / "pkgconfig"
    if pc_host.is_dir():
        for entry in sorted(pc_host.glob("python*.pc")):
            _copy_entry(root, entry, tree, tree / "lib" / "pkgconfig" / entry.name)
    if facts.instsoname and not (tree / "lib" / facts.instsoname).exists():
        src = _in_root(root, str(libdir / facts.instsoname), "libpython")
        _copy_entry(root, src, tree, tree / "lib" / facts.instsoname)
        origins[f"lib/{facts.instsoname}"] = str(libdir / facts.instsoname)

    _drop_dangling_links(tree)
    removed = _prune(tree, (*ALWAYS_PRUNE, *recipe.prune))
    reporter.detail(f"pruned {len(removed)} paths ({', '.join(removed[:4])}...)")

    # The closure of everything ELF we kept, resolved in the export.
    stdlib_rel = f"lib/python{minor}"
    objects: dict[PurePosixPath, Path] = {}
    for rel in sorted(_walk_rel(tree)):
        host = tree / rel
        if not is_elf(host):
            continue
        if rel not in origins:
            origins[rel] = rel.replace(stdlib_rel, facts.stdlib.rstrip("/"), 1)
        objects[PurePosixPath(origins[rel])] = host
    provided = {p.name for p in (tree / "lib").glob("libpython3*.so*")}
    closure = compute_closure(
        root, objects, system_search_dirs(root, arch), provided=provided
    )
    if closure.missing:
        lines = [f"  {name} (needed by {req})" for name, req in closure.missing]
        raise StageError(
            "shared libraries needed by the interpreter are not in the exported filesystem:\n"
            + "\n".join(lines),
            hint="add the packages that provide them to the recipe's packages",
        )
    bundled: dict[str, str] = {}
    for name, (in_root, host) in sorted(closure.libraries.items()):
        _copy_entry(root, host, tree, tree / "lib" / name)
        bundled[name] = str(in_root)
        origins[f"lib/{name}"] = str(in_root)
    reporter.detail(f"bundled {len(bundled)} libraries: {', '.join(sorted(bundled))}")
    scripts = _stage_script_libraries(root, tree, closure.libraries)
    if scripts:
        reporter.detail(f"script libraries: {', '.join(scripts)}")
    for rel in _walk_rel(tree):
        p = tree / rel
        if not p.is_symlink():
            mode = p.stat().st_mode
            if mode & (stat.S_ISUID | stat.S_ISGID):
                if p.is_file():
                    detach(p)
                os.chmod(p, stat.S_IMODE(mode) & ~(stat.S_ISUID | stat.S_ISGID))
    staged = Staged(out_dir, bundled, origins)
    staged.save()
    return staged
