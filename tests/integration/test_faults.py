"""Faults in a real build, against the real Docker engine: the engine stopped before and
during a build, SIGINT and SIGTERM during export and during compression, and a full
--out. Each must end with a clear error (no traceback), leave no container and no file
under a final name, and the next run must succeed.

The engine-stop cases use a private second dockerd (its own socket, data root,
containerd and bridge interface; no iptables) started and stopped by a fixture: the
shared engine is never stopped. Never start it with ``--bridge none``: dockerd then
deletes the host's docker0, which breaks the shared engine's containers.

The build runs as a subprocess (``musl-pbs build``) so that signals and a vanishing
engine hit it as they would a user's.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
FAULT_RUN = Path("/run/musl-pbs-fault")
FAULT_DATA = Path("/var/lib/musl-pbs-fault")
FAULT_SOCK = FAULT_RUN / "docker.sock"
FAULT_PID = FAULT_RUN / "docker.pid"
FAULT_BRIDGE = "mpbsfault0"  # our own bridge interface (names are at most 15 bytes)
FAULT_BRIDGE_ADDRESS = "10.199.0.1/24"


@dataclass
class Run:
    code: int
    output: str
    pid: int
    signalled: bool  # the trigger was seen (and the signal sent / the action taken)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_build(image: str, out: Path, work: Path, *, docker_host: str | None = None,
              trigger: str | None = None, action: object = None) -> Run:
    """``musl-pbs build`` as a subprocess; when a progress line contains ``trigger``, do
    ``action`` (a signal number to send to the build, or a callable)."""
    env = dict(os.environ)
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    env["COLUMNS"] = "200"  # progress lines unwrapped, so the trigger text is on one line
    proc = subprocess.Popen(
        [sys.executable, "-c", "from builder.cli import entry; entry()", "build", "--arch",
         "x86_64", "--image", image, "--out", str(out), "--work", str(work), "-q"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # A test run started in the background (`.ci/run &`, nohup) inherits SIGINT ignored,
        # and an ignored signal stays ignored across exec: the build then rightly ignores
        # the SIGINT the test sends. The build under test gets the default disposition.
        preexec_fn=_default_sigint,
    )
    assert proc.stdout is not None
    lines = []
    signalled = False
    for line in proc.stdout:
        lines.append(line)
        if trigger and not signalled and trigger in line:
            signalled = True
            if isinstance(action, int):
                proc.send_signal(action)
            elif callable(action):
                action()
    code = proc.wait(timeout=600)
    return Run(code, "".join(lines), proc.pid, signalled)


def containers_of(pid: int, docker_host: str | None = None) -> list[str]:
    host = ["--host", docker_host] if docker_host else []
    out = subprocess.run(["docker", *host, "ps", "-aq", "--filter",
                          f"label=org.musl-pbs.pid={pid}"],
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def finals(out: Path) -> list[str]:
    """Every file in ``out``: after a failed first build there must be none at all."""
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


def assert_succeeds(image: str, out: Path, work: Path, docker_host: str | None = None) -> None:
    again = run_build(image, out, work, docker_host=docker_host)
    assert again.code == 0, again.output[-3000:]
    assert (out / "cpython-3.11.2-linux-x86_64-musl.tar.gz").is_file()
    assert containers_of(again.pid, docker_host) == []


# ---------------------------------------------------------------------------- signals


@pytest.mark.parametrize(("signum", "trigger"), [
    (signal.SIGINT, "exporting the filesystem"),
    (signal.SIGTERM, "exporting the filesystem"),
    (signal.SIGINT, "streamed into .tar.gz"),  # the tar written while both compress
    (signal.SIGTERM, ".tar.zst (level"),  # gzip and zstd run at once: one step
], ids=["SIGINT-export", "SIGTERM-export", "SIGINT-gzip", "SIGTERM-zstd"])
def test_signal_cleans_up(signum: signal.Signals, trigger: str,
                          images_x86_64: tuple[str, str], tmp_path: Path) -> None:
    image = images_x86_64[0]
    out, work = tmp_path / "dist", tmp_path / "work"
    for _attempt in range(3):  # the step may end before the signal lands: try again
        run = run_build(image, out, work, trigger=trigger, action=int(signum))
        assert run.signalled, run.output[-3000:]
        if run.code != 0:
            break
        shutil.rmtree(out)
    assert run.code == 128 + signum, run.output[-3000:]
    assert f"interrupted ({signum.name})" in run.output
    assert "Traceback" not in run.output
    assert containers_of(run.pid) == []
    assert finals(out) == []  # no archive, manifest or temporary file
    assert list(work.rglob("*.tmp")) == []
    if "export" in trigger:  # the export streams into a hidden tree, removed on the way out
        assert [p for p in work.rglob("*") if ".partial-" in p.name] == []
    assert_succeeds(image, out, work)


# ---------------------------------------------------------------------------- ENOSPC


def test_full_out_directory(images_x86_64: tuple[str, str], tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        run = run_build(images_x86_64[0], small / "dist", tmp_path / "work")
        assert run.code == 36, run.output[-3000:]
        assert "No space left on device" in run.output
        assert "hint:" in run.output and "Traceback" not in run.output
        assert containers_of(run.pid) == []
        assert finals(small / "dist") == []
    finally:
        subprocess.run(["umount", str(small)], check=False)
    assert_succeeds(images_x86_64[0], tmp_path / "dist", tmp_path / "work")


# ---------------------------------------------------------------------------- engine stopped


class PrivateEngine:
    """A second dockerd of our own, so stopping it disturbs nobody."""

    host = f"unix://{FAULT_SOCK}"

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        FAULT_RUN.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                ["dockerd", "--host", self.host, "--data-root", str(FAULT_DATA),
                 "--exec-root", str(FAULT_RUN / "exec"), "--pidfile", str(FAULT_PID),
                 "--bridge", FAULT_BRIDGE, "--iptables=false", "--ip-masq=false",
                 "--ip6tables=false"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        for _ in range(60):
            if self.running():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        self.stop()
        pytest.skip(f"a private dockerd would not start (see {self.log})")

    def running(self) -> bool:
        return subprocess.run(["docker", "--host", self.host, "info"],
                              capture_output=True).returncode == 0

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()  # as `systemctl stop docker` does
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def load(self, image: str) -> None:
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        subprocess.run(["docker", "--host", self.host, "load"], stdin=save.stdout,
                       capture_output=True, check=True)
        assert save.wait() == 0


def _stale(pidfile: Path) -> bool:
    """Does ``pidfile`` name no running dockerd?"""
    try:
        pid = int(pidfile.read_text().split()[0])
        return "dockerd" not in Path(f"/proc/{pid}/comm").read_text()
    except (OSError, ValueError, IndexError):
        return True


@pytest.fixture(scope="module")
def engine(images_x86_64: tuple[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateEngine]:
    if os.getuid() != 0 or shutil.which("dockerd") is None:
        pytest.skip("a private dockerd needs root and the dockerd binary")
    if FAULT_PID.exists() and _stale(FAULT_PID):  # left by a run that was killed
        FAULT_PID.unlink()
        subprocess.run(["ip", "link", "del", FAULT_BRIDGE], capture_output=True, check=False)
    if FAULT_PID.exists():
        pytest.skip(f"{FAULT_PID} exists: another private engine is running")
    if shutil.which("ip") is None:
        pytest.skip("the private dockerd needs `ip` (iproute2) to make its own bridge")
    ip = ["ip", "link", "add", FAULT_BRIDGE, "type", "bridge"]
    if subprocess.run(ip, capture_output=True).returncode != 0:
        pytest.skip(f"cannot create the bridge interface {FAULT_BRIDGE}")
    try:
        subprocess.run(["ip", "addr", "add", FAULT_BRIDGE_ADDRESS, "dev", FAULT_BRIDGE],
                       check=True)
        subprocess.run(["ip", "link", "set", FAULT_BRIDGE, "up"], check=True)
        eng = PrivateEngine(tmp_path_factory.mktemp("engine") / "dockerd.log")
        eng.start()
        try:
            eng.load(images_x86_64[0])
            yield eng
        finally:
            eng.stop()
    finally:
        subprocess.run(["ip", "link", "del", FAULT_BRIDGE], check=False)


def test_engine_stopped_before_the_build(engine: PrivateEngine,
                                         images_x86_64: tuple[str, str],
                                         tmp_path: Path) -> None:
    out, work = tmp_path / "dist", tmp_path / "work"
    engine.stop()
    try:
        run = run_build(images_x86_64[0], out, work, docker_host=engine.host)
    finally:
        engine.start()
    assert run.code == 5, run.output[-3000:]
    assert "cannot reach the Docker engine" in run.output and "hint:" in run.output
    assert "Traceback" not in run.output
    assert finals(out) == []
    assert_succeeds(images_x86_64[0], out, work, engine.host)


def test_engine_stopped_during_the_build(engine: PrivateEngine,
                                         images_x86_64: tuple[str, str],
                                         tmp_path: Path) -> None:
    out, work = tmp_path / "dist", tmp_path / "work"
    try:
        run = run_build(images_x86_64[0], out, work, docker_host=engine.host,
                        trigger="apk add", action=engine.stop)
    finally:
        engine.start()
    assert run.signalled
    assert run.code == 5, run.output[-3000:]
    assert "the Docker engine failed during acquire" in run.output
    assert "hint:" in run.output and "Traceback" not in run.output
    assert finals(out) == []
    assert list(work.rglob("*.tmp")) == []
    # The container could not be removed while the engine was down; it was created with
    # auto_remove, so the engine removes it when it starts again.
    for _ in range(20):
        if containers_of(run.pid, engine.host) == []:
            break
        time.sleep(0.5)
    assert containers_of(run.pid, engine.host) == []
    assert_succeeds(images_x86_64[0], out, work, engine.host)
