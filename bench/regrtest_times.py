#!/usr/bin/env python3
"""Per-module times of `musl-pbs verify --regrtest` runs, side by side, as a Markdown table.

    .venv/bin/musl-pbs verify ARCHIVE --image BASE --regrtest --regrtest-image ALPINE_LIKE \\
        --regrtest-fresh --json > x86_64-3.11.json
    bench/regrtest_times.py x86_64-3.11.json aarch64-3.11.json ...

A module's time is regrtest's own duration when it prints one (30 s or more), else the sum
of its test cases' times from the junit XML (a lower bound: imports and setUpClass are
not in it); "-" when it ran no cases. Runs use -j2: the wall time of a run is about half
the sum of its modules.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    suite = data.get("regrtest")
    if not isinstance(suite, dict):
        raise SystemExit(f"{path}: no 'regrtest' table (was verify run with --regrtest?)")
    return suite


def _cell(row: dict[str, Any], side: str) -> str:
    r = row[side]
    s = r.get("seconds")
    t = "-" if s is None else f"{s:.1f}"
    return t if r["outcome"] == "passed" else f"{t} ({r['outcome']})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reports", nargs="+", type=Path, help="verify --regrtest --json outputs")
    args = p.parse_args()
    suites = [(path.stem, _load(path)) for path in args.reports]
    modules: list[str] = []
    for _, s in suites:
        modules += [r["module"] for r in s["modules"] if r["module"] not in modules]
    head = ["module"] + [f"{name} {side}" for name, _ in suites
                         for side in ("in place", "relocated")]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for m in modules:
        cells = [m]
        for _, s in suites:
            row = next((r for r in s["modules"] if r["module"] == m), None)
            cells += [_cell(row, "in_place"), _cell(row, "relocated")] if row else ["", ""]
        print("| " + " | ".join(cells) + " |")
    walls = []
    for name, s in suites:
        walls.append(f"{name}: in place {s['in_place']['seconds']:.0f} s"
                     f"{' (cached)' if s['in_place']['cached'] else ''}, relocated "
                     f"{s['relocated']['seconds']:.0f} s")
    print("\nWall time of each run (-j2): " + "; ".join(walls))


if __name__ == "__main__":
    main()
