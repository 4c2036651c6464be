"""build-images in a checkout with no ../shared beside it: the official minirootfs comes from
the mirror setting (MUSL_PBS_ALPINE_MIRROR, here an HTTP server on the loopback) into an empty
cache, and the image names are those of this checkout (the same key: same tarball)."""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.minirootfs import REPO, tarball
from tests.unit.test_testground_minirootfs import (
    REAL,
    _env,
    _fresh_checkout,
    _leftovers,
    _Server,
    serving,
)

pytestmark = pytest.mark.docker


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    with serving(tmp_path / "mirror") as srv:
        yield srv


def test_build_images_downloads_in_a_checkout_without_shared(tmp_path: Path,
                                                             server: _Server) -> None:
    """build-images in a checkout with no ../shared: the minirootfs comes from the mirror
    setting (a loopback server), and the image names are those of this checkout's."""
    server.put(REAL, tarball(REAL).read_bytes(), branch="v3.20")
    fixtures = _fresh_checkout(tmp_path)
    args = ["--arch", "x86_64", "--python", "3.11", "--cached-only"]
    here = subprocess.run([sys.executable, str(REPO / "tests/fixtures/build-images"), *args],
                          capture_output=True, text=True, timeout=120, check=False)
    there = subprocess.run([sys.executable, str(fixtures / "build-images"), *args],
                           env=_env(tmp_path, server.url), capture_output=True, text=True,
                           timeout=120, check=False)
    assert "Traceback" not in there.stderr
    assert there.returncode == here.returncode in (0, 3), there.stderr
    image = re.compile(r"musl-pbs-testground/alpine-like:\S+")
    assert image.findall(there.stdout + there.stderr) == image.findall(here.stdout + here.stderr)
    assert image.findall(there.stdout + there.stderr)
    assert server.requests == ["/v3.20/releases/x86_64/" + REAL]
    assert f"[minirootfs] downloading {server.url}/v3.20/releases/x86_64/{REAL}" in there.stderr
    assert _leftovers(tmp_path / "cache") == [REAL]
    with gzip.open(tmp_path / "cache" / REAL) as f:
        assert f.read(512)  # a real gzip stream
