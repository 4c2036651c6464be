"""The package as users get it: the sdist and the wheel built from the checkout, and what a
wheel must hold (tests/unit/test_packaging.py, tests/integration/test_installed_tool.py)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from builder import __version__

REPO = Path(__file__).resolve().parent.parent
VERSION = __version__


def build_dists(out: Path, isolation: bool) -> tuple[Path, Path]:
    """(sdist, wheel) of the checkout, the wheel built from the sdist."""
    flags = [] if isolation else ["--no-isolation"]
    done = subprocess.run([sys.executable, "-m", "build", *flags, "--outdir", str(out),
                           str(REPO)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"python -m build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return (out / f"musl_pbs-{VERSION}.tar.gz", out / f"musl_pbs-{VERSION}-py3-none-any.whl")


def wheel_problems(wheel: Path) -> list[str]:
    """What the wheel lacks or holds wrong, compared with the checkout (empty: none)."""
    problems = []
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        wanted = {f"builder/defaults/{p.relative_to(REPO)}": p
                  for p in [REPO / "matrix.yaml", *sorted((REPO / "recipes").glob("*.yaml"))]}
        wanted |= {f"builder/data/{p.name}": p for p in (REPO / "builder" / "data").iterdir()
                   if p.is_file()}
        wanted |= {"builder/py.typed": REPO / "builder" / "py.typed",
                   "builder/__main__.py": REPO / "builder" / "__main__.py",
                   f"musl_pbs-{VERSION}.dist-info/licenses/LICENSE": REPO / "LICENSE"}
        for name, source in sorted(wanted.items()):
            if name not in names:
                problems.append(f"{name}: missing")
            elif z.read(name) != source.read_bytes():
                problems.append(f"{name}: differs from {source.relative_to(REPO)}")
    return problems
