"""acquire: Alpine container -> apk add -> Python facts + package list -> exported rootfs.

The export streams from ``docker export`` straight into :func:`builder.lowlevel.extract.extract`
(one pass, no tar on disk): ``<out>/rootfs/`` is the container's filesystem minus what can
never reach an archive. Every fact is then read from that tree through
:func:`builder.lowlevel.rootfs.resolve_in_root`, as the loader would see it (``/lib`` may be a
link to ``usr/lib``).
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from builder.config import Recipe
from builder.errors import ContainerCommandError, StageError
from builder.lowlevel import apk
from builder.lowlevel.apkdb import ApkPackage, parse_installed
from builder.lowlevel.apkversion import upstream_version
from builder.lowlevel.container import Container, docker_client, ensure_image
from builder.lowlevel.extract import Extracted, Skip, extract, normalise_name
from builder.lowlevel.jsonio import read_json_object, write_json
from builder.lowlevel.rootfs import APK_DB_CAP, SMALL_FILE, read_in_root
from builder.lowlevel.tarreader import Member
from builder.lowlevel.tarstream import ROOTFS_LIMITS, ByteStream
from builder.platforms import Arch
from builder.progress import Reporter

APK_DB = PurePosixPath("/lib/apk/db/installed")
ALPINE_RELEASE = PurePosixPath("/etc/alpine-release")
OS_RELEASE = PurePosixPath("/etc/os-release")
ROOTFS_NAME = "rootfs"
# Never read by a build: kernel and runtime trees, caches, logs, manual and info pages,
# apk's keys, and other programs' data (X11's locale tables, which libX11 beside Tk brings:
# 255 of the test ground's 2,500 entries; time zones, message catalogues, terminal
# descriptions, fonts, icons: read on the user's machine, never from the archive).
# (Nothing a library, python3, the apk database or the release files could live in, nor
# where a bundled library's script directory could lead: those are under lib/.)
EXPORT_SKIP = (
    "dev", "proc", "sys", "run", "tmp", "var/tmp", "var/cache", "var/log",
    "usr/share/man", "usr/share/doc", "usr/share/info", "usr/share/gtk-doc",
    "usr/share/apk", "root/.cache",
    "usr/share/X11", "usr/share/zoneinfo", "usr/share/locale", "usr/share/i18n",
    "usr/share/terminfo", "usr/share/fonts", "usr/share/icons",
)
_SKIP_UNDER = tuple(f"{s}/" for s in EXPORT_SKIP)
FACTS_NAME = "acquire.json"
_MARK = "@@musl-pbs-facts@@"

# Run by the image's own python3 after installation: facts the later stages rely on.
_PROBE = f"""
import json, os, platform, sys, sysconfig
v = sysconfig.get_config_var
print({_MARK!r} + json.dumps({{
    "version": platform.python_version(),
    "minor": "%d.%d" % sys.version_info[:2],
    "executable": os.path.realpath(sys.executable),
    "prefix": sys.prefix,
    "stdlib": sysconfig.get_path("stdlib"),
    "include": sysconfig.get_path("include"),
    "libdir": v("LIBDIR"),
    "ldlibrary": v("LDLIBRARY"),
    "instsoname": v("INSTSONAME"),
    "soabi": v("SOABI"),
    "ext_suffix": v("EXT_SUFFIX"),
    "multiarch": getattr(sys.implementation, "_multiarch", None),
    "builtin_modules": sorted(sys.builtin_module_names),
}}))
"""


@dataclass(frozen=True)
class PythonFacts:
    version: str
    minor: str
    executable: str
    prefix: str
    stdlib: str
    include: str
    libdir: str
    ldlibrary: str
    instsoname: str
    soabi: str
    ext_suffix: str
    multiarch: str | None
    builtin_modules: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PythonFacts:
        data = dict(data)
        data["builtin_modules"] = tuple(data.get("builtin_modules", ()))
        for key in ("libdir", "ldlibrary", "instsoname", "soabi", "ext_suffix"):
            data[key] = data.get(key) or ""
        return cls(**data)


@dataclass(frozen=True)
class Acquired:
    """What acquire leaves in its directory: ``rootfs/`` and ``acquire.json``."""

    directory: Path
    arch: str
    image: str
    image_id: str
    image_digests: tuple[str, ...]  # registry digests (repo@sha256:...), none for local images
    platform: str
    alpine_release: str
    musl_version: str
    python: PythonFacts
    packages: tuple[ApkPackage, ...]
    installed: tuple[str, ...]  # packages named on the apk command lines that succeeded
    missing_optional: tuple[str, ...] = field(default=())
    apk_version: str = ""  # the image's apk-tools (`apk --version`): 2.x or 3.x

    @property
    def rootfs(self) -> Path:
        return self.directory / ROOTFS_NAME

    def save(self) -> None:
        data = asdict(self)
        data["directory"] = None
        data["packages"] = [
            {**p.to_json(), "files": [str(f) for f in p.files]} for p in self.packages
        ]
        write_json(self.directory / FACTS_NAME, data)

    @classmethod
    def load(cls, directory: Path) -> Acquired:
        """What :meth:`save` wrote (capped; anything else is a StageError saying to rerun)."""
        path = directory / FACTS_NAME
        if not path.exists():
            raise StageError(
                f"{directory} holds no {FACTS_NAME}",
                hint="run `musl-pbs build` (or its acquire stage) first",
            )
        data = read_json_object(path, cap=APK_DB_CAP, what="acquire's facts",
                                error=StageError)
        try:
            packages = tuple(
                ApkPackage(**{**p, "files": tuple(PurePosixPath(f) for f in p.get("files", ()))})
                for p in data.pop("packages")
            )
            data.pop("directory", None)
            return cls(
                directory=directory,
                python=PythonFacts.from_json(data.pop("python")),
                packages=packages,
                installed=tuple(data.pop("installed")),
                image_digests=tuple(data.pop("image_digests", ())),
                missing_optional=tuple(data.pop("missing_optional", ())),
                **data,
            )
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise StageError(f"{path} is not what this musl-pbs writes ({type(e).__name__}: "
                             f"{e})", hint="run `musl-pbs build` again: it acquires afresh"
                             ) from None


def rootfs_transform(member: Member) -> Member | None:
    """What an exported root filesystem needs before the generic extraction rules.

    Names lose their leading ``/`` or ``./``; absolute symlinks become relative ones with
    the same meaning inside the root (``/bin/sh -> /bin/busybox`` is ``busybox``); links
    that would still leave the tree are refused by the extraction.
    """
    name = normalise_name(member.name.lstrip("/"))
    if not name or name == ".":
        return None
    # Changed in place (the extraction reads each member once; a copy of each cost more
    # than a tenth of the export's reading).
    if member.issym() and member.linkname.startswith("/"):
        # normpath of an absolute path stops ``..`` at ``/``, as the kernel does.
        target = posixpath.normpath(member.linkname).lstrip("/") or "."
        member.linkname = posixpath.relpath(target, posixpath.dirname(name) or ".")
    elif member.islnk():
        member.linkname = member.linkname.lstrip("/")
    member.name = name
    return member


def export_transform(member: Member) -> Member | None:
    """``rootfs_transform`` for ``docker export``, without busybox's applet links.

    Alpine's busybox is reached through some 300 links (``bin/ls -> /bin/busybox``...), a
    seventh of an export's members: none can reach an archive (python3 and its programs are
    never busybox), and each costs a file-system operation to create."""
    if member.issym() and posixpath.basename(member.linkname) == "busybox":
        return None
    return rootfs_transform(member)


def skip_in_export(name: str) -> bool:
    """Is ``name`` (normalised, relative) under a tree no build reads?"""
    return name.startswith(_SKIP_UNDER) or name in EXPORT_SKIP


def _glob_regex(pattern: str) -> str:
    """fnmatch's regex for ``pattern`` (``*`` crossing ``/``, as stage's prune matches),
    without its end anchor."""
    body = fnmatch.translate(pattern)
    if not body.endswith("\\Z"):  # pragma: no cover - fnmatch's format since 3.x
        raise AssertionError(f"unexpected fnmatch.translate output {body!r}")
    return body[: -len("\\Z")]


def recipe_skip(recipe: Recipe, facts: PythonFacts) -> Skip:
    """``skip_in_export``, plus every member under the standard library that the recipe's
    ``prune`` removes from the staged tree: it can never reach an archive.

    stage copies the standard library (``facts.stdlib`` in the export) whole to
    ``lib/python{minor}/`` and removes each path that matches a prune glob, a directory
    with everything under it. So the member ``<stdlib>/REL`` is dropped here when a leading
    part of ``lib/python{minor}/REL`` that ends at a ``/`` (or the whole) matches a glob.
    Nothing else of the export is dropped for the recipe: stage and the closure read the
    interpreter, ``bin/``, headers, libraries and the loader's configuration from it. (A
    standard library reached through a symlink in the export has other member names and
    is written whole; stage's own ``ALWAYS_PRUNE``, one small file, is not applied.)"""
    stdlib = normalise_name(facts.stdlib.strip("/")).rstrip("/")
    if not stdlib or not recipe.prune:
        return skip_in_export
    lead, top = stdlib + "/", f"lib/python{facts.minor}/"
    pruned = re.compile(
        "(?:" + "|".join(_glob_regex(g) for g in recipe.prune) + ")(?:/|\\Z)")

    def skip(name: str) -> bool:
        # match, not fullmatch: a leading part of the path, then "/" or the end.
        if name.startswith(lead) and pruned.match(top + name[len(lead):]):
            return True
        return skip_in_export(name)

    return skip


