"""verify end to end, with a wheelhouse whose first extension wheel cannot load in the
archive: PyPI's real markupsafe wheel with its module renamed for glibc
(``-x86_64-linux-gnu.so``). verify passes it over, says so in the report, and installs and
imports the next project's wheel (msgpack) instead; with no other wheel, the probe it
cross-builds. The manifest's EXTENSION_SUFFIXES are those of the archive's interpreter as
it runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path, PurePosixPath

import pytest

from builder.cli import main
from builder.lowlevel.container import Container, docker_client
from builder.lowlevel.wheelhouse import ensure_wheelhouse, pip_wheel, project_wheels
from builder.platforms import get_arch
from builder.stages.verify import CROSS_CHECK, tar_for_put
from tests.unit.test_extchoice import renamed

pytestmark = pytest.mark.docker
X86_64 = get_arch("x86_64")


def test_verify_skips_a_wheel_it_cannot_load_and_takes_the_next(
    built_x86_64: Path, images_x86_64: tuple[str, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    archive = next(built_x86_64.glob("cpython-*-linux-x86_64-musl.tar.gz"))
    manifest = json.loads(archive.with_name(archive.name.replace(".tar.gz", ".json"))
                          .read_text())
    minor = manifest["python_minor"]
    tag = minor.replace(".", "")
    musl = f".cpython-{tag}-x86_64-linux-musl.so"
    assert manifest["extension_suffixes"] == [musl, ".abi3.so", ".so"]

    house = tmp_path / "wheelhouse"
    house.mkdir()
    shutil.copy2(pip_wheel(ensure_wheelhouse(minor, X86_64)), house)
    found = {p: project_wheels(minor, X86_64, p) for p in ("markupsafe", "msgpack")}
    assert all(found.values()), found
    markupsafe = next(found["markupsafe"].glob("markupsafe-*.whl"))  # type: ignore[union-attr]
    bad = renamed(markupsafe, house, "-x86_64-linux-musl.so", "-x86_64-linux-gnu.so")
    for wheel in found["msgpack"].glob("*.whl"):  # type: ignore[union-attr]
        shutil.copy2(wheel, house)

    capsys.readouterr()
    code = main(["verify", str(archive), "--image", images_x86_64[1], "--wheelhouse",
                 str(house), "--json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    report = json.loads(out)
    checks = {r["check"]: r for r in report["results"]}
    assert code == 0, [r for r in report["results"] if not r["ok"]]
    skipped = checks["extension-wheel-skipped"]
    assert (skipped["ok"], skipped["level"], skipped["path"]) == (False, "skipped", bad.name)
    assert f"_speedups.cpython-{tag}-x86_64-linux-gnu.so" in skipped["detail"], skipped
    assert musl in skipped["detail"]
    assert checks["pip-install-msgpack"]["ok"] and checks["msgpack"]["ok"], checks["msgpack"]
    assert "markupsafe" not in checks and "pip-install-markupsafe" not in checks

    # What the manifest records is what the interpreter answers.
    with Container(docker_client(), images_x86_64[1], platform=X86_64.docker_platform,
                   network=False, purpose="test") as c:
        c.put_tar(PurePosixPath("/opt"), tar_for_put(archive))
        r = c.call(["/opt/python/bin/python3", "-c",
                    "import importlib.machinery as m, json; "
                    "print(json.dumps(m.EXTENSION_SUFFIXES))"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.output.strip().splitlines()[-1]) == manifest["extension_suffixes"]


def test_with_no_loadable_wheel_verify_cross_builds_the_probe(
    built_x86_64: Path, images_x86_64: tuple[str, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Only the glibc-named wheel in the wheelhouse (as PyPI's cp39 armv7l wheels are):
    passed over, then the probe cross-built against the archive's headers is installed
    and imported instead; the report says why."""
    archive = next(built_x86_64.glob("cpython-*-linux-x86_64-musl.tar.gz"))
    minor = ".".join(archive.name.split("-")[1].split(".")[:2])
    house = tmp_path / "wheelhouse"
    house.mkdir()
    shutil.copy2(pip_wheel(ensure_wheelhouse(minor, X86_64)), house)
    found = project_wheels(minor, X86_64, "markupsafe")
    assert found is not None
    bad = renamed(next(found.glob("markupsafe-*.whl")), house, "-x86_64-linux-musl.so",
                  "-x86_64-linux-gnu.so")
    capsys.readouterr()
    code = main(["verify", str(archive), "--image", images_x86_64[1], "--wheelhouse",
                 str(house), "--json"])
    out, err = capsys.readouterr()
    report = json.loads(out)
    checks = {r["check"]: r for r in report["results"]}
    assert code == 0, [r for r in report["results"] if not r["ok"]]
    assert checks["extension-wheel-skipped"]["path"] == bad.name
    assert checks[CROSS_CHECK]["ok"], checks[CROSS_CHECK]
    assert "no wheel of markupsafe loads in the archive" in " ".join(err.split())
    assert "markupsafe" not in checks
