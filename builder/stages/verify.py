"""verify: static audit on the host, then runtime checks in a clean musl container.

The archive is unpacked into a random directory of a fresh container with no network. By
default the container is the archive's Alpine release as users run it (``alpine:TAG``:
musl, busybox, zlib, OpenSSL, nothing of Python); with ``musl_only`` it is the stricter
musl-only base derived from that image (loader + busybox, nothing else), so that a library
the system happens to ship cannot hide one the archive lacks.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from builder.errors import (
    InputTooLargeError,
    MalformedArchiveError,
    MissingToolError,
    NotOurArchiveError,
    StageError,
    UnsafeArchiveError,
)
from builder.extensions import package_imports
from builder.lowlevel.apkversion import compare
from builder.lowlevel.boundedio import CAP_MANIFEST
from builder.lowlevel.container import Container, docker_client, engine_errors, ensure_image
from builder.lowlevel.crossext import IMPORT_CHECK, PROJECT, ZIG_HINT, build_probe_wheel
from builder.lowlevel.extchoice import choose_for_archive
from builder.lowlevel.extract import extract
from builder.lowlevel.images import derive_base_image
from builder.lowlevel.jsonio import expect_object, parse_json, read_json_object
from builder.lowlevel.muslfloor import imported_from_libc, lacking, load_table, loader_symbols
from builder.lowlevel.tarstream import ARCHIVE_LIMITS, OPEN_ERRORS, engine_stream, open_tar
from builder.lowlevel.wheelhouse import (
    EXTENSION_IMPORTS,
    EXTENSION_PROJECTS,
    ensure_wheelhouse,
    pip_wheel,
    wheelhouse_extension,
)
from builder.naming import ArchiveName, parse_archive_name
from builder.platforms import Arch, get_arch
from builder.progress import Reporter
from builder.stages.audit import (
    Finding,
    audit_elves,
    audit_launcher,
    audit_links,
    audit_text,
    rules_for,
)
from builder.stages.pack import BUILDINFO, sha256_file


@dataclass(frozen=True)
class CheckResult:
    check: str
    ok: bool
    detail: str = ""
    path: str = ""
    # "error" fails verification, "warning" is reported only, "skipped": a check that could
    # not be done here (ok is False so that it is never counted as passed), reported only
    level: str = "error"

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "ok": self.ok, "detail": self.detail,
                "path": self.path, "level": self.level}


@dataclass
class VerifyReport:
    archive: Path
    arch: str
    python_version: str
    results: list[CheckResult] = field(default_factory=list)
    regrtest: dict[str, Any] | None = None  # --regrtest's table (stages/regrtest.py)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.ok and r.level == "error"]

    @property
    def warnings(self) -> list[CheckResult]:
        return [r for r in self.results if not r.ok and r.level != "error"]

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {
            "archive": str(self.archive),
            "arch": self.arch,
            "python_version": self.python_version,
            "ok": self.ok,
            "results": [r.to_json() for r in self.results],
            **({"regrtest": self.regrtest} if self.regrtest is not None else {}),
        }


@dataclass(frozen=True)
class ArchiveIdentity:
    name: ArchiveName | None
    info: dict[str, Any]  # python/musl-pbs.json
    manifest: dict[str, Any] | None  # the JSON manifest beside the archive, if any
    arch: Arch
    version: str
    minor: str


def tar_for_put(archive: Path) -> Iterator[bytes]:
    """``archive`` as :meth:`Container.put_tar` takes it, streamed: a .tar.gz as it is, a
    .tar.zst decompressed on the way, never whole in memory (:func:`engine_stream`)."""
    return engine_stream(archive)


def identify(archive: Path) -> ArchiveIdentity:
    """Is this one of ours? Read its name, its build info and the manifest beside it."""
    if not archive.is_file():
        raise NotOurArchiveError(f"{archive}: no such file")
    name = parse_archive_name(archive.name)
    info: dict[str, Any] | None = None
    tops: set[str] = set()
    inner = f"{archive}:python/{BUILDINFO}"
    try:
        with open_tar(archive, ARCHIVE_LIMITS, archive.name) as tar:
            for member in tar:
                tops.add(member.name.split("/", 1)[0])
                if member.name == f"python/{BUILDINFO}" and member.isfile():
                    if member.size > CAP_MANIFEST:
                        raise InputTooLargeError(f"{inner}: {member.size} bytes, over its "
                                                 f"cap of {CAP_MANIFEST} bytes")
                    f = tar.extractfile(member)
                    raw = f.read(CAP_MANIFEST + 1) if f else b""
                    info = expect_object(parse_json(raw, inner, "the build info",
                                                    NotOurArchiveError),
                                         inner, "the build info", NotOurArchiveError)
    except OPEN_ERRORS as e:
        raise NotOurArchiveError(f"{archive}: not a readable tar archive ({e})") from None
    except MalformedArchiveError as e:
        raise NotOurArchiveError(f"{archive}: not a readable tar archive ({e.message})") from None
    if tops != {"python"} or info is None:
        raise NotOurArchiveError(
            f"{archive}: not a musl-pbs archive (top-level entries: "
            f"{', '.join(sorted(tops)[:5]) or 'none'}; python/{BUILDINFO} "
            f"{'found' if info else 'missing'})"
        )
    manifest = None
    stem = archive.name.removesuffix(".tar.gz").removesuffix(".tar.zst")
    beside = archive.with_name(stem + ".json")
    if beside.exists():
        manifest = read_json_object(beside, cap=CAP_MANIFEST, what="a manifest",
                                    error=NotOurArchiveError)
    arch = get_arch(str(info.get("arch") or (name.arch.alpine if name else "")))
    version = str(info.get("python_version") or (name.version if name else ""))
    return ArchiveIdentity(name, info, manifest, arch, version, ".".join(version.split(".")[:2]))


def _checksum_result(archive: Path, ident: ArchiveIdentity) -> CheckResult | None:
    if ident.manifest is None:
        return None
    suffix = "tar.zst" if archive.name.endswith(".tar.zst") else "tar.gz"
    entry = ident.manifest.get("archives")
    entry = entry.get(suffix) if isinstance(entry, dict) else None
    expected = entry.get("sha256") if isinstance(entry, dict) else None
    if not isinstance(expected, str) or not expected:
        return CheckResult("checksum", False, f"its manifest records no archives.{suffix}"
                           ".sha256", archive.name)
    actual = sha256_file(archive)
    return CheckResult("checksum", actual == expected,
                       "" if actual == expected else
                       f"sha256 {actual} differs from the manifest's {expected}",
                       archive.name)


def static_audit(
    archive: Path, ident: ArchiveIdentity, reporter: Reporter
) -> tuple[list[CheckResult], frozenset[str]]:
    """The static checks, and the symbols the archive takes from musl."""
    reporter.stage("verify", "static audit (ELF headers, RPATHs, DT_NEEDED, text files)")
    results = []
    with tempfile.TemporaryDirectory(prefix="musl-pbs-audit-") as tmp:
        try:
            extract(archive, Path(tmp, "tree"), ARCHIVE_LIMITS, label=archive.name)
        except UnsafeArchiveError as e:
            return [CheckResult("archive-safety", False, e.message, archive.name)], frozenset()
        tree = Path(tmp, "tree", "python")
        findings: list[Finding] = (audit_elves(tree, ident.arch) + audit_links(tree)
                                   + audit_text(tree, ident.minor)
                                   + audit_launcher(tree, ident.minor, _stack_wanted(ident)))
        needed = imported_from_libc(tree)
    by_check: dict[str, list[Finding]] = {}
    for f in findings:
        by_check.setdefault(f.check, []).append(f)
    for check in rules_for(ident.arch):
        got = by_check.get(check, [])
        if not got:
            results.append(CheckResult(f"static:{check}", True))
        for f in got:
            results.append(CheckResult(f"static:{check}", False, f.message, f.path))
    results.append(recorded_floor_check(ident, needed))
    return results, needed


def _stack_wanted(ident: ArchiveIdentity) -> int:
    """The thread stack the replaced interpreter asked for (the build info records it)."""
    interp = ident.info.get("interpreter")
    value = interp.get("original_thread_stack_size") if isinstance(interp, dict) else None
    return value if isinstance(value, int) and value > 0 else 0


def recorded_floor_check(ident: ArchiveIdentity, needed: frozenset[str]) -> CheckResult:
    """The musl floor the archive records must not be below what its symbols prove:
    install trusts the record where it cannot read the system's loader."""
    recorded = ident.info.get("musl_version_needed")
    if not isinstance(recorded, str) or not recorded:
        return CheckResult("static:musl-floor", False, "the archive records no "
                           "musl_version_needed", level="warning")
    floor_info = ident.info.get("musl_floor")
    built_on = floor_info.get("built_on") if isinstance(floor_info, dict) else None
    proven = load_table().floor(ident.arch.alpine, needed, str(built_on or recorded))
    if compare(recorded, proven.version) < 0:
        return CheckResult("static:musl-floor", False,
                           f"records musl >= {recorded}, but its symbols need "
                           f"{proven.version} ({', '.join(proven.set_by) or 'unknown'})")
    return CheckResult("static:musl-floor", True, f"musl >= {recorded}")


