"""tests/fixtures/testground/alpine_minirootfs.py: finding the official minirootfs, and the
download from Alpine's release server, for real, against an HTTP server on the loopback
(a thread running http.server, laid out as Alpine's server is: <branch>/releases/<arch>/).

Small fake tarballs with a fake pin where the real 3 MB file is not needed; one real
tarball round trip; build-images itself, copied into a checkout with no ../shared (with the
Docker engine: tests/integration/test_testground_minirootfs.py)."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import os
import random
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.minirootfs import REPO, TESTGROUND, alpine_minirootfs, tarball

REAL = "alpine-minirootfs-3.20.3-x86_64.tar.gz"
FAKE = "alpine-minirootfs-9.9.9-x86_64.tar.gz"
LOCATOR = TESTGROUND / "alpine_minirootfs.py"


class _Server(http.server.ThreadingHTTPServer):
    """Serves ``root``; the next ``cut`` answers stop after ``cut_after`` body bytes."""

    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.cut = 0
        self.cut_after = 0
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def put(self, name: str, data: bytes, branch: str = "v9.9", arch: str = "x86_64") -> None:
        path = self.root / branch / "releases" / arch / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        path = self.server.root / self.path.lstrip("/")
        if ".." in self.path or not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.server.cut > 0:
            self.server.cut -= 1
            self.wfile.write(data[: self.server.cut_after])
            self.wfile.flush()
            self.close_connection = True  # the server stops mid-transfer
            return
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(root: Path) -> Iterator[_Server]:
    """A _Server of ``root`` answering in a thread for the block's duration."""
    srv = _Server(root)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    with serving(tmp_path / "mirror") as srv:
        yield srv


@pytest.fixture
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No copy anywhere (a checkout without ../shared, an empty cache): returns the cache."""
    cache = tmp_path / "cache"
    monkeypatch.delenv(alpine_minirootfs.DIR_SETTING, raising=False)
    monkeypatch.setenv(alpine_minirootfs.CACHE_SETTING, str(cache))
    monkeypatch.setattr(alpine_minirootfs, "BESIDE", tmp_path / "no-shared")
    return cache


def _fake_tarball() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = random.Random(20).randbytes(20000)  # incompressible: ~20 kB on the wire
        info = tarfile.TarInfo("./noise")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """A small tarball with its own pin, the only one the locator knows."""
    data = _fake_tarball()
    pin = alpine_minirootfs.Pin("v9.9", "x86_64", hashlib.sha512(data).hexdigest())
    monkeypatch.setattr(alpine_minirootfs, "PINS", {FAKE: pin})
    return data


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_pins_are_alpines_own_sums() -> None:
    sums = alpine_minirootfs.BESIDE / "SHA512SUMS"
    if not sums.is_file():
        pytest.skip("no ../shared/alpine/minirootfs/SHA512SUMS beside the checkout")
    theirs = dict(reversed(line.split()) for line in sums.read_text().splitlines())
    assert {n: p.sha512 for n, p in alpine_minirootfs.PINS.items()} == theirs


def test_urls_follow_alpines_release_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(alpine_minirootfs.MIRROR_SETTING, raising=False)
    assert alpine_minirootfs.url(REAL) == (
        "https://dl-cdn.alpinelinux.org/alpine/v3.20/releases/x86_64/" + REAL)
    assert alpine_minirootfs.url("alpine-minirootfs-20240923-loongarch64.tar.gz") == (
        "https://dl-cdn.alpinelinux.org/alpine/edge/releases/loongarch64/"
        "alpine-minirootfs-20240923-loongarch64.tar.gz")
    monkeypatch.setenv(alpine_minirootfs.MIRROR_SETTING, "http://mirror.example/alpine/")
    assert alpine_minirootfs.url("alpine-minirootfs-3.19.4-aarch64.tar.gz") == (
        "http://mirror.example/alpine/v3.19/releases/aarch64/"
        "alpine-minirootfs-3.19.4-aarch64.tar.gz")


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nowhere: Path,
                      fake: bytes) -> None:
    """$MUSL_PBS_MINIROOTFS_DIR first, then beside the checkout, then the cache."""
    mine, beside = tmp_path / "mine", tmp_path / "no-shared"
    for d in (mine, beside, nowhere):
        d.mkdir()
        (d / FAKE).write_bytes(fake)
    monkeypatch.setenv(alpine_minirootfs.DIR_SETTING, str(mine))
    assert alpine_minirootfs.locate(FAKE, download=False) == mine / FAKE
    monkeypatch.delenv(alpine_minirootfs.DIR_SETTING)
    assert alpine_minirootfs.locate(FAKE, download=False) == beside / FAKE
    (beside / FAKE).unlink()
    assert alpine_minirootfs.locate(FAKE, download=False) == nowhere / FAKE


def test_cache_follows_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(alpine_minirootfs.CACHE_SETTING, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert alpine_minirootfs.cache_dir() == tmp_path / "musl-pbs" / "minirootfs"


def test_download_fake(server: _Server, nowhere: Path, fake: bytes,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    server.put(FAKE, fake)
    monkeypatch.setenv(alpine_minirootfs.MIRROR_SETTING, server.url)
    said = io.StringIO()
    path = alpine_minirootfs.locate(FAKE, progress=said)
    assert path == nowhere / FAKE and path.read_bytes() == fake
    assert _leftovers(nowhere) == [FAKE]  # nothing partial beside it
    assert server.requests == ["/v9.9/releases/x86_64/" + FAKE]
    assert f"downloading {server.url}/v9.9/releases/x86_64/{FAKE}" in said.getvalue()
    assert "MB received" in said.getvalue()
    assert alpine_minirootfs.locate(FAKE) == path  # then found in the cache
    assert len(server.requests) == 1


def test_download_real_tarball_round_trip(server: _Server, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The real 3.20.3 x86_64 tarball, served from where the locator finds it, downloaded
    into an empty cache, checked against Alpine's own SHA-512: byte for byte the same."""
    original = tarball(REAL).read_bytes()  # found the normal way
    nowhere = tmp_path / "cache"
    monkeypatch.delenv(alpine_minirootfs.DIR_SETTING, raising=False)
    monkeypatch.setenv(alpine_minirootfs.CACHE_SETTING, str(nowhere))
    monkeypatch.setattr(alpine_minirootfs, "BESIDE", tmp_path / "no-shared")
    server.put(REAL, original, branch="v3.20")
    monkeypatch.setenv(alpine_minirootfs.MIRROR_SETTING, server.url)
    path = alpine_minirootfs.locate(REAL, progress=None)
    assert path == nowhere / REAL and path.read_bytes() == original
    with tarfile.open(path) as tar:
        release = tar.extractfile("./etc/alpine-release")
        assert release is not None and release.read() == b"3.20.3\n"
    assert _leftovers(nowhere) == [REAL]


