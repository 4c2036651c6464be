"""matrix.yaml and recipes: validated on load, errors name file:line; planning is pure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.cli import main
from builder.config import (
    CORE_EXTENSIONS,
    DEFAULT_MATRIX,
    EXTRA_SUBPACKAGES,
    default_recipe,
    find_recipe,
    load_matrix,
    load_recipe,
)
from builder.errors import ConfigError, UsageError
from builder.plan import Target, expand, select

GOOD = """image: "alpine:{tag}"
default_release: "3.20"
releases:
  "3.19": {python: "3.11", musl: "1.2.4", arches: [x86_64, aarch64]}
  "3.20":
    python: "3.12"
    musl: "1.2.5"
    arches: [x86_64, aarch64, riscv64]
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "matrix.yaml"
    p.write_text(text)
    return p


def test_repo_matrix_and_recipes_load() -> None:
    m = load_matrix()
    assert m.release(m.default_release) is not None
    for rel in m.releases:
        assert load_recipe(rel.python).python == rel.python


def test_expand_and_select(tmp_path: Path) -> None:
    m = load_matrix(_write(tmp_path, GOOD))
    assert [t.name for t in expand(m)] == [
        "3.19:x86_64", "3.19:aarch64", "3.20:x86_64", "3.20:aarch64", "3.20:riscv64"]
    assert [t.name for t in expand(m, releases=["3.20"], arches=["arm64"])] == ["3.20:aarch64"]
    assert [t.image for t in select(m, ["3.19:x86_64", "riscv64"])] == [
        "alpine:3.19", "alpine:3.20"]
    with pytest.raises(UsageError, match="not in"):
        select(m, ["3.19:riscv64"])


@pytest.mark.parametrize(("text", "line", "needle"), [
    (GOOD.replace("default_release", "defualt_release"), 2, "defualt_release: unknown key"),
    (GOOD.replace("[x86_64, aarch64]}", "[x86_64, sparc]}"), 4, "unknown architecture 'sparc'"),
    (GOOD.replace('"3.19":', "3.19x:"), 4, "release tag '3.19x'"),
    (GOOD.replace('"3.19":', "3.19:"), 4, "quote it"),
    (GOOD.replace('musl: "1.2.5"', 'musl: "latest"'), 7, "releases.3.20.musl"),
    (GOOD.replace("    arches: [x86_64, aarch64, riscv64]", "    arch: [x86_64]"), 8,
     "releases.3.20.arch: unknown key"),
    (GOOD.replace('"alpine:{tag}"', '"alpine:latest"'), 1, "image"),
    (GOOD.replace('musl: "1.2.4",', 'musl: "1.2.4", eol: "soon",'), 4,
     "releases.3.19.eol: 'soon' is not a date"),
    (GOOD.replace('musl: "1.2.4",', 'musl: "1.2.4", eol: "2025-02-30",'), 4,
     "releases.3.19.eol: '2025-02-30' is not a date"),
    (GOOD.replace('    musl: "1.2.5"', '    musl: "1.2.5"\n    eol: 2027-05-01 10:00:00'), 8,
     "releases.3.20.eol: must be a date"),
])
def test_bad_matrix_names_file_and_line(tmp_path: Path, text: str, line: int, needle: str
                                        ) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_matrix(path)
    assert e.value.message.startswith(f"{path}:{line}:"), e.value.message
    assert needle in e.value.message


def test_bad_matrix_fails_the_cli_before_docker(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, GOOD.replace("aarch64]}", "aarch65]}"))
    # No image, no Docker: the matrix is read first.
    assert main(["build", "--arch", "x86_64", "--matrix", str(path)]) == 4
    assert f"{path}:4:" in capsys.readouterr().err
    assert main(["matrix", "--matrix", str(path)]) == 4


def test_matrix_github_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["matrix", "--format", "github", "--matrix", str(DEFAULT_MATRIX)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["include"] and {"target", "arch", "alpine", "python", "platform"} <= set(
        data["include"][0])


def test_bad_recipe_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "python3.12.yaml").write_text('python: "3.12"\npackages: [python3]\nprune: 7\n')
    with pytest.raises(ConfigError, match=r"python3.12.yaml:3: prune: must be a list"):
        load_recipe("3.12", tmp_path)
    with pytest.raises(ConfigError, match=r"no recipe for Python 3\.9"):
        load_recipe("3.9", tmp_path)


def test_a_minor_without_a_recipe_gets_the_default(tmp_path: Path) -> None:
    recipe = find_recipe("3.9", tmp_path)  # an empty recipe directory
    assert recipe.default and recipe.name == "default" and recipe.python == "3.9"
    assert recipe.packages == ("python3",) and "python3-dev" in recipe.optional_packages
    assert "lib/python3.9/test" in recipe.prune
    assert "lib/python3.9/EXTERNALLY-MANAGED" in recipe.prune
    assert set(recipe.required_extensions) == set(CORE_EXTENSIONS)
    with pytest.raises(ConfigError):
        find_recipe("three", tmp_path)