def musl_floor_check(c: Container, ident: ArchiveIdentity, needed: frozenset[str]) -> CheckResult:
    """Does the image's own loader export every symbol the archive takes from musl?"""
    loader = ident.arch.loader
    floor = str(ident.info.get("musl_version_needed") or "?")
    data = c.read_file(loader)
    if data is None:
        return CheckResult("musl-floor", False, f"{c.image} has no {loader}", str(loader))
    with tempfile.TemporaryDirectory(prefix="musl-pbs-loader-") as tmp:
        path = Path(tmp, loader.name)
        path.write_bytes(data)
        syms = loader_symbols(path)
    if syms is None:
        return CheckResult("musl-floor", False, f"{loader} of {c.image} has no symbol table",
                           str(loader))
    missing = lacking(needed, *syms)
    if missing:
        return CheckResult("musl-floor", False,
                           f"the musl of {c.image} lacks {', '.join(missing)}: the archive "
                           f"needs musl >= {floor}; refused before unpacking (it would fail "
                           "with 'symbol not found')", str(loader))
    return CheckResult("musl-floor", True,
                       f"all {len(needed)} symbols the archive takes from musl resolve "
                       f"(floor {floor})", str(loader))


def release_image(ident: ArchiveIdentity) -> str:
    """``alpine:TAG`` of the Alpine release the archive was built from (``alpine:3.20``)."""
    release = str(ident.info.get("alpine_release") or "")
    return "alpine:" + (".".join(release.split(".")[:2]) or "latest")


