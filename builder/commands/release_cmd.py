"""`musl-pbs release assemble`: merge build outputs into one release directory."""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console

from builder.config import MATRIX_ORDER, find_config, help_text
from builder.release.eol import refuse_ended


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "release", help="assemble a release from the outputs of many builds"
    )
    actions = p.add_subparsers(dest="release_action", required=True, metavar="ACTION")
    a: argparse.ArgumentParser = actions.add_parser(
        "assemble",
        help="merge build output directories: checksums, manifest.json, state.json, "
        "uv's download-metadata.json",
        description="Merge the output directories of `musl-pbs build` into OUT: every "
        "archive (sha256 checked against its manifest), its python-build-standalone name "
        "cpython-X.Y.Z+BUILD-TRIPLE-install_only.tar.gz, SHA256SUMS, manifest.json, "
        "state.json and download-metadata.json (uv's format). OUT is written whole or not "
        "at all.",
    )
    a.add_argument("directories", nargs="+", type=Path, metavar="DIR",
                   help="a `musl-pbs build --out` directory (one or more targets)")
    a.add_argument("--out", type=Path, required=True,
                   help="release directory to create (must not exist, or be empty)")
    a.add_argument("--base-url", metavar="URL",
                   help="where the files will be served from, for the URLs in "
                   "download-metadata.json (default: the file:// URL of OUT)")
    a.add_argument("--build", metavar="YYYYMMDD",
                   help="the release's date tag, used in the python-build-standalone names "
                   "and uv's 'build' (default: the manifests' build, else today in UTC)")
    a.add_argument("--previous-state", type=Path, metavar="FILE",
                   help="state.json of the last release: its targets not rebuilt here are "
                   "carried into the new state.json (a missing file is fine)")
    files = find_config()
    a.add_argument("--matrix", type=Path, metavar="FILE",
                   help=help_text("matrix.yaml whose releases (and their eol) may be published",
                                  MATRIX_ORDER, files.matrix, files.matrix_from))
    a.add_argument("--allow-eol", action="store_true",
                   help="publish targets of an Alpine release past its end of life (or no "
                   "longer in matrix.yaml) anyway, with a warning")
    a.add_argument("--today", type=date.fromisoformat, default=None, metavar="YYYY-MM-DD",
                   help="the date end-of-life dates are compared with (default: today)")
    a.add_argument("--json", action="store_true", help="print a summary as JSON on stdout")
    a.set_defaults(run=_assemble)


def _assemble(args: argparse.Namespace) -> int:
    from builder.release.assemble import assemble

    matrix = find_config(args.matrix).load_matrix()
    err = Console(stderr=True)
    warnings: list[str] = []

    def check_branches(branches: list[str]) -> None:
        warnings.extend(refuse_ended(matrix, branches, args.today or date.today(),
                                     allow=args.allow_eol, what="release assemble"))
        for w in warnings:
            err.print(f"warning: {w}: published because of --allow-eol", highlight=False)

    done = assemble(
        args.directories,
        args.out,
        base_url=args.base_url,
        build=args.build,
        previous_state=args.previous_state,
        check_branches=check_branches,
    )
    if args.json:
        print(json.dumps({
            "out": str(done.out),
            "build": done.build,
            "base_url": done.base_url,
            "targets": list(done.targets),
            "files": list(done.files),
            "warnings": warnings,
        }, indent=2))
        return 0
    err.print(
        f"release {done.build}: {len(done.targets)} target(s) in {done.out}", highlight=False
    )
    for name in done.files:  # stdout: the paths, one per line, for scripts
        print(done.out / name)
    return 0
