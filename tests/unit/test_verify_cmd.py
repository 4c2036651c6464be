"""builder/commands/verify_cmd.py: how a check that could not be done is shown."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from builder.commands.verify_cmd import _print
from builder.stages.verify import CheckResult, VerifyReport


def test_a_skipped_check_is_shown_as_skipped_with_its_reason_and_never_as_ok() -> None:
    skipped = CheckResult("extension-wheel", False, "not done: PyPI publishes no musllinux "
                          "wheel of numpy, markupsafe, msgpack, multidict", level="skipped")
    report = VerifyReport(Path("cpython-3.11.2-linux-s390x-musl.tar.gz"), "s390x", "3.11.2",
                          [CheckResult("venv", True), skipped])
    console = Console(record=True, width=200)
    _print(report, console)
    text = console.export_text()
    row = next(line for line in text.splitlines() if "extension-wheel" in line)
    assert "SKIPPED" in row and "not done: PyPI publishes no" in row and " ok " not in row
    # Reported, not a failure: the archive still verifies, and the JSON says skipped.
    assert report.ok and report.warnings == [skipped]
    assert report.to_json()["results"][1]["level"] == "skipped"
