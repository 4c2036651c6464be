"""install --for-uv: where uv keeps its Pythons and the name it gives them."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.cli import main
from builder.errors import UvPythonDirError
from builder.host.uvdir import default_uv_python_dir, uv_dest, uv_python_dir


def test_uv_default_dir_follows_uv() -> None:
    assert default_uv_python_dir({"HOME": "/home/u"}) == Path("/home/u/.local/share/uv/python")
    assert default_uv_python_dir({"HOME": "/h", "XDG_DATA_HOME": "/d"}) == Path("/d/uv/python")
    assert default_uv_python_dir({"HOME": "/h", "UV_PYTHON_INSTALL_DIR": "/opt/uvpy"}) == Path(
        "/opt/uvpy")


def _fake_uv(tmp_path: Path, body: str) -> str:
    uv = tmp_path / "bin" / "uv"
    uv.parent.mkdir(parents=True, exist_ok=True)
    uv.write_text(f"#!/bin/sh\n{body}\n")
    uv.chmod(0o755)
    return str(uv)


def test_uv_is_asked_when_present(tmp_path: Path) -> None:
    uv = _fake_uv(tmp_path, '[ "$1 $2" = "python dir" ] && echo /srv/uv-pythons')
    assert uv_python_dir({"PATH": str(Path(uv).parent)}) == Path("/srv/uv-pythons")
    # no uv on PATH: uv's documented default
    assert uv_python_dir({"PATH": str(tmp_path / "none"), "HOME": "/h"}) == Path(
        "/h/.local/share/uv/python")


@pytest.mark.parametrize("body", ["echo relative/dir", "exit 3", "echo /a; echo /b",
                                  "printf '\\377\\376'"])
def test_a_uv_that_does_not_answer_is_an_error(tmp_path: Path, body: str) -> None:
    uv = _fake_uv(tmp_path, body)
    with pytest.raises(UvPythonDirError) as e:
        uv_python_dir({"PATH": ""}, uv=uv)
    assert e.value.exit_code == 45 and "python dir" in e.value.message


def test_uv_names() -> None:
    d = Path("/u")
    assert uv_dest(d, "3.12.8", "x86_64") == d / "cpython-3.12.8-linux-x86_64-musl"
    assert uv_dest(d, "3.12.8", "x86") == d / "cpython-3.12.8-linux-x86-musl"
    assert uv_dest(d, "3.12.8", "armv7") == d / "cpython-3.12.8-linux-armv7-musleabihf"
    assert uv_dest(d, "3.12.8", "armhf") == d / "cpython-3.12.8-linux-arm-musleabihf"
    assert uv_dest(d, "3.13.0rc2", "riscv64") == d / "cpython-3.13.0rc2-linux-riscv64gc-musl"


def test_for_uv_and_dir_exclude_each_other(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["install", "--for-uv", "--dir", str(tmp_path)])
    assert e.value.code == 2
    assert "not allowed with" in capsys.readouterr().err
    # The real `install --for-uv`, then uv finding it: tests/integration/test_uv.py.
