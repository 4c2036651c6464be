"""The targets of the test ground, against the real engine: every arch it has an image for
(foreign arches under qemu-user-static) built and verified in its release's minirootfs, and
x86_64 and aarch64 for both Python minors the test ground offers."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from builder.cli import main
from builder.lowlevel.elf import is_elf, read_elf
from builder.lowlevel.extract import extract
from builder.lowlevel.tarstream import ARCHIVE_LIMITS
from builder.lowlevel.wheelhouse import EXTENSION_PROJECTS
from builder.platforms import ARCHES, get_arch
from builder.stages.audit import arm_level_findings
from builder.stages.verify import CROSS_CHECK

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
    # A compiled extension imported in a venv on every arch: PyPI's wheel, or (armhf,
    # loongarch64: PyPI has none) the probe cross-built against the archive's headers.
    ext = [c for c in (*EXTENSION_PROJECTS, CROSS_CHECK) if c in checks]
    assert len(ext) == 1 and checks[ext[0]]["ok"], ext
    assert ("static:elf-arm-level" in checks) is (arch.arm_level is not None)


def _elves(archive: Path, dest: Path) -> list[Path]:
    extract(archive, dest, ARCHIVE_LIMITS)
    return [p for p in sorted(dest.rglob("*")) if is_elf(p)]


def test_arm_ports_carry_code_of_their_own_level(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """armhf and armv7 share the loader: every ELF of each port's archive passes its own
    level (build attributes) and fails the other's, so a mix-up cannot pass the audit."""
    elves, archives = {}, {}
    for alpine in ("armhf", "armv7"):
        found = find_testground(alpine)
        if found is None:
            pytest.skip(f"the test ground has no {alpine} image")
        minor, alpine_like, _base = found
        archives[alpine] = built_once(alpine, minor, alpine_like, request)
        elves[alpine] = _elves(archives[alpine], tmp_path / alpine)
        assert len(elves[alpine]) > 20, alpine
    for own, other in (("armhf", "armv7"), ("armv7", "armhf")):
        for p in elves[own]:
            rel = p.relative_to(tmp_path).as_posix()
            assert arm_level_findings(rel, p, get_arch(own)) == [], rel
            assert arm_level_findings(rel, p, get_arch(other)), rel

    # verify as the gate: the armhf archive with the armv7 port's libz in it is refused,
    # the file and the rule named (the static audit alone: no container needed).
    shutil.copy2(tmp_path / "armv7" / "python/lib/libz.so.1",
                 tmp_path / "armhf" / "python/lib/libz.so.1")
    mixed = tmp_path / "mixed" / archives["armhf"].name
    mixed.parent.mkdir()
    with tarfile.open(mixed, "w:gz") as tar:
        tar.add(str(tmp_path / "armhf" / "python"), arcname="python")
    capsys.readouterr()
    assert main(["verify", str(mixed), "--static-only"]) == 12
    err = capsys.readouterr().err
    assert ("static:elf-arm-level: python/lib/libz.so.1: Tag_CPU_arch v7: not code for armhf "
            "(ARMv6)") in err, err


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
    code = main(["build", "--target", "3.22:x86_64", "--target", "3.22:aarch64", "--jobs", "2",
                 "--image", f"x86_64={x86[0]}", "--image", f"aarch64={arm[0]}",
                 "--verify", "--verify-image", f"x86_64={x86[1]}",
                 "--verify-image", f"aarch64={arm[1]}",
                 "--out", str(tmp_path / "d"), "--work", str(tmp_path / "w"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert {t["target"]: t["state"] for t in report["targets"]} == {
        "3.22:x86_64": "ok", "3.22:aarch64": "ok"}
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
    code = main(["build", "--target", "3.22:x86_64", "--target", "3.23:x86_64", "--jobs", "2",
                 "--image", f"3.22:x86_64={x86[0]}",
                 "--image", "3.23:x86_64=musl-pbs-test/no-such-image:1",
                 "--out", str(tmp_path / "d"), "--work", str(tmp_path / "w"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 15
    states = {t["target"]: t for t in report["targets"]}
    assert states["3.22:x86_64"]["state"] == "ok"
    assert states["3.23:x86_64"]["state"] == "failed"
    assert "no-such-image" in states["3.23:x86_64"]["error"]
