#!/usr/bin/env python3
"""Start-up time of the relocated interpreter against the image's own python3, in one
container.

Usage: .venv/bin/python bench/startup.py ARCHIVE.tar.gz [--image IMAGE] [--rounds 3]
       [--starts 20] [--code "pass"]

The container (the Alpine-like image the archive was built from; default: the test
ground's x86_64 3.11 image) installs python3 with apk and unpacks the archive under /opt
twice; the second copy's interpreter times the starts of the image's python3 and of the
first copy: posix_spawn + wait4, wall clock and the child's CPU time, the two alternating
start by start (and which goes first) so a change in load hits both. Each round is
``--starts`` starts of each; printed: every round's median start of each and their ratio,
then the medians over the rounds.
The unpacked tree is read-only for the starts (as for a user who did not install it), so a
stale or missing .pyc costs every start instead of only the first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

TIMER = r"""
import os, sys, time
rounds, starts = int(sys.argv[1]), int(sys.argv[2])
code, own, relocated = sys.argv[3:6]
devnull = os.open(os.devnull, os.O_RDWR)
fa = [(os.POSIX_SPAWN_DUP2, devnull, fd) for fd in (0, 1, 2)]
def start(exe):
    t = time.perf_counter_ns()
    pid = os.posix_spawn(exe, [exe, "-c", code], {}, file_actions=fa)
    _, status, ru = os.wait4(pid, 0)
    if status:
        sys.exit("%s exited with status %d" % (exe, status))
    return time.perf_counter_ns() - t, int((ru.ru_utime + ru.ru_stime) * 1e9)
for exe in (own, relocated):  # warm the page cache (and write any .pyc a start may write)
    for _ in range(3):
        start(exe)
for r in range(rounds):
    a, b = [], []
    for i in range(starts):  # who goes first alternates: the second start runs warmer
        if i % 2:
            b.append(start(relocated))
            a.append(start(own))
        else:
            a.append(start(own))
            b.append(start(relocated))
    print(r, *(",".join(str(x[i]) for x in s) for s in (a, b) for i in (0, 1)), flush=True)
"""

# The timer is a third copy of the archive: an interpreter timing its own binary and
# libpython (the same files, so the same pages) runs that one about 3 % faster.
SETUP = ("apk add -q --no-cache python3 >/dev/null && mkdir -p /opt/relocated /opt/timer && "
         "tar xzf /archive.tar.gz -C /opt/relocated && tar xzf /archive.tar.gz -C /opt/timer")


def stale_pycs(archive: Path) -> tuple[int, int, list[str]]:
    """(timestamp .pyc files, how many of them do not match their source in the archive,
    a few names): each stale one is compiled again at every import from a read-only tree."""
    sources: dict[str, tuple[int, int]] = {}
    headers: dict[str, bytes] = {}
    with tarfile.open(archive) as tar:
        for m in tar:
            if m.isfile() and m.name.endswith(".py"):
                sources[m.name] = (m.mtime & 0xFFFFFFFF, m.size & 0xFFFFFFFF)
            elif m.isfile() and m.name.endswith(".pyc") and "/__pycache__/" in m.name:
                f = tar.extractfile(m)
                headers[m.name] = f.read(16) if f else b""
    total, stale = 0, []
    for name, h in headers.items():
        if len(h) < 16 or int.from_bytes(h[4:8], "little") != 0:
            continue
        total += 1
        d, _, base = name.rpartition("/__pycache__/")
        src = f"{d}/{base.split('.', 1)[0]}.py"
        want = (int.from_bytes(h[8:12], "little"), int.from_bytes(h[12:16], "little"))
        if sources.get(src) != want:
            stale.append(name)
    return total, len(stale), sorted(stale)[:3]


def test_ground_image() -> str:
    out = subprocess.run([str(REPO / "tests/fixtures/build-images"), "--arch", "x86_64",
                          "--python", "3.11"], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("archive", type=Path, help="a .tar.gz made by musl-pbs build")
    p.add_argument("--image", help="Alpine-like image (default: the test ground's x86_64 3.11)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--starts", type=int, default=20)
    p.add_argument("--code", default="pass", help="what each start runs with -c (pass)")
    args = p.parse_args()
    image = args.image or test_ground_image()
    minor = args.archive.name.split("-")[1].rsplit(".", 1)[0]  # cpython-3.11.2-... -> 3.11
    relocated = f"/opt/relocated/python/bin/python{minor}"
    total, stale, examples = stale_pycs(args.archive)
    print(f"timestamp .pyc files in the archive: {total}, stale: {stale} {examples or ''}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    name = f"musl-pbs-speed-startup-{os.getpid()}"
    subprocess.run(["docker", "run", "-d", "--name", name, "--network", "none",
                    "-v", f"{args.archive.resolve()}:/archive.tar.gz:ro", image,
                    "sleep", "3600"], check=True, capture_output=True)
    try:
        subprocess.run(["docker", "exec", name, "sh", "-c", SETUP], check=True)
        # As an unprivileged user: the tree is root's, so nobody can write a .pyc into it.
        proc = subprocess.run(
            ["docker", "exec", "-u", "65534:65534", name,
             f"/opt/timer/python/bin/python{minor}", "-c",
             TIMER, str(args.rounds), str(args.starts), args.code, f"/usr/bin/python{minor}",
             relocated], capture_output=True, text=True, check=False)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"the timing failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    wall: list[tuple[float, float]] = []
    cpu: list[tuple[float, float]] = []
    print(f"median of {args.starts} starts of `python -c {args.code!r}` each, in ms; CPU is "
          "user+system of the child (wait4), which waiting for a core does not inflate")
    print(f"{'round':>5} {'wall own':>9} {'relocated':>9} {'ratio':>6}   "
          f"{'CPU own':>8} {'relocated':>9} {'ratio':>6}")

    def med(field: str) -> float:
        return statistics.median(int(x) for x in field.split(",")) / 1e6

    for line in proc.stdout.splitlines():
        r, own_wall, own_cpu, rel_wall, rel_cpu = line.split()
        wall.append((med(own_wall), med(rel_wall)))
        cpu.append((med(own_cpu), med(rel_cpu)))
        print(f"{int(r) + 1:>5} {wall[-1][0]:9.2f} {wall[-1][1]:9.2f} "
              f"{wall[-1][1] / wall[-1][0]:6.3f}   {cpu[-1][0]:8.2f} {cpu[-1][1]:9.2f} "
              f"{cpu[-1][1] / cpu[-1][0]:6.3f}")
    for what, pairs in (("wall", wall), ("CPU", cpu)):
        print(f"median {what}: own {statistics.median(a for a, _ in pairs):.2f} ms, relocated "
              f"{statistics.median(b for _, b in pairs):.2f} ms, relocated/own "
              f"{statistics.median(b / a for a, b in pairs):.3f}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
