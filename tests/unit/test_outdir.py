"""Output directories no permission bit can vouch for: ``/proc/x``, ``/sys/x`` and a
read-only bind mount, as root (who passes ``os.access`` for all three). Every command that
writes refuses them up front with its typed error, through ``builder.cli.main(argv)``; and
where the up-front check is bypassed, the final write is the same typed error, never a
traceback.

The bind mount is real (``mount --bind`` then ``-o remount,ro``): skipped when not root.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from builder.cli import main
from builder.errors import UnwritableOutputError
from builder.lowlevel.outdir import check_writable_dir
from builder.progress import NullReporter
from builder.stages.pack import pack
from tests.unit.test_malformed_inputs import INFO, NAME, _musl_detection, _tree, release_dir

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: root passes the "
                               "permission bits of /proc and /sys, and only root can mount")


@pytest.fixture
def readonly(tmp_path: Path) -> Iterator[Path]:
    """A temporary directory bind-mounted read-only onto another; unmounted in finally."""
    if os.geteuid() != 0:
        pytest.skip("needs root to bind-mount")
    source, target = tmp_path / "rw", tmp_path / "ro"
    source.mkdir()
    target.mkdir()
    mounted = False
    try:
        for argv in (["mount", "--bind", str(source), str(target)],
                     ["mount", "-o", "remount,bind,ro", str(target)]):
            r = subprocess.run(argv, capture_output=True, text=True, check=False)
            if r.returncode != 0:
                pytest.skip(f"{' '.join(argv)}: {r.stderr.strip()}")
            mounted = True
        yield target
    finally:
        if mounted:
            subprocess.run(["umount", str(target)], check=False)


PLACES: dict[str, Callable[[Path], Path]] = {
    "/proc/x": lambda ro: Path("/proc/x"),
    "/sys/x": lambda ro: Path("/sys/x"),
    "read-only bind mount": lambda ro: ro / "x",
}
REASONS = {"/proc/x": "does not take new files", "/sys/x": "Operation not permitted",
           "read-only bind mount": "read-only file system"}


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, " ".join(err.split())  # rich wraps long lines


@pytest.fixture
def place(request: pytest.FixtureRequest) -> Path:
    where: str = request.param
    ro = request.getfixturevalue("readonly") if where.startswith("read-only") else Path()
    return PLACES[where](ro)


def _commands(tmp: Path, target: Path) -> dict[str, list[str]]:
    dist = release_dir(tmp).gz.parent
    return {
        "build --out": ["build", "--arch", "x86_64", "--out", str(target),
                        "--work", str(tmp / "work")],
        "build --work": ["build", "--arch", "x86_64", "--out", str(tmp / "out"),
                         "--work", str(target)],
        # --allow-eol: the fixture's archive is of Alpine 3.19 (ended); this is about writes
        "release assemble --out": ["release", "assemble", str(dist), "--allow-eol", "--out",
                                   str(target / "rel")],
        "install --dir": ["install", "--from", str(dist), "--dir", str(target / "py")],
    }


COMMANDS = ["build --out", "build --work", "release assemble --out", "install --dir"]


@ROOT_ONLY
@pytest.mark.parametrize("place", list(PLACES), indirect=True)
@pytest.mark.parametrize("command", COMMANDS)
def test_unwritable_place_is_refused_up_front(
    place: Path, command: str, request: pytest.FixtureRequest, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("builder.host.detect.detect", _musl_detection)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")  # never reached
    where = request.node.callspec.params["place"]
    code, err = _run(_commands(tmp_path, place)[command], capsys)
    assert code == UnwritableOutputError.exit_code, err
    assert "error:" in err and "hint:" in err, err
    assert REASONS[where] in err, err
    assert str(place) in err, err
    assert not place.exists()


@ROOT_ONLY
@pytest.mark.parametrize("place", list(PLACES), indirect=True)
@pytest.mark.parametrize("command", ["release assemble --out", "install --dir"])
def test_final_write_is_a_typed_error_without_the_check(
    place: Path, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The up-front check skipped: the write itself still ends in the typed error."""
    monkeypatch.setattr("builder.host.detect.detect", _musl_detection)
    for module in ("builder.release.assemble", "builder.host.install"):
        monkeypatch.setattr(f"{module}.check_writable_dir", lambda path, what: None)
    code, err = _run(_commands(tmp_path, place)[command], capsys)
    assert code == UnwritableOutputError.exit_code, err
    assert "error: cannot write" in err and "hint:" in err, err


@ROOT_ONLY
@pytest.mark.parametrize("place", list(PLACES), indirect=True)
def test_pack_into_an_unwritable_place_is_a_typed_error(place: Path, tmp_path: Path) -> None:
    """build's final writes (the archives, manifest and sums), at the pack stage."""
    with pytest.raises(UnwritableOutputError, match="cannot write the archives in"):
        pack(_tree(tmp_path), NAME, place / "dist", dict(INFO), 1000, NullReporter())


def test_probe_leaves_nothing(tmp_path: Path) -> None:
    check_writable_dir(tmp_path / "a" / "b", "--out")
    assert list(tmp_path.iterdir()) == []  # neither the probe nor the directories for it
    (tmp_path / "c").mkdir()
    check_writable_dir(tmp_path / "c", "--out")
    assert [p.name for p in tmp_path.rglob("*")] == ["c"]


def test_a_failed_probe_removes_the_directories_it_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where directories can be made but files cannot be written (the probe file itself is
    swapped for one that fails), the directories made for the probe are removed again."""
    def refuse(directory: Path, what: str) -> None:
        raise UnwritableOutputError(f"{what} {directory}: cannot write there")

    monkeypatch.setattr("builder.lowlevel.outdir._probe_file", refuse)
    with pytest.raises(UnwritableOutputError, match="cannot write there"):
        check_writable_dir(tmp_path / "a" / "b", "--out")
    assert list(tmp_path.iterdir()) == []
