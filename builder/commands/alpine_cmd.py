"""`musl-pbs alpine check`: which targets a new Alpine release makes worth building.

Output (stdout), for the nightly job:

- plain: one line per new target, ``TARGET<TAB>REASON``; nothing at all when nothing is new.
- ``--json``: one line holding a JSON list of objects with the keys of a GitHub matrix entry
  (``target, alpine, arch, python, platform``, plus ``alpine_release, previous, reason``);
  ``[]`` when nothing is new, so the output is always valid JSON and a workflow tests
  ``!= '[]'`` before building (GitHub refuses an empty matrix).

Exit 0 either way; non-zero only on an error (malformed document or state, network).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from builder.config import DEFAULT_MATRIX, load_matrix
from builder.release.alpine_releases import load_state, new_targets, read_document


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "alpine", help="compare Alpine's releases with the last release's state"
    )
    actions = p.add_subparsers(dest="alpine_action", required=True, metavar="ACTION")
    c: argparse.ArgumentParser = actions.add_parser(
        "check",
        help="list the matrix targets that are new since the last release",
        description="Read Alpine's releases.json or a latest-releases.yaml (URL or file), "
        "compare with the state.json of the last release and print the targets of "
        "matrix.yaml that are new: never built, or a newer patch release of their branch. "
        "Prints nothing (or [] with --json) when nothing is new.",
    )
    c.add_argument("--releases", required=True, metavar="URL_OR_FILE",
                   help="https://alpinelinux.org/releases.json, a latest-releases.yaml, "
                   "or a saved copy of either")
    c.add_argument("--state", required=True, type=Path, metavar="FILE",
                   help="state.json of the last release (missing: every target is new)")
    c.add_argument("--matrix", type=Path, default=DEFAULT_MATRIX, help="matrix.yaml to use")
    c.add_argument("--timeout", type=float, default=20.0, metavar="SECONDS",
                   help="network timeout for a URL (default: 20)")
    c.add_argument("--json", action="store_true",
                   help="print a JSON list on one line ([] when nothing is new)")
    c.set_defaults(run=_check)


def _check(args: argparse.Namespace) -> int:
    matrix = load_matrix(args.matrix)
    state = load_state(args.state)
    doc = read_document(args.releases, timeout=args.timeout)
    found = new_targets(doc, state, matrix)
    if args.json:
        print(json.dumps([t.to_json() for t in found]))
    else:
        for t in found:
            print(f"{t.target}\t{t.reason}")
    return 0
