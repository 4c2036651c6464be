"""The other targets of the test ground, against the real engine: x86_64 and aarch64
(under qemu-user-static), each for both Python minors the test ground offers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.cli import main
from builder.lowlevel.elf import read_elf

from .conftest import images_for

pytestmark = pytest.mark.docker


def _check_archive(dist: Path, arch: str, python: str) -> None:
    manifests = [json.loads(p.read_text()) for p in dist.glob("cpython-*-musl.json")]
    mine = [m for m in manifests if m["arch"] == arch and m["python_minor"] == python]
    assert len(mine) == 1, manifests
    m = mine[0]
    assert m["multiarch"] == f"{arch}-linux-musl"
    assert m["ext_suffix"].endswith(f"-{arch}-linux-musl.so")
    assert m["musl_loader"] == f"/lib/ld-musl-{arch}.so.1"


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
