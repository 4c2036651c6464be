#!/usr/bin/env python3
"""The export's extraction (acquire's) against GNU `tar -x`, on the same byte stream.

Usage: .venv/bin/python bench/extract_vs_tar.py [--image IMAGE ...] [--rounds 5] [--tmp DIR]

For each image: a container of it, the recipe's `apk add` (as acquire runs it), python3's
facts, then `docker export` saved once to a file in DIR. Each round then unpacks that same
file into a new directory of DIR with GNU `tar -xf` and with acquire's own entry point
(`builder.stages.acquire.extract_export`: its transform, its safety rules; the skip rule
as acquire uses it). "ours before" is that entry point as it was before issue 22: every
file created by the reader itself (`extract.CREATORS = 0`) and `skip_in_export` alone, the
recipe's prune not applied; "ours" is it now (creator threads, `recipe_skip`). The order
turns each round so every side meets the same load; the trees are removed (untimed) after
each run. Prints each wall and CPU time (tar: its own; ours: this process's, its threads
included), the medians, ours ÷ tar, and the load averages before and after. Without
--image: the test ground's x86_64 3.11 image and, when it is built, its unstripped twin
(`tests/fixtures/build-images ... --cached-only`: never built here).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from builder.config import find_recipe  # noqa: E402
from builder.lowlevel import apk, extract  # noqa: E402
from builder.lowlevel.container import Container, docker_client  # noqa: E402
from builder.platforms import get_arch  # noqa: E402
from builder.stages.acquire import (  # noqa: E402
    extract_export,
    python_facts,
    recipe_skip,
    skip_in_export,
)


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


def make_export(image: str, minor: str, dest: Path) -> Callable[[str], bool]:
    """``docker export`` of ``image`` after the recipe's apk add, saved to ``dest``; the
    skip rule acquire derives for it."""
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
    return recipe_skip(recipe, facts)


def run_tar(export: Path, dest: Path) -> tuple[float, float]:
    dest.mkdir()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    subprocess.run(["tar", "-xf", str(export), "-C", str(dest)], check=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_ours(skip: Callable[[str], bool], creators: int
             ) -> Callable[[Path, Path], tuple[float, float]]:
    def run(export: Path, dest: Path) -> tuple[float, float]:
        extract.CREATORS = creators
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.monotonic()
        with export.open("rb") as f:
            extract_export(f, dest, skip=skip, label=str(export))
        wall = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        extract.CREATORS = default_creators
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    default_creators = extract.CREATORS
    return run


def count(tree: Path) -> int:
    return sum(len(d) + len(f) for _, d, f in os.walk(tree))


def bench(image: str, rounds: int, tmp: Path | None, minor: str) -> None:
    print(f"== {image}")
    print(f"load average before: {load()}  (cores: {os.cpu_count()})")
    with tempfile.TemporaryDirectory(prefix="musl-pbs-extract-", dir=tmp) as where:
        root = Path(where)
        export = root / "export.tar"
        skip = make_export(image, minor, export)
        sides: dict[str, Callable[[Path, Path], tuple[float, float]]] = {
            "tar -x": run_tar,
            "ours before": run_ours(skip_in_export, 0),
            "ours": run_ours(skip, extract.CREATORS),
        }
        names = list(sides)
        times: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
        entries: dict[str, int] = {}
        for n in range(rounds):
            order = names[n % len(names):] + names[: n % len(names)]
            for name in order:
                dest = root / f"tree-{n}"
                wall, cpu = sides[name](export, dest)
                times[name].append((wall, cpu))
                entries[name] = count(dest)
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
    p.add_argument("--tmp", type=Path, metavar="DIR",
                   help="where the export and the trees go (default: $TMPDIR)")
    args = p.parse_args()
    images = args.image or [i for i in (cached_image(), cached_image("--unstripped")) if i]
    if not images:
        print("no image to measure")
        return 1
    for image in images:
        bench(image, args.rounds, args.tmp, args.python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
