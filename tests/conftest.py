"""Shared fixtures. Docker tests are opt-in: `-m docker` (or .ci/run, which runs them all)."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

_C_SOURCES = {
    "bar.c": "int bar(int x) { return x * 2; }\n",
    "foo.c": "int bar(int);\nint foo(int x) { return bar(x) + 1; }\n",
    "main.c": '#include <stdio.h>\nint foo(int);\nint main(void) { printf("%d\\n", foo(20)); '
    "return 0; }\n",
}


@pytest.fixture(scope="session")
def musl_elves(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real musl ELF files compiled with musl-gcc: prog -> libfoo.so.1 -> libbar.so.2."""
    if shutil.which("musl-gcc") is None:
        pytest.skip("musl-gcc is not installed (apt-get install musl-tools)")
    d = tmp_path_factory.mktemp("elves")
    for name, text in _C_SOURCES.items():
        (d / name).write_text(text)

    def cc(*args: str) -> None:
        subprocess.run(["musl-gcc", *args], cwd=d, check=True, capture_output=True)

    cc("-shared", "-fPIC", "-Wl,-soname,libbar.so.2", "-o", "libbar.so.2.0", "bar.c")
    (d / "libbar.so.2").symlink_to("libbar.so.2.0")
    cc("-shared", "-fPIC", "-Wl,-soname,libfoo.so.1", "-o", "libfoo.so.1", "foo.c",
       "-L.", "-l:libbar.so.2")
    cc("-o", "prog", "main.c", "-L.", "-l:libfoo.so.1", "-Wl,-rpath-link,.")
    return d


# The longest test files first (warm seconds in one process: 378, 326, 102, 81), so that
# with pytest-xdist's --dist loadfile (.ci/run) they start at once on the two workers and
# the short files fill in around them, instead of one long file running alone at the end
# (the cold run of 1a8be11 spent its last minutes so). The rest keep their order.
LONGEST_FIRST = ("test_regrtest.py", "test_targets.py", "test_faults.py", "test_build_verify.py")


def _longest_first(item: pytest.Item) -> int:
    name = item.path.name
    return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Docker tests are opt-in: they run when a -m expression is given (.ci/run gives one).
    Items are ordered by :data:`LONGEST_FIRST` (a stable sort: the same on every worker)."""
    items.sort(key=_longest_first)
    if config.getoption("markexpr"):
        return
    skip = pytest.mark.skip(reason="needs the Docker engine: run with -m docker, or .ci/run")
    for item in items:
        if "docker" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def python_sigint() -> Iterator[None]:
    """SIGINT handled by Python (KeyboardInterrupt) for the test's duration.

    A test run started in the background (`.ci/run &`, nohup) inherits SIGINT ignored, and
    then ``_thread.interrupt_main()`` does nothing: the Ctrl-C tests would wait forever."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)

