"""`musl-pbs detect`: does this system (or a root filesystem) need a musl build?

Nothing from the inspected tree is executed (see :mod:`builder.host.detect`). The exit code is 0
when the libc was decided (whether or not an archive fits) and
:class:`~builder.errors.UndecidedError`'s when it was not; the report is printed either way.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.errors import UndecidedError, UsageError

if TYPE_CHECKING:
    from builder.host.detect import Detection


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "detect",
        help="say whether a system is musl or glibc, and which archive fits it",
        description=(
            "Say which libc (musl or glibc) a system uses, its version, the userland "
            "architecture (from ELF headers, not uname) and the archive that fits, given as "
            "a glob: cpython-*-linux-ARCH-musl.tar.gz. Nothing is executed. Exits 14 when "
            "it cannot decide."
        ),
    )
    p.add_argument("--root", type=Path,
                   help="inspect this root filesystem instead of the running system")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def format_text(d: Detection) -> str:
    """A short readable summary with the evidence."""
    lines = [f"root:     {d.root}"]
    if d.libc is None:
        lines.append(f"libc:     undecided ({d.undecided_reason})")
    else:
        lines.append(f"libc:     {d.libc} {d.version or '(version unknown)'}")
        arch = d.arch or "no Alpine architecture"
        lines.append(f"arch:     {arch} ({d.machine})")
        loader = d.loader or "?"
        if d.loader_resolved and d.loader_resolved != d.loader:
            loader += f" -> {d.loader_resolved}"
        lines.append(f"loader:   {loader}")
        lines.append(f"decided:  by {d.program or 'the only loader present'}")
    if d.archive:
        lines.append(f"archive:  {d.archive}")
    else:
        lines.append(f"archive:  none ({d.archive_note})")
    lines.append("evidence:")
    lines += [f"  - {e}" for e in d.evidence]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from builder.host.detect import detect

    if args.root is None:
        result = detect(Path("/"), kernel_machine=os.uname().machine)
    else:
        root: Path = args.root
        if not root.is_dir():
            raise UsageError(f"--root {root}: not a directory",
                             hint="pass the top directory of an unpacked root filesystem")
        result = detect(root)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(format_text(result))
    if not result.decided:
        raise UndecidedError(f"cannot tell which libc {result.root} uses: "
                             f"{result.undecided_reason}")
    return 0
