"""Where uv keeps the Pythons it manages, and the name it gives each one.

uv finds a managed Python only as a directory of ``uv python dir`` named by its key,
``cpython-X.Y.Z-linux-ARCH-LIBC`` in uv's own spelling (:func:`builder.naming.uv_install_name`),
whose key's platform is the one uv detects on this host. A Python unpacked there is listed by
``uv python list``, found by ``uv python find``, ``uv venv -p 3.X`` and ``uv run``, and removed
by ``uv python uninstall`` (all checked with the real uv, tests/integration/test_uv.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from builder.errors import UvPythonDirError
from builder.naming import ArchiveName, uv_install_name
from builder.platforms import get_arch

_MAX_OUTPUT = 64 * 1024


def default_uv_python_dir(env: Mapping[str, str]) -> Path:
    """uv's own default: ``UV_PYTHON_INSTALL_DIR``, else ``$XDG_DATA_HOME/uv/python``, else
    ``~/.local/share/uv/python`` (what ``uv python dir`` prints on Linux)."""
    if env.get("UV_PYTHON_INSTALL_DIR"):
        return Path(env["UV_PYTHON_INSTALL_DIR"]).expanduser()
    data = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME") or Path.home(), ".local/share"))
    return Path(data) / "uv" / "python"


def uv_python_dir(env: Mapping[str, str] | None = None, uv: str | None = None) -> Path:
    """Ask ``uv python dir`` (it knows its config files too); without a ``uv`` on PATH,
    use uv's documented default."""
    env = dict(os.environ if env is None else env)
    uv = uv or shutil.which("uv", path=env.get("PATH"))
    if uv is None:
        return default_uv_python_dir(env)
    try:
        out = subprocess.run([uv, "python", "dir"], env=env, capture_output=True, timeout=60,
                             check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise UvPythonDirError(f"could not run `{uv} python dir`: {e}") from None
    text = out.stdout[:_MAX_OUTPUT].decode("utf-8", errors="replace").strip()
    lines = text.splitlines()
    if out.returncode != 0 or len(lines) != 1 or not lines[0].startswith("/"):
        said = (text or out.stderr[:_MAX_OUTPUT].decode("utf-8", errors="replace")).strip()
        raise UvPythonDirError(
            f"`{uv} python dir` exited {out.returncode} without one absolute path: "
            f"{said[-500:]!r}"
        )
    return Path(lines[0])


def uv_dest(python_dir: Path, version: str, arch: str) -> Path:
    """The managed-install directory uv expects for this Python."""
    return python_dir / uv_install_name(ArchiveName(version, get_arch(arch)))
