"""Users build from images that already hold python3 (``FROM alpine`` + ``RUN apk add
python3``), whose repositories may be unreachable, and from Pythons no recipe names.

One image derived from the test ground: python3 and python3-dev installed, then the
repositories pointed at a host that does not exist. Built with an empty recipe directory,
the build succeeds with the default recipe, records the image's apk version and
``recipe: default``, and the archive verifies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.cli import main
from builder.lowlevel.container import Container, docker_client
from builder.stages.acquire import Acquired

pytestmark = pytest.mark.docker

DERIVED = "musl-pbs-layout/preinstalled"


@pytest.fixture(scope="module")
def preinstalled(images_x86_64: tuple[str, str]) -> str:
    tag = images_x86_64[0].rsplit(":", 1)[1]
    with Container(docker_client(), images_x86_64[0], platform="linux/amd64", network=False,
                   purpose="layout-derive") as c:
        c.check_call(["apk", "add", "--no-cache", "python3", "python3-dev"],
                     what="apk add python3 python3-dev")
        c.check_call(["sh", "-c", "echo https://mirror.invalid/alpine/v3.19/main "
                      "> /etc/apk/repositories"], what="point apk at an unreachable mirror")
        c.commit(DERIVED, tag)
    return f"{DERIVED}:{tag}"


@pytest.fixture(scope="module")
def built(preinstalled: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("preinstalled")
    (root / "no-recipes").mkdir()
    code = main(["build", "--arch", "x86_64", "--image", preinstalled, "--out",
                 str(root / "dist"), "--work", str(root / "work"), "--recipes",
                 str(root / "no-recipes"), "-q"])
    assert code == 0
    return root


def test_build_from_an_image_with_python3_and_no_recipe(built: Path) -> None:
    manifest_path = next((built / "dist").glob("cpython-3.*-linux-x86_64-musl.json"))
    manifest = json.loads(manifest_path.read_text())
    assert manifest["recipe"] == "default"
    assert manifest["apk_version"]  # apk --version of the image, e.g. 2.14.4
    acquired = Acquired.load(built / "work" / "x86_64" / "acquire")
    assert acquired.apk_version == manifest["apk_version"]
    assert "python3" in acquired.installed
    assert set(manifest["required_extensions"]) >= {"zlib", "_ctypes", "_socket"}
    assert isinstance(manifest["stdlib_extensions_lacking"], list)


def test_the_default_recipe_archive_verifies(
    built: Path, images_x86_64: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    gz = next((built / "dist").glob("cpython-3.*-linux-x86_64-musl.tar.gz"))
    assert main(["verify", str(gz), "--image", images_x86_64[1]]) == 0
    assert "verified:" in capsys.readouterr().out
