"""The sdist and the wheel hold what an installed musl-pbs needs: the repository's matrix.yaml
and recipes/ (as builder/defaults/ in the wheel, byte for byte), builder/data, the license and
the metadata an index shows. Built with ``python -m build --no-isolation`` (sdist, then the
wheel from the sdist, as users get it); tests/integration/test_installed_tool.py installs
them and builds with them."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.dists import REPO, VERSION, build_dists, wheel_problems


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_dists(tmp_path_factory.mktemp("dists"), isolation=False)


def test_the_wheel_holds_the_matrix_recipes_and_data(dists: tuple[Path, Path]) -> None:
    assert wheel_problems(dists[1]) == []


def test_a_wheel_without_the_recipes_is_caught(tmp_path: Path, dists: tuple[Path, Path]) -> None:
    """wheel_problems() itself: the same wheel with recipes/ dropped from the package data."""
    stripped = tmp_path / dists[1].name
    with zipfile.ZipFile(dists[1]) as src, zipfile.ZipFile(stripped, "w") as dst:
        for item in src.infolist():
            if not item.filename.startswith("builder/defaults/recipes/"):
                dst.writestr(item, src.read(item))
    assert wheel_problems(stripped) == [
        f"builder/defaults/recipes/{p.name}: missing"
        for p in sorted((REPO / "recipes").glob("*.yaml"))]


def test_the_sdist_carries_the_one_source(dists: tuple[Path, Path]) -> None:
    top = f"musl_pbs-{VERSION}"
    with tarfile.open(dists[0]) as t:
        names = set(t.getnames())
        for rel in ["matrix.yaml", "LICENSE", "README.md", "setup.py", "MANIFEST.in",
                    "pyproject.toml", *(f"recipes/{p.name}" for p in (REPO / "recipes").iterdir())]:
            assert f"{top}/{rel}" in names
            member = t.extractfile(f"{top}/{rel}")
            assert member is not None and member.read() == (REPO / rel).read_bytes()


def test_the_metadata_an_index_shows(dists: tuple[Path, Path]) -> None:
    with zipfile.ZipFile(dists[1]) as z:
        meta = Parser().parsestr(z.read(f"musl_pbs-{VERSION}.dist-info/METADATA").decode())
        entry_points = z.read(f"musl_pbs-{VERSION}.dist-info/entry_points.txt").decode()
    assert meta["Name"] == "musl-pbs" and meta["Version"] == VERSION
    assert meta["License-Expression"] == "MIT" and meta["License-File"] == "LICENSE"
    assert meta["Requires-Python"] == ">=3.11"
    assert "Operating System :: POSIX :: Linux" in (meta.get_all("Classifier") or [])
    assert meta["Description-Content-Type"] == "text/markdown"
    body = meta.get_payload()
    assert isinstance(body, str) and body.strip() == (REPO / "README.md").read_text().strip()
    assert "musl-pbs = builder.cli:entry" in entry_points


def test_the_wheel_runs_as_a_zip_outside_the_checkout(
    tmp_path: Path, dists: tuple[Path, Path]
) -> None:
    """The wheel on PYTHONPATH is imported as a zip (the checkout's editable finder comes
    after it): `matrix` reads the packaged matrix.yaml, extracted to a temporary file."""
    env = {**os.environ, "PYTHONPATH": str(dists[1])}
    done = subprocess.run([sys.executable, "-m", "builder", "matrix", "--format", "json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "musl-pbs-defaults-" in done.stderr and "(musl-pbs's default)" in done.stderr
    assert str(REPO) not in done.stderr
    assert '"target"' in done.stdout
