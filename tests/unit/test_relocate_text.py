"""sysconfig data, pkg-config, Makefile and scripts stop naming the build prefix."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.errors import StageError
from builder.stages.relocate import (
    SYSCONFIG_HEADER,
    relocate_makefile,
    relocate_pkgconfig,
    relocate_script,
    relocate_sysconfigdata,
)

ALPINE_LIKE = """# system configuration generated and used by the sysconfig module
build_time_vars = {'ABIFLAGS': '',
 'BINDIR': '/usr/bin',
 'CONFIG_ARGS': "'--prefix=/usr' '--enable-shared'",
 'INCLUDEPY': '/usr/include/python3.12',
 'LIBDIR': '/usr/lib',
 'LIBPL': '/usr/lib/python3.12/config-3.12-x86_64-linux-musl',
 'LDFLAGS': '-Wl,--as-needed -L/usr/lib',
 'TZPATH': '/usr/share/zoneinfo:/usr/lib/zoneinfo',
 'Py_ENABLE_SHARED': 1,
 'prefix': '/usr',
 'userbase': '/usr/local'}
"""


def _load(path: Path) -> dict[str, object]:
    spec = importlib.util.spec_from_file_location("_sysconfigdata_test", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.build_time_vars)


def test_sysconfigdata_uses_placeholder_and_relocates_on_import(tmp_path: Path) -> None:
    stdlib = tmp_path / "here" / "python" / "lib" / "python3.12"
    stdlib.mkdir(parents=True)
    (stdlib / "__pycache__").mkdir()
    stale = stdlib / "__pycache__" / "_sysconfigdata__linux_x86_64-linux-musl.cpython-312.pyc"
    stale.write_bytes(b"stale")
    path = stdlib / "_sysconfigdata__linux_x86_64-linux-musl.py"
    path.write_text(ALPINE_LIKE)
    relocate_sysconfigdata(path, "/usr")
    text = path.read_text()
    assert text.startswith(SYSCONFIG_HEADER + "build_time_vars = {")  # what uv parses
    assert "'/install/lib'" in text and "'/usr/lib'" not in text
    assert not stale.exists()
    prefix = str(tmp_path / "here" / "python")
    data = _load(path)
    assert data["LIBDIR"] == f"{prefix}/lib"
    assert data["INCLUDEPY"] == f"{prefix}/include/python3.12"
    assert data["LDFLAGS"] == f"-Wl,--as-needed -L{prefix}/lib"
    assert data["CONFIG_ARGS"] == f"'--prefix={prefix}' '--enable-shared'"
    assert data["TZPATH"] == "/usr/share/zoneinfo:/usr/lib/zoneinfo"  # a system path
    assert data["Py_ENABLE_SHARED"] == 1


def test_pkgconfig_prefix_becomes_pcfiledir(tmp_path: Path) -> None:
    pc = tmp_path / "python-3.12.pc"
    pc.write_text("prefix=/usr\nexec_prefix=${prefix}\nlibdir=/usr/lib\n"
                  "includedir=${prefix}/include\nCflags: -I${includedir}/python3.12\n")
    assert relocate_pkgconfig(pc, "/usr")
    text = pc.read_text()
    assert "prefix=${pcfiledir}/../..\n" in text
    assert "libdir=${pcfiledir}/../../lib\n" in text
    assert "/usr" not in text


def test_makefile_prefix_computed_by_make(tmp_path: Path) -> None:
    cfg = tmp_path / "python" / "lib" / "python3.12" / "config-3.12-x86_64-linux-musl"
    cfg.mkdir(parents=True)
    mk = cfg / "Makefile"
    mk.write_text("prefix=\t\t/usr\nexec_prefix=\t${prefix}\nLIBDIR=\t\t$(exec_prefix)/lib\n"
                  "show:\n\t@echo $(LIBDIR)\n")
    assert relocate_makefile(mk, "/usr")
    out = subprocess.run(["make", "-s", "-f", str(mk), "show"], capture_output=True,
                         text=True, cwd="/")
    assert out.stdout.strip() == str(tmp_path / "python" / "lib")


def test_python_script_gets_a_relocatable_trampoline(tmp_path: Path) -> None:
    bindir = tmp_path / "python" / "bin"
    bindir.mkdir(parents=True)
    (bindir / "python3.12").symlink_to(sys.executable)
    script = bindir / "pydoc3"
    script.write_text("#!/usr/bin/python3.12\nimport sys\nprint('ran by', sys.argv[0])\n")
    script.chmod(0o755)
    assert relocate_script(script, "/usr", "python3.12")
    assert "/usr" not in script.read_text()
    link = tmp_path / "elsewhere"
    link.symlink_to(script)  # called through a symlink, like a PATH entry
    env = dict(os.environ)
    out = subprocess.run([str(link)], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ran by")


def test_shell_config_script_stops_naming_prefix(tmp_path: Path) -> None:
    script = tmp_path / "python3.12-config"
    script.write_text('#!/bin/sh\nprefix_build="/usr"\nLIBPL=$(echo "/usr/lib/python3.12" '
                      '| sed "s#^$prefix_build#$prefix_real#")\n')
    assert relocate_script(script, "/usr", "python3.12")
    text = script.read_text()
    assert 'prefix_build="/install"' in text and "/usr" not in text


@pytest.mark.parametrize("text", [
    "build_time_vars = {'prefix': '/usr', 'X': __import__('os').getcwd()}\n",  # not a literal
    "build_time_vars = ['not', 'a', 'dict']\n",
    "build_time_vars = {\n",  # cut short
    "print('no dictionary here')\n",
])
def test_sysconfigdata_that_is_not_a_literal_dictionary_is_a_stage_error(
    tmp_path: Path, text: str
) -> None:
    """Read with ast, never run; a file from the image is hostile input: a typed error."""
    path = tmp_path / "_sysconfigdata__linux_x86_64-linux-musl.py"
    path.write_text(text)
    with pytest.raises(StageError, match="no build_time_vars dictionary"):
        relocate_sysconfigdata(path, "/usr")
    assert path.read_text() == text
