"""`musl-pbs verify`: static audit + runtime checks in a clean musl container."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from builder.errors import VerifyFailedError
from builder.progress import ConsoleReporter
from builder.stages import regrtest

if TYPE_CHECKING:
    from builder.stages.verify import VerifyReport


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "verify", help="audit an archive and test it in a clean musl container"
    )
    p.add_argument("archive", type=Path, help="cpython-X.Y.Z-linux-ARCH-musl.tar.gz or .tar.zst")
    p.add_argument("--image", help="image to test in (default: alpine:TAG of the archive's "
                   "Alpine release, as users run it)")
    p.add_argument("--musl-only", action="store_true", help="test in the stricter musl-only "
                   "base derived from that image (its loader and busybox, nothing else)")
    p.add_argument("--thread-stack-probe", type=int, metavar="BYTES",
                   help="(testing) run the thread-stack check with threading.stack_size(BYTES) "
                   "instead of the interpreter's default, to see it catch a small stack: "
                   "131072 (musl's default) must fail")
    p.add_argument("--wheelhouse", type=Path, help="directory with pip and numpy wheels "
                   "(default: downloaded once from PyPI and cached)")
    p.add_argument("--static-only", action="store_true", help="skip the container checks")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    regrtest.add_arguments(p)
    p.set_defaults(run=run)


def _print(report: VerifyReport, console: Console) -> None:
    table = Table(title=f"verify {report.archive.name}", show_lines=False)
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for r in report.results:
        mark = "[green]ok[/]" if r.ok else {"error": "[red]FAIL[/]",
                                            "skipped": "[yellow]SKIPPED[/]"}.get(
                                                r.level, "[yellow]warn[/]")
        detail = r.detail if not r.ok else ""
        if r.path and not r.ok:
            detail = f"{r.path}: {detail}"
        if r.ok and r.check.startswith("import:"):
            continue
        table.add_row(escape(r.check), mark, escape(detail))
    imports = [r for r in report.results if r.check.startswith("import:")]
    ok_imports = sum(r.ok for r in imports)
    if imports:  # none when the runtime checks did not run (--static-only, a refusal)
        table.add_row("import:*",
                      "[green]ok[/]" if ok_imports == len(imports) else "[red]FAIL[/]",
                      f"{ok_imports}/{len(imports)} extension modules in lib-dynload import")
    console.print(table)


def run(args: argparse.Namespace) -> int:
    from builder.stages.verify import verify_archive  # the Docker SDK: only when verifying

    reporter = ConsoleReporter()
    report = verify_archive(
        args.archive,
        image=args.image,
        reporter=reporter,
        wheelhouse=args.wheelhouse,
        runtime=not args.static_only,
        musl_only=args.musl_only,
        thread_stack_size=args.thread_stack_probe,
    )
    suite = regrtest.from_args(report, args, reporter)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        _print(report, Console(stderr=True))
        if suite is not None:
            Console(stderr=True).print(regrtest.table(suite))
    if not report.ok:
        lines = [f"  {r.check}: {(r.path + ': ') if r.path else ''}{r.detail}"
                 for r in report.failures]
        raise VerifyFailedError(
            f"{report.archive.name}: {len(report.failures)} check(s) failed:\n" + "\n".join(lines)
        )
    if not args.json:
        Console().print(f"verified: {report.archive}", highlight=False)
    return 0