def extract_export(stream: ByteStream, dest: Path, *, skip: Skip = skip_in_export,
                   label: str = "the export") -> Extracted:
    """The one way an export is unpacked: ``stream`` (a ``docker export`` tar) into the new
    directory ``dest``. (``bench/extract_vs_tar.py`` makes the same call.)"""
    return extract(stream, dest, ROOTFS_LIMITS, transform=export_transform, skip=skip,
                   label=label)


def export_root(container: Container, dest: Path, skip: Skip = skip_in_export) -> None:
    """Stream ``docker export`` of ``container`` into the new directory ``dest``."""
    if dest.exists():
        shutil.rmtree(dest)
    with container.export_stream() as stream:
        extract_export(stream, dest, skip=skip, label=f"the export of {container.image}")


def python_facts(c: Container, packages: tuple[str, ...]) -> PythonFacts:
    """What the container's python3 says of itself (a typed error when it does not run)."""
    probe = c.call(["python3", "-c", _PROBE])
    facts_line = next(
        (ln for ln in probe.output.splitlines() if ln.startswith(_MARK)), None
    )
    if probe.exit_code != 0 or facts_line is None:
        raise ContainerCommandError(
            f"python3 did not run after installation (exit {probe.exit_code}):\n"
            f"{probe.tail()}",
            hint=f"the packages {', '.join(packages)} must provide python3",
        )
    return PythonFacts.from_json(json.loads(facts_line[len(_MARK):]))


