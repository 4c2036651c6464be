"""`musl-pbs detect`: does this system (or a root filesystem) need a musl build?"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("detect", help="say whether a system is musl")
    p.add_argument("--root", help="inspect this root filesystem instead of the running system")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError
