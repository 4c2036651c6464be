"""uv installs our archive through download-metadata.json, offline, in a clean musl
container: the real uv (its musllinux wheel carries a static binary), the real engine."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from builder.build import write_download_metadata
from builder.lowlevel.container import Container, docker_client
from builder.lowlevel.wheelhouse import CACHE, ensure_wheelhouse
from builder.platforms import get_arch

pytestmark = pytest.mark.docker


def uv_binary(arch: str = "x86_64") -> Path:
    """The static uv binary from uv's musllinux wheel on PyPI, downloaded once."""
    dest = CACHE / "uv" / arch / "uv"
    if dest.exists():
        return dest
    tmp = dest.parent / "download"
    shutil.rmtree(tmp, ignore_errors=True)
    out = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
         "--only-binary=:all:", "--platform", f"musllinux_1_1_{arch}", "-d", str(tmp), "uv"],
        capture_output=True, text=True)
    if out.returncode != 0:
        pytest.fail(f"could not download uv's musllinux wheel: {out.stderr[-2000:]}")
    wheel = next(tmp.glob("uv-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        member = next(n for n in z.namelist() if n.endswith(".data/scripts/uv"))
        dest.write_bytes(z.read(member))
    dest.chmod(0o755)
    shutil.rmtree(tmp)
    return dest


def _tar_dir(files: dict[str, Path]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, path in files.items():
            tar.add(str(path), arcname=name)
    return buf.getvalue()


def test_uv_python_install_venv_and_numpy(
    built_x86_64: Path, images_x86_64: tuple[str, str], tmp_path: Path
) -> None:
    arch = get_arch("x86_64")
    release = tmp_path / "release"
    release.mkdir()
    archive = next(built_x86_64.glob("cpython-*-linux-x86_64-musl.tar.gz"))
    manifest = archive.with_name(archive.name.replace(".tar.gz", ".json"))
    shutil.copy2(archive, release)
    shutil.copy2(manifest, release)
    metadata = write_download_metadata(release, base_url="file:///release")
    entries = json.loads(metadata.read_text())
    key = f"cpython-{json.loads(manifest.read_text())['python_version']}-linux-x86_64-musl"
    assert entries[key]["url"] == f"file:///release/{archive.name}"
    minor = ".".join(key.split("-")[1].split(".")[:2])
    wheelhouse = ensure_wheelhouse(minor, arch)

    env = {
        "UV_PYTHON_DOWNLOADS_JSON_URL": "/release/download-metadata.json",
        "UV_PYTHON_INSTALL_DIR": "/opt/uv-python",
        "UV_CACHE_DIR": "/tmp/uv-cache",
        "UV_NO_PROGRESS": "1",
        "HOME": "/root",
    }
    client = docker_client()
    with Container(client, images_x86_64[1], platform=arch.docker_platform, network=False,
                   purpose="uv") as c:
        c.put_tar(PurePosixPath("/"), _tar_dir({
            "release": release, "wheelhouse": wheelhouse, "opt/uv/uv": uv_binary(),
        }))

        def run(*argv: str) -> str:
            r = c.call(list(argv), env=env)
            assert r.exit_code == 0, f"{' '.join(argv)}:\n{r.output[-3000:]}"
            return r.output

        run("/opt/uv/uv", "python", "install", minor)
        found = run("/opt/uv/uv", "python", "find", "--managed-python", minor).strip()
        assert found.startswith("/opt/uv-python/"), found
        run("/opt/uv/uv", "venv", "--python", minor, "/tmp/venv")
        run("/opt/uv/uv", "pip", "install", "--python", "/tmp/venv/bin/python", "--offline",
            "--no-index", "--find-links", "/wheelhouse", "numpy")
        out = run("/tmp/venv/bin/python", "-c",
                  "import numpy, sys, sysconfig; print(numpy.arange(15).reshape(3, 5).sum()); "
                  "print(sysconfig.get_config_var('LIBDIR'))")
        total, libdir = out.split()
        assert total == "105"
        assert libdir.startswith("/opt/uv-python/"), libdir  # uv rewrote /install
