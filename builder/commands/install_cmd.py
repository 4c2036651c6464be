"""`musl-pbs install`: the archive that fits this host, checked and unpacked atomically."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "install", help="install the archive that fits this (musl) system"
    )
    p.add_argument("version", nargs="?", help="3.X or 3.X.Y (default: the newest)")
    p.add_argument("--from", dest="source", type=Path, default=Path("dist"),
                   help="a release directory or a download-metadata.json (default: dist/)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--dir", type=Path, help="install here (default: "
                       "~/.local/share/musl-pbs/cpython-X.Y.Z-linux-ARCH-musl)")
    where.add_argument("--for-uv", action="store_true",
                       help="install among uv's managed Pythons (`uv python dir`, named as uv "
                       "names them): then `uv venv`, `uv run` and `uv python list` find it "
                       "and `uv python uninstall X.Y.Z` removes it")
    p.add_argument("--force", action="store_true", help="replace an existing --dir")
    p.add_argument("--sha256", metavar="HEX", help="the archive's sha256, for an archive "
                   "without a manifest (take it from the release's SHA256SUMS); without a "
                   "manifest, download-metadata sha256 or this, install refuses")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from builder.host.detect import detect
    from builder.host.install import (
        candidates_from_dir,
        candidates_from_metadata,
        choose,
        default_dest,
        host_loader,
        install,
    )
    from builder.host.uvdir import uv_dest, uv_python_dir

    detection = detect(Path("/"))
    source: Path = args.source
    cands = (candidates_from_metadata(source) if source.is_file() or source.suffix == ".json"
             else candidates_from_dir(source))
    loader = host_loader(detection)
    chosen = choose(cands, detection, args.version, loader)
    if args.for_uv:
        dest = uv_dest(uv_python_dir(), chosen.version, chosen.arch)
    else:
        dest = args.dir or default_dest(chosen)
    python = install(chosen, dest, force=args.force, sha256=args.sha256, loader=loader)
    if args.json:
        print(json.dumps({"archive": str(chosen.path), "version": chosen.version,
                          "arch": chosen.arch, "prefix": str(dest), "python": str(python)}))
    else:
        console = Console(stderr=True, highlight=False)
        console.print(f"installed {chosen.path.name} ({detection.libc} "
                      f"{detection.version}, {detection.arch})")
        if args.for_uv:
            console.print(f"uv finds it as {dest.name} (`uv python list`); "
                          f"`uv python uninstall {chosen.version}` removes it")
        print(python)
    return 0
