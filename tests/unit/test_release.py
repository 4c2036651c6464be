"""release assemble: real archives made by builder.stages.pack, merged, checked and described."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from builder.cli import main
from builder.naming import (
    ArchiveName,
    parse_pbs_install_only_name,
    pbs_install_only_name,
    uv_download_key,
)
from builder.platforms import ARCHES, get_arch
from builder.progress import NullReporter
from builder.release.uvmeta import download_metadata, version_parts
from builder.stages.pack import build_info, pack

BUILD = "20250101"
# The targets below come from Alpine 3.19 and 3.21: assembled as of mid-2025, with the
# matrix of that time (its eol dates), when both were supported.
MATRIX_2025 = Path(__file__).resolve().parent.parent / "data" / "alpine" / "matrix-2025.yaml"
ASSEMBLE = ["release", "assemble", "--matrix", str(MATRIX_2025), "--today", "2025-07-16"]
UV_FIELDS = {"name", "arch", "os", "libc", "major", "minor", "patch", "prerelease", "url",
             "sha256", "variant", "build"}


def make_target(out: Path, version: str, arch: str, alpine_release: str) -> ArchiveName:
    """A small but real target output: python/ packed into .tar.gz, .tar.zst and manifest."""
    a = get_arch(arch)
    name = ArchiveName(version, a)
    minor = ".".join(version.split(".")[:2])
    tree = out.parent / f".tree-{out.name}-{name.stem}" / "python"
    (tree / "bin").mkdir(parents=True)
    (tree / "lib" / f"python{minor}").mkdir(parents=True)
    (tree / "bin" / f"python{minor}").write_bytes(b"\x7fELF " + name.stem.encode())
    (tree / "bin" / "python3").symlink_to(f"python{minor}")
    (tree / "lib" / f"python{minor}" / "os.py").write_text("# os\n")
    info = build_info(
        name=name.stem,
        python_version=version,
        python_minor=minor,
        arch=a.alpine,
        archive_arch=a.archive_arch,
        target_triple=a.target_triple,
        libc="musl",
        musl_version_needed="1.2.5",
        alpine_release=alpine_release,
        image=f"alpine:{'.'.join(alpine_release.split('.')[:2])}",
        image_id="sha256:" + hashlib.sha256(name.stem.encode()).hexdigest(),
    )
    pack(tree, name, out, info, 1_700_000_000, NullReporter())
    return name


@pytest.fixture()
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    one, two = tmp_path / "in" / "one", tmp_path / "in" / "two"
    make_target(one, "3.12.8", "x86_64", "3.21.3")
    make_target(two, "3.12.8", "aarch64", "3.21.3")
    make_target(two, "3.11.11", "armv7", "3.19.7")  # two targets in one directory
    return one, two


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_assemble_happy_path(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "release"
    code = main([*ASSEMBLE, *map(str, inputs), "--out", str(out), "--build", BUILD])
    assert code == 0, capsys.readouterr().err
    x86 = ArchiveName("3.12.8", get_arch("x86_64"))
    arm64 = ArchiveName("3.12.8", get_arch("aarch64"))
    armv7 = ArchiveName("3.11.11", get_arch("armv7"))
    names = (x86, arm64, armv7)
    pbs = {n: pbs_install_only_name(n, BUILD) for n in names}
    assert pbs[x86] == "cpython-3.12.8+20250101-x86_64-unknown-linux-musl-install_only.tar.gz"
    assert pbs[armv7] == (
        "cpython-3.11.11+20250101-armv7-unknown-linux-musleabihf-install_only.tar.gz")
    expected = {"SHA256SUMS", "manifest.json", "state.json", "download-metadata.json"}
    for n in names:
        expected |= {n.gz, n.zst, n.manifest, pbs[n]}
    assert {p.name for p in out.iterdir()} == expected
    # stdout: every file of the release, one per line
    assert capsys.readouterr().out.splitlines() == [str(out / f) for f in sorted(expected)]
    # nothing left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "release"]

    # the python-build-standalone name is the same file
    for n in names:
        assert os.path.samefile(out / n.gz, out / pbs[n])

    # SHA256SUMS: sorted, every archive (both spellings), every digest true
    lines = (out / "SHA256SUMS").read_text().splitlines()
    listed = [ln.split("  ", 1)[1] for ln in lines]
    assert listed == sorted(listed)
    assert set(listed) == {f for f in expected if f.endswith((".tar.gz", ".tar.zst"))}
    for line in lines:
        digest, file = line.split("  ", 1)
        assert digest == _sha(out / file)

    # manifest.json: the per-target manifests, as a list
    merged = json.loads((out / "manifest.json").read_text())
    assert isinstance(merged, list)
    assert sorted(m["name"] for m in merged) == sorted(n.stem for n in names)
    for m in merged:
        assert m == json.loads((out / f"{m['name']}.json").read_text())

    # download-metadata.json: exactly uv's shape, newest version first
    meta = json.loads((out / "download-metadata.json").read_text())
    assert list(meta) == [
        "cpython-3.12.8-linux-aarch64-musl",
        "cpython-3.12.8-linux-x86_64-musl",
        "cpython-3.11.11-linux-armv7-musleabihf",
    ]
    assert meta["cpython-3.12.8-linux-x86_64-musl"] == {
        "name": "cpython",
        "arch": {"family": "x86_64", "variant": None},
        "os": "linux",
        "libc": "musl",
        "major": 3,
        "minor": 12,
        "patch": 8,
        "prerelease": "",
        "url": out.resolve().as_uri() + "/cpython-3.12.8-linux-x86_64-musl.tar.gz",
        "sha256": _sha(out / x86.gz),
        "variant": None,
        "build": BUILD,
    }
    for entry in meta.values():
        assert set(entry) == UV_FIELDS
        assert set(entry["arch"]) == {"family", "variant"}
        path = Path(unquote(urlparse(entry["url"]).path))
        assert path.is_file() and _sha(path) == entry["sha256"]
    # uv's own spelling on hard-float ARM (it matches libc exactly; "musl" is refused there)
    armv7 = meta["cpython-3.11.11-linux-armv7-musleabihf"]
    assert (armv7["arch"]["family"], armv7["libc"]) == ("armv7", "musleabihf")

    # state.json: what the nightly check compares against
    state = json.loads((out / "state.json").read_text())
    assert state["build"] == BUILD
    assert sorted(state["targets"]) == ["3.19:armv7", "3.21:aarch64", "3.21:x86_64"]
    entry = state["targets"]["3.21:x86_64"]
    assert entry["alpine"] == "3.21"
    assert entry["alpine_release"] == "3.21.3"
    assert entry["arch"] == "x86_64"
    assert entry["python_version"] == "3.12.8"
    assert entry["archive"] == x86.gz and entry["sha256"] == _sha(out / x86.gz)
    assert entry["image"] == "alpine:3.21"
    assert entry["image_id"].startswith("sha256:")
    assert entry["build"] == BUILD


def test_base_url_and_json_summary(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "release"
    base = "https://example.invalid/releases/download/20250101"
    code = main([*ASSEMBLE, *map(str, inputs), "--out", str(out), "--build", BUILD,
                 "--base-url", base, "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["build"] == BUILD
    assert summary["targets"] == ["3.19:armv7", "3.21:aarch64", "3.21:x86_64"]
    meta = json.loads((out / "download-metadata.json").read_text())
    assert meta["cpython-3.12.8-linux-aarch64-musl"]["url"] == (
        base + "/cpython-3.12.8-linux-aarch64-musl.tar.gz")


def test_refuses_a_checksum_mismatch(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one, two = inputs
    damaged = two / ArchiveName("3.11.11", get_arch("armv7")).zst
    recorded = _sha(damaged)
    with damaged.open("ab") as f:
        f.write(b"\0")
    out = tmp_path / "release"
    code = main([*ASSEMBLE, str(one), str(two), "--out", str(out)])
    assert code == 21
    err = capsys.readouterr().err
    assert str(damaged) in err
    assert recorded in err and _sha(damaged) in err  # both digests
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # no temporary left


def test_refuses_a_mismatch_with_the_directorys_sha256sums(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one, _ = inputs
    sums = one / "SHA256SUMS"
    name = ArchiveName("3.12.8", get_arch("x86_64"))
    sums.write_text(sums.read_text().replace(_sha(one / name.gz), "0" * 64))
    assert main([*ASSEMBLE, str(one), "--out", str(tmp_path / "r")]) == 21
    err = capsys.readouterr().err
    assert name.gz in err and "0" * 64 in err


def test_refuses_a_duplicate_target(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one, two = inputs
    again = tmp_path / "in" / "again"
    make_target(again, "3.12.8", "x86_64", "3.22.1")  # same archive name as in one/
    out = tmp_path / "release"
    code = main([*ASSEMBLE, str(one), str(two), str(again), "--out", str(out)])
    assert code == 22
    err = capsys.readouterr().err
    assert "cpython-3.12.8-linux-x86_64-musl" in err
    assert str(one) in err and str(again) in err
    assert not out.exists()


def test_refuses_an_archive_without_its_manifest(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one, _ = inputs
    (one / "cpython-3.12.8-linux-x86_64-musl.json").unlink()
    assert main([*ASSEMBLE, str(one), "--out", str(tmp_path / "r")]) == 20
    assert "without its manifest" in capsys.readouterr().err


def test_refuses_a_non_empty_out(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "release"
    out.mkdir()
    (out / "old.txt").write_text("x")
    assert main([*ASSEMBLE, *map(str, inputs), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["old.txt"]


def test_previous_state_is_carried_forward(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    one, _ = inputs
    previous = tmp_path / "previous-state.json"
    previous.write_text(json.dumps({"schema": 1, "build": "20240601", "targets": {
        "3.20:s390x": {"target": "3.20:s390x", "alpine_release": "3.20.6", "build": "20240601"},
        "3.21:x86_64": {"target": "3.21:x86_64", "alpine_release": "3.21.0", "build": "20240601"},
    }}))
    out = tmp_path / "release"
    assert main([*ASSEMBLE, str(one), "--out", str(out), "--build", BUILD,
                 "--previous-state", str(previous)]) == 0
    targets = json.loads((out / "state.json").read_text())["targets"]
    assert targets["3.20:s390x"]["build"] == "20240601"  # not rebuilt: carried
    assert targets["3.21:x86_64"]["alpine_release"] == "3.21.3"  # rebuilt: replaced
    assert targets["3.21:x86_64"]["build"] == BUILD


def test_build_tag_must_be_a_date(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*ASSEMBLE, *map(str, inputs), "--out", str(tmp_path / "r"),
                 "--build", "v1"]) == 2
    assert "YYYYMMDD" in capsys.readouterr().err


def test_uv_metadata_orders_versions_and_splits_prereleases() -> None:
    def manifest(version: str) -> dict[str, object]:
        n = ArchiveName(version, get_arch("x86_64"))
        return {"name": n.stem, "archives": {"tar.gz": {"file": n.gz, "sha256": "a" * 64}}}

    meta = download_metadata(
        [manifest(v) for v in ("3.13.0rc2", "3.12.10", "3.13.0", "3.12.9", "3.13.0b1")],
        "https://example.invalid/dl/", None)
    assert list(meta) == [f"cpython-{v}-linux-x86_64-musl"
                          for v in ("3.13.0", "3.13.0rc2", "3.13.0b1", "3.12.10", "3.12.9")]
    rc = meta["cpython-3.13.0rc2-linux-x86_64-musl"]
    assert (rc["major"], rc["minor"], rc["patch"], rc["prerelease"]) == (3, 13, 0, "rc2")
    assert rc["build"] is None
    assert rc["url"] == "https://example.invalid/dl/cpython-3.13.0rc2-linux-x86_64-musl.tar.gz"
    assert version_parts("3.12.11") == (3, 12, 11, "")


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_pbs_names_round_trip(arch: str) -> None:
    name = ArchiveName("3.12.8", get_arch(arch))
    filename = pbs_install_only_name(name, BUILD)
    assert filename.startswith(f"cpython-3.12.8+{BUILD}-{name.arch.target_triple}-")
    assert parse_pbs_install_only_name(filename) == (name, BUILD)
    assert uv_download_key(name) == (
        f"cpython-3.12.8-linux-{name.arch.uv_family}-{name.arch.uv_libc}")


def test_an_ended_release_is_refused_without_allow_eol(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """3.19 ended on 2025-11-01 (matrix-2025.yaml's eol): refused after it, with the
    hint; --allow-eol publishes it and says so; a release the matrix lacks is refused too."""
    one = tmp_path / "one"
    make_target(one, "3.11.12", "x86_64", "3.19.8")
    out = tmp_path / "release"
    late = ["release", "assemble", "--matrix", str(MATRIX_2025), "--today", "2025-11-02"]
    assert main([*late, str(one), "--out", str(out)]) == 24
    err = capsys.readouterr().err
    assert "Alpine 3.19 reached its end of life on 2025-11-01" in err and "--allow-eol" in err
    assert not out.exists() and not list(tmp_path.glob(".release.*"))
    # on its last day it is still supported
    assert main(["release", "assemble", "--matrix", str(MATRIX_2025), "--today", "2025-11-01",
                 str(one), "--out", str(out)]) == 0
    capsys.readouterr()
    again = tmp_path / "again"
    assert main([*late, "--allow-eol", "--json", str(one), "--out", str(again)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["warnings"] == [
        "Alpine 3.19 reached its end of life on 2025-11-01 (gets no security fixes)"]
    assert "published because of --allow-eol" in captured.err
    # the repository's matrix.yaml holds the supported releases only: 3.19 is not one
    assert main(["release", "assemble", str(one), "--out", str(tmp_path / "r3")]) == 24
    assert "Alpine 3.19 is not a release of matrix.yaml" in capsys.readouterr().err
