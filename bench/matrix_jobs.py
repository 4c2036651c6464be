#!/usr/bin/env python3
"""Wall time of a 2-target matrix build with --jobs 2 divided by --jobs 1, side by side.

Usage: .venv/bin/python bench/matrix_jobs.py [--arches x86_64,aarch64] [--python 3.11]

Each arch's build image comes from the test ground (tests/fixtures/build-images); the two
targets are the matrix's 3.19:<arch> with the image overridden. Both runs happen in this
one process, one after the other, from the same warm image cache; a ratio well below 1
means targets really build concurrently. No verification (that has its own cost).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def images(arch: str, python: str) -> str:
    out = subprocess.run([str(REPO / "tests/fixtures/build-images"), "--arch", arch,
                          "--python", python], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


def run(jobs: int, targets: list[str], image_args: list[str], root: Path) -> float:
    cmd = [str(REPO / ".venv/bin/musl-pbs"), "build", *[a for t in targets for a in
           ("--target", t)], *image_args, "--jobs", str(jobs),
           "--out", str(root / f"dist-{jobs}"), "--work", str(root / f"work-{jobs}"), "-q"]
    start = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--arches", default="x86_64,aarch64")
    p.add_argument("--python", default="3.11")
    p.add_argument("--release", default="3.19")
    args = p.parse_args()
    arches = args.arches.split(",")
    if len(arches) == 1:
        arches = arches * 2
    targets, image_args = [], []
    for i, arch in enumerate(arches):
        release = args.release if i == 0 or arches[0] != arch else "3.18"
        targets.append(f"{release}:{arch}")
        image_args += ["--image", f"{release}:{arch}={images(arch, args.python)}"]
    with tempfile.TemporaryDirectory(prefix="musl-pbs-bench-") as tmp:
        root = Path(tmp)
        one = run(1, targets, image_args, root)
        two = run(2, targets, image_args, root)
    print(f"targets: {', '.join(targets)} (Python {args.python})")
    print(f"--jobs 1: {one:7.1f} s")
    print(f"--jobs 2: {two:7.1f} s")
    print(f"ratio jobs2/jobs1: {two / one:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
