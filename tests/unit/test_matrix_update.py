"""alpine update-matrix: matrix.yaml follows Alpine (new branches in, ended ones out)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from builder.cli import main
from builder.config import load_matrix
from builder.release.matrix_update import index_url, read_index
from tests.minirootfs import FACTS

DATA = Path(__file__).resolve().parent.parent / "data" / "alpine"
RELEASES_JSON = DATA / "releases.json"
REAL_INDEX = next(iter(sorted(FACTS.glob("APKINDEX-v3.22-main-x86_64-*.tar.gz"))), None)
needs_index = pytest.mark.skipif(REAL_INDEX is None, reason="the real v3.22 APKINDEX")

MATRIX = """# a comment that stays
image: "alpine:{tag}"
default_release: "3.19"
releases:
  "3.18": {python: "3.11", musl: "1.2.4", arches: [x86_64]}
  "3.19": {python: "3.11", musl: "1.2.4", arches: [x86_64, aarch64]}
  # the newest
  "3.21": {python: "3.12", musl: "1.2.5", arches: [x86_64]}
"""


def _mirror(tmp_path: Path) -> Path:
    """A mirror directory holding the real v3.22 main/x86_64 index."""
    assert REAL_INDEX is not None
    mirror = tmp_path / "mirror"
    dest = Path(index_url(str(mirror), "3.22"))
    dest.parent.mkdir(parents=True)
    dest.symlink_to(REAL_INDEX)
    return mirror


@needs_index
def test_real_index_names_python3_and_musl() -> None:
    assert REAL_INDEX is not None
    versions = read_index(str(REAL_INDEX))
    assert versions["python3"] == "3.12.12-r0" and versions["musl"] == "1.2.5-r10"
    assert len(versions) > 5000


@needs_index
def test_ended_out_new_in_comments_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(MATRIX)
    code = main(["alpine", "update-matrix", "--releases", str(RELEASES_JSON), "--matrix",
                 str(matrix), "--mirror", str(_mirror(tmp_path)), "--today", "2026-11-27"])
    assert code == 0
    out = capsys.readouterr().out.splitlines()
    # releases.json: 3.18, 3.19 and 3.21 ended by 2026-11-27; 3.22 is supported, not in it
    assert out == [
        "dropped 3.18: Alpine 3.18 is past its end of life (2025-05-09)",
        "dropped 3.19: Alpine 3.19 is past its end of life (2025-11-01)",
        "dropped 3.21: Alpine 3.21 is past its end of life (2026-11-01)",
        "added 3.22: Python 3.12, musl 1.2.5, x86_64, aarch64, armv7, armhf, x86, ppc64le, "
        "s390x, riscv64, loongarch64",
    ]
    text = matrix.read_text()
    assert "# a comment that stays" in text and "# the newest" in text
    m = load_matrix(matrix)
    assert [r.tag for r in m.releases] == ["3.22"] and m.default_release == "3.22"
    r = m.releases[0]
    assert (r.python, r.musl, len(r.arches), r.eol) == ("3.12", "1.2.5", 9, date(2027, 5, 1))
    assert not list(tmp_path.glob(".*.tmp"))


def test_unreachable_index_is_a_note_not_a_guess(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(MATRIX)
    code = main(["alpine", "update-matrix", "--releases", str(RELEASES_JSON), "--matrix",
                 str(matrix), "--mirror", str(tmp_path / "empty"), "--today", "2025-07-16"])
    assert code == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "dropped 3.18: Alpine 3.18 is past its end of life (2025-05-09)",
        "eol 3.19: 2025-11-01 (releases.json's eol_date)",
        "eol 3.21: 2026-11-01 (releases.json's eol_date)"]
    assert "Alpine 3.22 not added" in captured.err and "APKINDEX.tar.gz" in captured.err
    m = load_matrix(matrix)
    assert [(r.tag, r.eol) for r in m.releases] == [("3.19", date(2025, 11, 1)),
                                                    ("3.21", date(2026, 11, 1))]


def test_nothing_to_change_leaves_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    matrix = tmp_path / "matrix.yaml"
    body = ('releases:\n  "3.22": {python: "3.12", musl: "1.2.5", eol: "2027-05-01", '
            'arches: [x86_64]}\n')
    matrix.write_text(body)
    assert main(["alpine", "update-matrix", "--releases", str(RELEASES_JSON), "--matrix",
                 str(matrix), "--mirror", str(tmp_path), "--today", "2025-07-16"]) == 0
    assert matrix.read_text() == body
    assert "follows Alpine already" in capsys.readouterr().err


@needs_index
def test_the_matrix_says_what_the_real_v3_22_index_says() -> None:
    """matrix.yaml's 3.22 entry against Alpine's own v3.22 main index."""
    assert REAL_INDEX is not None
    versions = read_index(str(REAL_INDEX))
    release = load_matrix().release("3.22")
    assert release is not None
    assert versions["python3"].startswith(release.python + ".")
    assert versions["musl"].startswith(release.musl + "-r")


def test_eol_dates_follow_releases_json_in_both_yaml_styles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A kept release's eol is rewritten to releases.json's eol_date (flow and block
    mappings, a wrong value replaced, a missing one added); a dropped default release
    gives way to the oldest remaining one."""
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(
        'default_release: "3.18"\n'
        "releases:\n"
        '  "3.18": {python: "3.11", musl: "1.2.4", eol: "2099-01-01", arches: [x86_64]}\n'
        '  "3.21":\n'
        '    python: "3.12"\n'
        '    musl: "1.2.5"\n'
        "    arches: [x86_64]\n"
        '  "3.19": {python: "3.11", musl: "1.2.4", eol: 2024-01-01, arches: [x86_64]}\n'
        '  "3.22":\n'
        '    python: "3.12"\n'
        '    eol: "2030-01-01"  # wrong on purpose\n'
        '    musl: "1.2.5"\n'
        "    arches: [x86_64]\n")
    assert main(["alpine", "update-matrix", "--releases", str(RELEASES_JSON), "--matrix",
                 str(matrix), "--mirror", str(tmp_path / "none"), "--today", "2025-07-16"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "dropped 3.18: Alpine 3.18 is past its end of life (2025-05-09)"
    assert sorted(out[1:]) == [f"eol {t}: {d} (releases.json's eol_date)" for t, d in (
        ("3.19", "2025-11-01"), ("3.21", "2026-11-01"), ("3.22", "2027-05-01"))]
    m = load_matrix(matrix)
    assert {r.tag: r.eol for r in m.releases} == {
        "3.21": date(2026, 11, 1), "3.19": date(2025, 11, 1), "3.22": date(2027, 5, 1)}
    assert m.default_release == "3.19"  # the oldest kept, not the newest
    assert "# wrong on purpose" in matrix.read_text()


def test_repo_matrix_eol_dates_agree_with_releases_json() -> None:
    """matrix.yaml's eol of every release releases.json (the fixture) also knows."""
    from builder.release.alpine_releases import read_document
    doc = read_document(str(RELEASES_JSON))
    m = load_matrix()
    shared = [r for r in m.releases if r.tag in doc.branches]
    assert shared, "no release in common with the fixture"
    for r in shared:
        assert r.eol == doc.branches[r.tag].eol, r.tag
    assert all(r.eol is not None for r in m.releases)