def test_a_recipe_file_wins_and_agrees_with_the_default() -> None:
    for minor in ("3.11", "3.12", "3.13", "3.14"):
        recipe = find_recipe(minor)
        assert not recipe.default and recipe.name == f"python{minor}.yaml"
        # the files say what the default says for their minor, and require at least the core
        assert recipe.prune == default_recipe(minor).prune
        assert set(CORE_EXTENSIONS) <= set(recipe.required_extensions)


def test_python3_extras_are_optional_everywhere() -> None:
    for minor in ("3.11", "3.12", "3.13", "3.14", "3.9"):
        recipe = find_recipe(minor)
        assert set(EXTRA_SUBPACKAGES) <= set(recipe.optional_packages)
        assert "python3-dev" in recipe.optional_packages
        assert "python3-tkinter" not in recipe.packages  # never required


def test_eol_is_parsed_quoted_or_not(tmp_path: Path) -> None:
    import datetime as dt
    text = (GOOD.replace('musl: "1.2.4",', 'musl: "1.2.4", eol: 2025-11-01,')
            .replace('    musl: "1.2.5"', '    musl: "1.2.5"\n    eol: "2026-04-01"'))
    m = load_matrix(_write(tmp_path, text))
    r19, r20 = m.releases
    assert (r19.eol, r20.eol) == (dt.date(2025, 11, 1), dt.date(2026, 4, 1))
    assert not r19.ended(dt.date(2025, 11, 1)) and r19.ended(dt.date(2025, 11, 2))
    assert load_matrix(_write(tmp_path, GOOD)).releases[0].eol is None  # optional (edge)


def test_repo_matrix_follows_alpine_as_of_2026_12_07() -> None:
    """Supported on 2026-12-07: 3.22, 3.23, 3.24 (Python 3.12, 3.12, 3.14; 3.24 has musl
    1.2.6); the default is the oldest supported release, and none has ended."""
    import datetime as dt
    m = load_matrix()
    assert [(r.tag, r.python, r.musl, r.eol) for r in m.releases] == [
        ("3.22", "3.12", "1.2.5", dt.date(2027, 5, 1)),
        ("3.23", "3.12", "1.2.5", dt.date(2027, 11, 1)),
        ("3.24", "3.14", "1.2.6", dt.date(2028, 5, 1))]
    today = dt.date(2026, 12, 7)
    assert not any(r.ended(today) for r in m.releases)
    supported = sorted(m.releases, key=lambda r: tuple(map(int, r.tag.split("."))))
    assert m.default_release == supported[0].tag


def test_build_warns_about_an_ended_release(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`musl-pbs build` of a release past its eol (or not in the matrix) warns on stderr and
    in --json's 'warnings'; a supported one does not. The build itself is faked here."""
    from builder.commands import build_cmd
    built: list[str] = []

    def fake_build(args: object, matrix: object, recipes: object, target: Target, *rest: object,
                   **kw: object) -> dict[str, object]:
        built.append(target.release)
        return {"paths": ["a.tar.gz"], "manifest": {"python_version": "3.11.9"},
                "seconds": 1.0, "timings": []}

    monkeypatch.setattr(build_cmd, "_build_one", fake_build)
    matrix = _write(tmp_path, GOOD.replace('musl: "1.2.4",', 'musl: "1.2.4", eol: "2025-11-01",'))
    base = ["build", "--arch", "x86_64", "--matrix", str(matrix), "--out", str(tmp_path / "o"),
            "--work", str(tmp_path / "w")]
    assert main([*base, "--alpine", "3.19", "--today", "2025-11-02", "--json"]) == 0
    captured = capsys.readouterr()
    assert "warning: Alpine 3.19 reached its end of life on 2025-11-01" in captured.err
    assert json.loads(captured.out)["warnings"] == [
        "Alpine 3.19 reached its end of life on 2025-11-01 (gets no security fixes): build "
        "from a supported release of matrix.yaml"]
    assert main([*base, "--alpine", "3.19", "--today", "2025-11-01", "--json"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err and "warnings" not in json.loads(captured.out)
    assert main([*base, "--alpine", "3.17", "--today", "2025-11-01"]) == 0
    assert "Alpine 3.17 is not a release of matrix.yaml" in capsys.readouterr().err
    assert main([*base, "--today", "2030-01-01"]) == 0  # the default (3.20): no eol known
    assert "warning" not in capsys.readouterr().err
    assert built == ["3.19", "3.19", "3.17", "3.20"]
