"""verify --regrtest: CPython's own regression suite, in place and relocated.

The same selection of ``Lib/test`` modules runs twice: first with Alpine's own python3 in
place (an Alpine-like image: ``apk add python3 python3-tests``), then with the archive
unpacked at a random path of the verify image, with the test files (``Lib/test``, the
``*/test`` packages and the test-only extension modules the recipe prunes) copied from the
first container beside it for the run; they are never part of the archive. regrtest runs
with ``-j`` workers and a ``--timeout``, so a hang is "timed out", and writes
``--junit-xml``; its progress lines give each module's outcome, the XML the test cases.

Verdict: a module (or a test case) that fails relocated but not in place is a relocation
defect and fails verify, named with its failing test cases and the lines the child process
printed. Modules failing in both are Alpine's own, listed with the reason when
``data/regrtest_known.json`` knows it. In-place results are cached under
``~/.cache/musl-pbs/regrtest`` keyed by content (image id, selection, options, the
python3 and python3-tests packages installed), so a second run only runs the archive.
"""

from __future__ import annotations

import enum
import hashlib
import io
import json
import os
import re
import tarfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from builder.errors import InputTooLargeError, RegrtestError
from builder.lowlevel.boundedio import read_capped
from builder.lowlevel.jsonio import parse_json, write_json
from builder.lowlevel.tarstream import ARCHIVE_LIMITS, OPEN_ERRORS, open_tar
from builder.platforms import Arch
from builder.progress import Reporter

if TYPE_CHECKING:  # verify imports nothing from here; the cycle is for types only
    import argparse

    from builder.lowlevel.container import Container
    from builder.stages.verify import ArchiveIdentity, CheckResult, VerifyReport

CACHE = (Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "musl-pbs"
         / "regrtest")
DEFAULT_SELECTION = "data/regrtest_default.txt"
SHORT_SELECTION = "data/regrtest_short.txt"  # for emulated arches
BUILT_IN = {"default": DEFAULT_SELECTION, "short": SHORT_SELECTION}
KNOWN_TABLE = "data/regrtest_known.json"

# Resources regrtest may use: everything but the network (verify containers have none),
# a display, sound, multi-GiB files and the long 'cpu' variants. Names both 3.11 and 3.13
# accept (regrtest refuses an unknown one).
RESOURCES = "all,-network,-urlfetch,-gui,-audio,-largefile,-cpu"
DEFAULT_JOBS = 2
DEFAULT_TIMEOUT = 1200  # seconds per module; qemu-user runs some modules 10x slower

CAP_SELECTION = 64 << 10
MAX_MODULES = 500
CAP_JUNIT = 32 << 20  # the whole default selection writes ~3 MiB
MAX_CASES = 200_000
CAP_TESTS_TAR = 512 << 20  # Lib/test and friends: ~40 MiB
MAX_CASES_SHOWN = 10
MAX_LINES_SHOWN = 12
MAX_LINE = 300

