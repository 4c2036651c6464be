"""`musl-pbs build`: one target, several (`--target`), or the whole matrix (`--all`)."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.config import MATRIX_ORDER, RECIPES_ORDER, Matrix, find_config, help_text
from builder.errors import BuildsFailedError, UsageError, VerifyFailedError
from builder.lowlevel.outdir import check_writable_dir
from builder.plan import Target, expand, select
from builder.platforms import get_arch
from builder.release.eol import eol_problems

if TYPE_CHECKING:
    from builder.multi import Built, LogReporter
    from builder.naming import ArchiveName
    from builder.progress import Reporter

# The pipeline (the Docker SDK, ELF and compression libraries) is imported by the functions
# that use it, not here: every command's parser is made at each start, and `musl-pbs
# detect` or `--help` should not pay for what only a build uses.


def add_parser(sub: Any) -> None:
    files = find_config()
    p: argparse.ArgumentParser = sub.add_parser(
        "build", help="build relocatable archives from Alpine's python3"
    )
    which = p.add_argument_group("what to build")
    which.add_argument("--arch", help="Alpine architecture, e.g. x86_64, aarch64")
    which.add_argument("--alpine", metavar="TAG", help="Alpine release (default: the matrix's)")
    which.add_argument("--target", action="append", metavar="TAG:ARCH",
                       help="a target of the matrix (repeatable)")
    which.add_argument("--all", action="store_true", help="every target of the matrix")
    p.add_argument("--image", action="append", metavar="[TARGET=]IMAGE",
                   help="build from this image instead of the matrix's (TARGET is TAG:ARCH "
                   "or ARCH; repeatable)")
    p.add_argument("--python", metavar="X.Y", help="recipe to install with (default: the "
                   "release's Python in the matrix; the installed version decides in the end)")
    p.add_argument("--recipes", type=Path, metavar="DIR",
                   help=help_text("directory of pythonX.Y.yaml recipes (a minor without one "
                                  "is built with a default recipe, and the manifest says "
                                  "recipe: default)", RECIPES_ORDER, files.recipes,
                                  files.recipes_from))
    p.add_argument("--jobs", "-j", type=int, default=1, help="targets built at once (1)")
    p.add_argument("--verify", action="store_true", help="verify each archive after building")
    p.add_argument("--verify-image", action="append", metavar="[TARGET=]IMAGE",
                   help="image for --verify (default: alpine:TAG, as users run it)")
    p.add_argument("--verify-musl-only", action="store_true", help="--verify in the musl-only "
                   "base derived from that image (loader and busybox only)")
    p.add_argument("--out", type=Path, default=Path("dist"), help="output directory (dist/)")
    p.add_argument("--work", type=Path, default=Path("build"), help="work directory (build/)")
    p.add_argument("--base-url", help="where dist/ will be served from, for the URLs in "
                   "dist/download-metadata.json (default: its file:// URL)")
    p.add_argument("--matrix", type=Path, metavar="FILE",
                   help=help_text("matrix.yaml to use", MATRIX_ORDER, files.matrix,
                                  files.matrix_from))
    p.add_argument("--json", action="store_true", help="print the manifest(s) as JSON (with "
                   "the warnings, e.g. a release past its end of life, under 'warnings')")
    p.add_argument("--today", type=date.fromisoformat, default=None, metavar="YYYY-MM-DD",
                   help="the date end-of-life dates are compared with (default: today)")
    p.add_argument("-q", "--quiet", action="store_true", help="do not stream command output")
    p.set_defaults(run=run)


def _image_for(specs: list[str] | None, target: Target) -> str | None:
    """``[TARGET=]IMAGE`` values: the most specific one that names ``target`` wins."""
    default = None
    by_key: dict[str, str] = {}
    for spec in specs or []:
        key, sep, image = spec.partition("=")
        if not sep:
            default = spec
            continue
        tag, _, arch = key.rpartition(":")
        by_key[f"{tag}:{get_arch(arch).alpine}" if tag else get_arch(arch).alpine] = image
    return by_key.get(target.name) or by_key.get(target.arch.alpine) or default


def _targets(args: argparse.Namespace, matrix: Matrix) -> list[Target]:
    if args.all or args.target:
        if args.arch or args.alpine:
            raise UsageError("--arch/--alpine name one target; do not mix them with "
                             "--all or --target")
        return expand(matrix) if args.all else select(matrix, args.target)
    if not args.arch:
        raise UsageError("say what to build", hint="--arch ARCH, --target TAG:ARCH or --all")
    arch = get_arch(args.arch)
    tag = args.alpine or matrix.default_release
    release = matrix.release(tag)
    return [Target(tag, arch, release.python if release else "",
                   matrix.image_for(tag, arch.alpine))]


def _build_one(args: argparse.Namespace, matrix: Matrix, recipes: Path, target: Target,
               reporter: Reporter, work: Path,
               claim: Callable[[ArchiveName], None] | None = None,
               threads: int | None = None) -> dict[str, Any]:
    from builder.build import build_target

    result = build_target(
        arch=target.arch,
        release_tag=target.release,
        image=_image_for(args.image, target),
        python=args.python or target.python or None,
        matrix=matrix,
        out_dir=args.out,
        work_dir=work,
        reporter=reporter,
        base_url=args.base_url,
        claim=claim,
        threads=threads,
        recipes_dir=recipes,
    )
    if args.verify:
        from builder.stages.verify import verify_archive

        report = verify_archive(result.packed.gz, image=_image_for(args.verify_image, target),
                                reporter=reporter, musl_only=args.verify_musl_only)
        if not report.ok:
            raise VerifyFailedError(
                f"{result.packed.gz.name}: " + "; ".join(
                    f"{r.check} {r.path}: {r.detail}" for r in report.failures))
    return {"paths": [str(result.packed.gz), str(result.packed.zst),
                      str(result.packed.manifest)],
            "manifest": result.packed.data, "seconds": result.seconds,
            "timings": result.timings}


def stage_seconds(timings: list[dict[str, Any]]) -> str:
    """``acquire 3.1s, stage 2.0s, ...``: the steps of :class:`StepTimer` summed per stage."""
    per: dict[str, float] = {}
    for t in timings:
        if t["stage"] != "total":
            per[t["stage"]] = per.get(t["stage"], 0.0) + float(t["seconds"])
    return ", ".join(f"{name} {sec:.1f}s" for name, sec in per.items())


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from builder.progress import ConsoleReporter

    files = find_config(args.matrix, args.recipes)
    matrix = files.load_matrix()
    targets = _targets(args, matrix)
    check_writable_dir(args.out, "--out")  # before minutes of work, not after
    check_writable_dir(args.work, "--work")
    err = Console(stderr=True)
    if not args.quiet:
        err.print(files.describe(), highlight=False, soft_wrap=True)
    warnings = [f"{p}: build from a supported release of {matrix.source.name}"
                for p in eol_problems(matrix, [t.release for t in targets],
                                      args.today or date.today())]
    for w in warnings:
        err.print(f"[bold yellow]warning:[/] {w}", highlight=False)
    if len(targets) == 1 and args.jobs <= 1 and not (args.all or args.target):
        target = targets[0]
        done = _build_one(args, matrix, files.recipes, target,
                          ConsoleReporter(verbose=not args.quiet), args.work / target.arch.alpine)
        if args.json:
            shown = dict(done["manifest"], warnings=warnings) if warnings else done["manifest"]
            print(json.dumps(shown, indent=2, sort_keys=True))
        else:
            err.print(f"built in {done['seconds']:.0f}s ({stage_seconds(done['timings'])})",
                      highlight=False)
            print("\n".join(done["paths"]))  # stdout: paths, archive first, for scripts
        return 0

    from builder.multi import Built, Runner, summary
    from builder.stages.pack import zstd_threads

    args.work.mkdir(parents=True, exist_ok=True)
    claims = Path(tempfile.mkdtemp(prefix=".claims-", dir=args.work))
    threads = zstd_threads(min(args.jobs, len(targets)))

    def claim_for(target: Target) -> Callable[[ArchiveName], None]:
        def claim(name: ArchiveName) -> None:
            """Targets build in separate processes: the first to create the file wins."""
            mark = claims / name.stem
            try:
                with mark.open("x") as f:
                    f.write(target.name)
            except FileExistsError:
                other = mark.read_text()
                raise UsageError(
                    f"{target.name} would write {name.gz}, which {other} writes in this run",
                    hint="build these targets into different --out directories",
                ) from None
        return claim

    def job(target: Target, reporter: LogReporter) -> Built:
        done = _build_one(args, matrix, files.recipes, target, reporter,
                          args.work / f"{target.release}-{target.arch.alpine}",
                          claim_for(target), threads)
        return Built(Path(done["paths"][0]),
                     {"manifest": done["manifest"], "timings": done["timings"]})

    try:
        outcomes = Runner(targets, job, args.jobs, args.work / "logs", err).run()
    finally:
        shutil.rmtree(claims, ignore_errors=True)
    err.print(summary(outcomes))
    failed = [o for o in outcomes if o.state != "ok"]
    if args.json:
        print(json.dumps({"targets": [{"target": o.target.name, "state": o.state,
                                       "archive": str(o.archive) if o.archive else None,
                                       "error": o.error, "log": str(o.log),
                                       "seconds": round(o.seconds, 1),
                                       "timings": o.report.get("timings", [])}
                                      for o in outcomes],
                          "manifests": {o.target.name: o.report["manifest"] for o in outcomes
                                        if "manifest" in o.report},
                          "warnings": warnings},
                         indent=2, sort_keys=True))
    else:
        for o in outcomes:
            if o.archive:
                print(o.archive)
    if failed:
        raise BuildsFailedError(f"{len(failed)} of {len(outcomes)} targets failed")
    return 0
