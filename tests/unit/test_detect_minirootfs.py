"""detect on every official Alpine minirootfs: the arch of the table, and musl's version
as the loader and apk's database both say it (suffixes kept: 3.19's 1.2.4_git20230717)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from builder.host.detect import detect
from builder.lowlevel.apkdb import parse_installed
from builder.lowlevel.apkversion import compare, upstream_version
from tests.minirootfs import NAMES
from tests.minirootfs import tarball as minirootfs


@pytest.mark.parametrize("tarball", NAMES)
def test_detect_real_alpine(tarball: str, tmp_path: Path) -> None:
    root = tmp_path / "root"
    with tarfile.open(minirootfs(tarball)) as tar:
        # the official tarballs, into a temporary dir: absolute links (bin/chown ->
        # /bin/busybox) are kept, as detect resolves them inside the root
        wanted = [m for m in tar if m.name.startswith(("./bin", "./lib", "./usr/bin/env"))]
        tar.extractall(root, members=wanted, filter="tar")
    arch = tarball.removesuffix(".tar.gz").rsplit("-", 1)[1]
    d = detect(root)
    musl = next(p for p in parse_installed((root / "lib/apk/db/installed").read_text())
                if p.name == "musl")
    assert (d.libc, d.arch) == ("musl", arch)
    assert d.version == upstream_version(musl.version)
    assert compare(d.version, "1.2.4") >= 0
    assert not any("the loader says" in e for e in d.evidence)  # loader and db agree
    if "3.19.4" in tarball:
        assert d.version == "1.2.4_git20230717"
