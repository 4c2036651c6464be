#!/usr/bin/env python3
"""Wall time of a 2-target matrix build with --jobs 2 divided by --jobs 1, side by side.

Usage: .venv/bin/python bench/matrix_jobs.py [--targets x86_64/3.11,aarch64/3.11]
       [--rounds 3]

Each target's build image comes from the test ground (tests/fixtures/build-images); the
targets are the matrix's release:arch whose Python the image carries, image overridden.
All runs happen in this one process from the same warm image cache, alternating (--jobs 1
then 2, then 2 then 1, ...) so a change in load hits both; the ratio is of the medians. A
ratio well below 1 means targets really build concurrently. No verification here.
"""

from __future__ import annotations

import argparse
import os
import statistics
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


def busy_seconds() -> float:
    """CPU seconds the whole machine spent busy so far (/proc/stat: all but idle and
    iowait), the Docker daemon's and the containers' work included."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run(jobs: int, targets: list[str], image_args: list[str], root: Path
        ) -> tuple[float, float]:
    out = Path(tempfile.mkdtemp(prefix=f"jobs{jobs}-", dir=root))
    cmd = [str(REPO / ".venv/bin/musl-pbs"), "build", *[a for t in targets for a in
           ("--target", t)], *image_args, "--jobs", str(jobs),
           "--out", str(out / "dist"), "--work", str(out / "work"), "-q"]
    start, busy = time.monotonic(), busy_seconds()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start, busy_seconds() - busy


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--targets", default="x86_64/3.11,aarch64/3.11",
                   help="two ARCH/PYTHON pairs of the test ground (default: "
                   "x86_64/3.11,aarch64/3.11; x86_64/3.11,x86_64/3.13 needs no emulation)")
    p.add_argument("--rounds", type=int, default=1, help="runs of each (default 1)")
    args = p.parse_args()
    # A matrix release per test-ground Python, so two pairs make two targets (the matrix
    # follows Alpine: no supported release ships 3.11 or 3.13; the image decides the Python).
    release_of = {"3.11": "3.22", "3.13": "3.23"}
    targets, image_args = [], []
    for pair in args.targets.split(","):
        arch, python = pair.split("/")
        target = f"{release_of[python]}:{arch}"
        targets.append(target)
        image_args += ["--image", f"{target}={images(arch, python)}"]
    with tempfile.TemporaryDirectory(prefix="musl-pbs-bench-") as tmp:
        root = Path(tmp)
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        runs: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
        for n in range(args.rounds):
            for jobs in ((1, 2) if n % 2 == 0 else (2, 1)):
                runs[jobs].append(run(jobs, targets, image_args, root))
                wall, busy = runs[jobs][-1]
                print(f"round {n + 1} --jobs {jobs}: {wall:5.1f} s wall, {busy:5.1f} CPU s",
                      flush=True)
    (one, busy1), (two, busy2) = (
        (statistics.median(w for w, _ in runs[j]), statistics.median(b for _, b in runs[j]))
        for j in (1, 2))
    cores = os.cpu_count() or 1
    print(f"targets: {', '.join(targets)} ({args.targets})")
    print(f"--jobs 1: {one:7.1f} s wall, machine busy {busy1:6.1f} CPU s "
          f"({busy1 / one:.2f} cores on average)")
    print(f"--jobs 2: {two:7.1f} s wall, machine busy {busy2:6.1f} CPU s "
          f"({busy2 / two:.2f} cores on average)")
    print(f"ratio jobs2/jobs1: {two / one:.2f}; the work of --jobs 1 on {cores} cores "
          f"cannot take less than {busy1 / cores / one:.2f} of its wall time")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
