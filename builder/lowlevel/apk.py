"""apk-tools 2 and 3 as acquire drives them: which apk it is, and whether the wanted
packages ended up installed.

apk's exit code alone does not say that: offline, both apk 2 and apk 3 warn about every
unreachable repository and, depending on version and on whether anything needed fetching,
exit 0 or with the count of errors, while a package already installed stays installed.
So the decision is made by asking apk afterwards what is installed (``apk info -e``, the
same in both), and apk's own ERROR lines are what a failure shows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from builder.lowlevel.container import ExecResult

_VERSION = re.compile(r"apk-tools ([0-9][0-9A-Za-z._~-]*?),? compiled for")
# What apk 2 and apk 3 say about a repository it cannot reach (real 2.14.4 output and
# apk 3's documented messages: "network error (check Internet connection and firewall)",
# "temporary error (try again later)", "DNS lookup error", "Failed to send request").
_REPOSITORY_TROUBLE = re.compile(
    r"(fetching|updating and opening|Ignoring|opening from cache|Failed to send request|"
    r"temporary error|network error|DNS lookup error|Permission denied|No such file)",
)


class Runs(Protocol):
    """What this module needs of a container (builder.lowlevel.container.Container)."""

    def call(self, argv: Sequence[str], *,
             on_output: Callable[[str], None] | None = None) -> ExecResult: ...


def tools_version(output: str) -> str:
    """``apk-tools 2.14.4, compiled for x86_64.`` -> ``2.14.4`` (apk 3 prints the same
    shape, e.g. ``apk-tools 3.0.3, compiled for x86_64.``); empty when not recognised."""
    m = _VERSION.search(output)
    return m.group(1) if m else ""


def major(version: str) -> int | None:
    m = re.match(r"(\d+)\.", version)
    return int(m.group(1)) if m else None


def repository_warnings(output: str) -> list[str]:
    """apk's WARNING/ERROR lines about repositories it could not reach."""
    return [ln.strip() for ln in output.splitlines()
            if ln.lstrip().startswith(("WARNING:", "ERROR:", "Failed to send"))
            and _REPOSITORY_TROUBLE.search(ln) and "unable to select" not in ln]


def error_lines(output: str) -> str:
    """apk's own account of a failure: from the first ERROR line on (with the indented
    details apk prints under it), else the whole output's tail."""
    lines = output.rstrip().splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith("ERROR:") and not _REPOSITORY_TROUBLE.search(line):
            return "\n".join(lines[i:i + 40])
    return "\n".join(lines[-30:])


def installed_names(info_output: str) -> set[str]:
    """The package names ``apk info -e NAME...`` printed: those installed (both versions
    print one name a line and exit with the number missing)."""
    return {ln.strip() for ln in info_output.splitlines()
            if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9+._-]*", ln.strip())}


@dataclass(frozen=True)
class AddOutcome:
    command: tuple[str, ...]
    exit_code: int
    output: str
    missing: tuple[str, ...]  # wanted packages not installed afterwards
    warnings: tuple[str, ...]  # what apk said about unreachable repositories

    @property
    def ok(self) -> bool:
        return not self.missing

    @property
    def offline_but_installed(self) -> bool:
        """apk complained (or failed) but everything wanted is installed."""
        return self.ok and (self.exit_code != 0 or bool(self.warnings))


def add(c: Runs, command: Sequence[str], packages: Sequence[str],
        on_output: Callable[[str], None] | None = None) -> AddOutcome:
    """Run the recipe's ``apk add`` and judge it by what is installed afterwards."""
    r = c.call(list(command), on_output=on_output)
    info = c.call(["apk", "info", "-e", *packages])
    have = installed_names(info.output)
    missing = tuple(p for p in packages if p not in have)
    return AddOutcome(tuple(command), r.exit_code, r.output, missing,
                      tuple(repository_warnings(r.output)))


_NO_SUCH_PACKAGE = re.compile(r"^\s+([A-Za-z0-9][A-Za-z0-9+._-]*) \(no such package\)", re.M)


def unavailable_names(output: str) -> set[str]:
    """The names apk 2 and apk 3 said they have no package for (``  NAME (no such
    package):`` under ``ERROR: unable to select packages:``)."""
    return set(_NO_SUCH_PACKAGE.findall(output))


def add_available(c: Runs, command_for: Callable[[Sequence[str]], Sequence[str]],
                  packages: Sequence[str],
                  on_output: Callable[[str], None] | None = None,
                  ) -> tuple[list[str], list[str]]:
    """Install whichever of ``packages`` the repositories offer: (installed, missing).

    apk selects all or nothing, and each ``apk add --no-cache`` fetches the indexes again,
    so instead of one ``apk add`` a package: all at once; when that fails, once more
    without the names apk said it has no package for; only what is still missing then is
    tried one by one. What counts is ``apk info -e`` afterwards, never the parse."""
    wanted = list(packages)
    missing: list[str] = []
    if wanted:
        first = add(c, command_for(wanted), wanted, on_output=on_output)
        missing = list(first.missing)
        absent = unavailable_names(first.output) & set(missing)
        retry = [p for p in missing if p not in absent]
        if absent and retry:
            missing = [*absent, *add(c, command_for(retry), retry, on_output=on_output).missing]
        elif not absent and len(missing) > 1:  # apk named nothing: one at a time
            missing = [p for p in missing
                       if not add(c, command_for([p]), [p], on_output=on_output).ok]
    gone = set(missing)
    return [p for p in wanted if p not in gone], [p for p in wanted if p in gone]


def add_with_optional(c: Runs, command_for: Callable[[Sequence[str]], Sequence[str]],
                      required: Sequence[str], optional: Sequence[str],
                      on_output: Callable[[str], None] | None = None,
                      ) -> tuple[AddOutcome, list[str], list[str]]:
    """The required packages and whichever optional ones the repositories offer, in as
    few ``apk add`` runs as possible: (the outcome for ``required``, optional installed,
    optional missing).

    All at once first: one run, one fetch of the indexes, when everything is offered. If
    apk names only optional packages it has none of, once more without them. Otherwise
    (a required package is what failed, or apk names nothing) the required ones alone,
    so that a failure shows apk's own message about them, then :func:`add_available`."""
    req, opt = list(required), list(optional)
    if opt:
        attempt = opt
        for _ in range(2):
            wanted = [*req, *attempt]
            outcome = add(c, command_for(wanted), wanted, on_output=on_output)
            if outcome.ok:  # nothing missing: the outcome holds for the required ones too
                return outcome, attempt, [p for p in opt if p not in attempt]
            absent = unavailable_names(outcome.output)
            if not absent or absent & set(req) or not absent & set(attempt):
                break
            attempt = [p for p in attempt if p not in absent]
            if not attempt:
                break
    added = add(c, command_for(req), req, on_output=on_output)
    if not added.ok:
        return added, [], opt
    installed, missing = add_available(c, command_for, opt, on_output=on_output)
    return added, installed, missing


def version_of(c: Runs) -> str:
    """The image's apk-tools version (``apk --version``); empty when apk does not say."""
    return tools_version(c.call(["apk", "--version"]).output)
