""".ci/demo's choice between the real alpine:TAG and the test ground (--choose-only: the
probe runs, the choice and its reason are said, nothing is built or installed).

The registry is played by an HTTP server on the loopback: a registry's /v2/ answer (401 with
Docker-Distribution-API-Version), a middlebox's (404 without it), and a closed port; plus
the real Docker Hub probe as this machine sees it."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from tests.minirootfs import REPO

DEMO = REPO / ".ci" / "demo"


def _demo(*args: str, probe: str | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    env = dict(os.environ)
    env.pop("MUSL_PBS_REGISTRY_PROBE_URL", None)
    if probe is not None:
        env["MUSL_PBS_REGISTRY_PROBE_URL"] = probe
    t0 = time.monotonic()
    r = subprocess.run(["bash", str(DEMO), *args], env=env, capture_output=True, text=True,
                       timeout=30, check=False)
    return r, time.monotonic() - t0


class _Registry(http.server.BaseHTTPRequestHandler):
    registry = True

    def do_GET(self) -> None:
        self.send_response(401 if self.registry else 404)
        if self.registry:
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Middlebox(_Registry):
    registry = False


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/v2/"
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.fixture
def registry() -> Iterator[str]:
    yield from _serve(_Registry)


@pytest.fixture
def middlebox() -> Iterator[str]:
    yield from _serve(_Middlebox)


def _closed() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v2/"


def test_unreachable_registry_chooses_the_test_ground_and_says_why() -> None:
    url = _closed()
    r, took = _demo("--choose-only", probe=url)
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("== building from the test ground (tests/fixtures/build-images):")
    assert f"Docker Hub is not reachable ({url} did not answer" in r.stderr
    assert "Connection refused" in r.stderr
    assert took < 10


def test_a_middlebox_is_not_a_registry(middlebox: str) -> None:
    r, _ = _demo("--choose-only", probe=middlebox)
    assert r.returncode == 0, r.stderr
    assert "building from the test ground" in r.stderr
    assert f"{middlebox} answered HTTP 404, but not as a registry" in r.stderr


def test_reachable_registry_chooses_the_real_path(registry: str) -> None:
    r, _ = _demo("--choose-only", probe=registry)
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("== building from the real alpine:TAG with Alpine's mirror: "
                               f"Docker Hub is reachable ({registry} answered HTTP 401 as a "
                               "registry)")
    r, _ = _demo("--test-ground", "--choose-only", probe=registry)
    assert "building from the test ground (tests/fixtures/build-images): --test-ground" in (
        r.stderr)


def test_real_without_a_registry_fails_fast_and_clearly() -> None:
    url = _closed()
    r, took = _demo("--real", "x86_64", probe=url)  # not --choose-only: it would build
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("== --real: cannot build from alpine:TAG here: Docker Hub is "
                               f"not reachable ({url} did not answer")
    assert "run .ci/demo without --real" in r.stderr
    assert took < 10


def test_this_machines_docker_hub_probe_is_short_and_says_why() -> None:
    """The real probe (Docker Hub unreachable here): answered within the probe's 5 s, and
    the choice follows it."""
    r, took = _demo("--choose-only")
    assert r.returncode == 0, r.stderr
    assert took < 10
    assert "https://registry-1.docker.io/v2/" in r.stderr
    if "building from the test ground" in r.stderr:
        assert "Docker Hub is not reachable (https://registry-1.docker.io/v2/" in r.stderr
    else:
        assert "Docker Hub is reachable (https://registry-1.docker.io/v2/ answered" in r.stderr