_MODULE_NAME = re.compile(r"test_[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
_IGNORE = re.compile(r"[A-Za-z0-9_.*]{1,200}")
# "0:01:02 load avg: 1.23 [ 3/50/1] test_venv failed (2 errors) -- running: test_os (31 s)"
_PROGRESS = re.compile(r"^(?:\d+:\d\d:\d\d )?(?:load avg: [\d.]+ )?"
                       r"\[\s*\d+/\d+(?:/\d+)?\] (?P<name>test_[\w.]+)(?: (?P<rest>.*))?$")
_OTHER = re.compile(r"^(?:\d+:\d\d:\d\d )?(?:load avg: [\d.]+ )?(?:running: |== Tests result"
                    r"|Total duration|Total tests|Total test files|Tests result:|Result: "
                    r"|\d+ tests? |All \d+ tests |Kill <|Run \d+ tests |Using random seed)")
# What a worker killed by its own faulthandler timeout (regrtest --timeout) prints.
_TIMEOUT = re.compile(r"^Timeout \(\d+:\d\d:\d\d\)!")
_DURATION = re.compile(r"\((?:(\d+) hour )?(?:(\d+) min )?(?:([\d.]+) (?:sec|ms)\))")
# What a child process says when it cannot start or dies: shown first in excerpts.
_CHILD_ERROR = re.compile(
    r"Error loading shared library|Error relocating|No module named|Fatal Python error|"
    r"not found|cannot open shared object|Segmentation fault|ModuleNotFoundError|"
    r"ImportError|CalledProcessError|returned non-zero exit status|exit status|"
    r"could not find platform|Could not find platform|/usr/lib/python")

# The test files the relocated run gets from the in-place container, relative to
# lib/pythonX.Y (the recipe prunes all of them from archives).
TEST_PATHS = ("test", "*/test", "*/tests", "lib-dynload/_test*", "lib-dynload/_xxtest*",
              "lib-dynload/xxlimited*", "lib-dynload/_ctypes_test*", "lib-dynload/xxsubtype*")


class Outcome(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CRASHED = "crashed"
    TIMED_OUT = "timed out"
    NOT_RUN = "not run"

    @property
    def bad(self) -> bool:
        return self in (Outcome.FAILED, Outcome.CRASHED, Outcome.TIMED_OUT, Outcome.NOT_RUN)


# -- inputs ---------------------------------------------------------------------------------

def parse_selection(text: str, source: str) -> tuple[str, ...]:
    """Module names, one a line, '#' comments, and ``!PATTERN`` lines: test cases regrtest
    leaves out (``--ignore PATTERN``: a class or method name, or a glob of test ids).
    Anything else is a :class:`RegrtestError` naming the line (the names become
    regrtest's arguments)."""
    modules: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("!"):
            if not _IGNORE.fullmatch(line[1:]):
                raise RegrtestError(f"{source}:{number}: {line[:60]!r}: after '!' a test "
                                    "case pattern (letters, digits, '_', '.', '*')")
            if line not in modules:
                modules.append(line)
            continue
        if not _MODULE_NAME.fullmatch(line) or len(line) > 100:
            raise RegrtestError(f"{source}:{number}: {line[:60]!r} is not a regression-test "
                                "module name (test_xxx)")
        if line not in modules:
            modules.append(line)
    if not [m for m in modules if not m.startswith("!")]:
        raise RegrtestError(f"{source}: no test modules listed")
    if len(modules) > MAX_MODULES:
        raise RegrtestError(f"{source}: {len(modules)} modules, over the cap of {MAX_MODULES}")
    return tuple(modules)


def load_selection(path: Path | None) -> tuple[str, ...]:
    """``path`` (a user's file), or a selection shipped with musl-pbs: ``None`` or
    ``default`` (:data:`DEFAULT_SELECTION`), ``short`` (:data:`SHORT_SELECTION`)."""
    if path is None or str(path) in BUILT_IN:
        name = BUILT_IN[str(path or "default")]
        text = resources.files("builder").joinpath(name).read_text()
        return parse_selection(text, name)
    raw = read_capped(path, cap=CAP_SELECTION, what="a regrtest module list",
                      error=RegrtestError)
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise RegrtestError(f"{path}: not UTF-8 text") from None
    return parse_selection(text, str(path))


@dataclass(frozen=True)
class Known:
    """A module known to fail for a reason that is not the archive's (side "both"), or a
    named known limitation of relocated archives (side "relocated")."""

    module: str
    reason: str
    source: str
    side: str = "both"
    minors: tuple[str, ...] = ()
    arches: tuple[str, ...] = ()

    def applies(self, minor: str, arch: str) -> bool:
        return (not self.minors or minor in self.minors) and (
            not self.arches or arch in self.arches)

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "source": self.source, "side": self.side}


def parse_known(data: Any, source: str) -> dict[str, Known]:
    modules = data.get("modules") if isinstance(data, dict) else None
    if not isinstance(modules, dict):
        raise RegrtestError(f"{source}: no 'modules' object")
    out: dict[str, Known] = {}
    for name, entry in modules.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("reason"), str):
            raise RegrtestError(f"{source}: {name}: needs a 'reason'")
        side = entry.get("side", "both")
        if side not in ("both", "relocated"):
            raise RegrtestError(f"{source}: {name}: side must be 'both' or 'relocated'")
        out[name] = Known(name, entry["reason"], str(entry.get("source", "")), side,
                          tuple(entry.get("minors", ())), tuple(entry.get("arches", ())))
    return out


def load_known() -> dict[str, Known]:
    raw = resources.files("builder").joinpath(KNOWN_TABLE).read_bytes()
    return parse_known(parse_json(raw, KNOWN_TABLE, "the known-failures table",
                                  RegrtestError), KNOWN_TABLE)


# -- regrtest's output ----------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One test case of the junit XML."""

    name: str
    outcome: Outcome  # PASSED, FAILED (a failure or an error) or SKIPPED
    seconds: float = 0.0
    text: str = ""  # the traceback, then the case's captured stderr

    def excerpt(self) -> list[str]:
        return excerpt(self.text)


def excerpt(text: str, limit: int = MAX_LINES_SHOWN) -> list[str]:
    """The lines that say what went wrong, in their order: the exception lines of a
    traceback (its unindented lines) and whatever looks like a child process's own error
    (a loader message, a missing module), each cut to a readable length; the traceback's
    frames and source lines are left out."""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    frame = ("Traceback (most recent call last)", "During handling of", "The above exception")
    chosen = [ln for ln in lines
              if (not ln[0].isspace() and not ln.startswith(frame))
              or (_CHILD_ERROR.search(ln) and not ln.lstrip().startswith(("File \"", "raise ")))]
    if not chosen:
        chosen = lines[-3:]
    out = list(dict.fromkeys(chosen))[-limit:]
    return [ln if len(ln) <= MAX_LINE else ln[:MAX_LINE] + " ..." for ln in out]


