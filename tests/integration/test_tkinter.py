"""tkinter end to end: the x86_64 test ground offers python3-tkinter (Tcl/Tk and the X11
libraries built for musl), so the archive bundles libtcl/libtk and their X11 closure and
stages Tcl's and Tk's script libraries in python/lib. verify runs Tcl at a random path
without TCL_LIBRARY, directly and from a venv, and fails, naming lib/tcl8.6, on a copy
without it."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from builder.cli import main
from tests.integration.conftest import archive_without

pytestmark = pytest.mark.docker


def _archive(dist: Path) -> Path:
    found = sorted(dist.glob("cpython-3.*-linux-x86_64-musl.tar.gz"))
    assert len(found) == 1, list(dist.iterdir())
    return found[0]


def test_archive_bundles_tcl_tk_and_their_script_libraries(built_x86_64: Path) -> None:
    with tarfile.open(_archive(built_x86_64)) as tar:
        names = set(tar.getnames())
    minor = next(n.split("/")[2] for n in names if n.startswith("python/lib/python3."))
    assert any(n.startswith(f"python/lib/{minor}/lib-dynload/_tkinter.cpython-")
               for n in names)
    assert f"python/lib/{minor}/tkinter/__init__.py" in names
    for lib in ("libtcl8.6.so", "libtk8.6.so", "libX11.so.6", "libxcb.so.1", "libXau.so.6",
                "libXdmcp.so.6"):
        assert f"python/lib/{lib}" in names, lib
    for script in ("tcl8.6/init.tcl", "tcl8.6/encoding/cp1250.enc", "tcl8/8.5/msgcat-1.6.1.tm",
                   "tk8.6/tk.tcl", "tk8.6/ttk/ttk.tcl"):
        assert f"python/lib/{script}" in names, script


def test_verify_runs_tcl_relocated(built_x86_64: Path, images_x86_64: tuple[str, str],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["verify", str(_archive(built_x86_64)), "--image", images_x86_64[1],
                 "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, [r for r in report["results"] if not r["ok"]]
    checks = {r["check"]: r for r in report["results"]}
    assert checks["import:_tkinter"]["ok"], checks["import:_tkinter"]
    tcl = checks["tkinter-tcl"]
    assert tcl["ok"] and tcl["detail"].startswith("Tcl 8.6."), tcl
    assert tcl["detail"].endswith("script library python/lib/tcl8.6"), tcl
    venv = checks["tkinter-tcl-venv"]
    assert venv["ok"] and venv["detail"].endswith("uses python/lib/tcl8.6"), venv


def test_verify_fails_without_tcls_script_library(
    built_x86_64: Path, images_x86_64: tuple[str, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gz = _archive(built_x86_64)
    broken = archive_without(gz, tmp_path / gz.name, lambda name: name == "python/lib/tcl8.6"
                             or name.startswith("python/lib/tcl8.6/"))
    code = main(["verify", str(broken), "--image", images_x86_64[1], "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 12
    failed = {r["check"]: r for r in report["results"] if not r["ok"]}
    assert sorted(failed) == ["tkinter-tcl", "tkinter-tcl-venv"], failed
    detail = failed["tkinter-tcl"]["detail"]
    assert "python/lib/tcl8.6" in detail and "init.tcl" in detail, detail
    assert "init.tcl" in failed["tkinter-tcl-venv"]["detail"], failed
