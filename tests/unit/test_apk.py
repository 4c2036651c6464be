"""apk-tools 2 and 3: the packages installed decide, apk's own ERROR lines explain."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from builder.lowlevel import apk
from builder.lowlevel.container import ExecResult

DATA = Path(__file__).resolve().parent.parent / "data" / "apk"


def transcript(name: str) -> ExecResult:
    """A recorded run: its output, and the exit code on its last line (``exit=N``)."""
    text = (DATA / name).read_text()
    body, _, code = text.rstrip().rpartition("exit=")
    return ExecResult(int(code), body)


class Replay:
    """A container that answers ``apk add`` and ``apk info -e`` from transcripts."""

    def __init__(self, add: ExecResult, installed: set[str],
                 version: str = "apk-tools 2.14.4, compiled for x86_64.") -> None:
        self.add, self.installed, self.version = add, installed, version
        self.calls: list[list[str]] = []

    def call(self, argv: Sequence[str], *,
             on_output: Callable[[str], None] | None = None) -> ExecResult:
        self.calls.append(list(argv))
        if list(argv[:2]) == ["apk", "add"]:
            return self.add
        if list(argv[:3]) == ["apk", "info", "-e"]:
            have = [p for p in argv[3:] if p in self.installed]
            return ExecResult(len(argv) - 3 - len(have), "".join(f"{p}\n" for p in have))
        if list(argv) == ["apk", "--version"]:
            return ExecResult(0, self.version + "\n")
        raise AssertionError(argv)


CMD = ["apk", "add", "--no-cache", "python3"]


@pytest.mark.parametrize("name", ["apk2.14.4-add-installed-offline.txt",
                                  "apk3-add-installed-offline.txt",
                                  "apk2-old-add-installed-errors.txt"])
def test_offline_but_installed_is_no_error(name: str) -> None:
    c = Replay(transcript(name), {"python3", "musl"})
    out = apk.add(c, CMD, ["python3"])
    assert out.ok and out.offline_but_installed and out.missing == ()
    assert out.warnings and all("dl-cdn.alpinelinux.org" in w or "APKINDEX" in w
                                for w in out.warnings if "Failed" not in w)
    assert c.calls[-1] == ["apk", "info", "-e", "python3"]


@pytest.mark.parametrize(("name", "pkg"), [("apk2.14.4-add-missing-offline.txt", "python3"),
                                           ("apk3-add-missing-offline.txt", "python3-tkinter")])
def test_missing_package_fails_with_apks_own_message(name: str, pkg: str) -> None:
    out = apk.add(Replay(transcript(name), {"musl"}), ["apk", "add", pkg], [pkg])
    assert not out.ok and out.missing == (pkg,)
    message = apk.error_lines(out.output)
    assert message.startswith("ERROR: unable to select packages:")
    assert f"{pkg} (no such package)" in message and "WARNING" not in message


def test_exit_zero_is_not_trusted_alone() -> None:
    # apk said OK, yet the package is not there: the database decides.
    out = apk.add(Replay(ExecResult(0, "OK: 7 MiB in 15 packages\n"), set()), CMD, ["python3"])
    assert not out.ok and out.missing == ("python3",)


def test_real_info_e_output() -> None:
    r = transcript("apk2.14.4-info-e.txt")
    assert r.exit_code == 1  # one of the three is missing
    assert apk.installed_names(r.output) == {"musl", "busybox"}


@pytest.mark.parametrize(("text", "version", "major"), [
    ("apk-tools 2.14.4, compiled for x86_64.", "2.14.4", 2),
    ("apk-tools 2.10.8, compiled for armv7.", "2.10.8", 2),
    ("apk-tools 3.0.3, compiled for x86_64.", "3.0.3", 3),
    ("apk-tools 3.0.0_rc4, compiled for aarch64.", "3.0.0_rc4", 3),
    ("WARNING: something\napk-tools 3.0.1-r1, compiled for riscv64.", "3.0.1-r1", 3),
    ("busybox: applet not found", "", None),
])
def test_tools_version(text: str, version: str, major: int | None) -> None:
    assert apk.tools_version(text) == version
    assert apk.major(version) == major
    assert apk.version_of(Replay(ExecResult(0, ""), set(), version=text)) == version