def release_of(root: Path) -> str:
    """``/etc/alpine-release``, else ``VERSION_ID`` of ``/etc/os-release``, else empty."""
    release = read_in_root(root, ALPINE_RELEASE, cap=SMALL_FILE)
    if release is not None and release.strip():
        return release.strip()
    for line in (read_in_root(root, OS_RELEASE, cap=SMALL_FILE) or "").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "VERSION_ID":
            return value.strip().strip("'\"")
    return ""


def installed_packages(root: Path) -> list[ApkPackage]:
    """The records of the apk database of ``root`` (none when it has no database)."""
    return parse_installed(read_in_root(root, APK_DB, cap=APK_DB_CAP) or "")


def musl_version_of(packages: list[ApkPackage] | tuple[ApkPackage, ...]) -> str:
    for p in packages:
        if p.name == "musl":
            return upstream_version(p.version)
    return ""


def acquire(
    *,
    arch: Arch,
    image: str,
    recipe: Recipe,
    out_dir: Path,
    reporter: Reporter,
    image_hint: str = "",
    remove_later: bool = False,
) -> Acquired:
    """Install the recipe's packages in a fresh container of ``image`` and export it.
    ``remove_later``: the container is removed in the background once exported (the caller
    calls :func:`builder.lowlevel.container.finish_removals`)."""
    client = docker_client()
    ensure_image(client, image, arch.docker_platform, hint=image_hint)
    out_dir.mkdir(parents=True, exist_ok=True)
    image_obj = client.images.get(image)
    image_id = str(image_obj.id)
    image_digests = tuple(str(d) for d in image_obj.attrs.get("RepoDigests") or ())
    reporter.stage("acquire", f"starting {image} ({arch.docker_platform})")
    with Container(client, image, platform=arch.docker_platform, purpose="acquire",
                   environment=arch.container_env, remove_later=remove_later) as c:
        apk_version = apk.version_of(c)
        reporter.detail(f"apk-tools {apk_version or '(version not reported)'}")
        everything = (*recipe.packages, *recipe.optional_packages)
        reporter.stage("acquire", " ".join(recipe.install_command(everything)))
        added, optional, missing = apk.add_with_optional(
            c, lambda pkgs: recipe.install_command(tuple(pkgs)), recipe.packages,
            recipe.optional_packages, on_output=reporter.output)
        if not added.ok:
            raise ContainerCommandError(
                f"{' '.join(added.command)} failed in {image} (exit {added.exit_code}; not "
                f"installed: {', '.join(added.missing)}):\n{apk.error_lines(added.output)}",
                hint="apk's message is above; check the package names in "
                f"{recipe.source.name} and that the image can reach its repositories",
            )
        if added.offline_but_installed:
            reporter.detail(f"apk could not reach a repository (exit {added.exit_code}), "
                            f"but {', '.join(recipe.packages)} are installed: going on")
        installed = [*recipe.packages, *optional]
        for pkg in missing:
            reporter.detail(f"optional package {pkg} is not available; going on without it")
        facts = python_facts(c, recipe.packages)
        reporter.stage("acquire", f"exporting the filesystem (Python {facts.version})")
        export_root(c, out_dir / ROOTFS_NAME, skip=recipe_skip(recipe, facts))
    root = out_dir / ROOTFS_NAME
    packages = installed_packages(root)
    if not packages:
        raise StageError(
            f"the exported filesystem of {image} has no package records in {APK_DB}",
            hint="build from an Alpine image (or an Alpine-like one that keeps apk's database)",
        )
    release = release_of(root)
    result = Acquired(
        directory=out_dir,
        arch=arch.alpine,
        image=image,
        image_id=image_id,
        image_digests=image_digests,
        platform=arch.docker_platform,
        alpine_release=release,
        musl_version=musl_version_of(packages),
        python=facts,
        packages=tuple(packages),
        installed=tuple(installed),
        missing_optional=tuple(missing),
        apk_version=apk_version,
    )
    result.save()
    return result
