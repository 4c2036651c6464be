"""alpine check: Alpine's release documents x state.json x matrix.yaml -> new targets.

The documents in tests/data/alpine/ are hand-written in the documented shape (see its
README): the expectations below are derived from them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.cli import main
from builder.config import DEFAULT_MATRIX, load_matrix
from builder.naming import ArchiveName, target_key
from builder.platforms import get_arch
from builder.progress import NullReporter
from builder.release.alpine_releases import read_document
from builder.stages.pack import build_info, pack

DATA = Path(__file__).resolve().parent.parent / "data" / "alpine"
RELEASES_JSON = DATA / "releases.json"
LATEST_YAML = DATA / "latest-releases.yaml"
SNAPSHOT_DAY = "2025-07-16"  # the documents describe mid-2025 (their README)
MATRIX_2025 = DATA / "matrix-2025.yaml"  # matrix.yaml as it was then (the same README)


def current_state(document: Path, matrix: Path = MATRIX_2025) -> dict[str, dict[str, str]]:
    """Every matrix target the document speaks for, built from its newest release."""
    doc = read_document(str(document))
    targets = {}
    for release in load_matrix(matrix).releases:
        branch = doc.branches.get(release.tag)
        if branch is None or branch.latest is None:
            continue
        for arch in release.arches:
            if branch.arches is None or arch in branch.arches:
                key = target_key(release.tag, get_arch(arch))
                targets[key] = {"target": key, "alpine_release": branch.latest}
    return targets


def write_state(path: Path, targets: dict[str, dict[str, str]]) -> Path:
    path.write_text(json.dumps({"schema": 1, "build": "20250101", "targets": targets}))
    return path


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`alpine check` with the matrix and the day of the documents (``args`` may name
    others: the last --matrix / --today wins)."""
    code = main(["alpine", "check", "--matrix", str(MATRIX_2025), "--today", SNAPSHOT_DAY,
                 *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("document", [RELEASES_JSON, LATEST_YAML], ids=["json", "yaml"])
def test_nothing_new_prints_nothing(
    document: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = write_state(tmp_path / "state.json", current_state(document))
    assert state.stat().st_size > 100
    code, out, err = check(capsys, "--releases", str(document), "--state", str(state),
                           "--today", SNAPSHOT_DAY)
    assert (code, out) == (0, "")
    # stdout stays the targets; a release past its end of life is said on stderr (only
    # releases.json carries eol_date; the matrix's eol says the same for the yaml): with
    # nothing new of it to publish, that is no refusal
    if document == RELEASES_JSON:
        assert err.splitlines() == [
            "ended: Alpine 3.18 is past its end of life (2025-05-09): drop it from "
            "matrix-2025.yaml (musl-pbs alpine update-matrix)"]
    else:
        assert err.splitlines() == [
            "ended: Alpine 3.18 reached its end of life on 2025-05-09 (matrix-2025.yaml): "
            "drop it from matrix-2025.yaml (musl-pbs alpine update-matrix)"]
    code, out, _ = check(capsys, "--releases", str(document), "--state", str(state), "--json",
                         "--today", SNAPSHOT_DAY)
    assert (code, out) == (0, "[]\n")


def test_a_new_patch_release_lists_that_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    targets = current_state(RELEASES_JSON)
    assert targets["3.21:x86_64"]["alpine_release"] == "3.21.4"
    targets["3.21:x86_64"]["alpine_release"] = "3.21.3"  # built before 3.21.4 was out
    state = write_state(tmp_path / "state.json", targets)
    code, out, _ = check(capsys, "--releases", str(RELEASES_JSON), "--state", str(state))
    assert code == 0
    assert out.splitlines() == ["3.21:x86_64\tAlpine 3.21.4 is out (last built from 3.21.3)"]

    code, out, _ = check(capsys, "--releases", str(RELEASES_JSON), "--state", str(state),
                         "--json")
    assert code == 0 and out.count("\n") == 1  # one line: fit for $GITHUB_OUTPUT
    assert json.loads(out) == [{
        "target": "3.21:x86_64",
        "alpine": "3.21",
        "arch": "x86_64",
        "python": "3.12",
        "platform": "linux/amd64",
        "image": "alpine:3.21",
        "alpine_release": "3.21.4",
        "previous": "3.21.3",
        "reason": "Alpine 3.21.4 is out (last built from 3.21.3)",
    }]


def test_the_yaml_of_one_branch_and_arch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # latest-releases.yaml of v3.21/x86_64 speaks for that target only: the other targets,
    # never built here, do not count.
    state = write_state(tmp_path / "state.json", {
        "3.21:x86_64": {"target": "3.21:x86_64", "alpine_release": "3.21.2"},
    })
    code, out, _ = check(capsys, "--releases", str(LATEST_YAML), "--state", str(state))
    assert (code, out) == (0, "3.21:x86_64\tAlpine 3.21.4 is out (last built from 3.21.2)\n")


def test_missing_state_makes_every_matrix_target_new(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = check(capsys, "--releases", str(RELEASES_JSON),
                           "--state", str(tmp_path / "none.json"), "--json")
    # 3.18 had ended by then (releases.json and the matrix agree): refused, named
    assert (code, out) == (24, "")
    assert "Alpine 3.18 is past its end of life (2025-05-09)" in err and "--allow-eol" in err
    code, out, err = check(capsys, "--releases", str(RELEASES_JSON),
                           "--state", str(tmp_path / "none.json"), "--json", "--allow-eol")
    assert code == 0
    found = json.loads(out)
    assert {t["target"] for t in found} == set(current_state(RELEASES_JSON))
    assert all(t["reason"] == "never built" and t["previous"] is None for t in found)
    # only what the matrix holds: no edge, no 3.17; loongarch64 from 3.21 on (the matrix
    # and the document both have it there); 3.23 is in the matrix but not in this document
    assert {t["alpine"] for t in found} == {"3.18", "3.19", "3.20", "3.21", "3.22"}
    assert {t["alpine"] for t in found if t["arch"] == "loongarch64"} == {"3.21", "3.22"}


def test_matrix_limits_the_targets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text('releases:\n  "3.21": {python: "3.12", musl: "1.2.5", arches: [x86_64]}\n')
    code, out, _ = check(capsys, "--releases", str(RELEASES_JSON), "--state",
                         str(tmp_path / "none.json"), "--matrix", str(matrix))
    assert (code, out) == (0, "3.21:x86_64\tnever built\n")


def test_state_written_by_assemble_round_trips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = tmp_path / "tree" / "python"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "python3.12").write_bytes(b"\x7fELF")
    name = ArchiveName("3.12.11", get_arch("x86_64"))
    info = build_info(name=name.stem, python_version="3.12.11", arch="x86_64",
                      alpine_release="3.21.4", image="alpine:3.21", image_id="sha256:" + "1" * 64)
    pack(tree, name, tmp_path / "built", info, 1_700_000_000, NullReporter())
    assert main(["release", "assemble", str(tmp_path / "built"), "--out",
                 str(tmp_path / "release"), "--build", "20250716", "--matrix",
                 str(MATRIX_2025), "--today", SNAPSHOT_DAY]) == 0
    capsys.readouterr()
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text('releases:\n  "3.21": {python: "3.12", musl: "1.2.5", arches: [x86_64]}\n')
    state = tmp_path / "release" / "state.json"
    assert check(capsys, "--releases", str(RELEASES_JSON), "--state", str(state),
                 "--matrix", str(matrix), "--today", SNAPSHOT_DAY) == (0, "", "")


def test_a_file_url_is_read_like_a_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = write_state(tmp_path / "state.json", current_state(RELEASES_JSON))
    code, out, _ = check(capsys, "--releases", RELEASES_JSON.as_uri(), "--state", str(state))
    assert (code, out) == (0, "")


def test_an_unreachable_url_is_a_network_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = check(capsys, "--releases", "http://127.0.0.1:9/releases.json",
                           "--state", str(tmp_path / "none.json"), "--timeout", "5")
    assert code == 13 and out == ""
    assert "http://127.0.0.1:9/releases.json" in err


MALFORMED = {
    "truncated.json": ('{"latest_stable": "v3.22", "release_branches": [{"rel_branch": "v3.2',
                       "neither JSON"),
    "branches.json": ('{"latest_stable": "v3.22", "release_branches": {"v3.22": {}}}',
                      "'release_branches' must be a list"),
    "rel_branch.json": ('{"release_branches": [{"rel_branch": "3.22", "releases": []}]}',
                        "branch '3.22' is neither 'edge' nor like 'v3.21'"),
    "version.json": ('{"release_branches": [{"rel_branch": "v3.22", "releases": [{"date": 1}]}]}',
                     "release_branches[0].releases[0] needs a 'version' string"),
    "other.json": ('{"tag_name": "v1.0"}', "not Alpine's releases.json"),
    "no-arch.yaml": ("---\n-\n  title: \"Standard\"\n  branch: v3.21\n  version: 3.21.4\n",
                     "item 0 (Standard) needs a 'arch' string"),
    "scalar.yaml": ("just some text\n", "expected releases.json (an object)"),
}


@pytest.mark.parametrize("filename", sorted(MALFORMED))
def test_a_malformed_document_is_refused(
    filename: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, message = MALFORMED[filename]
    doc = tmp_path / filename
    doc.write_text(text)
    code, out, err = check(capsys, "--releases", str(doc), "--state", str(tmp_path / "s.json"))
    assert code == 23 and out == ""
    assert str(doc) in err
    assert message in err


def test_a_malformed_state_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state.json"
    state.write_text('{"targets": {"3.21:x86_64": {"build": "20250101"}}}')
    code, _, err = check(capsys, "--releases", str(RELEASES_JSON), "--state", str(state))
    assert code == 23
    assert str(state) in err and "alpine_release" in err


def test_a_missing_document_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = check(capsys, "--releases", str(tmp_path / "nope.json"),
                         "--state", str(tmp_path / "s.json"))
    assert code == 2 and "nope.json: no such file" in err


def test_ended_by_the_matrix_eol_alone_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A document that carries no eol_date (latest-releases.yaml): matrix.yaml's eol
    decides. As of 2026-12-07 Alpine 3.21 has ended (2026-11-01)."""
    code, out, err = check(capsys, "--releases", str(LATEST_YAML), "--state",
                           str(tmp_path / "none.json"), "--today", "2026-12-07")
    assert (code, out) == (24, "")
    assert "Alpine 3.21 reached its end of life on 2026-11-01" in err
    code, out, _ = check(capsys, "--releases", str(LATEST_YAML), "--state",
                         str(tmp_path / "none.json"), "--today", "2026-12-07", "--allow-eol")
    assert (code, out) == (0, "3.21:x86_64\tnever built\n")


def test_the_repository_matrix_is_supported_today(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """matrix.yaml as shipped: nothing in it has ended on 2026-12-07 (the day it was last
    brought in step), so the nightly check lists its targets without --allow-eol."""
    code, out, err = check(capsys, "--releases", str(RELEASES_JSON), "--state",
                           str(tmp_path / "none.json"), "--matrix", str(DEFAULT_MATRIX),
                           "--today", "2026-12-07", "--json")
    assert code == 0, err
    assert {t["alpine"] for t in json.loads(out)} == {"3.22"}  # the one the fixture knows
    assert "ended" not in err
    assert load_matrix().default_release == "3.22"