def runtime_image(
    ident: ArchiveIdentity, image: str | None, musl_only: bool, reporter: Reporter
) -> str:
    """The image the runtime checks run in: ``image`` (default: the release's Alpine image)
    as it is, or with ``musl_only`` the musl-only base derived from it."""
    source = image or release_image(ident)
    if musl_only:
        return derive_base_image(source, ident.arch, reporter)
    ensure_image(
        docker_client(), source, ident.arch.docker_platform,
        hint=f"pull it, or pass --image with an image of that Alpine release for "
        f"{ident.arch.alpine} (the test ground prints one: `tests/fixtures/build-images "
        f"--arch {ident.arch.alpine}`, second line)",
    )
    return source


CROSS_CHECK = "cross-extension"


def cross_probe(archive: Path, ident: ArchiveIdentity, dest: Path,
                reporter: Reporter, why: str = "") -> Path | CheckResult:
    """Where PyPI has no extension wheel for the arch (or none that loads: ``why``): the
    probe extension cross-built against the archive's own headers
    (builder.lowlevel.crossext), as a wheel in ``dest``; or the result that says why there
    is none (skipped without zig, failed otherwise)."""
    arch, minor = ident.arch, ident.minor
    none_on_pypi = why or (f"PyPI publishes no musllinux wheel of "
                           f"{', '.join(EXTENSION_PROJECTS)} for CPython {minor} on "
                           f"{arch.wheel_arch}")
    keep = ("python", "python/lib", f"python/lib/python{minor}")
    wanted = ("python/include/", f"python/lib/python{minor}/_sysconfigdata_")
    reporter.stage("verify", f"{none_on_pypi}: cross-building {PROJECT} with zig cc for "
                   f"{arch.cross_target} {arch.cross_cpu or ''} against the archive's headers")
    try:
        with tempfile.TemporaryDirectory(prefix="musl-pbs-crossext-") as tmp:
            extract(archive, Path(tmp, "tree"), ARCHIVE_LIMITS, label=archive.name,
                    skip=lambda n: n not in keep and not n.startswith(wanted))
            return build_probe_wheel(Path(tmp, "tree", "python"), arch, minor, dest)
    except MissingToolError as e:
        return CheckResult(CROSS_CHECK, False, f"not done: {none_on_pypi}, and the "
                           f"cross-built extension needs zig ({e.message}): {ZIG_HINT}",
                           level="skipped")
    except StageError as e:
        return CheckResult(CROSS_CHECK, False, f"cross-building {PROJECT} against the "
                           f"archive's headers failed: {e.message}")


