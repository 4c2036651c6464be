"""Which matrix.yaml and recipes/ a command uses: --matrix/--recipes, then ./matrix.yaml (and
the recipes/ beside it), then musl-pbs's default (the repository's, shipped in the package);
`musl-pbs matrix` and `--help` name the file in use."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from builder.cli import main
from builder.config import (
    DEFAULT_MATRIX,
    DEFAULT_RECIPES,
    DEFAULTS_DIR,
    FROM_BESIDE,
    FROM_CWD,
    FROM_DEFAULT,
    _extracted,
    find_config,
)
from builder.errors import UnwritableOutputError

REPO = Path(__file__).resolve().parents[2]

ONE_RELEASE = """releases:
  "3.19": {python: "3.11", musl: "1.2.4", arches: [riscv64]}
"""
RECIPE = """python: "3.11"
packages: [python3]
"""


def _release_repo(root: Path, recipes: bool = True) -> Path:
    """A release repository's own matrix.yaml (one target) and, maybe, recipes/."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "matrix.yaml").write_text(ONE_RELEASE)
    if recipes:
        (root / "recipes").mkdir()
        (root / "recipes" / "python3.11.yaml").write_text(RECIPE)
    return root


def test_in_a_checkout_the_default_is_the_repository_root() -> None:
    assert DEFAULTS_DIR == REPO
    assert DEFAULT_MATRIX == REPO / "matrix.yaml"
    assert DEFAULT_RECIPES == REPO / "recipes"


def test_without_flags_or_a_matrix_here_the_default_is_used(tmp_path: Path) -> None:
    files = find_config(cwd=tmp_path)
    assert (files.matrix, files.matrix_from) == (DEFAULT_MATRIX, FROM_DEFAULT)
    assert (files.recipes, files.recipes_from) == (DEFAULT_RECIPES, FROM_DEFAULT)


def test_the_current_directory_s_matrix_and_recipes_beat_the_default(tmp_path: Path) -> None:
    repo = _release_repo(tmp_path / "release")
    files = find_config(cwd=repo)
    assert (files.matrix, files.matrix_from) == (repo / "matrix.yaml", FROM_CWD)
    assert (files.recipes, files.recipes_from) == (repo / "recipes", FROM_BESIDE)


def test_a_matrix_here_without_recipes_uses_the_default_recipes(tmp_path: Path) -> None:
    repo = _release_repo(tmp_path / "release", recipes=False)
    files = find_config(cwd=repo)
    assert files.matrix_from == FROM_CWD
    assert (files.recipes, files.recipes_from) == (DEFAULT_RECIPES, FROM_DEFAULT)


def test_recipes_alone_in_the_current_directory_are_not_taken(tmp_path: Path) -> None:
    (tmp_path / "recipes").mkdir()
    assert find_config(cwd=tmp_path).recipes == DEFAULT_RECIPES


def test_the_flags_win_over_the_current_directory(tmp_path: Path) -> None:
    here = _release_repo(tmp_path / "here")
    other = _release_repo(tmp_path / "other", recipes=False)
    files = find_config(other / "matrix.yaml", cwd=here)
    assert (files.matrix, files.matrix_from) == (other / "matrix.yaml", "given with --matrix")
    assert files.recipes == DEFAULT_RECIPES  # none beside --matrix's file; ./recipes is not it
    flagged = find_config(other / "matrix.yaml", tmp_path / "mine", cwd=here)
    assert (flagged.recipes, flagged.recipes_from) == (tmp_path / "mine", "given with --recipes")
    beside = find_config(here / "matrix.yaml", cwd=tmp_path)
    assert (beside.recipes, beside.recipes_from) == (here / "recipes", FROM_BESIDE)


def test_matrix_command_uses_and_names_the_current_directory_s_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = _release_repo(tmp_path)
    monkeypatch.chdir(repo)
    assert main(["matrix", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert [t["target"] for t in json.loads(out)] == ["3.19:riscv64"]
    assert f"matrix: {repo / 'matrix.yaml'} (from the current directory)" in err
    assert main(["matrix", "--format", "json", "--matrix", str(DEFAULT_MATRIX)]) == 0
    out, err = capsys.readouterr()
    assert "3.19:riscv64" not in out
    assert f"matrix: {DEFAULT_MATRIX} (given with --matrix)" in err


def test_matrix_command_names_the_default_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["matrix"]) == 0
    assert f"matrix: {DEFAULT_MATRIX} (musl-pbs's default)" in capsys.readouterr().err


def test_a_broken_matrix_here_says_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "matrix.yaml").write_text("jobs: [lint, test]\n")  # some other tool's file
    monkeypatch.chdir(tmp_path)
    assert main(["matrix"]) == 4
    err = " ".join(capsys.readouterr().err.split())
    assert "unknown key" in err
    assert "taken from the current directory: --matrix FILE names another" in err


def test_help_names_the_files_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = _release_repo(tmp_path / "100%-release")  # argparse formats help with %
    monkeypatch.chdir(repo)
    for argv in (["build", "--help"], ["matrix", "--help"], ["alpine", "check", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0
        out = "".join(capsys.readouterr().out.split())  # help text is wrapped
        assert f"Now:{repo}/matrix.yaml(fromthecurrentdirectory)" in out
        if argv[0] == "build":
            assert f"Now:{repo}/recipes(besidethatmatrix.yaml)" in out


def test_build_reads_the_current_directory_s_matrix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """3.19:riscv64 is a target of the matrix here only: selecting it proves which matrix was
    read (--out naming a file stops the build before any container)."""
    monkeypatch.chdir(_release_repo(tmp_path))
    (tmp_path / "a-file").write_text("")
    argv = ["--out", str(tmp_path / "a-file")]
    assert main(["build", "--target", "3.19:aarch64", *argv]) == 2  # not a target here
    assert "3.19:aarch64" in capsys.readouterr().err
    assert main(["build", "--target", "3.19:riscv64", *argv]) == UnwritableOutputError.exit_code
    assert "exists and is not a directory" in capsys.readouterr().err


def test_update_matrix_will_not_edit_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    before = DEFAULT_MATRIX.read_bytes()
    assert main(["alpine", "update-matrix", "--releases", str(tmp_path / "none.json")]) == 2
    assert "will not edit musl-pbs's default" in capsys.readouterr().err
    assert DEFAULT_MATRIX.read_bytes() == before


def test_defaults_imported_from_a_zip_are_extracted(tmp_path: Path) -> None:
    """A wheel put on sys.path is imported as a zip: the defaults become real files."""
    whl = tmp_path / "pkg.zip"
    with zipfile.ZipFile(whl, "w") as z:
        z.write(REPO / "matrix.yaml", "builder/defaults/matrix.yaml")
        for recipe in sorted((REPO / "recipes").glob("*.yaml")):
            z.write(recipe, f"builder/defaults/recipes/{recipe.name}")
    root = _extracted(zipfile.Path(whl, "builder/defaults/"))
    assert (root / "matrix.yaml").read_bytes() == (REPO / "matrix.yaml").read_bytes()
    assert sorted(p.name for p in (root / "recipes").iterdir()) == sorted(
        p.name for p in (REPO / "recipes").glob("*.yaml"))


def test_python_dash_m_builder(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "builder", "--version"], cwd=tmp_path,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "musl-pbs 0.1.0"


def test_a_removed_current_directory_means_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert main(["matrix", "--format", "json"]) == 0
    assert f"matrix: {DEFAULT_MATRIX} (musl-pbs's default)" in capsys.readouterr().err
