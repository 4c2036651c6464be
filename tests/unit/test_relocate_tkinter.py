"""relocate: an archive with _tkinter gets a tkinter that tells Tcl where lib/tclX.Y is when
the interpreter is not in the archive's bin/ (a venv), and only then."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from builder.stages.relocate import relocate_tkinter

ORIGINAL = "import sys\nimport _tkinter\n\nTclVersion = float(_tkinter.TCL_VERSION)\n"


def _stdlib(tmp_path: Path, with_tkinter: bool = True) -> Path:
    stdlib = tmp_path / "python" / "lib" / "python3.11"
    (stdlib / "tkinter" / "__pycache__").mkdir(parents=True)
    (stdlib / "tkinter" / "__init__.py").write_text(ORIGINAL)
    (stdlib / "tkinter" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"stale")
    (stdlib / "lib-dynload").mkdir()
    if with_tkinter:
        (stdlib / "lib-dynload" / "_tkinter.cpython-311-x86_64-linux-musl.so").write_bytes(b"")
    return stdlib


def test_tkinter_is_told_once_and_its_pyc_dropped(tmp_path: Path) -> None:
    stdlib = _stdlib(tmp_path)
    assert relocate_tkinter(stdlib)
    text = (stdlib / "tkinter" / "__init__.py").read_text()
    assert text.startswith(ORIGINAL) and "TCL_LIBRARY" in text
    assert not (stdlib / "tkinter" / "__pycache__" / "__init__.cpython-311.pyc").exists()
    assert not relocate_tkinter(stdlib)
    assert (stdlib / "tkinter" / "__init__.py").read_text() == text


def test_without_tkinter_nothing_changes(tmp_path: Path) -> None:
    stdlib = _stdlib(tmp_path, with_tkinter=False)
    assert not relocate_tkinter(stdlib)
    assert (stdlib / "tkinter" / "__init__.py").read_text() == ORIGINAL


@pytest.mark.parametrize(("executable", "expected"), [
    ("venv/bin/python", "python/lib/tcl8.6"),  # outside the archive: told
    ("python/bin/python3.11", None),  # Tcl's own search finds python/lib/tcl8.6
])
def test_the_code_sets_tcl_library_only_outside_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executable: str, expected: str | None
) -> None:
    stdlib = _stdlib(tmp_path)
    (tmp_path / "python" / "lib" / "tcl8.6").mkdir()
    relocate_tkinter(stdlib)
    code = (stdlib / "tkinter" / "__init__.py").read_text().replace(ORIGINAL, "")
    monkeypatch.setattr(sys, "base_prefix", str(tmp_path / "python"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / executable))
    monkeypatch.delenv("TCL_LIBRARY", raising=False)
    exec(code, {"sys": sys, "_tkinter": types.SimpleNamespace(TCL_VERSION="8.6")})
    got = os.environ.get("TCL_LIBRARY")
    assert got == (str(tmp_path / expected) if expected else None)
    monkeypatch.delenv("TCL_LIBRARY", raising=False)