def parse_junit(data: bytes, source: str) -> list[Case]:
    """The test cases of regrtest's ``--junit-xml`` output.

    It comes from the interpreter under test, so it is read as hostile input: capped, no
    DOCTYPE or entity declarations (so no entity expansion), a cap on the number of cases,
    every malformation a :class:`RegrtestError`."""
    if len(data) > CAP_JUNIT:
        raise InputTooLargeError(f"{source}: {len(data)} bytes of junit XML, over its cap "
                                 f"of {CAP_JUNIT} bytes")
    if re.search(rb"<!\s*(?:DOCTYPE|ENTITY)", data, re.IGNORECASE):
        raise RegrtestError(f"{source}: the junit XML declares a DOCTYPE or entities; "
                            "regrtest writes neither")
    try:
        root = ET.fromstring(data)
    except (ET.ParseError, ValueError) as e:
        raise RegrtestError(f"{source}: not well-formed junit XML ({e})") from None
    cases: list[Case] = []
    for el in root.iter("testcase"):
        if len(cases) >= MAX_CASES:
            raise RegrtestError(f"{source}: over {MAX_CASES} test cases")
        name = el.get("name") or "?"
        try:
            seconds = float(el.get("time") or 0)
        except ValueError:
            seconds = 0.0
        outcome, text = Outcome.PASSED, ""
        for child in el:
            if child.tag in ("failure", "error"):
                outcome = Outcome.FAILED
                text = (child.text or child.get("message") or child.tag) + "\n" + text
            elif child.tag == "skipped" and outcome is Outcome.PASSED:
                outcome = Outcome.SKIPPED
            elif child.tag == "system-err" and child.text:
                text += child.text
        cases.append(Case(name[:500], outcome, seconds, text[-20000:]))
    return cases


# Test modules whose cases live in a module of another name.
_CASE_ALIASES = {"datetimetester": "test_datetime"}


def module_of(case: str, selection: Iterable[str]) -> str | None:
    """The selected module a test case id belongs to: ``test.test_venv.BasicTest.test_x``
    is test_venv's, ``ctypes.test.test_find.Test.test_x`` test_ctypes' (3.11),
    ``setUpClass (test.test_ssl.ThreadedTests)`` test_ssl's."""
    inner = re.search(r"\(([\w.]+)\)\s*$", case)
    ident = inner.group(1) if inner else case
    parts = ident.split(".")
    chosen = set(selection)
    if parts[0] == "test" and len(parts) > 1 and parts[1] in chosen:
        return parts[1]
    for part in parts:
        part = _CASE_ALIASES.get(part, part)
        if part in chosen:
            return part
        if f"test_{part}" in chosen:
            return f"test_{part}"
    return None


@dataclass(frozen=True)
class Progress:
    outcome: Outcome
    detail: str  # regrtest's own words after the module name
    seconds: float | None
    lines: tuple[str, ...]  # what the worker printed after it


def classify(rest: str) -> tuple[Outcome, str]:
    """A progress line's words after the module name (3.11's and 3.13's wording)."""
    words = rest.split(" -- running", 1)[0].strip()
    if words.startswith("passed"):
        return Outcome.PASSED, words
    if "timed out" in words:
        return Outcome.TIMED_OUT, words
    if (words.startswith(("crashed", "interrupted", "worker"))
            or "worker non-zero exit code" in words or "Exit code" in words):
        return Outcome.CRASHED, words
    if words.startswith("failed (env changed)"):
        return Outcome.PASSED, words  # regrtest itself does not count it as a failure
    if words.startswith("failed"):
        return Outcome.FAILED, words
    if words.startswith("skipped") or "no tests" in words:
        return Outcome.SKIPPED, words
    return Outcome.FAILED, words or "no result"


def _seconds(words: str) -> float | None:
    m = _DURATION.search(words)
    if not m:
        return None
    hours, mins, secs = (float(g) if g else 0.0 for g in m.groups())
    if "ms)" in m.group(0):
        secs /= 1000
    return hours * 3600 + mins * 60 + secs


def _selected(name: str, chosen: set[str]) -> str | None:
    """The selected module a progress line's name belongs to: itself, or the package of
    which 3.13's regrtest runs each submodule apart (``test_pydoc.test_pydoc``)."""
    if name in chosen:
        return name
    package = name.split(".", 1)[0]
    return package if package in chosen else None


# The worst outcome of a split package's parts is the package's.
_SEVERITY = (Outcome.PASSED, Outcome.SKIPPED, Outcome.FAILED, Outcome.TIMED_OUT,
             Outcome.CRASHED, Outcome.NOT_RUN)


def _merge(a: Progress, b: Progress) -> Progress:
    if {a.outcome, b.outcome} == {Outcome.PASSED, Outcome.SKIPPED}:
        outcome = Outcome.PASSED  # some parts skipped (a missing resource), the rest ran
    else:
        outcome = max(a.outcome, b.outcome, key=_SEVERITY.index)
    seconds = None if a.seconds is None and b.seconds is None else \
        (a.seconds or 0.0) + (b.seconds or 0.0)
    return Progress(outcome, f"{a.detail}; {b.detail}", seconds, ())


def parse_progress(output: str, selection: Sequence[str]) -> dict[str, Progress]:
    """Each module's result line of a ``-j`` run, with the lines its worker printed."""
    found: dict[str, Progress] = {}
    current: str | None = None
    collected: dict[str, list[str]] = {}
    chosen = set(selection)
    for line in output.splitlines():
        m = _PROGRESS.match(line)
        name = _selected(m.group("name"), chosen) if m else None
        if m and name is not None:
            current = name
            outcome, detail = classify(m.group("rest") or "")
            if m.group("name") != name:  # a part of a package regrtest splits
                detail = f"{m.group('name')}: {detail}"
            part = Progress(outcome, detail, _seconds(detail), ())
            found[name] = _merge(found[name], part) if name in found else part
            collected.setdefault(name, [])
            continue
        if m or _OTHER.match(line):
            current = None
            continue
        if current is not None and len(collected[current]) < 400:
            collected[current].append(line)
    out = {}
    for name, p in found.items():
        lines = collected[name]
        outcome = p.outcome
        if outcome is Outcome.CRASHED and any(_TIMEOUT.match(ln) for ln in lines):
            outcome = Outcome.TIMED_OUT  # the worker's faulthandler ended it at --timeout
        out[name] = Progress(outcome, p.detail, p.seconds, tuple(lines))
    return out


