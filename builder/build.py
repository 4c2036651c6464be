"""The build pipeline: acquire -> stage -> relocate -> pack, for one target."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from builder.config import DEFAULT_RECIPES, Matrix, Recipe, find_recipe
from builder.errors import ReleaseInputError
from builder.extensions import extension_suffixes, lacking
from builder.lowlevel.apkdb import ApkPackage
from builder.lowlevel.boundedio import CAP_MANIFEST
from builder.lowlevel.container import engine_errors, finish_removals
from builder.lowlevel.jsonio import read_json, write_json
from builder.lowlevel.muslfloor import imported_from_libc, load_table
from builder.lowlevel.outdir import writing
from builder.lowlevel.patcher import Patchelf
from builder.lowlevel.sysconfigdata import read_build_time_vars
from builder.naming import ArchiveName
from builder.platforms import Arch
from builder.progress import Reporter, StepTimer
from builder.release.sbom import cyclonedx
from builder.release.uvmeta import download_metadata
from builder.stages.acquire import Acquired, acquire
from builder.stages.launcher import LauncherFacts, install_launcher
from builder.stages.pack import Packed, build_info, pack
from builder.stages.relocate import Relocated, relocate
from builder.stages.stage import Staged, stage

DOWNLOAD_METADATA = "download-metadata.json"
TIMINGS = "timings.json"  # in the work directory: seconds per step of the last build
_METADATA_LOCK = threading.Lock()

TEST_GROUND_HINT = (
    "with no registry reachable, build the Alpine-like test image with "
    "`tests/fixtures/build-images --arch {arch}` and pass its first line as --image"
)


@dataclass(frozen=True)
class BuildResult:
    packed: Packed
    acquired: Acquired
    staged: Staged
    relocated: Relocated
    seconds: float
    timings: list[dict[str, str | float]]  # StepTimer.finish(): stage, step, seconds
    launcher: LauncherFacts | None = None


def packages_in_archive(acquired: Acquired, staged: Staged) -> list[ApkPackage]:
    """The apk packages that own a file that ended up in the archive."""
    facts = acquired.python
    kept_dirs = [PurePosixPath(facts.stdlib), PurePosixPath(facts.include)]
    kept_files = {PurePosixPath(p) for p in staged.origins.values()}
    kept_files.add(PurePosixPath(facts.executable))
    out = []
    for pkg in acquired.packages:
        if not pkg.files:
            continue
        if any(f in kept_files or any(f.is_relative_to(d) for d in kept_dirs)
               for f in pkg.files):
            out.append(pkg)
    if out:
        return out
    # A database without file lists: every package installed is a candidate.
    return list(acquired.packages)


def source_date_epoch(acquired: Acquired) -> int:
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env and env.isdigit():
        return int(env)
    for pkg in acquired.packages:
        if pkg.name == "python3" and pkg.build_time:
            return pkg.build_time
    return 0


def choose_install_recipe(python: str | None, release_tag: str, matrix: Matrix,
                          recipes_dir: Path = DEFAULT_RECIPES) -> Recipe:
    if python:
        return find_recipe(python, recipes_dir)
    release = matrix.release(release_tag)
    return find_recipe(release.python if release else "3.12", recipes_dir)


def build_target(
    *,
    arch: Arch,
    release_tag: str,
    image: str | None,
    python: str | None,
    matrix: Matrix,
    out_dir: Path,
    work_dir: Path,
    reporter: Reporter,
    base_url: str | None = None,
    claim: Callable[[ArchiveName], None] | None = None,
    threads: int | None = None,
    recipes_dir: Path = DEFAULT_RECIPES,
) -> BuildResult:
    """Build one target. ``claim`` is called with the archive name before anything is
    written to ``out_dir`` (concurrent builds use it to refuse two targets making the same
    file). ``threads``: compression workers (default: every core)."""
    start = time.monotonic()
    reporter = timer = StepTimer(reporter)
    patcher = Patchelf()  # checked before anything slow starts
    image_ref = image or matrix.image_for(release_tag, arch.alpine)
    try:
        install_recipe = choose_install_recipe(python, release_tag, matrix, recipes_dir)
        with engine_errors(f"acquire from {image_ref}"):
            acquired = acquire(
                arch=arch,
                image=image_ref,
                recipe=install_recipe,
                out_dir=work_dir / "acquire",
                reporter=reporter,
                image_hint=TEST_GROUND_HINT.format(arch=arch.alpine) if image is None else "",
                remove_later=True,  # the engine deletes it while stage and pack run
            )
        recipe = (
            install_recipe
            if install_recipe.python == acquired.python.minor
            else find_recipe(acquired.python.minor, recipes_dir)
        )
        if recipe.default:
            reporter.stage("recipe", f"warning: no recipe for Python {recipe.python} in "
                           f"{recipes_dir}: building with the default recipe (its minor's "
                           "prune patterns, the extension modules every CPython 3.x has)")
        staged = stage(acquired, recipe, arch, work_dir / "stage", reporter)
        prefix = acquired.python.prefix
        relocated = relocate(staged.tree, prefix, acquired.python.minor, patcher, reporter)
        # After relocate's RPATHs: the launcher comes with its own.
        launcher = install_launcher(staged.tree, arch, acquired.python.minor, reporter)
        name = ArchiveName(acquired.python.version, arch)
        if claim is not None:
            claim(name)
        info = manifest_fields(acquired, staged, relocated, recipe, arch, launcher)
        packed = pack(staged.tree, name, out_dir, info, source_date_epoch(acquired), reporter,
                      threads)
        with writing(f"the outputs in {out_dir}"):
            write_sbom(packed, name)
            write_download_metadata(out_dir, base_url)
        timings = timer.finish()
        with writing(f"the timings in {work_dir}"):
            write_json(work_dir / TIMINGS, timings)
    finally:
        finish_removals()
    return BuildResult(packed, acquired, staged, relocated, time.monotonic() - start, timings,
                       launcher)


def manifest_fields(
    acquired: Acquired, staged: Staged, relocated: Relocated, recipe: Recipe, arch: Arch,
    launcher: LauncherFacts | None = None,
) -> dict[str, Any]:
    facts = acquired.python
    floor = load_table().floor(arch.alpine, imported_from_libc(staged.tree),
                               acquired.musl_version)
    ext_dir = staged.tree / "lib" / f"python{facts.minor}" / "lib-dynload"
    extensions = sorted(
        p.name.split(".", 1)[0] for p in ext_dir.glob("*.so")
    ) if ext_dir.is_dir() else []
    return build_info(
        name=ArchiveName(facts.version, arch).stem,
        python_version=facts.version,
        python_minor=facts.minor,
        arch=arch.alpine,
        archive_arch=arch.archive_arch,
        target_triple=arch.target_triple,
        docker_platform=arch.docker_platform,
        libc="musl",
        musl_version_needed=floor.version,
        musl_floor=floor.to_json(),
        musl_loader=str(arch.loader),
        alpine_release=acquired.alpine_release,
        apk_version=acquired.apk_version,
        recipe=recipe.name,
        image=acquired.image,
        image_id=acquired.image_id,
        image_digest=acquired.image_digests[0] if acquired.image_digests else None,
        python_paths={
            "bin": f"bin/python{facts.minor}",
            "stdlib": f"lib/python{facts.minor}",
            "include": f"include/python{facts.minor}",
        },
        soabi=facts.soabi,
        ext_suffix=facts.ext_suffix,
        # importlib.machinery.EXTENSION_SUFFIXES, from the archive's own sysconfig data
        # (verify installs only an extension wheel whose modules carry one of these)
        extension_suffixes=extension_suffixes(
            read_build_time_vars(staged.tree / "lib" / f"python{facts.minor}")
            or {"EXT_SUFFIX": facts.ext_suffix}),
        multiarch=facts.multiarch,
        extension_modules=extensions,
        builtin_modules=list(facts.builtin_modules),
        # compared with a full CPython build of the minor (None: no reference for it)
        stdlib_extensions_lacking=lacking(facts.minor, [*extensions, *facts.builtin_modules]),
        required_extensions=list(recipe.required_extensions),
        expected_extensions=list(recipe.expected_extensions),
        bundled_libraries=staged.bundled,
        patched_elf_files=len(relocated.patched_elves),
        # bin/python3.X: the launcher (builder/stages/launcher.py), or the original program
        interpreter=launcher.to_json() if launcher else {"kind": "program"},
        packages=[p.to_json() for p in packages_in_archive(acquired, staged)],
        missing_optional_packages=list(acquired.missing_optional),
    )


def write_download_metadata(out_dir: Path, base_url: str | None = None) -> Path:
    """uv's download-metadata.json for every archive in ``out_dir`` (file:// by default)."""
    with _METADATA_LOCK:
        manifests = []
        for path in sorted(out_dir.glob("cpython-*-musl.json")):
            data = read_json(path, cap=CAP_MANIFEST, what="a manifest", error=ReleaseInputError)
            if isinstance(data, dict) and "archives" in data:
                manifests.append(data)
        url = base_url or out_dir.resolve().as_uri()
        dest = out_dir / DOWNLOAD_METADATA
        # Unsorted: uv takes the first matching entry, newest first.
        write_json(dest, download_metadata(manifests, url), sort_keys=False)
        return dest


def write_sbom(packed: Packed, name: ArchiveName) -> Path:
    """``<stem>.cdx.json`` beside the archive: a CycloneDX SBOM of what it holds."""
    dest = packed.manifest.with_name(name.sbom)
    write_json(dest, cyclonedx(packed.data))
    return dest
