"""The CLI boundary: errors a user can cause become a message, a hint and an exit code."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from builder.cli import main


def test_unknown_arch(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--arch", "sparc64"]) == 3
    err = capsys.readouterr().err
    assert "unknown architecture 'sparc64'" in err
    assert "x86_64, aarch64, armv7, armhf, x86, ppc64le, s390x, riscv64, loongarch64" in err


def test_docker_engine_not_running(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    code = main(["build", "--arch", "x86_64", "--image", "whatever:1", "--out",
                 str(tmp_path / "dist"), "--work", str(tmp_path / "work")])
    assert code == 5
    err = capsys.readouterr().err
    assert "cannot reach the Docker engine" in err
    assert "dockerd" in err
    assert not (tmp_path / "dist").exists()


def test_missing_matrix_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["build", "--arch", "x86_64", "--matrix", str(tmp_path / "nope.yaml")]) == 4
    assert "nope.yaml: no such file" in capsys.readouterr().err


def test_verify_refuses_an_archive_that_is_not_ours(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    other = tmp_path / "cpython-3.12.8-linux-x86_64-musl.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        info = tarfile.TarInfo("hello/world.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    assert main(["verify", str(other)]) == 11
    err = capsys.readouterr().err
    assert "not a musl-pbs archive" in err
    assert "hint:" in err

    garbage = tmp_path / "notes.txt"
    garbage.write_text("not a tar")
    assert main(["verify", str(garbage)]) == 11
    assert main(["verify", str(tmp_path / "missing.tar.gz")]) == 11


def test_start_imports_only_what_the_command_uses() -> None:
    """Every start of musl-pbs makes all commands' parsers; the pipeline's libraries (the
    Docker SDK and requests, pyelftools, zlib-ng, urllib's HTTP client) are imported by the
    commands that use them.
    A fresh interpreter: `--version` and `detect` must not pay for a build's imports."""
    heavy = ("docker", "requests", "urllib3", "urllib.request", "http.client", "elftools",
             "zlib_ng", "builder.build", "builder.lowlevel.container", "builder.stages.verify",
             "builder.host.detect")
    probe = ("import sys, builder.cli; builder.cli.make_parser(); "
             f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""
    # and a command still imports its own when it runs
    probe = ("import sys, builder.cli; builder.cli.main(['detect', '--json']); "
             "print('elftools' in sys.modules, 'docker' in sys.modules, file=sys.stderr)")
    err = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=False).stderr.strip().splitlines()[-1]
    assert err == "True False"
