"""`musl-pbs install` on a real musl system: the base container, offline.

musl-pbs itself is pip-installed there (its wheel and its dependencies' musllinux wheels)
into a venv of a first archive's Python; then `musl-pbs detect` and `musl-pbs install`
run on that live musl system and put a working Python in place.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from builder.lowlevel.container import Container, docker_client
from builder.lowlevel.wheelhouse import CACHE, ensure_wheelhouse, pip_wheel
from builder.platforms import get_arch

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.docker


def tool_wheelhouse(tmp: Path, minor: str) -> Path:
    """musl-pbs's own wheel plus its dependencies for CPython ``minor`` on musllinux."""
    dest = tmp / "wh"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w",
                    str(dest), str(REPO)], check=True, capture_output=True)
    ours = next(dest.glob("musl_pbs-*.whl"))
    # Keyed by what musl-pbs depends on: a new dependency must not meet a stale cache
    # (pip download takes an already-downloaded musl_pbs wheel's metadata as it is).
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:12]
    cache = CACHE / "wheelhouse" / f"tool-cp{minor.replace('.', '')}-x86_64-{key}"
    out = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
         "--platform", "musllinux_1_2_x86_64", "--platform", "musllinux_1_1_x86_64",
         "--platform", "any", "--python-version", minor, "--implementation", "cp",
         "-d", str(cache), str(ours)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.fail(f"could not download musl-pbs's dependencies: {out.stderr[-2000:]}")
    for wheel in cache.glob("*.whl"):
        if not wheel.name.startswith("musl_pbs-"):
            (dest / wheel.name).write_bytes(wheel.read_bytes())
    return dest


@dataclass(frozen=True)
class ToolInputs:
    """What it takes to pip-install musl-pbs on a musl system with one of our archives."""

    archive: Path  # the x86_64 .tar.gz, also the first Python that runs musl-pbs
    manifest: dict[str, Any]
    wheels: Path  # musl-pbs's wheel and its dependencies' musllinux wheels
    pip: Path  # pip's wheel, run as `python pip.whl/pip`

    @property
    def bootstrap(self) -> list[str]:
        """Shell commands that leave musl-pbs in /opt/tool, with /dist and /wh (+ pip's
        wheel as /wh/<name>) in the container; the first Python stays off PATH."""
        return [
            f"mkdir -p /opt/boot && tar -xzf /dist/{self.archive.name} -C /opt/boot",
            "/opt/boot/python/bin/python3 -m venv --without-pip /opt/tool",
            f"/opt/tool/bin/python /wh/{self.pip.name}/pip install --quiet --no-index "
            "--find-links /wh musl-pbs",
        ]


def tool_inputs(built: Path, tmp: Path) -> ToolInputs:
    archive = next(built.glob("cpython-*-linux-x86_64-musl.tar.gz"))
    manifest = json.loads(archive.with_name(archive.name.replace(".tar.gz", ".json"))
                          .read_text())
    minor = manifest["python_minor"]
    return ToolInputs(archive, manifest, tool_wheelhouse(tmp, minor),
                      pip_wheel(ensure_wheelhouse(minor, get_arch("x86_64"))))


def test_install_on_a_musl_system(
    built_x86_64: Path, images_x86_64: tuple[str, str], tmp_path: Path
) -> None:
    arch = get_arch("x86_64")
    tool = tool_inputs(built_x86_64, tmp_path)
    manifest, wheels, pip = tool.manifest, tool.wheels, tool.pip
    with Container(docker_client(), images_x86_64[1], platform=arch.docker_platform,
                   network=False, purpose="install") as c:
        c.put_files(PurePosixPath("/"), [
            ("dist", built_x86_64), ("wh", wheels), (f"wh/{pip.name}", pip)])

        def run(*argv: str) -> str:
            r = c.call(["sh", "-c", " ".join(argv)])
            assert r.exit_code == 0, f"{' '.join(argv)}:\n{r.output[-3000:]}"
            return r.output

        # A first Python to run musl-pbs with (any musl system has one way or another).
        for command in tool.bootstrap:
            run(command)
        detected = json.loads(run("/opt/tool/bin/musl-pbs detect --json"))
        assert detected["libc"] == "musl" and detected["arch"] == "x86_64"
        assert detected["version"] == manifest["musl_version_needed"]
        result = json.loads(run("/opt/tool/bin/musl-pbs install --from /dist",
                                "--dir /opt/python --json"))
        assert result["prefix"] == "/opt/python" and result["arch"] == "x86_64"
        out = run("/opt/python/bin/python3 -c",
                  "'import sys, ctypes, zlib, ssl, sqlite3; print(sys.prefix)'")
        assert out.strip() == "/opt/python"
        r = c.call(["sh", "-c", "/opt/tool/bin/musl-pbs install --from /dist --dir /opt/python"])
        assert r.exit_code == 16 and "already exists" in r.output