def test_corrupted_download_is_refused(server: _Server, nowhere: Path, fake: bytes,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    bad = bytearray(fake)
    bad[100] ^= 0xFF
    server.put(FAKE, bytes(bad))
    monkeypatch.setenv(alpine_minirootfs.MIRROR_SETTING, server.url)
    with pytest.raises(alpine_minirootfs.MinirootfsError) as e:
        alpine_minirootfs.locate(FAKE, progress=None, backoff=0)
    message = str(e.value)
    assert FAKE in message and server.url in message
    assert "does not match its pinned SHA-512" in message and "nothing kept" in message
    assert _leftovers(nowhere) == []
    assert len(server.requests) == 1  # a wrong file is not fetched again


def test_corrupted_copy_is_refused_naming_where_it_was(
        tmp_path: Path, nowhere: Path, fake: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / FAKE).write_bytes(fake[:-1] + b"!")
    monkeypatch.setenv(alpine_minirootfs.DIR_SETTING, str(mine))
    with pytest.raises(alpine_minirootfs.MinirootfsError,
                       match=r"mine/alpine-minirootfs-9\.9\.9-x86_64\.tar\.gz \(found in "
                             r"\$MUSL_PBS_MINIROOTFS_DIR\) does not match its pinned SHA-512"):
        alpine_minirootfs.locate(FAKE)


def test_server_stops_mid_transfer(server: _Server, nowhere: Path, fake: bytes,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Every answer cut short: an error, nothing partial left; cut once: the retry works."""
    server.put(FAKE, fake)
    monkeypatch.setenv(alpine_minirootfs.MIRROR_SETTING, server.url)
    server.cut, server.cut_after = 2, 1000
    with pytest.raises(alpine_minirootfs.MinirootfsError) as e:
        alpine_minirootfs.locate(FAKE, retries=2, backoff=0, progress=None)
    assert f"stopped after 1000 of {len(fake)} bytes" in str(e.value)
    assert "2 attempts" in str(e.value)
    assert _leftovers(nowhere) == []
    server.cut = 1
    said = io.StringIO()
    path = alpine_minirootfs.locate(FAKE, retries=2, backoff=0, progress=said)
    assert path.read_bytes() == fake and _leftovers(nowhere) == [FAKE]
    assert len(server.requests) == 4
    assert "retrying" in said.getvalue() and "attempt 2 of 2" in said.getvalue()


def test_not_on_the_server_fails_at_once(server: _Server, nowhere: Path, fake: bytes,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(alpine_minirootfs.MIRROR_SETTING, server.url)
    with pytest.raises(alpine_minirootfs.MinirootfsError, match="HTTP 404"):
        alpine_minirootfs.locate(FAKE, progress=None)
    assert len(server.requests) == 1


def test_oversized_answer_is_refused(server: _Server, nowhere: Path, fake: bytes,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    server.put(FAKE, fake)
    monkeypatch.setenv(alpine_minirootfs.MIRROR_SETTING, server.url)
    monkeypatch.setattr(alpine_minirootfs, "MAX_BYTES", 1000)
    with pytest.raises(alpine_minirootfs.MinirootfsError, match="more than a minirootfs"):
        alpine_minirootfs.locate(FAKE, progress=None)
    assert _leftovers(nowhere) == []


def test_no_server_says_where_to_put_the_file(nowhere: Path, fake: bytes,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(alpine_minirootfs.MIRROR_SETTING, f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(alpine_minirootfs.MinirootfsError) as e:
        alpine_minirootfs.locate(FAKE, retries=2, backoff=0, progress=None)
    message = str(e.value)
    assert "could not download" in message and "refused" in message.lower()
    assert "Offline?" in message and f"put {FAKE}" in message
    assert str(nowhere) in message and str(alpine_minirootfs.BESIDE) in message
    assert alpine_minirootfs.DIR_SETTING in message
    assert alpine_minirootfs.MIRROR_SETTING in message
    assert _leftovers(nowhere) == []


def _fresh_checkout(tmp_path: Path) -> Path:
    """build-images and its testground/ in a checkout with no ../shared beside it."""
    fixtures = tmp_path / "clone" / "repo" / "tests" / "fixtures"
    fixtures.mkdir(parents=True)
    shutil.copy2(REPO / "tests" / "fixtures" / "build-images", fixtures)
    shutil.copytree(TESTGROUND, fixtures / "testground",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return fixtures


def _env(tmp_path: Path, mirror: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSL_PBS_MINIROOTFS")}
    env[alpine_minirootfs.CACHE_SETTING] = str(tmp_path / "cache")
    env[alpine_minirootfs.MIRROR_SETTING] = mirror
    return env


def test_cli_with_no_server_is_a_clear_error(tmp_path: Path) -> None:
    """No server at all, no copy: one message naming the places and settings, exit 1, no
    traceback; from the locator's CLI and from build-images in a checkout without ../shared."""
    fixtures = _fresh_checkout(tmp_path)
    env = _env(tmp_path, f"http://127.0.0.1:{_closed_port()}")
    r = subprocess.run([sys.executable, str(fixtures / "testground" / "alpine_minirootfs.py"),
                        "--retries", "1", REAL], env=env, capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 1 and r.stdout == ""
    assert "Traceback" not in r.stderr
    assert "[minirootfs] ERROR: could not download " + REAL in r.stderr
    assert str(tmp_path / "clone" / "shared" / "alpine" / "minirootfs") in r.stderr
    assert "MUSL_PBS_MINIROOTFS_DIR" in r.stderr and "MUSL_PBS_ALPINE_MIRROR" in r.stderr
    r = subprocess.run([sys.executable, str(fixtures / "build-images"), "--arch", "x86_64",
                        "--cached-only"], env=env, capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 1 and r.stdout == ""
    assert "Traceback" not in r.stderr
    assert "[build-images] ERROR: could not download " + REAL in r.stderr
    assert _leftovers(tmp_path / "cache") == []