def runtime_imports(info: dict[str, Any]) -> list[dict[str, str]]:
    """The packages verify imports for the extensions the recipe requires or expects
    (``compression.zstd`` for ``_zstd``), each at that list's level: an error for a
    required extension, a warning for an expected one (an error anyway when the extension
    is in the archive: then the package must import)."""
    out = []
    for key, level in (("required_extensions", "error"), ("expected_extensions", "warning")):
        names = info.get(key)
        if isinstance(names, list):
            out += [dict(i, level=level)
                    for i in package_imports(n for n in names if isinstance(n, str))]
    return out


def _run_checks(
    archive: Path, ident: ArchiveIdentity, image: str, wheelhouse: Path, reporter: Reporter,
    needed: frozenset[str],
    thread_stack_size: int | None = None,
    probe: Path | CheckResult | None = None,
) -> list[CheckResult]:
    """Run the checks in ``image``, which :func:`runtime_image` made sure is present."""
    client = docker_client()
    results: list[CheckResult] = []
    base = PurePosixPath("/opt") / f"unpacked-{uuid.uuid4().hex[:10]}"
    prefix = base / "python"
    python = prefix / "bin" / "python3"
    pip = pip_wheel(wheelhouse)
    config = {"required": ident.info.get("required_extensions", []),
              "expected": ident.info.get("expected_extensions", []),
              "imports": runtime_imports(ident.info),
              "thread_stack_size": thread_stack_size,
              "default_thread_stack": _stack_wanted(ident)}
    script = resources.files("builder").joinpath("data/runtime_checks.py").read_bytes()
    env = {"LD_LIBRARY_PATH": ""}
    with Container(client, image, platform=ident.arch.docker_platform, network=False,
                   purpose="verify", environment=ident.arch.container_env) as c:
        reporter.stage("verify", f"musl floor: the symbols the archive needs, in {image}")
        results.append(musl_floor_check(c, ident, needed))
        if not results[-1].ok:
            return results
        reporter.stage("verify", f"unpacking into {base} of a {image} container (no network)")
        c.put_tar(base, tar_for_put(archive))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("runtime_checks.py")
            info.size = len(script)
            tar.addfile(info, io.BytesIO(script))
            tar.add(str(wheelhouse), arcname="wheelhouse")
            if isinstance(probe, Path):
                tar.add(str(probe), arcname=f"wheelhouse/{probe.name}")
        c.put_tar(PurePosixPath("/opt/musl-pbs-verify"), buf.getvalue())

        reporter.stage("verify", "interpreter checks (prefix, zlib, ctypes, thread stack, "
                       "venv --copies, argv[0], no /proc, every extension)")
        r = c.call([str(python), "/opt/musl-pbs-verify/runtime_checks.py", str(prefix),
                    json.dumps(config)], env=env)
        try:
            parsed = json.loads(r.output.strip().splitlines()[-1])
            results += [CheckResult(**x) for x in parsed]
        except (ValueError, IndexError, TypeError):
            results.append(CheckResult("interpreter", False,
                                       f"exit {r.exit_code}: {r.tail(15)}",
                                       f"python/bin/python{ident.minor}"))
            return results

        project = wheelhouse_extension(wheelhouse)
        if project is None and isinstance(probe, Path):
            project = PROJECT
        reporter.stage("verify", f"python -m venv, then pip installs {project} offline"
                       if project else "python -m venv (no extension wheel for musllinux "
                       f"{ident.arch.wheel_arch})")
        venv = PurePosixPath("/tmp/musl-pbs-venv")
        steps = [
            ("venv", [str(python), "-m", "venv", "--without-pip", str(venv)]),
            ("venv-python", [str(venv / "bin/python"), "-c",
                             "import sys; assert sys.prefix != sys.base_prefix, sys.prefix; "
                             "print(sys.prefix)"]),
        ]
        if project is None:
            results.append(probe if isinstance(probe, CheckResult) else CheckResult(
                "extension-wheel", False,
                f"not done: PyPI publishes no musllinux wheel of {', '.join(EXTENSION_PROJECTS)}"
                f" for CPython {ident.minor} on {ident.arch.wheel_arch}; no third-party C "
                "extension was installed and imported (lib-dynload's own were)",
                level="skipped"))
        else:
            # PyPI's wheel is checked as the project; the probe as the cross-built extension.
            check = CROSS_CHECK if project == PROJECT else project
            steps += [
                (f"pip-install-{project}", [
                    str(venv / "bin/python"), f"/opt/musl-pbs-verify/wheelhouse/{pip.name}/pip",
                    "install", "--no-index", "--no-cache-dir", "--disable-pip-version-check",
                    "--find-links", "/opt/musl-pbs-verify/wheelhouse", project]),
                (check, [str(venv / "bin/python"), "-c",
                         IMPORT_CHECK if project == PROJECT else EXTENSION_IMPORTS[project]]),
            ]
        for name, argv in steps:
            r = c.call(argv, env=env)
            ok = r.exit_code == 0
            results.append(CheckResult(name, ok, r.tail(1 if ok else 12)))
            if not ok:
                break
    return results


