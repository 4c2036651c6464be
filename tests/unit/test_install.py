"""install: picks the archive that fits, checks it, refuses clearly when nothing fits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.cli import main
from builder.errors import NoFittingArchiveError, NotOurArchiveError
from builder.host.detect import Detection
from builder.host.install import candidates_from_dir, choose, install
from builder.naming import ArchiveName
from builder.platforms import get_arch
from builder.progress import NullReporter
from builder.stages.pack import pack


def _musl(arch: str = "x86_64", version: str = "1.2.5") -> Detection:
    return Detection(Path("/"), "musl", version, arch, "x86-64", "/lib/ld-musl-x86_64.so.1",
                     "/lib/ld-musl-x86_64.so.1", "/bin/sh", "cpython-*", None, ("test",))


def _release(tmp_path: Path, versions: list[str], musl: str = "1.2.5") -> Path:
    dist = tmp_path / "dist"
    for v in versions:
        tree = tmp_path / f"tree-{v}" / "python"
        (tree / "bin").mkdir(parents=True)
        (tree / "bin" / "python3").write_text("#!/bin/sh\necho hi\n")
        pack(tree, ArchiveName(v, get_arch("x86_64")), dist,
             {"musl_version_needed": musl}, 1000, NullReporter())
    return dist


def test_newest_matching_version_is_chosen(tmp_path: Path) -> None:
    cands = candidates_from_dir(_release(tmp_path, ["3.11.2", "3.11.9", "3.12.8"]))
    assert choose(cands, _musl(), None).version == "3.12.8"
    assert choose(cands, _musl(), "3.11").version == "3.11.9"
    assert choose(cands, _musl(), "3.11.2").version == "3.11.2"
    with pytest.raises(NoFittingArchiveError, match="no archive for aarch64"):
        choose(cands, _musl("aarch64"), None)


def test_old_musl_is_refused(tmp_path: Path) -> None:
    cands = candidates_from_dir(_release(tmp_path, ["3.12.8"], musl="1.2.5"))
    with pytest.raises(NoFittingArchiveError, match=r"needs musl >= 1\.2\.5"):
        choose(cands, _musl(version="1.2.3"), None)


def test_install_checks_sha256_and_unpacks(tmp_path: Path) -> None:
    dist = _release(tmp_path, ["3.12.8"])
    cand = choose(candidates_from_dir(dist), _musl(), None)
    python = install(cand, tmp_path / "opt" / "py")
    assert python == tmp_path / "opt" / "py" / "bin" / "python3" and python.exists()
    assert [p.name for p in (tmp_path / "opt").iterdir()] == ["py"]  # no temp left
    with pytest.raises(NoFittingArchiveError, match="already exists"):
        install(cand, tmp_path / "opt" / "py")
    cand.path.write_bytes(cand.path.read_bytes() + b"tampered")
    with pytest.raises(NotOurArchiveError, match="does not match"):
        install(cand, tmp_path / "opt" / "py2")
    assert not (tmp_path / "opt" / "py2").exists()


def test_glibc_host_is_refused_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # This machine (Debian) is glibc: the real detection must refuse.
    dist = _release(tmp_path, ["3.12.8"])
    assert main(["install", "--from", str(dist), "--dir", str(tmp_path / "py")]) == 16
    err = capsys.readouterr().err
    assert "uses glibc" in err and "not musl" in err and "hint:" in err
    assert not (tmp_path / "py").exists()
    manifest = json.loads((dist / "cpython-3.12.8-linux-x86_64-musl.json").read_text())
    assert manifest["musl_version_needed"] == "1.2.5"
