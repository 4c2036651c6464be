"""Deterministic archives with one top-level python/ directory, written atomically."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from builder.naming import ArchiveName
from builder.platforms import get_arch
from builder.progress import NullReporter
from builder.stages.pack import pack

NAME = ArchiveName("3.12.8", get_arch("x86_64"))


def _tree(root: Path) -> Path:
    tree = root / "python"
    (tree / "bin").mkdir(parents=True)
    (tree / "lib" / "python3.12").mkdir(parents=True)
    (tree / "bin" / "python3.12").write_bytes(b"\x7fELF fake")
    (tree / "bin" / "python3.12").chmod(0o751)
    (tree / "bin" / "python3").symlink_to("python3.12")
    (tree / "lib" / "python3.12" / "os.py").write_text("# os\n")
    os.utime(tree / "lib" / "python3.12" / "os.py", (1000, 1000))
    return tree


def test_same_tree_same_bytes(tmp_path: Path) -> None:
    a = pack(_tree(tmp_path / "a"), NAME, tmp_path / "out-a", {"x": 1}, 5000, NullReporter())
    b = pack(_tree(tmp_path / "b"), NAME, tmp_path / "out-b", {"x": 1}, 5000, NullReporter())
    assert a.gz.read_bytes() == b.gz.read_bytes()
    assert a.zst.read_bytes() == b.zst.read_bytes()
    assert a.data["archives"] == b.data["archives"]
    assert sorted(p.name for p in (tmp_path / "out-a").iterdir()) == sorted(
        ["SHA256SUMS", NAME.gz, NAME.manifest, NAME.zst])


def test_members_normalised(tmp_path: Path) -> None:
    packed = pack(_tree(tmp_path), NAME, tmp_path / "out", {}, 5000, NullReporter())
    with tarfile.open(packed.gz) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert {n.split("/")[0] for n in names} == {"python"}
    assert all(m.uid == 0 and m.gid == 0 and m.uname == "" for m in members)
    by_name = {m.name: m for m in members}
    assert by_name["python/bin/python3.12"].mode == 0o755
    assert by_name["python/lib/python3.12/os.py"].mtime == 1000  # kept: older than epoch
    assert by_name["python/bin"].mtime == 5000  # clamped
    assert by_name["python/bin/python3"].linkname == "python3.12"
    assert "python/musl-pbs.json" in by_name
    sums = (tmp_path / "out" / "SHA256SUMS").read_text()
    assert f"  {NAME.gz}\n" in sums and f"  {NAME.zst}\n" in sums


def test_failure_leaves_nothing_that_looks_like_an_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(src: Path, dest: Path) -> None:
        dest.write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr("builder.stages.pack.compress_zst", boom)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        pack(_tree(tmp_path), NAME, out, {}, 5000, NullReporter())
    assert list(out.iterdir()) == []