# -- one side's results ---------------------------------------------------------------------

@dataclass(frozen=True)
class ModuleResult:
    module: str
    outcome: Outcome
    detail: str = ""
    seconds: float | None = None  # regrtest's duration (>= 30 s), else the cases' sum
    cases: int = 0
    failed: tuple[Case, ...] = ()
    lines: tuple[str, ...] = ()  # excerpt of the worker's output

    def to_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome.value, "detail": self.detail,
                "seconds": None if self.seconds is None else round(self.seconds, 1),
                "cases": self.cases,
                "failed_cases": [{"name": c.name, "lines": c.excerpt()}
                                 for c in self.failed[:MAX_CASES_SHOWN]],
                "failed_case_names": [c.name for c in self.failed],
                "lines": list(self.lines)}

    @staticmethod
    def from_json(module: str, d: dict[str, Any]) -> ModuleResult:
        names = [str(n) for n in d.get("failed_case_names", [])]
        texts = {str(c.get("name")): "\n".join(c.get("lines", []))
                 for c in d.get("failed_cases", []) if isinstance(c, dict)}
        return ModuleResult(module, Outcome(d["outcome"]), str(d.get("detail", "")),
                            d.get("seconds"), int(d.get("cases", 0)),
                            tuple(Case(n, Outcome.FAILED, 0.0, texts.get(n, ""))
                                  for n in names),
                            tuple(str(x) for x in d.get("lines", [])))


def combine(selection: Sequence[str], output: str, cases: Sequence[Case],
            exit_code: int) -> dict[str, ModuleResult]:
    """Per module: the outcome from the progress lines, the cases from the XML."""
    progress = parse_progress(output, selection)
    by_module: dict[str, list[Case]] = {m: [] for m in selection}
    for case in cases:
        owner = module_of(case.name, selection)
        if owner is not None:
            by_module[owner].append(case)
    started = bool(progress) or "== Tests result" in output
    results: dict[str, ModuleResult] = {}
    for module in selection:
        mine = by_module[module]
        failed = tuple(c for c in mine if c.outcome is Outcome.FAILED)
        p = progress.get(module)
        if p is None:
            why = ("regrtest did not report it" if started else
                   f"regrtest did not start (exit {exit_code})")
            tail = excerpt(output) if not started else []
            results[module] = ModuleResult(module, Outcome.NOT_RUN, why, None, len(mine),
                                           failed, tuple(tail))
            continue
        seconds = p.seconds if p.seconds is not None else (
            round(sum(c.seconds for c in mine), 3) if mine else None)
        lines = (tuple(excerpt("\n".join(p.lines))) if p.outcome is not Outcome.PASSED
                 else ())
        results[module] = ModuleResult(module, p.outcome, p.detail, seconds, len(mine),
                                       failed, lines)
    return results


@dataclass
class SideResult:
    side: str  # "in place" or "relocated"
    image: str
    python: str
    modules: dict[str, ModuleResult]
    seconds: float
    exit_code: int
    cached: bool = False

    def passed(self) -> int:
        return sum(r.outcome is Outcome.PASSED for r in self.modules.values())

    def to_json(self) -> dict[str, Any]:
        return {"side": self.side, "image": self.image, "python": self.python,
                "seconds": round(self.seconds, 1), "exit_code": self.exit_code,
                "cached": self.cached,
                "modules": {m: r.to_json() for m, r in self.modules.items()}}

    @staticmethod
    def from_json(d: dict[str, Any]) -> SideResult:
        return SideResult(str(d["side"]), str(d["image"]), str(d["python"]),
                          {m: ModuleResult.from_json(m, r) for m, r in d["modules"].items()},
                          float(d["seconds"]), int(d["exit_code"]), True)


# -- the verdict ----------------------------------------------------------------------------

REGRESSION = "regression"
# Failed only relocated in the run of the selection, then not in a re-run of the module
# alone: a timing-sensitive case that lost to the machine's load (timerfd latency, a
# deadline), not a relocation defect, which fails the same way every time.
FLAKY = "flaky"
KNOWN_LIMITATION = "known limitation"
BOTH = "fails in both"
OK = "ok"


