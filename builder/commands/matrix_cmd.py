"""`musl-pbs matrix`: print the expanded build targets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from builder.config import MATRIX_ORDER, find_config, help_text
from builder.plan import expand


def add_parser(sub: Any) -> None:
    files = find_config()
    p: argparse.ArgumentParser = sub.add_parser(
        "matrix", help="print the build targets",
        description="Print the targets of a matrix.yaml; stderr names the file in use.")
    p.add_argument("--format", choices=("table", "json", "github"), default="table",
                   help="table for people, json for scripts, github for a job matrix")
    p.add_argument("--matrix", type=Path, metavar="FILE",
                   help=help_text("matrix.yaml to use", MATRIX_ORDER, files.matrix,
                                  files.matrix_from))
    p.add_argument("--alpine", action="append", metavar="TAG", help="only this release")
    p.add_argument("--arch", action="append", help="only this architecture")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    files = find_config(args.matrix)
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"matrix: {files.matrix} ({files.matrix_from})")
    targets = expand(files.load_matrix(), releases=args.alpine, arches=args.arch)
    rows = [t.to_json() for t in targets]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    elif args.format == "github":
        print(json.dumps({"include": rows}, separators=(",", ":")))
    else:
        table = Table("target", "python", "platform", "image")
        for r in rows:
            table.add_row(r["target"], r["python"], r["platform"], r["image"])
        Console().print(table)
    return 0
