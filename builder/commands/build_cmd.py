"""`musl-pbs build`: one target, acquire -> stage -> relocate -> pack."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from builder.build import build_target
from builder.config import DEFAULT_MATRIX, load_matrix
from builder.platforms import get_arch
from builder.progress import ConsoleReporter


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "build", help="build a relocatable archive from Alpine's python3"
    )
    p.add_argument("--arch", required=True, help="Alpine architecture, e.g. x86_64, aarch64")
    p.add_argument("--alpine", metavar="TAG", help="Alpine release (default: the matrix's)")
    p.add_argument("--image", help="build from this image instead of alpine:TAG")
    p.add_argument("--python", metavar="X.Y", help="recipe to install with (default: the "
                   "release's Python in the matrix; the installed version decides in the end)")
    p.add_argument("--out", type=Path, default=Path("dist"), help="output directory (dist/)")
    p.add_argument("--work", type=Path, help="work directory (default: build/ARCH)")
    p.add_argument("--matrix", type=Path, default=DEFAULT_MATRIX, help="matrix.yaml to use")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="do not stream command output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    arch = get_arch(args.arch)
    matrix = load_matrix(args.matrix)
    tag = args.alpine or matrix.default_release
    reporter = ConsoleReporter(verbose=not args.quiet)
    result = build_target(
        arch=arch,
        release_tag=tag,
        image=args.image,
        python=args.python,
        matrix=matrix,
        out_dir=args.out,
        work_dir=args.work or Path("build") / arch.alpine,
        reporter=reporter,
    )
    packed = result.packed
    if args.json:
        print(json.dumps(packed.data, indent=2, sort_keys=True))
    else:
        # stdout: the paths, one per line (archive .tar.gz first), for scripts to read.
        Console(stderr=True).print(f"built in {result.seconds:.0f}s", highlight=False)
        for path in (packed.gz, packed.zst, packed.manifest):
            print(path)
    return 0