@dataclass(frozen=True)
class Row:
    module: str
    in_place: ModuleResult
    relocated: ModuleResult
    verdict: str
    known: Known | None = None
    new_cases: tuple[Case, ...] = ()  # failing relocated, passing (or absent) in place
    again: ModuleResult | None = None  # relocated, run again alone after failing only there

    def why(self) -> str:
        """The regression in words: the cases, and what the child processes printed."""
        head = (f"{self.module}: {self.in_place.outcome.value} in place "
                f"({self.in_place.detail or '-'}), {self.relocated.outcome.value} relocated "
                f"({self.relocated.detail or '-'})")
        if self.again is not None:
            head += (f", {self.again.outcome.value} when run again alone "
                     f"({self.again.detail or '-'})")
        parts = [head]
        cases = self.new_cases or self.relocated.failed
        for c in cases[:MAX_CASES_SHOWN]:
            parts.append(f"  {c.name}")
            parts += [f"    | {ln}" for ln in c.excerpt()]
        if len(cases) > MAX_CASES_SHOWN:
            parts.append(f"  ... and {len(cases) - MAX_CASES_SHOWN} more test cases")
        if not cases and self.relocated.lines:
            parts += [f"    | {ln}" for ln in self.relocated.lines]
        return "\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"module": self.module, "verdict": self.verdict,
                "in_place": self.in_place.to_json(), "relocated": self.relocated.to_json(),
                "known": self.known.to_json() if self.known else None,
                "new_failed_cases": [c.name for c in self.new_cases],
                "relocated_again": self.again.to_json() if self.again else None}


def judge(selection: Sequence[str], in_place: dict[str, ModuleResult],
          relocated: dict[str, ModuleResult], known: dict[str, Known], minor: str,
          arch: str) -> list[Row]:
    """Relocated failures must be a subset of in-place failures, per module and, where
    both sides name their failing test cases, per test case."""
    rows = []
    for module in selection:
        a, b = in_place[module], relocated[module]
        k = known.get(module)
        k = k if k is not None and k.applies(minor, arch) else None
        if b.outcome is Outcome.SKIPPED and a.outcome is Outcome.PASSED:
            # Skipped only relocated: regrtest skips a module whose extension module does
            # not import (a broken rpath, a missing library): a defect, not a skip.
            verdict = (KNOWN_LIMITATION if k is not None and k.side == "relocated"
                       else REGRESSION)
            rows.append(Row(module, a, b, verdict, k))
            continue
        if not b.outcome.bad:
            rows.append(Row(module, a, b, OK, k))
            continue
        if not a.outcome.bad:
            new = b.failed
        elif a.outcome is Outcome.FAILED and b.outcome is Outcome.FAILED:
            before = {c.name for c in a.failed}
            new = tuple(c for c in b.failed if c.name not in before)
            if not new:
                rows.append(Row(module, a, b, BOTH, k))
                continue
        elif a.outcome is b.outcome or a.outcome is not Outcome.FAILED:
            rows.append(Row(module, a, b, BOTH, k))  # crashed/timed out/not run in both
            continue
        else:
            new = ()  # failed in place, crashed or timed out relocated: worse
        verdict = KNOWN_LIMITATION if k is not None and k.side == "relocated" else REGRESSION
        rows.append(Row(module, a, b, verdict, k, tuple(new)))
    return rows


def settle_flakes(rows: list[Row], in_place: dict[str, ModuleResult],
                  again: dict[str, ModuleResult], known: dict[str, Known], minor: str,
                  arch: str) -> list[Row]:
    """``rows`` with each regression whose module, run again alone relocated (``again``),
    no longer fails beyond in place marked :data:`FLAKY`; the first run's result is kept
    in the row (its failing cases are still shown)."""
    if not again:
        return rows
    settled = {r.module: r for r in judge(tuple(again), in_place, again, known, minor, arch)}
    out = []
    for row in rows:
        second = settled.get(row.module)
        if row.verdict == REGRESSION and second is not None and second.verdict != REGRESSION:
            row = Row(row.module, row.in_place, row.relocated, FLAKY, row.known,
                      row.new_cases, again=again[row.module])
        elif second is not None:
            row = Row(row.module, row.in_place, row.relocated, row.verdict, row.known,
                      row.new_cases, again=again[row.module])
        out.append(row)
    return out


@dataclass
class RegrtestReport:
    arch: str
    minor: str
    selection: tuple[str, ...]
    in_place: SideResult
    relocated: SideResult
    rows: list[Row] = field(default_factory=list)
    ignored: tuple[str, ...] = ()  # test-case patterns left out (regrtest --ignore)

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == REGRESSION]

    def summary(self) -> str:
        both = [r for r in self.rows if r.verdict == BOTH]
        own = ", ".join(f"{r.module}" + (f" ({r.known.source})" if r.known else "")
                        for r in both)
        text = (f"{len(self.rows)} modules: {self.in_place.passed()} pass in place, "
                f"{self.relocated.passed()} relocated "
                f"({self.in_place.seconds:.0f} s{' cached' if self.in_place.cached else ''}"
                f" + {self.relocated.seconds:.0f} s)")
        if both:
            text += f"; fail in both (Alpine's own): {own}"
        if self.regressions:
            text += ("; fail only relocated: "
                     + ", ".join(r.module for r in self.regressions))
        flaky = [r.module for r in self.rows if r.verdict == FLAKY]
        if flaky:
            text += ("; failed only relocated once, passed run again alone (timing): "
                     + ", ".join(flaky))
        return text

    def to_json(self) -> dict[str, Any]:
        return {"arch": self.arch, "minor": self.minor, "ok": not self.regressions,
                "summary": self.summary(), "ignored_cases": list(self.ignored),
                "regressions": [r.module for r in self.regressions],
                "fail_in_both": [r.module for r in self.rows if r.verdict == BOTH],
                "known_limitations": [r.module for r in self.rows
                                      if r.verdict == KNOWN_LIMITATION],
                "in_place": {k: v for k, v in self.in_place.to_json().items()
                             if k != "modules"},
                "relocated": {k: v for k, v in self.relocated.to_json().items()
                              if k != "modules"},
                "modules": [r.to_json() for r in self.rows]}


