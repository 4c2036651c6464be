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


class Repository:
    """apk against a repository offering ``available``: all or nothing, apk 2's message for
    the names it lacks (or, ``named=False``, only a network error that names nothing)."""

    def __init__(self, available: set[str], named: bool = True) -> None:
        self.available, self.named = available, named
        self.installed: set[str] = set()
        self.adds: list[list[str]] = []

    def call(self, argv: Sequence[str], *,
             on_output: Callable[[str], None] | None = None) -> ExecResult:
        if list(argv[:3]) == ["apk", "add", "--no-cache"]:
            names = list(argv[3:])
            self.adds.append(names)
            lacking = [n for n in names if n not in self.available]
            if not lacking:
                self.installed.update(names)
                return ExecResult(0, "OK: 40 MiB in 30 packages\n")
            if not self.named:
                return ExecResult(1, "ERROR: network error (check Internet connection)\n")
            return ExecResult(len(lacking), "ERROR: unable to select packages:\n" + "".join(
                f"  {n} (no such package):\n    required by: world[{n}]\n" for n in lacking))
        if list(argv[:3]) == ["apk", "info", "-e"]:
            have = [p for p in argv[3:] if p in self.installed]
            return ExecResult(len(argv) - 3 - len(have), "".join(f"{p}\n" for p in have))
        raise AssertionError(argv)


OPTIONAL = ("python3-dev", "python3-gdbm", "python3-uuid", "python3-tkinter", "python3-zstd")


def _command(pkgs: Sequence[str]) -> list[str]:
    return ["apk", "add", "--no-cache", *pkgs]


def test_unavailable_names_from_apk2_and_apk3() -> None:
    assert apk.unavailable_names(transcript("apk2.14.4-add-missing-offline.txt").output) == {
        "python3"}
    assert apk.unavailable_names(transcript("apk3-add-missing-offline.txt").output) == {
        "python3-tkinter"}
    assert apk.unavailable_names(
        transcript("apk2.14.4-add-installed-offline.txt").output) == set()


def test_all_optional_packages_offered_take_one_apk_add() -> None:
    repo = Repository(set(OPTIONAL))
    assert apk.add_available(repo, _command, OPTIONAL) == (list(OPTIONAL), [])
    assert repo.adds == [list(OPTIONAL)]


def test_the_names_apk_lacks_are_dropped_in_one_retry() -> None:
    repo = Repository({"python3-dev", "python3-tkinter"})
    installed, missing = apk.add_available(repo, _command, OPTIONAL)
    assert installed == ["python3-dev", "python3-tkinter"]
    assert missing == ["python3-gdbm", "python3-uuid", "python3-zstd"]
    assert repo.adds == [list(OPTIONAL), ["python3-dev", "python3-tkinter"]]
    assert repo.installed == {"python3-dev", "python3-tkinter"}


def test_none_offered() -> None:
    repo = Repository(set())
    assert apk.add_available(repo, _command, OPTIONAL) == ([], list(OPTIONAL))
    assert len(repo.adds) == 1


def test_a_failure_naming_nothing_falls_back_to_one_package_at_a_time() -> None:
    repo = Repository({"python3-dev"}, named=False)
    installed, missing = apk.add_available(repo, _command, OPTIONAL)
    assert (installed, missing) == (["python3-dev"], list(OPTIONAL[1:]))
    assert repo.adds == [list(OPTIONAL), *([p] for p in OPTIONAL)]


def test_no_optional_packages_run_nothing() -> None:
    repo = Repository(set())
    assert apk.add_available(repo, _command, ()) == ([], [])
    assert repo.adds == []


def test_required_and_all_optional_offered_take_one_apk_add() -> None:
    """Real Alpine offers every optional package: one run, one fetch of the indexes."""
    repo = Repository({"python3", *OPTIONAL})
    added, installed, missing = apk.add_with_optional(repo, _command, ["python3"], OPTIONAL)
    assert added.ok and (installed, missing) == (list(OPTIONAL), [])
    assert repo.adds == [["python3", *OPTIONAL]]


def test_optional_packages_apk_lacks_cost_one_more_run() -> None:
    repo = Repository({"python3", "python3-dev"})
    added, installed, missing = apk.add_with_optional(repo, _command, ["python3"], OPTIONAL)
    assert added.ok and added.missing == ()
    assert installed == ["python3-dev"] and missing == list(OPTIONAL[1:])
    assert repo.adds == [["python3", *OPTIONAL], ["python3", "python3-dev"]]
    assert repo.installed == {"python3", "python3-dev"}


def test_a_missing_required_package_fails_with_apks_message_about_it() -> None:
    repo = Repository({"python3-dev"})
    added, installed, missing = apk.add_with_optional(repo, _command, ["python3"], OPTIONAL)
    assert not added.ok and added.missing == ("python3",)
    assert added.command == ("apk", "add", "--no-cache", "python3")  # the required alone
    assert "python3 (no such package)" in added.output
    assert (installed, missing) == ([], list(OPTIONAL))
    assert repo.installed == set()


def test_a_failure_naming_nothing_installs_required_then_optional_one_by_one() -> None:
    repo = Repository({"python3", "python3-dev"}, named=False)
    added, installed, missing = apk.add_with_optional(repo, _command, ["python3"], OPTIONAL)
    assert added.ok and installed == ["python3-dev"] and missing == list(OPTIONAL[1:])
    assert repo.adds[:2] == [["python3", *OPTIONAL], ["python3"]]


def test_no_optional_packages_is_one_run_of_the_required() -> None:
    repo = Repository({"python3"})
    added, installed, missing = apk.add_with_optional(repo, _command, ["python3"], ())
    assert added.ok and (installed, missing) == ([], [])
    assert repo.adds == [["python3"]]
