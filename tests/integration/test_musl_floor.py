"""The musl floor on real Alpine: the official 3.19.4 minirootfs (musl 1.2.4_git20230717)
against an archive built on musl 1.2.5. Either it runs there, or verify refuses it before
unpacking and names the missing symbols; and a refusal is never wrong: the archive,
forced in anyway, fails with "symbol not found" on those symbols (the first the loader meets)."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath

import docker.errors
import pytest

from builder.cli import main
from builder.lowlevel.container import Container, docker_client
from builder.lowlevel.images import load_rootfs_image
from builder.platforms import get_arch
from builder.stages.verify import tar_for_put
from tests.minirootfs import release

pytestmark = pytest.mark.docker

IMAGE = "musl-pbs-layout/alpine-minirootfs:3.19.4-x86_64"


@pytest.fixture(scope="module")
def alpine_3_19_4() -> str:
    """The official 3.19.4 minirootfs, unchanged, loaded as an image (once)."""
    client = docker_client()
    try:
        client.images.get(IMAGE)
        return IMAGE
    except docker.errors.ImageNotFound:
        pass
    with tempfile.TemporaryDirectory(prefix="musl-pbs-layout-") as tmp:
        layer = Path(tmp, "layer.tar")
        with gzip.open(release("3.19.4", "x86_64")) as src, layer.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        load_rootfs_image(client, layer, IMAGE, get_arch("x86_64"))
    return IMAGE


def _archive(dist: Path) -> tuple[Path, dict[str, object]]:
    gz = next(dist.glob("cpython-3.*-linux-x86_64-musl.tar.gz"))
    return gz, json.loads(gz.with_name(gz.name.replace(".tar.gz", ".json")).read_text())


def test_image_is_real_alpine_3_19_4(alpine_3_19_4: str) -> None:
    with Container(docker_client(), alpine_3_19_4, platform="linux/amd64", network=False,
                   purpose="layout-floor") as c:
        r = c.call(["apk", "info", "-v"])  # every installed package, name-version
    assert "musl-1.2.4_git20230717-r4" in r.output


def test_verify_on_3_19_4_runs_or_refuses_naming_the_symbols(
    built_x86_64: Path, alpine_3_19_4: str, capsys: pytest.CaptureFixture[str]
) -> None:
    gz, manifest = _archive(built_x86_64)
    floor = manifest["musl_floor"]
    assert isinstance(floor, dict)
    lacks = floor["missing_by_version"]["1.2.4_git20230717"]
    code = main(["verify", str(gz), "--image", alpine_3_19_4])
    err = capsys.readouterr().err
    if not lacks:
        assert code == 0, err
        return
    # Built on musl 1.2.5, CPython imports preadv2 and pwritev2, which 1.2.4 lacks.
    assert manifest["musl_version_needed"] == "1.2.5"
    assert lacks == ["preadv2", "pwritev2"] == floor["set_by"]
    assert code == 12, err
    flat = " ".join(err.split())
    assert "musl-floor" in flat and "lacks preadv2, pwritev2" in flat
    assert "before unpacking" in flat
    assert "import:" not in flat  # nothing was unpacked or run


def test_a_refusal_is_never_wrong(built_x86_64: Path, alpine_3_19_4: str) -> None:
    """Forced into 3.19.4 anyway, the archive fails on exactly the symbols named."""
    gz, manifest = _archive(built_x86_64)
    floor = manifest["musl_floor"]
    assert isinstance(floor, dict)
    lacks = floor["missing_by_version"]["1.2.4_git20230717"]
    base = PurePosixPath("/opt/forced")
    with Container(docker_client(), alpine_3_19_4, platform="linux/amd64", network=False,
                   purpose="layout-floor") as c:
        c.put_tar(base, tar_for_put(gz))
        r = c.call([str(base / "python/bin/python3"), "-c", "print('ran')"],
                   env={"LD_LIBRARY_PATH": ""})
    if not lacks:
        assert r.exit_code == 0 and "ran" in r.output
        return
    assert r.exit_code != 0
    # The launcher dlopens libpython, and musl's dlopen stops at the first relocation error
    # (the program loader at start-up lists them all): every symbol named is one the floor
    # named, and at least one is.
    named = set(re.findall(r"(\w+): symbol not found", r.output))
    assert named and named <= set(lacks), r.output
