"""builder/stages/regrtest.py: the selection, regrtest's output (progress lines and junit
XML), the verdict and the test files put beside an archive, without Docker."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from builder.errors import InputTooLargeError, RegrtestError
from builder.stages import regrtest as rt
from builder.stages.regrtest import Outcome
from builder.stages.verify import VerifyReport

# Real output of `python3.11 -m test -j2 --timeout 15 --junit-xml x.xml ...` (a test
# directory with a failing, a crashing, a hanging, a skipped and a passing module).
OUTPUT = """\
Using random seed: 853285392
0:00:00 load avg: 5.78 Run 5 tests in parallel using 2 worker processes (timeout: 15.0 sec)
0:00:00 load avg: 5.78 [1/5/1] test_crash worker non-zero exit code (Exit code 127)
0:00:00 load avg: 5.78 [2/5/2] test_fail failed (1 error, 1 failure)
test test_fail failed -- multiple errors occurred; run in verbose mode for details
0:00:00 load avg: 5.78 [3/5/2] test_skipmod skipped
test_skipmod skipped -- no such thing
0:00:00 load avg: 5.78 [4/5/2] test_pass passed -- running: test_hang (30.1 sec)
0:00:30 load avg: 5.78 running: test_hang (30.1 sec)
0:00:45 load avg: 5.46 [5/5/3] test_hang worker non-zero exit code (Exit code 1)
Timeout (0:00:15)!
Thread 0x00007fd0ee68ab80 (most recent call first):
  File "/tmp/rt/td/test_hang.py", line 3 in test_x

== Tests result: FAILURE ==

1 test skipped:
    test_skipmod

3 tests failed:
    test_crash test_fail test_hang

Total duration: 15.3 sec
Result: FAILURE
"""

XML = b"""<testsuites tests="5" errors="1" failures="1"><testsuite start="x" tests="4">
<testcase name="test.test_fail.T.test_child" status="run" result="completed" time="0.086">
<system-out /><system-err />
<failure type="AssertionError" message="AssertionError: 127 != 0">Traceback (most recent call last):
  File "/x/test_fail.py", line 6, in test_child
    self.assertEqual(out.returncode, 0, out.stderr)
