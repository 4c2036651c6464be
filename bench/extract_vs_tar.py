#!/usr/bin/env python3
"""The export's extraction (acquire's) against GNU `tar -x`, on the same byte stream.

Usage: .venv/bin/python bench/extract_vs_tar.py [--image IMAGE ...] [--rounds 5] [--tmp DIR]
                                               [--before CHECKOUT] [--keep-trees]

For each image: a container of it, the recipe's `apk add` (as acquire runs it), python3's
facts, then `docker export` saved once to a file in DIR. Each round then unpacks that same
file into a new directory of DIR with GNU `tar -xf` and with acquire's extraction
(`extract` with acquire's transform and skip rule, its safety rules; in a fresh interpreter
that times the extraction alone), and with `--before CHECKOUT` also with that checkout's
code. The order turns each round so every side meets the same load; the trees are removed
(untimed) after each run, or with --keep-trees at the end. Prints each wall and CPU time
(tar's; the extraction's own), the medians, ours ÷ tar, and the load averages before and
after. Without --image: the test
ground's x86_64 3.11 image and, when it is built, its unstripped twin
(`tests/fixtures/build-images ... --cached-only`: never built here).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from builder.config import find_recipe  # noqa: E402
from builder.lowlevel import apk  # noqa: E402
from builder.lowlevel.container import Container, docker_client  # noqa: E402
from builder.platforms import get_arch  # noqa: E402
from builder.stages.acquire import python_facts  # noqa: E402


def cached_image(*flags: str) -> str | None:
    out = subprocess.run([str(REPO / "tests/fixtures/build-images"), "--arch", "x86_64",
                          "--python", "3.11", *flags, "--cached-only"],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        print(f"(build-images {' '.join(flags) or '(stripped)'}: {out.stderr.strip()})")
        return None
    return out.stdout.split()[0]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def make_export(image: str, minor: str, dest: Path) -> str:
    """``docker export`` of ``image`` after the recipe's apk add, saved to ``dest``; the
    facts of its python3 (JSON)."""
    arch = get_arch("x86_64")
    recipe = find_recipe(minor)
    with Container(docker_client(), image, platform=arch.docker_platform, purpose="bench",
                   environment=arch.container_env) as c:
        added, _, missing = apk.add_with_optional(
            c, lambda pkgs: recipe.install_command(tuple(pkgs)), recipe.packages,
            recipe.optional_packages)
        if not added.ok:
            sys.exit(f"apk add failed in {image}:\n{apk.error_lines(added.output)}")
        facts = python_facts(c, recipe.packages)
        with c.export_stream() as stream, dest.open("wb") as f:
            shutil.copyfileobj(stream, f, 1 << 20)
    print(f"export: {dest.stat().st_size / 1e6:.1f} MB (Python {facts.version}, stdlib "
          f"{facts.stdlib}; optional packages missing: {', '.join(missing) or 'none'})")
    return json.dumps(asdict(facts))


def run_tar(export: Path, dest: Path) -> tuple[float, float]:
    dest.mkdir()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    subprocess.run(["tar", "-xf", str(export), "-C", str(dest)], check=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


# Run by the python of this checkout in the checkout to time (its PYTHONPATH and working
# directory: `-c` puts the working directory first on sys.path): the extraction alone (no
# interpreter start, no imports), as acquire calls it in that code.
_OURS = """
import json, resource, sys, time
from pathlib import Path
from builder.config import find_recipe
from builder.lowlevel.extract import extract
from builder.lowlevel.tarstream import ROOTFS_LIMITS
import builder.stages.acquire as a
export, dest, facts, minor = sys.argv[1:5]
skip = a.skip_in_export
if hasattr(a, "recipe_skip"):
    skip = a.recipe_skip(find_recipe(minor), a.PythonFacts.from_json(json.loads(facts)))
before = resource.getrusage(resource.RUSAGE_SELF)
start = time.monotonic()
with open(export, "rb") as f:
    extract(f, Path(dest), ROOTFS_LIMITS, transform=a.export_transform, skip=skip,
            label="export")
after = resource.getrusage(resource.RUSAGE_SELF)
print(time.monotonic() - start, sum(getattr(after, k) - getattr(before, k)
                                    for k in ("ru_utime", "ru_stime")))
"""


def run_ours(checkout: Path, facts: str, minor: str
             ) -> Callable[[Path, Path], tuple[float, float]]:
    def run(export: Path, dest: Path) -> tuple[float, float]:
        out = subprocess.run([sys.executable, "-c", _OURS, str(export), str(dest), facts,
                              minor], env={**os.environ, "PYTHONPATH": str(checkout)},
                             cwd=checkout, capture_output=True, text=True, check=True)
        wall, cpu = out.stdout.split()
        return float(wall), float(cpu)
    return run


def count(tree: Path) -> int:
    return sum(len(d) + len(f) for _, d, f in os.walk(tree))


def bench(image: str, rounds: int, tmp: Path | None, minor: str, before: Path | None,
          keep: bool) -> None:
    print(f"== {image}")
    print(f"load average before: {load()}  (cores: {os.cpu_count()})")
    with tempfile.TemporaryDirectory(prefix="musl-pbs-extract-", dir=tmp) as where:
        root = Path(where)
        export = root / "export.tar"
        facts = make_export(image, minor, export)
        sides: dict[str, Callable[[Path, Path], tuple[float, float]]] = {
            "tar -x": run_tar, "ours": run_ours(REPO, facts, minor)}
        if before is not None:
            sides["ours before"] = run_ours(before, facts, minor)
        names = list(sides)
        times: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
        entries: dict[str, int] = {}
        for n in range(rounds):
            order = names[n % len(names):] + names[: n % len(names)]
            for name in order:
                dest = root / f"tree-{n}-{names.index(name)}"
                wall, cpu = sides[name](export, dest)
                times[name].append((wall, cpu))
                entries[name] = count(dest)
                if not keep:
                    shutil.rmtree(dest)
                print(f"round {n + 1} {name:24} {wall:6.2f} s wall {cpu:6.2f} s CPU  "
                      f"(load {load()})", flush=True)
    print(f"load average after:  {load()}")
    med = {n: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t))
           for n, t in times.items()}
    tar_wall, tar_cpu = med["tar -x"]
    for name in names:
        wall, cpu = med[name]
        print(f"median {name:24} {wall:6.2f} s wall {cpu:6.2f} s CPU  "
              f"{entries[name]:6} entries on disk  ours/tar wall {wall / tar_wall:.2f}, "
              f"CPU {cpu / tar_cpu:.2f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", action="append", help="image with apk and python3 (repeatable)")
    p.add_argument("--python", default="3.11", help="the recipe's minor (3.11)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of each side (5)")
    p.add_argument("--before", type=Path, metavar="CHECKOUT",
                   help="also time the extraction of another checkout of musl-pbs (e.g. "
                   "`git archive main`, unpacked)")
    p.add_argument("--keep-trees", action="store_true",
                   help="remove the trees at the end, not after each run: no run then meets "
                   "inodes this bench deleted (ext4 without a journal skips an inode "
                   "deleted in the last 60-300 s at every creation: bench/README.md)")
    p.add_argument("--tmp", type=Path, metavar="DIR",
                   help="where the export and the trees go (default: $TMPDIR)")
    args = p.parse_args()
    images = args.image or [i for i in (cached_image(), cached_image("--unstripped")) if i]
    if not images:
        print("no image to measure")
        return 1
    for image in images:
        bench(image, args.rounds, args.tmp, args.python, args.before, args.keep_trees)
    return 0


if __name__ == "__main__":
    sys.exit(main())