# -- running it -----------------------------------------------------------------------------

@dataclass(frozen=True)
class RegrtestOptions:
    selection: tuple[str, ...]  # module names and "!PATTERN" lines (parse_selection)
    image: str  # the Alpine-like image: apk add python3 python3-tests
    jobs: int = DEFAULT_JOBS
    timeout: int = DEFAULT_TIMEOUT
    fresh: bool = False  # ignore cached in-place results
    cache: Path = CACHE

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(m for m in self.selection if not m.startswith("!"))

    @property
    def ignored(self) -> tuple[str, ...]:
        return tuple(m[1:] for m in self.selection if m.startswith("!"))


def regrtest_argv(python: str, opts: RegrtestOptions, xml: PurePosixPath) -> list[str]:
    ignore = [a for pattern in opts.ignored for a in ("--ignore", pattern)]
    return [python, "-m", "test", "-j", str(opts.jobs), "--timeout", str(opts.timeout),
            "-u", RESOURCES, "--junit-xml", str(xml), *ignore, *opts.modules]


def _installed_ids(c: Container) -> dict[str, str]:
    """Package -> version and identity checksum, from apk's database."""
    raw = c.read_file(PurePosixPath("/lib/apk/db/installed"), limit=64 << 20) or b""
    out: dict[str, str] = {}
    name = version = ""
    for line in raw.decode(errors="replace").splitlines():
        if line.startswith("P:"):
            name, version = line[2:], ""
        elif line.startswith("V:"):
            version = line[2:]
        elif line.startswith("C:") and name in ("python3", "python3-tests"):
            out[name] = f"{version} {line[2:]}"
    return out


