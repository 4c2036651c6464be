"""`musl-pbs alpine check`: which targets a new Alpine release makes worth building.

Output (stdout), for the nightly job:

- plain: one line per new target, ``TARGET<TAB>REASON``; nothing at all when nothing is new.
- ``--json``: one line holding a JSON list of objects with the keys of a GitHub matrix entry
  (``target, alpine, arch, python, platform``, plus ``alpine_release, previous, reason``);
  ``[]`` when nothing is new, so the output is always valid JSON and a workflow tests
  ``!= '[]'`` before building (GitHub refuses an empty matrix).

Releases of the matrix that the document says are past their end of life (``eol_date``)
are reported on stderr: stdout stays the list of targets. A new target of a release that has
ended (by matrix.yaml's ``eol`` or the document's ``eol_date``) is refused (exit 24) unless
``--allow-eol``: the list is what the nightly job builds and publishes.
``alpine update-matrix`` edits matrix.yaml to follow Alpine: new supported branches added,
ended ones dropped, end-of-life dates kept in step.

Exit 0 either way; non-zero only on an error (malformed document or state, network).
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console

from builder.config import FROM_DEFAULT, MATRIX_ORDER, find_config, help_text
from builder.errors import EndOfLifeError, UsageError
from builder.release.alpine_releases import (
    ended_releases,
    load_state,
    new_targets,
    read_document,
)
from builder.release.matrix_update import DEFAULT_MIRROR, apply, mirror_lookup, plan


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
    _common(c, "matrix.yaml to use")
    c.add_argument("--json", action="store_true",
                   help="print a JSON list on one line ([] when nothing is new)")
    c.add_argument("--allow-eol", action="store_true",
                   help="list new targets of a release past its end of life anyway "
                   "(refused otherwise)")
    c.set_defaults(run=_check)

    u: argparse.ArgumentParser = actions.add_parser(
        "update-matrix",
        help="add Alpine's new supported branches to matrix.yaml, drop the ended ones and "
        "keep the end-of-life dates in step",
        description="Read releases.json; drop the matrix releases past their end of life, "
        "add the supported branches the matrix lacks (Python minor and musl from the "
        "branch's main/x86_64 APKINDEX on --mirror, architectures from releases.json). "
        "Edits the file in place, keeping its comments; prints what changed.",
    )
    u.add_argument("--releases", required=True, metavar="URL_OR_FILE",
                   help="https://alpinelinux.org/releases.json or a saved copy")
    _common(u, "matrix.yaml to edit")
    u.add_argument("--mirror", default=DEFAULT_MIRROR, metavar="URL_OR_DIR",
                   help=f"Alpine mirror holding vX.Y/main/x86_64/APKINDEX.tar.gz "
                   f"(default: {DEFAULT_MIRROR})")
    u.set_defaults(run=_update_matrix)


def _common(p: argparse.ArgumentParser, matrix_help: str) -> None:
    files = find_config()
    p.add_argument("--matrix", type=Path, metavar="FILE",
                   help=help_text(matrix_help, MATRIX_ORDER, files.matrix, files.matrix_from))
    p.add_argument("--timeout", type=float, default=20.0, metavar="SECONDS",
                   help="network timeout for a URL (default: 20)")
    p.add_argument("--today", type=date.fromisoformat, default=None, metavar="YYYY-MM-DD",
                   help="the date end-of-life dates are compared with (default: today)")


def _check(args: argparse.Namespace) -> int:
    matrix = find_config(args.matrix).load_matrix()
    state = load_state(args.state)
    doc = read_document(args.releases, timeout=args.timeout)
    found = new_targets(doc, state, matrix)
    today = args.today or date.today()
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    ended = {e.tag: e.describe() for e in ended_releases(doc, matrix, today)}
    for release in matrix.releases:
        if release.ended(today):
            ended.setdefault(release.tag, f"{release.describe_eol()} ({matrix.source.name})")
    for message in ended.values():
        err.print(f"ended: {message}: drop it from {matrix.source.name} "
                  "(musl-pbs alpine update-matrix)")
    refused = sorted({t.alpine for t in found if t.alpine in ended})
    if refused and not args.allow_eol:
        raise EndOfLifeError(
            f"alpine check: new targets of ended releases refused, as of {today.isoformat()}: "
            + "; ".join(ended[tag] for tag in refused))
    if args.json:
        print(json.dumps([t.to_json() for t in found]))
    else:
        for t in found:
            print(f"{t.target}\t{t.reason}")
    return 0


def _update_matrix(args: argparse.Namespace) -> int:
    files = find_config(args.matrix)
    if files.matrix_from == FROM_DEFAULT:
        raise UsageError(f"update-matrix edits a matrix.yaml in place; it will not edit "
                         f"musl-pbs's default ({files.matrix})",
                         hint="run it where your matrix.yaml is, or pass --matrix FILE")
    matrix = files.load_matrix()
    doc = read_document(args.releases, timeout=args.timeout)
    change = plan(doc, matrix, args.today or date.today(),
                  mirror_lookup(args.mirror, args.timeout))
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for note in change.notes:
        err.print(f"note: {note}")
    if change.empty:
        err.print(f"{files.matrix}: follows Alpine already")
        return 0
    apply(matrix, change)
    for e in change.dropped:
        print(f"dropped {e.tag}: {e.describe()}")
    for r in change.added:
        print(f"added {r.tag}: Python {r.python}, musl {r.musl}, {', '.join(r.arches)}")
    for tag, eol in change.eol.items():
        print(f"eol {tag}: {eol.isoformat()} (releases.json's eol_date)")
    return 0
