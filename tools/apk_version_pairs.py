#!/usr/bin/env python3
"""Ask a real apk-tools how it orders real Alpine versions: ground truth for
builder/lowlevel/apkversion.py (tests/unit/test_apkversion.py reads the output).

    tools/apk_version_pairs.py OUT.txt APK_COMMAND... -- VERSION_SOURCES...

APK_COMMAND runs `apk` (e.g. the minirootfs's loader, --library-path and sbin/apk);
VERSION_SOURCES are APKINDEX files or /lib/apk/db/installed files (their V: lines).
Every distinct version is compared with its neighbours in a fixed shuffle, and with
hand-picked musl versions; each line of OUT is `A OP B` as `apk version -t A B` printed it.
"""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
from pathlib import Path

EXTRA = ["1.2.3", "1.2.3-r0", "1.2.4", "1.2.4-r1", "1.2.4_git20230717", "1.2.4_git20230717-r4",
         "1.2.5", "1.2.5-r0", "1.2.5-r10", "1.2.5_git20240512", "1.2.6", "1.2.6_rc1",
         "1.2.6_alpha1", "1.2.6_p1", "3.21.0_alpha20240923", "3.11.6-r0", "3.12.12-r0"]


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    sep = argv.index("--")
    apk, sources = argv[1:sep], argv[sep + 1:]
    versions: set[str] = set(EXTRA)
    for src in sources:
        for line in Path(src).read_text(errors="replace").splitlines():
            if line.startswith("V:"):
                versions.add(line[2:].strip())
    ordered = sorted(versions)
    shuffled = ordered[:]
    random.Random(20261127).shuffle(shuffled)
    pairs = list(itertools.pairwise(shuffled))
    pairs += list(itertools.pairwise(ordered))
    pairs += [(a, b) for a in EXTRA for b in EXTRA if a < b]
    lines = []
    for a, b in pairs:
        r = subprocess.run([*apk, "version", "-t", a, b], capture_output=True, text=True)
        op = r.stdout.strip()
        if op not in ("<", "=", ">"):
            raise SystemExit(f"apk version -t {a} {b}: {r.stdout!r} {r.stderr!r}")
        lines.append(f"{a} {op} {b}\n")
    version = subprocess.run([*apk, "--version"], capture_output=True, text=True).stdout.strip()
    header = (f"# `apk version -t A B` of {version}, over the versions in: "
              + ", ".join(Path(s).name for s in sources) + "\n"
              "# made by tools/apk_version_pairs.py; one comparison a line: A OP B\n")
    out.write_text(header + "".join(lines))
    print(f"{out}: {len(lines)} comparisons", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
