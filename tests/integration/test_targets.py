"""The targets of the test ground, against the real engine: every arch it has an image for
(foreign arches under qemu-user-static) built and verified in its release's minirootfs, and
x86_64 and aarch64 for both Python minors the test ground offers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.cli import main
from builder.lowlevel.elf import read_elf
from builder.platforms import ARCHES, get_arch

from .conftest import built_once, find_testground, images_for

pytestmark = pytest.mark.docker


def _check_archive(dist: Path, arch: str, python: str) -> None:
    manifests = [json.loads(p.read_text()) for p in dist.glob("cpython-*-musl.json")]
    mine = [m for m in manifests if m["arch"] == arch and m["python_minor"] == python]
    assert len(mine) == 1, manifests
    m = mine[0]
    assert m["multiarch"] == f"{arch}-linux-musl"
    assert m["ext_suffix"].endswith(f"-{arch}-linux-musl.so")
    assert m["musl_loader"] == f"/lib/ld-musl-{arch}.so.1"


@pytest.mark.parametrize("alpine", sorted(ARCHES))
def test_every_arch_builds_and_verifies_in_its_minirootfs(
    alpine: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    """build -> verify for each arch, verify in the base image (the release's minirootfs,
    unchanged: zlib and OpenSSL there, as users run it), every check run under the arch's
    emulation; the manifest names the arch's own loader and triplet."""
    found = find_testground(alpine)
    if found is None:
        pytest.skip(f"the test ground has no {alpine} image")
    minor, alpine_like, base = found
    archive = built_once(alpine, minor, alpine_like, request)
    arch = get_arch(alpine)
    m = json.loads(archive.with_name(archive.name.replace(".tar.gz", ".json")).read_text())
    assert (m["arch"], m["python_minor"]) == (alpine, minor)
    assert m["musl_loader"] == str(arch.loader)
    assert m["multiarch"] == arch.multiarch
    assert m["musl_floor"]["version"]
    capsys.readouterr()
    code = main(["verify", str(archive), "--image", base, "--json"])
    report = json.loads(capsys.readouterr().out)
    failed = [r for r in report["results"] if not r["ok"] and r["level"] == "error"]
    assert code == 0 and not failed, failed
    checks = {r["check"]: r for r in report["results"]}
    assert checks["thread-stack"]["ok"]
    assert checks["musl-floor"]["ok"]
    assert any(c.startswith("import:") for c in checks)


@pytest.mark.parametrize(("arch", "python"), [("x86_64", "3.13"), ("aarch64", "3.13")])
def test_build_and_verify(arch: str, python: str, tmp_path: Path) -> None:
    alpine_like, base = images_for(arch, python)
    code = main(["build", "--arch", arch, "--image", alpine_like, "--out", str(tmp_path / "d"),
                 "--work", str(tmp_path / "w"), "-q", "--verify", "--verify-image", base])
    assert code == 0
    _check_archive(tmp_path / "d", arch, python)


def test_two_arches_concurrently_with_a_log_each(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """`build --target ... --jobs 2 --verify`: x86_64 and aarch64 at once, summary, logs."""
    x86, arm = images_for("x86_64", "3.11"), images_for("aarch64", "3.11")
    code = main(["build", "--target", "3.19:x86_64", "--target", "3.19:aarch64", "--jobs", "2",
                 "--image", f"x86_64={x86[0]}", "--image", f"aarch64={arm[0]}",
                 "--verify", "--verify-image", f"x86_64={x86[1]}",
                 "--verify-image", f"aarch64={arm[1]}",
                 "--out", str(tmp_path / "d"), "--work", str(tmp_path / "w"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert {t["target"]: t["state"] for t in report["targets"]} == {
        "3.19:x86_64": "ok", "3.19:aarch64": "ok"}
    for t in report["targets"]:
        assert "verify" in Path(t["log"]).read_text()
    _check_archive(tmp_path / "d", "x86_64", "3.11")
    _check_archive(tmp_path / "d", "aarch64", "3.11")
    # The aarch64 interpreter really is an aarch64 ELF with 64 KiB-aligned segments.
    import tarfile

    arm_gz = next((tmp_path / "d").glob("cpython-*-linux-aarch64-musl.tar.gz"))
    with tarfile.open(arm_gz) as tar:
        tar.extract("python/bin/python3.11", tmp_path / "x")
    info = read_elf(tmp_path / "x" / "python" / "bin" / "python3.11")
    assert info is not None and info.machine == "EM_AARCH64"
    assert all(align >= 65536 for _, _, align in info.loads)


def test_a_failing_target_does_not_stop_the_other(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    x86 = images_for("x86_64", "3.11")
    code = main(["build", "--target", "3.19:x86_64", "--target", "3.18:x86_64", "--jobs", "2",
                 "--image", f"3.19:x86_64={x86[0]}",
                 "--image", "3.18:x86_64=musl-pbs-test/no-such-image:1",
                 "--out", str(tmp_path / "d"), "--work", str(tmp_path / "w"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 15
    states = {t["target"]: t for t in report["targets"]}
    assert states["3.19:x86_64"]["state"] == "ok"
    assert states["3.18:x86_64"]["state"] == "failed"
    assert "no-such-image" in states["3.18:x86_64"]["error"]
