"""Fixtures for the end-to-end tests: the real Docker engine and the test-ground images."""

from __future__ import annotations

import gzip
import os
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from builder.cli import main

REPO = Path(__file__).resolve().parents[2]
BUILD_IMAGES = REPO / "tests" / "fixtures" / "build-images"


def images_for(arch: str, python: str = "3.11") -> tuple[str, str]:
    """(Alpine-like image, base image), built or taken from the cache."""
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.fail("the Docker engine is not running (.ci/run starts it)")
    out = subprocess.run([str(BUILD_IMAGES), "--arch", arch, "--python", python],
                         capture_output=True, text=True)
    if out.returncode != 0:
        pytest.fail(f"build-images --arch {arch} --python {python} failed:\n"
                    f"{out.stderr[-3000:]}")
    alpine_like, base = out.stdout.split()
    return alpine_like, base


# The Python minors the test ground may offer, tried in this order by find_testground().
TESTGROUND_PYTHONS = ("3.11", "3.12", "3.13")
# Arches whose test-ground images a test builds when they are missing. The others (armv7,
# x86, riscv64, ppc64le, s390x, armhf, loongarch64: 5-15 min each, cold) are used only when
# already built, unless MUSL_PBS_TEST_ARCHES names them ("armv7,x86" or "all").
TESTGROUND_DEFAULT_ARCHES = ("x86_64", "aarch64")
EXIT_NOT_CACHED = 3  # build-images --cached-only: the images are not built


def testground_builds(arch: str) -> bool:
    """True when a test may build the test ground of ``arch`` (cold) if it is missing."""
    wanted = {a.strip() for a in os.environ.get("MUSL_PBS_TEST_ARCHES", "").split(",")}
    return arch in TESTGROUND_DEFAULT_ARCHES or "all" in wanted or arch in wanted


def find_testground(arch: str) -> tuple[str, str, str] | None:
    """(minor, Alpine-like image, base image) of the first minor the test ground offers for
    ``arch``; None when it offers none (build-images exits 2 for an unsupported target).
    Skips the test when the arch's images are not built and testground_builds() says no."""
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.fail("the Docker engine is not running (.ci/run starts it)")
    cached_only = [] if testground_builds(arch) else ["--cached-only"]
    not_built: list[str] = []
    for minor in TESTGROUND_PYTHONS:
        out = subprocess.run([str(BUILD_IMAGES), "--arch", arch, "--python", minor,
                              *cached_only], capture_output=True, text=True)
        if out.returncode == 0:
            alpine_like, base = out.stdout.split()
            return minor, alpine_like, base
        if out.returncode == EXIT_NOT_CACHED and cached_only:
            not_built.append(minor)
        elif out.returncode != 2:
            pytest.fail(f"build-images --arch {arch} --python {minor} failed:\n"
                        f"{out.stderr[-3000:]}")
    if not_built:
        pytest.skip(f"the test ground's {arch} images (Python {', '.join(not_built)}) are not "
                    f"built; MUSL_PBS_TEST_ARCHES={arch} (or all) builds them "
                    f"(tests/fixtures/README.md: cold times)")
    return None


_BUILT: dict[tuple[str, str], Path] = {}


def built_once(arch: str, minor: str, image: str, request: pytest.FixtureRequest) -> Path:
    """The .tar.gz of one real build per (arch, minor) in this session, from ``image``
    (x86_64 3.11 is the session's ``built_x86_64``); manifest and .tar.zst beside it."""
    if (arch, minor) == ("x86_64", "3.11"):
        _BUILT[arch, minor] = next(
            request.getfixturevalue("built_x86_64").glob("cpython-*-musl.tar.gz"))
    if (arch, minor) not in _BUILT:
        tmp: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
        root = tmp.mktemp(f"build-{arch}-{minor}")
        assert main(["build", "--arch", arch, "--image", image, "--out", str(root / "dist"),
                     "--work", str(root / "work"), "-q"]) == 0
        _BUILT[arch, minor] = next((root / "dist").glob("cpython-*-musl.tar.gz"))
    return _BUILT[arch, minor]


@pytest.fixture(scope="session")
def images_x86_64() -> tuple[str, str]:
    return images_for("x86_64")


@pytest.fixture(scope="session")
def built_x86_64(
    images_x86_64: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """dist/ of one real build of x86_64 from the Alpine-like image."""
    root = tmp_path_factory.mktemp("build-x86_64")
    code = main(["build", "--arch", "x86_64", "--image", images_x86_64[0],
                 "--out", str(root / "dist"), "--work", str(root / "work"), "-q"])
    assert code == 0
    return root / "dist"


def archive_without(gz: Path, broken: Path, drop: Callable[[str], bool]) -> Path:
    """A copy of the .tar.gz ``gz`` at ``broken`` without the members whose name ``drop``
    accepts (a planted defect for verify)."""
    with tarfile.open(gz) as src, gzip.open(broken, "wb") as raw, \
            tarfile.open(fileobj=raw, mode="w") as dst:
        for m in src:
            if not drop(m.name):
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    return broken
