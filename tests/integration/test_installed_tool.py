"""musl-pbs as users get it: the sdist and the wheel built (``python -m build``, isolated, the
wheel from the sdist), each installed with pip into a fresh venv, and run from a directory
outside the checkout: ``--version``, ``python -m builder``, ``matrix`` (the packaged
matrix.yaml), then a real ``build`` of the test ground's x86_64 Python 3.11 with the packaged
recipe, and ``verify`` of the archive in the base image.

The sdist's tool builds the same archive bytes as the wheel's and verifies them in a container
too (its own runtime checks, from its own install). Wall time: 3 min 47 s with the load
average at 10-12 on 2 cores (other builds running) before the sdist's container verify was
added (about 50 s more), most of it pip and verify."""

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


@pytest.fixture(scope="module")
def tools(dists: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The bin/ of a fresh venv per dist, the dist installed there with pip (dependencies
    from the index or pip's cache)."""
    bins = {}
    for kind, dist in dists.items():
        env_dir = tmp_path_factory.mktemp(f"venv-{kind}")
        venv.create(env_dir, with_pip=True)
        _run([env_dir / "bin" / "python", "-m", "pip", "install", "--quiet",
              "--disable-pip-version-check", dist], env_dir)
        bins[kind] = env_dir / "bin"
    return bins


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory outside the checkout, without a matrix.yaml."""
    assert REPO not in tmp_path.parents and not (tmp_path / "matrix.yaml").exists()
    return tmp_path


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_installed_tool_runs_from_elsewhere(
    kind: str, tools: dict[str, Path], elsewhere: Path
) -> None:
    bin_ = tools[kind]
    where = _run([bin_ / "python", "-c", "import builder; print(builder.__file__)"], elsewhere)
    package = Path(where.stdout.strip()).parent
    assert bin_.parent in package.parents and REPO not in package.parents
    assert _run([bin_ / "musl-pbs", "--version"], elsewhere).stdout.strip() == (
        f"musl-pbs {VERSION}")
    assert _run([bin_ / "python", "-m", "builder", "--version"], elsewhere).stdout.strip() == (
        f"musl-pbs {VERSION}")
    matrix = _run([bin_ / "musl-pbs", "matrix", "--format", "json"], elsewhere)
    packaged = package / "defaults" / "matrix.yaml"
    assert f"matrix: {packaged} (musl-pbs's default)" in matrix.stderr
    assert packaged.read_bytes() == (REPO / "matrix.yaml").read_bytes()
    assert json.loads(matrix.stdout), "the packaged matrix has targets"


def _build(bin_: Path, image: str, cwd: Path) -> tuple[Path, dict[str, object]]:
    built = _run([bin_ / "musl-pbs", "build", "--arch", "x86_64", "--image", image,
                  "--out", "dist", "--work", "work", "-q"], cwd)
    gz, _zst, manifest = (cwd / p for p in built.stdout.split())
    assert gz.is_file() and gz.name.endswith("-x86_64-musl.tar.gz")
    return gz, json.loads(manifest.read_text())


def test_installed_tools_build_and_verify(
    tools: dict[str, Path], testground: tuple[str, str], elsewhere: Path
) -> None:
    """The wheel's tool builds and verifies (in the base image); so does the sdist's, which
    also builds the same archive byte for byte (builds are deterministic)."""
    alpine_like, base = testground
    (elsewhere / "wheel").mkdir()
    (elsewhere / "sdist").mkdir()
    gz, manifest = _build(tools["wheel"], alpine_like, elsewhere / "wheel")
    # The packaged recipe, not the default one a wheel without recipes/ would fall back to.
    assert manifest["recipe"] == "python3.11.yaml"
    report = _run([tools["wheel"] / "musl-pbs", "verify", gz, "--image", base, "--json"],
                  elsewhere / "wheel")
    assert json.loads(report.stdout)["ok"] is True

    sdist_gz, sdist_manifest = _build(tools["sdist"], alpine_like, elsewhere / "sdist")
    assert sdist_manifest["recipe"] == "python3.11.yaml"
    assert sdist_gz.read_bytes() == gz.read_bytes()
    sdist_report = _run([tools["sdist"] / "musl-pbs", "verify", sdist_gz, "--image", base,
                         "--json"], elsewhere / "sdist")
    assert json.loads(sdist_report.stdout)["ok"] is True
