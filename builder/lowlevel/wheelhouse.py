"""The offline wheelhouse verify installs from: pip and numpy's musllinux wheel.

Downloaded once from PyPI on the host and cached under ~/.cache/musl-pbs/wheelhouse.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from builder.errors import NetworkError
from builder.platforms import Arch

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "musl-pbs"
MARKER = ".complete"
REQUIREMENTS = ("pip", "numpy")


def wheelhouse_dir(minor: str, arch: Arch) -> Path:
    tag = "cp" + minor.replace(".", "")
    return CACHE / "wheelhouse" / f"{tag}-musllinux-{arch.wheel_arch}"


def ensure_wheelhouse(minor: str, arch: Arch) -> Path:
    """Return a directory holding a pip wheel and numpy's musllinux wheel for ``minor``."""
    dest = wheelhouse_dir(minor, arch)
    if (dest / MARKER).exists():
        return dest
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tag = minor.replace(".", "")
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "--dest", str(tmp),
        "--python-version", minor, "--implementation", "cp", "--abi", f"cp{tag}",
        "--abi", "abi3", "--abi", "none",
        "--platform", f"musllinux_1_2_{arch.wheel_arch}",
        "--platform", f"musllinux_1_1_{arch.wheel_arch}", "--platform", "any",
        *REQUIREMENTS,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-8:])
        raise NetworkError(
            f"could not download {', '.join(REQUIREMENTS)} wheels for CPython {minor} "
            f"musllinux {arch.wheel_arch}:\n{tail}",
            hint=f"check PyPI access, or fill {dest} with pip and numpy wheels and create "
            f"{dest / MARKER}; or pass --wheelhouse DIR",
        )
    (tmp / MARKER).write_text("")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def pip_wheel(wheelhouse: Path) -> Path:
    wheels = sorted(wheelhouse.glob("pip-*.whl"))
    if not wheels:
        raise NetworkError(f"{wheelhouse} holds no pip wheel")
    return wheels[-1]