def cache_key(image_id: str, arch: str, opts: RegrtestOptions, packages: dict[str, str]
              ) -> str:
    blob = json.dumps({"image": image_id, "arch": arch, "modules": opts.selection,
                       "jobs": opts.jobs, "timeout": opts.timeout, "resources": RESOURCES,
                       "packages": packages, "format": 2}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _read_cached(path: Path) -> SideResult | None:
    try:
        raw = read_capped(path, cap=CAP_JUNIT, what="a cached regrtest result",
                          error=RegrtestError)
        return SideResult.from_json(parse_json(raw, str(path), "a cached regrtest result",
                                               RegrtestError))
    except (RegrtestError, InputTooLargeError, KeyError, ValueError, TypeError,
            AttributeError):
        return None  # a missing or damaged cache entry is simply run again


def run_side(c: Container, side: str, python: str, opts: RegrtestOptions, env: dict[str, str],
             reporter: Reporter) -> SideResult:
    xml = PurePosixPath(f"/tmp/musl-pbs-regrtest-{uuid.uuid4().hex[:8]}.xml")
    reporter.stage("regrtest", f"{side}: {python} -m test -j{opts.jobs} --timeout "
                   f"{opts.timeout}: {len(opts.modules)} modules in {c.image}")

    def show(line: str) -> None:
        if _PROGRESS.match(line):
            reporter.detail(f"{side}: {line.strip()[:160]}")

    start = time.monotonic()
    r = c.call(regrtest_argv(python, opts, xml), env=env, on_output=show)
    seconds = time.monotonic() - start
    size = c.call(["stat", "-c", "%s", str(xml)]).output.strip()
    if size.isdigit() and int(size) > CAP_JUNIT:
        raise InputTooLargeError(f"{side} junit XML: {size} bytes, over its cap of "
                                 f"{CAP_JUNIT} bytes")
    data = c.read_file(xml, limit=CAP_JUNIT + 1)  # None: regrtest wrote none (it crashed)
    cases = parse_junit(data, f"{side} junit XML") if data else []
    modules = combine(opts.modules, r.output, cases, r.exit_code)
    return SideResult(side, c.image, python, modules, seconds, r.exit_code)


def _tests_tar(c: Container, stdlib: PurePosixPath) -> bytes:
    """The test files of the in-place Python, as a tar relative to its stdlib."""
    tar = PurePosixPath(f"/tmp/musl-pbs-tests-{uuid.uuid4().hex[:8]}.tar")
    script = ("cd \"$1\" && shift && set -- $(ls -d $* 2>/dev/null) && "
              "[ $# -gt 0 ] && tar -cf \"$0\" \"$@\"")
    r = c.call(["/bin/sh", "-c", script, str(tar), str(stdlib), *TEST_PATHS])
    data = c.read_file(tar, limit=CAP_TESTS_TAR) if r.exit_code == 0 else None
    if not data:
        raise RegrtestError(f"no test files under {stdlib} of {c.image} after `apk add "
                            f"python3-tests` (exit {r.exit_code}: {r.tail(3)})")
    return data


def beside_archive(tests: bytes, archive_names: set[str], minor: str) -> bytes:
    """The test files the archive does not have, as a tar for ``python/lib/pythonX.Y``:
    regular files and directories only (they come out of a container), never replacing
    one of the archive's own files."""
    out = io.BytesIO()
    try:
        with tarfile.open(fileobj=io.BytesIO(tests), mode="r:") as src, \
                tarfile.open(fileobj=out, mode="w") as dst:
            for count, m in enumerate(src):
                if count > 200_000:
                    raise RegrtestError("the test files hold over 200000 entries")
                name = m.name.removeprefix("./").rstrip("/")
                if not name or name.startswith("/") or ".." in name.split("/"):
                    continue
                if f"python/lib/python{minor}/{name}" in archive_names:
                    continue
                m.name = name
                if m.isdir():
                    dst.addfile(m)
                elif m.isfile():
                    dst.addfile(m, src.extractfile(m))
    except (tarfile.TarError, EOFError) as e:
        raise RegrtestError(f"the test files from the in-place container are not a "
                            f"readable tar ({e})") from None
    return out.getvalue()


def archive_names(archive: Path) -> set[str]:
    try:
        with open_tar(archive, ARCHIVE_LIMITS, archive.name) as tar:
            return {m.name.rstrip("/") for m in tar}
    except OPEN_ERRORS as e:
        raise RegrtestError(f"{archive}: not a readable tar archive ({e})") from None


def run_regrtest(
    archive: Path,
    *,
    arch: Arch,
    minor: str,
    base_image: str,
    opts: RegrtestOptions,
    put_archive: Callable[[Container, PurePosixPath], None],
    reporter: Reporter,
) -> RegrtestReport:
    """Run the selection in place in ``opts.image``, then relocated in ``base_image``
    (``put_archive`` unpacks the archive at the given directory of a container)."""
    # Here, not at the top: verify's parser (made at every start of musl-pbs) reads this
    # module's options, and only a run needs the Docker SDK.
    from builder.lowlevel.container import Container, docker_client, engine_errors, ensure_image

    client = docker_client()
    known = load_known()
    ensure_image(client, opts.image, arch.docker_platform,
                 hint="pass --regrtest-image with an Alpine-like image of the archive's "
                 "release and arch where `apk add python3 python3-tests` works")
    stdlib = PurePosixPath(f"/usr/lib/python{minor}")
    with engine_errors("the in-place regression tests"), Container(
            client, opts.image, platform=arch.docker_platform, network=True,
            purpose="regrtest", environment=arch.container_env) as c:
        reporter.stage("regrtest", f"in place: apk add python3 python3-tests in {opts.image}")
        c.check_call(["apk", "add", "--no-cache", "python3", "python3-tests"],
                     what="apk add python3 python3-tests",
                     hint="--regrtest-image must offer python3 and python3-tests (Alpine's "
                     "own images do with network; the test ground's offline)")
        c.disconnect_networks()  # the tests run without network, as relocated
        image_id = str(client.images.get(opts.image).id)
        key = cache_key(image_id, arch.alpine, opts, _installed_ids(c))
        cached_path = opts.cache / f"{key}.json"
        in_place = None if opts.fresh else _read_cached(cached_path)
        if in_place is not None:
            reporter.stage("regrtest", f"in place: cached results ({cached_path.name})")
        else:
            in_place = run_side(c, "in place", "/usr/bin/python3", opts, {}, reporter)
            opts.cache.mkdir(parents=True, exist_ok=True)
            write_json(cached_path, in_place.to_json())
        tests = _tests_tar(c, stdlib)
    extra = beside_archive(tests, archive_names(archive), minor)
    base = PurePosixPath("/opt") / f"unpacked-{uuid.uuid4().hex[:10]}"
    prefix = base / "python"
    with engine_errors("the relocated regression tests"), Container(
            client, base_image, platform=arch.docker_platform, network=False,
            purpose="regrtest", environment=arch.container_env) as c:
        reporter.stage("regrtest", f"relocated: the archive at {base}, the test files "
                       "beside it")
        put_archive(c, base)
        c.put_tar(prefix / "lib" / f"python{minor}", extra)
        python = str(prefix / "bin" / "python3")
        relocated = run_side(c, "relocated", python, opts, {"LD_LIBRARY_PATH": ""}, reporter)
        rows = judge(opts.modules, in_place.modules, relocated.modules, known, minor,
                     arch.alpine)
        regressed = tuple(r.module for r in rows if r.verdict == REGRESSION)
        if regressed:
            # A defect of the archive fails the same way again; a case that lost to the
            # load does not. One worker, only these modules.
            reporter.stage("regrtest", f"relocated: {', '.join(regressed)} failed only "
                           "relocated: running them again alone")
            again = run_side(c, "relocated, again", python, replace(
                opts, selection=(*regressed, *(f"!{i}" for i in opts.ignored)), jobs=1),
                {"LD_LIBRARY_PATH": ""}, reporter)
            rows = settle_flakes(rows, in_place.modules, again.modules, known, minor,
                                 arch.alpine)
    return RegrtestReport(arch.alpine, minor, opts.modules, in_place, relocated, rows,
                          opts.ignored)


def default_image(ident: ArchiveIdentity) -> str:
    """The matrix's build image of the archive's release and arch (``alpine:3.19``)."""
    from builder.config import load_matrix

    release = str(ident.info.get("alpine_release") or "")
    tag = ".".join(release.split(".")[:2]) or "latest"
    return load_matrix().image_for(tag, ident.arch.alpine)


def add_regrtest(report: VerifyReport, *, image: str | None, musl_only: bool,
                 modules: Path | None, regrtest_image: str | None, jobs: int, timeout: int,
                 fresh: bool, reporter: Reporter) -> RegrtestReport:
    """Run the suite for ``report``'s archive (a :class:`~builder.stages.verify.VerifyReport`)
    relocated in verify's runtime image, add its checks and table to the report."""
    from builder.stages.verify import identify, runtime_image, tar_for_put

    if jobs < 1 or timeout < 10:
        raise RegrtestError(f"--regrtest-jobs {jobs} / --regrtest-timeout {timeout}: "
                            "need at least 1 job and 10 seconds")
    archive = report.archive
    ident = identify(archive)
    opts = RegrtestOptions(load_selection(modules), regrtest_image or default_image(ident),
                           jobs, timeout, fresh)
    base = runtime_image(ident, image, musl_only, reporter)
    result = run_regrtest(
        archive, arch=ident.arch, minor=ident.minor, base_image=base, opts=opts,
        put_archive=lambda c, dest: c.put_tar(dest, tar_for_put(archive)), reporter=reporter)
    report.results += to_checks(result)
    report.regrtest = result.to_json()
    return result


def to_checks(result: RegrtestReport) -> list[CheckResult]:
    """verify's check results: one failing check per regressed module (its test cases and
    error lines in the detail), a warning per known limitation, then the summary."""
    from builder.stages.verify import CheckResult

    out: list[CheckResult] = []
    for row in result.rows:
        if row.verdict == REGRESSION:
            out.append(CheckResult(f"regrtest:{row.module}", False, row.why()))
        elif row.verdict == FLAKY:
            out.append(CheckResult(f"regrtest:{row.module}", False,
                                   "failed only relocated, then passed run again alone: a "
                                   f"timing-sensitive case, not a defect\n{row.why()}",
                                   level="warning"))
        elif row.verdict == KNOWN_LIMITATION:
            assert row.known is not None
            out.append(CheckResult(f"regrtest:{row.module}", False,
                                   f"known limitation: {row.known.reason}\n{row.why()}",
                                   level="warning"))
    out.append(CheckResult("regrtest", not result.regressions, result.summary()))
    return out


def table(result: RegrtestReport) -> Table:
    """The per-module table (a rich Table) for the console."""
    t = Table(title=f"regrtest {result.arch} {result.minor}: {result.summary()}")
    for col in ("module", "in place", "relocated", "verdict"):
        t.add_column(col, overflow="fold")
    style = {OK: "green", BOTH: "yellow", KNOWN_LIMITATION: "yellow", FLAKY: "yellow",
             REGRESSION: "red"}
    for r in result.rows:
        note = r.verdict + (f": {r.known.reason}" if r.known and r.verdict != OK else "")
        if r.verdict == REGRESSION:
            note += ": " + ", ".join(c.name.rsplit(".", 2)[-2] + "." + c.name.rsplit(".", 1)[-1]
                                     for c in (r.new_cases or r.relocated.failed)[:3])
        t.add_row(r.module, escape(r.in_place.outcome.value),
                  escape(r.relocated.outcome.value), f"[{style[r.verdict]}]{escape(note)}[/]")
    return t


def add_arguments(p: argparse.ArgumentParser) -> None:
    """verify's --regrtest options (an argparse parser)."""
    p.add_argument("--regrtest", action="store_true", help="also run CPython's own regression "
                   "suite twice: Alpine's python3 in place in --regrtest-image (apk add "
                   "python3 python3-tests), then the archive at a random path of the verify "
                   "image with those test files beside it; a module or test case that fails "
                   "only relocated fails verify")
    p.add_argument("--regrtest-modules", type=Path, metavar="FILE", help="test modules to "
                   "run, one a line ('#' comments), or 'default' (builder/data/"
                   "regrtest_default.txt, the default) or 'short' (regrtest_short.txt: a "
                   "quarter of the time, for arches run under qemu)")
    p.add_argument("--regrtest-image", metavar="IMAGE", help="the Alpine-like image for the "
                   "in-place run, where `apk add python3 python3-tests` works (default: the "
                   "matrix's build image of the archive's release, alpine:TAG; the test "
                   "ground's is the first line of `tests/fixtures/build-images --arch ARCH "
                   "--python X.Y`)")
    p.add_argument("--regrtest-jobs", type=int, default=DEFAULT_JOBS, metavar="N",
                   help=f"regrtest worker processes (-j; default {DEFAULT_JOBS})")
    p.add_argument("--regrtest-timeout", type=int, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help="a module running longer is killed and reported as timed out "
                   f"(default {DEFAULT_TIMEOUT})")
    p.add_argument("--regrtest-fresh", action="store_true", help="run in place again even "
                   f"when results are cached ({CACHE})")


def from_args(report: VerifyReport, args: argparse.Namespace, reporter: Reporter
              ) -> RegrtestReport | None:
    """verify's --regrtest, when asked for and the runtime checks ran."""
    if not getattr(args, "regrtest", False) or args.static_only:
        return None
    return add_regrtest(report, image=args.image, musl_only=args.musl_only,
                        modules=args.regrtest_modules, regrtest_image=args.regrtest_image,
                        jobs=args.regrtest_jobs, timeout=args.regrtest_timeout,
                        fresh=args.regrtest_fresh, reporter=reporter)
