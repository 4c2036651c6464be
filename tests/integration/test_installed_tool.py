"""musl-pbs as users get it: the sdist and the wheel built (``python -m build``, isolated, the
wheel from the sdist), each installed with pip into a fresh venv, and run from a directory
outside the checkout: ``--version``, ``python -m builder``, ``matrix`` (the packaged
matrix.yaml), then a real ``build`` of the test ground's x86_64 Python 3.11 with the packaged
recipe, and ``verify`` of the archive in the base image.

About a minute per install on a quiet 2-core machine (venv, pip resolving the dependencies
from the index or pip's cache, build, verify); the dists are built once for both."""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

import pytest

from tests.dists import REPO, VERSION, build_dists, wheel_problems
from tests.integration.conftest import BUILD_IMAGES, EXIT_NOT_CACHED

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def testground() -> tuple[str, str]:
    """The x86_64 3.11 test ground's (Alpine-like, base) images, when built."""
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.fail("the Docker engine is not running (.ci/run starts it)")
    out = subprocess.run([str(BUILD_IMAGES), "--arch", "x86_64", "--python", "3.11",
                          "--cached-only"], capture_output=True, text=True)
    if out.returncode == EXIT_NOT_CACHED:
        pytest.skip("the test ground's x86_64 Python 3.11 images are not built "
                    "(tests/fixtures/build-images --arch x86_64 --python 3.11; .ci/run builds "
                    "them with tests/fixtures/build-all)")
    if out.returncode != 0:
        pytest.fail(f"build-images --cached-only failed:\n{out.stderr[-3000:]}")
    alpine_like, base = out.stdout.split()
    return alpine_like, base


@pytest.fixture(scope="module")
def dists(testground: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
          ) -> dict[str, Path]:
    sdist, wheel = build_dists(tmp_path_factory.mktemp("dists"), isolation=True)
    assert wheel_problems(wheel) == []
    return {"sdist": sdist, "wheel": wheel}


def _env() -> dict[str, str]:
    """The caller's environment without what would point Python at the checkout."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSAFEPATH"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _run(argv: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=_env(), capture_output=True,
                          text=True)
    assert done.returncode == 0, (f"{' '.join(map(str, argv))}: exit {done.returncode}\n"
                                  f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_installed_tool_builds_and_verifies(
    kind: str, dists: dict[str, Path], testground: tuple[str, str], tmp_path: Path
) -> None:
    env_dir, work = tmp_path / "venv", tmp_path / "elsewhere"
    work.mkdir()
    assert REPO not in work.parents
    venv.create(env_dir, with_pip=True)
    bin_ = env_dir / "bin"
    _run([bin_ / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
          dists[kind]], work)

    # The installed package, not the checkout.
    where = _run([bin_ / "python", "-c", "import builder; print(builder.__file__)"], work)
    site = Path(where.stdout.strip()).parent
    assert env_dir in site.parents and REPO not in site.parents
    assert _run([bin_ / "musl-pbs", "--version"], work).stdout.strip() == f"musl-pbs {VERSION}"
    assert _run([bin_ / "python", "-m", "builder", "--version"], work).stdout.strip() == (
        f"musl-pbs {VERSION}")

    matrix = _run([bin_ / "musl-pbs", "matrix", "--format", "json"], work)
    assert f"matrix: {site / 'defaults' / 'matrix.yaml'} (musl-pbs's default)" in matrix.stderr
    assert json.loads(matrix.stdout), "the packaged matrix has targets"

    alpine_like, base = testground
    built = _run([bin_ / "musl-pbs", "build", "--arch", "x86_64", "--image", alpine_like,
                  "--out", "dist", "--work", "work", "-q"], work)
    gz, _zst, manifest = (work / p for p in built.stdout.split())
    assert gz.is_file() and gz.name.endswith("-x86_64-musl.tar.gz")
    data = json.loads(manifest.read_text())
    # The packaged recipe, not the default one a missing recipes/ would give.
    assert data["recipe"] == "python3.11.yaml"
    report = _run([bin_ / "musl-pbs", "verify", gz, "--image", base, "--json"], work)
    assert json.loads(report.stdout)["ok"] is True