def verify_archive(
    archive: Path,
    *,
    image: str | None,
    reporter: Reporter,
    wheelhouse: Path | None = None,
    runtime: bool = True,
    musl_only: bool = False,
    thread_stack_size: int | None = None,
) -> VerifyReport:
    """Audit ``archive``, then run it in ``image`` (default: its release's ``alpine:TAG``;
    ``musl_only``: the musl-only base derived from that image).

    ``thread_stack_size`` is for showing that the thread-stack check works: the probe then
    calls ``threading.stack_size()`` with it (131072, musl's default, must fail).
    """
    ident = identify(archive)
    report = VerifyReport(archive, ident.arch.alpine, ident.version)
    checksum = _checksum_result(archive, ident)
    if checksum is not None:
        report.results.append(checksum)
    static, needed = static_audit(archive, ident, reporter)
    report.results += static
    if runtime:
        wh = wheelhouse or ensure_wheelhouse(ident.minor, ident.arch)
        where = runtime_image(ident, image, musl_only, reporter)
        with tempfile.TemporaryDirectory(prefix="musl-pbs-probe-") as tmp:
            # only a wheel whose compiled modules the archive can load (extchoice)
            choice = choose_for_archive(archive, ident.info, ident.minor, ident.arch, wh,
                                        download=wheelhouse is None)
            report.results += [CheckResult("extension-wheel-skipped", False, s.reason,
                                           s.wheel, level="skipped") for s in choice.skipped]
            house = choice.wheelhouse(wh, Path(tmp, "wheelhouse"))
            probe = (cross_probe(archive, ident, Path(tmp), reporter, choice.why_none())
                     if choice.wheel is None else None)
            with engine_errors(f"verify in {where}"):
                report.results += _run_checks(archive, ident, where, house, reporter,
                                              needed, thread_stack_size, probe)
    return report