AssertionError: 127 != 0 : b'Error loading shared library libpython3.11.so.1.0: No such \
file or directory (needed by /tmp/v/bin/python)\\n'
</failure></testcase>
<testcase name="test.test_fail.T.test_err" status="run" result="completed" time="0.0002">
<error type="RuntimeError" message="RuntimeError: boom">Traceback (most recent call last):
RuntimeError: boom
</error></testcase>
<testcase name="test.test_fail.T.test_ok" status="run" result="completed" time="0.5"/>
<testcase name="test.test_fail.T.test_skip" status="run" result="completed" time="0.0">
<skipped>why</skipped></testcase>
</testsuite><testsuite start="y" tests="1">
<testcase name="test.test_pass.T.test_x" status="run" result="completed" time="1.25"/>
</testsuite></testsuites>
"""

SELECTION = ("test_crash", "test_fail", "test_skipmod", "test_pass", "test_hang", "test_gone")


def results(output: str = OUTPUT, xml: bytes = XML, exit_code: int = 2
            ) -> dict[str, rt.ModuleResult]:
    return rt.combine(SELECTION, output, rt.parse_junit(xml, "x.xml"), exit_code)


# -- the selection --------------------------------------------------------------------------

def test_the_default_selection_holds_every_module_the_issue_names() -> None:
    modules = rt.load_selection(None)
    wanted = " ".join((
        "sysconfig site venv getpath embed subprocess sys cmd_line cmd_line_script",
        "importlib import zipimport compileall py_compile ctypes capi stable_abi_ctypes ssl",
        "hashlib sqlite3 zlib bz2 lzma dbm readline decimal multiprocessing_main_handling",
        "threading os posix shutil tempfile tarfile zipfile pydoc zipapp httpservers locale",
        "time datetime zoneinfo")).split()
    assert not {f"test_{w}" for w in wanted} - set(modules)
    assert len(modules) == len(set(modules))
    short = rt.RegrtestOptions(rt.load_selection(Path("short")), "img").modules
    assert len(short) >= 15 and not set(short) - set(modules)
    assert {"test_venv", "test_subprocess", "test_sysconfig", "test_site", "test_ctypes",
            "test_ssl", "test_sqlite3"} <= set(short)


def test_a_module_list_takes_names_and_comments_and_refuses_anything_else(
        tmp_path: Path) -> None:
    good = tmp_path / "mods"
    good.write_text("# paths\ntest_venv  # copies\n\ntest_site\ntest_venv\ntest_importlib.x\n"
                    "!EnsurePipTest\n")
    assert rt.load_selection(good) == ("test_venv", "test_site", "test_importlib.x",
                                       "!EnsurePipTest")
    opts = rt.RegrtestOptions(rt.load_selection(good), "img")
    assert opts.modules == ("test_venv", "test_site", "test_importlib.x")
    argv = rt.regrtest_argv("/p/python3", opts, rt.PurePosixPath("/tmp/x.xml"))
    assert argv[:3] == ["/p/python3", "-m", "test"]
    assert argv[-5:] == ["--ignore", "EnsurePipTest", "test_venv", "test_site",
                         "test_importlib.x"]
    for bad in ("-u all\n", "test_venv; rm -rf /\n", "../test_x\n", "venv\n", "# only\n",
                "!--match x\n", "!EnsurePipTest\n"):
        good.write_text(bad)
        with pytest.raises(RegrtestError) as e:
            rt.load_selection(good)
        assert str(good) in e.value.message
    good.write_bytes(b"test_x\n" * 20000)
    with pytest.raises(InputTooLargeError):
        rt.load_selection(good)


def test_the_known_table_loads_and_narrows_by_minor() -> None:
    known = rt.load_known()
    assert known["test__locale"].source == "musl"
    assert known["test_math"].applies("3.13", "x86_64")
    assert not known["test_math"].applies("3.11", "x86_64")
    assert known["test_time"].applies("3.11", "ppc64le")
    assert not known["test_time"].applies("3.11", "x86_64")
    with pytest.raises(RegrtestError):
        rt.parse_known({"modules": {"test_x": {"reason": "r", "side": "sometimes"}}}, "k")


# -- regrtest's output ----------------------------------------------------------------------

def test_each_module_gets_its_outcome_from_the_progress_lines() -> None:
    got = results()
    assert {m: r.outcome for m, r in got.items()} == {
        "test_crash": Outcome.CRASHED, "test_fail": Outcome.FAILED,
        "test_skipmod": Outcome.SKIPPED, "test_pass": Outcome.PASSED,
        "test_hang": Outcome.TIMED_OUT, "test_gone": Outcome.NOT_RUN}
    assert got["test_crash"].detail == "worker non-zero exit code (Exit code 127)"
    assert got["test_fail"].cases == 4
    assert [c.name for c in got["test_fail"].failed] == ["test.test_fail.T.test_child",
                                                           "test.test_fail.T.test_err"]
    assert got["test_pass"].seconds == 1.25  # the cases' sum (regrtest says nothing < 30 s)
    assert any("Timeout (0:00:15)!" in ln for ln in got["test_hang"].lines)


def test_a_package_3_13_runs_in_parts_is_one_module_with_the_worst_outcome() -> None:
    # 3.13's regrtest runs test_pydoc (a package since 3.13) as test_pydoc.test_pydoc: the
    # selection's test_pydoc was "not run" on both sides before.
    out = ("0:00:03 load avg: 1.2 [ 1/3] test_pydoc.test_pydoc passed\n"
           "0:00:04 load avg: 1.2 [ 2/3] test_split.test_a passed (31.0 sec)\n"
           "0:00:05 load avg: 1.2 [ 3/3/1] test_split.test_b failed (1 failure)\n"
           "0:00:06 load avg: 1.2 [ 4/4/1] test_skip.test_a skipped (resource denied)\n"
           "0:00:07 load avg: 1.2 [ 5/5/1] test_skip.test_b passed\n"
           "0:00:07 load avg: 1.2 [ 6/6/1] test_other.test_x passed\n")
    got = rt.parse_progress(out, ["test_pydoc", "test_split", "test_skip"])
    assert {m: p.outcome for m, p in got.items()} == {
        "test_pydoc": Outcome.PASSED, "test_split": Outcome.FAILED,
        "test_skip": Outcome.PASSED}
    assert got["test_split"].detail == ("test_split.test_a: passed (31.0 sec); "
                                        "test_split.test_b: failed (1 failure)")
    assert got["test_split"].seconds == 31.0


def test_the_wording_of_both_regrtest_generations_is_understood() -> None:
    cases = {
        "passed (1 min 2 sec)": (Outcome.PASSED, 62.0),
        "passed": (Outcome.PASSED, None),
        "failed (env changed)": (Outcome.PASSED, None),
        "failed (2 errors) (31.5 sec)": (Outcome.FAILED, 31.5),
        "failed (uncaught exception)": (Outcome.FAILED, None),
        "timed out (20 min 0 sec)": (Outcome.TIMED_OUT, 1200.0),
        "crashed (Exit code -11)": (Outcome.CRASHED, None),
        "worker non-zero exit code (Exit code -9 (SIGKILL))": (Outcome.CRASHED, None),
        "skipped (resource denied)": (Outcome.SKIPPED, None),
        "run no tests": (Outcome.SKIPPED, None),
        "ran no tests": (Outcome.SKIPPED, None),
    }
    for words, (outcome, seconds) in cases.items():
        got, detail = rt.classify(words + " -- running: test_os (31 sec)")
        assert (got, rt._seconds(detail)) == (outcome, seconds), words


def test_an_interpreter_that_cannot_start_leaves_every_module_not_run_with_its_words(
        ) -> None:
    out = "Error loading shared library libpython3.11.so.1.0: No such file or directory\n"
    got = rt.combine(SELECTION, out, [], 127)
    assert {r.outcome for r in got.values()} == {Outcome.NOT_RUN}
    assert got["test_pass"].detail == "regrtest did not start (exit 127)"
    assert "Error loading shared library" in got["test_pass"].lines[0]


def test_test_case_ids_map_to_the_selected_modules() -> None:
    sel = ("test_ctypes", "test_venv", "test_importlib", "test_ssl", "test_unittest")
    assert rt.module_of("test.test_venv.BasicTest.test_defaults", sel) == "test_venv"
    assert rt.module_of("test.test_importlib.source.test_finder.X.test_y", sel) == \
        "test_importlib"
    assert rt.module_of("ctypes.test.test_find.Test.test_x", sel) == "test_ctypes"
    assert rt.module_of("setUpClass (test.test_ssl.ThreadedTests)", sel) == "test_ssl"
    assert rt.module_of("unittest.test.test_case.Test.test_x", sel) == "test_unittest"
    assert rt.module_of("test.test_os.X.test_y", sel) is None
    assert rt.module_of("test.datetimetester.TestDate_Fast.test_x", ("test_datetime",)) == \
        "test_datetime"


def test_junit_xml_is_read_as_hostile_input() -> None:
    laughs = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
              b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><testsuites>&b;</testsuites>')
    with pytest.raises(RegrtestError, match="DOCTYPE"):
        rt.parse_junit(laughs, "x.xml")
    with pytest.raises(RegrtestError, match="well-formed"):
        rt.parse_junit(b"<testsuites><testcase name='x'>", "x.xml")
    with pytest.raises(InputTooLargeError):
        rt.parse_junit(b" " * (rt.CAP_JUNIT + 1), "x.xml")
    assert rt.parse_junit(b"<testsuites/>", "x.xml") == []


# -- the verdict ----------------------------------------------------------------------------

def _mod(name: str, outcome: Outcome, *failed: str, text: str = "") -> rt.ModuleResult:
    return rt.ModuleResult(name, outcome, outcome.value, None, 5,
                           tuple(rt.Case(f, Outcome.FAILED, 0.0, text) for f in failed))


def _judge(pairs: dict[str, tuple[rt.ModuleResult, rt.ModuleResult]],
           known: dict[str, rt.Known] | None = None, minor: str = "3.11") -> list[rt.Row]:
    return rt.judge(tuple(pairs), {m: a for m, (a, _) in pairs.items()},
                    {m: b for m, (_, b) in pairs.items()},
                    rt.load_known() if known is None else known, minor, "x86_64")


def test_a_module_passing_in_place_and_failing_relocated_is_a_regression_named_with_its_cases(
        ) -> None:
    child = ("Traceback (most recent call last):\n  File \"x\", line 1\nsubprocess."
             "CalledProcessError: Command '['/tmp/v/bin/python', '-m', 'pip']' returned "
             "non-zero exit status 127.\nError loading shared library libpython3.11.so.1.0: "
             "No such file or directory (needed by /tmp/v/bin/python)")
    rows = _judge({
        "test_venv": (_mod("test_venv", Outcome.PASSED),
                      _mod("test_venv", Outcome.FAILED, "test.test_venv.BasicTest.test_x",
                           text=child)),
        "test_os": (_mod("test_os", Outcome.PASSED), _mod("test_os", Outcome.PASSED)),
        "test_zlib": (_mod("test_zlib", Outcome.SKIPPED), _mod("test_zlib", Outcome.SKIPPED)),
        "test_bz2": (_mod("test_bz2", Outcome.FAILED), _mod("test_bz2", Outcome.PASSED)),
        "test_sqlite3": (_mod("test_sqlite3", Outcome.PASSED),
                         rt.ModuleResult("test_sqlite3", Outcome.SKIPPED, "skipped", lines=(
                             "test_sqlite3 skipped -- Error loading shared library "
                             "libsqlite3.so.0: No such file or directory",))),
    })
    assert [r.verdict for r in rows] == [rt.REGRESSION, rt.OK, rt.OK, rt.OK, rt.REGRESSION]
    # A module skipped only relocated (its extension module did not import) is a defect.
    assert "libsqlite3.so.0" in rows[-1].why()
    assert "skipped relocated" in rows[-1].why()
    why = rows[0].why()
    assert why.startswith("test_venv: passed in place")
    assert "test.test_venv.BasicTest.test_x" in why
    assert "Error loading shared library libpython3.11.so.1.0" in why
    assert "returned non-zero exit status 127" in why


def test_failing_in_both_is_alpines_own_unless_relocation_adds_test_cases() -> None:
    rows = _judge({
        "test_locale": (_mod("test_locale", Outcome.FAILED, "a.b.c"),
                        _mod("test_locale", Outcome.FAILED, "a.b.c")),
        "test_subprocess": (_mod("test_subprocess", Outcome.FAILED, "a.T.test_musl"),
                            _mod("test_subprocess", Outcome.FAILED, "a.T.test_musl",
                                 "a.T.test_executable_without_cwd")),
        "test_ssl": (_mod("test_ssl", Outcome.FAILED, "x"), _mod("test_ssl", Outcome.CRASHED)),
        "test_embed": (_mod("test_embed", Outcome.CRASHED), _mod("test_embed", Outcome.CRASHED)),
    })
    verdicts = {r.module: r for r in rows}
    assert verdicts["test_locale"].verdict == rt.BOTH
    assert verdicts["test_locale"].known is not None
    assert "locale model" in verdicts["test_locale"].known.reason
    assert verdicts["test_subprocess"].verdict == rt.REGRESSION
    assert [c.name for c in verdicts["test_subprocess"].new_cases] == [
        "a.T.test_executable_without_cwd"]
    assert verdicts["test_ssl"].verdict == rt.REGRESSION  # failed in place, crashed relocated
    assert verdicts["test_embed"].verdict == rt.BOTH


def test_a_regression_that_passes_run_again_alone_is_flaky_one_that_fails_again_is_not(
        ) -> None:
    timer = "test.test_os.TimerfdTests.test_timerfd_ns_TFD_TIMER_ABSTIME"
    pairs = {
        "test_os": (_mod("test_os", Outcome.FAILED, "test.test_os.A.test_fpathconf"),
                    _mod("test_os", Outcome.FAILED, "test.test_os.A.test_fpathconf", timer)),
        "test_venv": (_mod("test_venv", Outcome.PASSED),
                      _mod("test_venv", Outcome.FAILED, "test.test_venv.B.test_copies")),
        "test_zlib": (_mod("test_zlib", Outcome.PASSED), _mod("test_zlib", Outcome.PASSED)),
    }
    rows = _judge(pairs)
    assert [r.verdict for r in rows] == [rt.REGRESSION, rt.REGRESSION, rt.OK]
    again = {
        # Only the in-place case again: the timer case lost to the load the first time.
        "test_os": _mod("test_os", Outcome.FAILED, "test.test_os.A.test_fpathconf"),
        # The same case again: a defect.
        "test_venv": _mod("test_venv", Outcome.FAILED, "test.test_venv.B.test_copies"),
    }
    settled = rt.settle_flakes(rows, {m: a for m, (a, _) in pairs.items()}, again,
                               rt.load_known(), "3.11", "x86_64")
    assert [r.verdict for r in settled] == [rt.FLAKY, rt.REGRESSION, rt.OK]
    assert "when run again alone" in settled[0].why() and timer in settled[0].why()
    report = rt.RegrtestReport("x86_64", "3.11", tuple(pairs), _side(pairs, 0),
                               _side(pairs, 1), settled)
    assert [r.module for r in report.regressions] == ["test_venv"]
    assert "passed run again alone (timing): test_os" in report.summary()
    checks = {c.check: c for c in rt.to_checks(report)}
    assert checks["regrtest:test_os"].level == "warning"
    assert not checks["regrtest:test_venv"].ok and not checks["regrtest"].ok
    assert report.to_json()["modules"][0]["relocated_again"]["outcome"] == "failed"
    # Nothing run again: the rows are as they were.
    assert rt.settle_flakes(rows, {}, {}, {}, "3.11", "x86_64") == rows


def _side(pairs: dict[str, tuple[rt.ModuleResult, rt.ModuleResult]], i: int) -> rt.SideResult:
    return rt.SideResult(["in place", "relocated"][i], "img", "python3",
                         {m: pair[i] for m, pair in pairs.items()}, 1.0, 1)


def test_a_named_known_limitation_is_a_warning_not_a_failure() -> None:
    known = {"test_venv": rt.Known("test_venv", "copies cannot find libpython", "archive",
                                   "relocated")}
    rows = _judge({"test_venv": (_mod("test_venv", Outcome.PASSED),
                                 _mod("test_venv", Outcome.FAILED, "t"))}, known)
    report = rt.RegrtestReport("x86_64", "3.11", ("test_venv",),
                               rt.SideResult("in place", "i", "p", {}, 1.0, 0),
                               rt.SideResult("relocated", "b", "q", {}, 1.0, 0), rows)
    checks = rt.to_checks(report)
    assert [(c.check, c.ok, c.level) for c in checks] == [
        ("regrtest:test_venv", False, "warning"), ("regrtest", True, "error")]
    assert "copies cannot find libpython" in checks[0].detail
    assert report.to_json()["known_limitations"] == ["test_venv"]


def test_the_report_fails_verify_and_carries_the_table_in_json() -> None:
    rows = _judge({
        "test_venv": (_mod("test_venv", Outcome.PASSED), _mod("test_venv", Outcome.FAILED,
                                                              "test.test_venv.T.test_x")),
        "test__locale": (_mod("test__locale", Outcome.FAILED, "a"),
                         _mod("test__locale", Outcome.FAILED, "a")),
    })
    side = rt.SideResult("in place", "img", "/usr/bin/python3",
                         {r.module: r.in_place for r in rows}, 12.0, 2)
    rel = rt.SideResult("relocated", "base", "/opt/u/python/bin/python3",
                        {r.module: r.relocated for r in rows}, 14.0, 2)
    result = rt.RegrtestReport("x86_64", "3.11", ("test_venv", "test__locale"), side, rel,
                               rows)
    verify = VerifyReport(Path("cpython-3.11.2-linux-x86_64-musl.tar.gz"), "x86_64", "3.11.2")
    verify.results += rt.to_checks(result)
    verify.regrtest = result.to_json()
    assert not verify.ok
    assert [f.check for f in verify.failures] == ["regrtest:test_venv", "regrtest"]
    data = json.loads(json.dumps(verify.to_json()))
    table = data["regrtest"]
    assert table["regressions"] == ["test_venv"]
    assert table["fail_in_both"] == ["test__locale"]
    assert table["modules"][1]["known"]["source"] == "musl"
    assert table["modules"][0]["relocated"]["failed_case_names"] == ["test.test_venv.T.test_x"]
    assert "fail only relocated: test_venv" in table["summary"]
    rich_table = rt.table(result)
    assert rich_table.row_count == 2


def test_cached_in_place_results_round_trip_and_a_damaged_entry_is_run_again(
        tmp_path: Path) -> None:
    side = rt.SideResult("in place", "img", "/usr/bin/python3", results(), 42.0, 2)
    path = tmp_path / "k.json"
    path.write_text(json.dumps(side.to_json()))
    back = rt._read_cached(path)
    assert back is not None and back.cached
    assert {m: r.outcome for m, r in back.modules.items()} == {
        m: r.outcome for m, r in side.modules.items()}
    assert [c.name for c in back.modules["test_fail"].failed] == [
        c.name for c in side.modules["test_fail"].failed]
    path.write_text('{"side": "in place"}')
    assert rt._read_cached(path) is None
    path.write_text("not json")
    assert rt._read_cached(path) is None


def test_the_cache_key_follows_the_content() -> None:
    opts = rt.RegrtestOptions(("test_venv",), "img")
    key = rt.cache_key("sha256:1", "x86_64", opts, {"python3-tests": "3.11.2-r0 Q1abc"})
    assert key == rt.cache_key("sha256:1", "x86_64", opts, {"python3-tests": "3.11.2-r0 Q1abc"})
    assert key != rt.cache_key("sha256:2", "x86_64", opts, {"python3-tests": "3.11.2-r0 Q1abc"})
    assert key != rt.cache_key("sha256:1", "x86_64", opts, {"python3-tests": "3.11.2-r0 Q1xyz"})
    other = rt.RegrtestOptions(("test_venv", "test_site"), "img")
    assert key != rt.cache_key("sha256:1", "x86_64", other, {"python3-tests": "3.11.2-r0 Q1abc"})


# -- the test files beside the archive ------------------------------------------------------

def test_test_files_go_beside_the_archive_never_over_its_own_files() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind in (("test", tarfile.DIRTYPE), ("test/__init__.py", tarfile.REGTYPE),
                           ("lib-dynload/_testcapi.so", tarfile.REGTYPE),
                           ("lib-dynload/_ctypes.so", tarfile.REGTYPE),
                           ("test/link", tarfile.SYMTYPE), ("../escape", tarfile.REGTYPE),
                           ("/abs", tarfile.REGTYPE)):
            info = tarfile.TarInfo(name)
            info.type = kind
            data = b"x" if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
            tar.addfile(info, io.BytesIO(data))
    own = {"python/lib/python3.11/lib-dynload/_ctypes.so"}
    out = rt.beside_archive(buf.getvalue(), own, "3.11")
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        assert tar.getnames() == ["test", "test/__init__.py", "lib-dynload/_testcapi.so"]
    with pytest.raises(RegrtestError, match="readable tar"):
        rt.beside_archive(b"garbage" * 100, own, "3.11")
