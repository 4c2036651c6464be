"""The static audit as a gate: each defect that fails at run time is a finding naming the
file and the rule; a clean relocated tree has none.

The clean tree is made the way a build makes it: real musl ELF files (musl-gcc) relocated
with patchelf, and Alpine-like text files rewritten by the relocate stage. Each test then
plants one defect. The glibc cases use real ELF files of this Debian host.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from builder.cli import main
from builder.lowlevel.patcher import Patchelf
from builder.naming import ArchiveName
from builder.platforms import get_arch
from builder.progress import NullReporter
from builder.stages.audit import AUDIT_RULES, Finding, audit_elves, audit_links, audit_text
from builder.stages.pack import pack
from builder.stages.relocate import (
    relocate_elves,
    relocate_makefile,
    relocate_pkgconfig,
    relocate_script,
    relocate_sysconfigdata,
)

X86_64 = get_arch("x86_64")
MINOR = "3.11"
SYSCONFIG = "lib/python3.11/_sysconfigdata__linux_x86_64-linux-musl.py"
MAKEFILE = "lib/python3.11/config-3.11-x86_64-linux-musl/Makefile"
GLIBC_LIBZ = Path("/usr/lib/x86_64-linux-gnu/libz.so.1")

_SYSCONFIG_TEXT = """build_time_vars = {{'BINDIR': '{p}/bin',
 'CONFIG_ARGS': "'--prefix={p}'",
 'INCLUDEPY': '{p}/include/python3.11',
 'LIBDIR': '{p}/lib',
 'LIBPL': '{p}/lib/python3.11/config-3.11-x86_64-linux-musl',
 'TZPATH': '/usr/share/zoneinfo',
 'abs_builddir': '/home/buildozer/aports/main/python3/src/Python-3.11.2',
 'exec_prefix': '{p}',
 'prefix': '{p}'}}
"""
_MAKEFILE_TEXT = "VERSION=\t3.11\nprefix=\t\t{p}\nexec_prefix=\t${{prefix}}\n"
_PC_TEXT = "prefix={p}\nexec_prefix=${{prefix}}\nlibdir=${{exec_prefix}}/lib\n"
_CONFIG_SCRIPT = '#!/bin/sh\nprefix_real=$(cd "$(dirname "$0")/.." && pwd)\necho {p}/include\n'


def _patchelf(*args: str) -> None:
    subprocess.run([str(Patchelf().exe), *args], check=True, capture_output=True)


def make_tree(base: Path, elves: Path, prefix: str = "/usr") -> Path:
    """A small python/ tree as relocate leaves it (build prefix ``prefix``)."""
    tree = base / "python"
    for d in ("bin", "lib/pkgconfig", "lib/python3.11/config-3.11-x86_64-linux-musl"):
        (tree / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(elves / "prog", tree / "bin/python3.11")
    shutil.copy2(elves / "libfoo.so.1", tree / "lib/libfoo.so.1")
    shutil.copy2(elves / "libbar.so.2.0", tree / "lib/libbar.so.2")
    (tree / "bin/python3").symlink_to("python3.11")
    (tree / "lib/libpython3.11.so").symlink_to("libfoo.so.1")
    (tree / SYSCONFIG).write_text(_SYSCONFIG_TEXT.format(p=prefix))
    (tree / MAKEFILE).write_text(_MAKEFILE_TEXT.format(p=prefix))
    (tree / "lib/pkgconfig/python3.pc").write_text(_PC_TEXT.format(p=prefix))
    (tree / "bin/python3.11-config").write_text(_CONFIG_SCRIPT.format(p=prefix))
    (tree / "lib/python3.11/config-3.11-x86_64-linux-musl/makesetup").write_text(
        "#! /bin/sh\necho setup\n")
    (tree / "lib/python3.11/base64.py").write_text("#! /usr/local/bin/python\n")  # as CPython's
    relocate_elves(tree, Patchelf())
    relocate_sysconfigdata(tree / SYSCONFIG, "/usr")
    relocate_makefile(tree / MAKEFILE, "/usr")
    relocate_pkgconfig(tree / "lib/pkgconfig/python3.pc", "/usr")
    relocate_script(tree / "bin/python3.11-config", "/usr", "python3.11")
    return tree


def audit(tree: Path) -> list[Finding]:
    return audit_elves(tree, X86_64) + audit_links(tree) + audit_text(tree, MINOR)


def rules(findings: list[Finding]) -> set[tuple[str, str]]:
    return {(f.check, f.path) for f in findings}


@pytest.fixture
def tree(tmp_path: Path, musl_elves: Path) -> Path:
    return make_tree(tmp_path, musl_elves)


def test_a_clean_relocated_tree_passes(tree: Path) -> None:
    assert audit(tree) == []


def _dollar_rpath(tree: Path) -> None:
    _patchelf("--set-rpath", "$ORIGIN/../lib:$LIB", str(tree / "bin/python3.11"))


def _braced_origin_is_fine(tree: Path) -> None:
    _patchelf("--set-rpath", "${ORIGIN}/../lib", str(tree / "bin/python3.11"))


def _glibc_library(tree: Path) -> None:
    shutil.copy2(GLIBC_LIBZ, tree / "lib/libz.so.1")


def _glibc_versions_only(tree: Path) -> None:
    shutil.copy2(GLIBC_LIBZ, tree / "lib/libz.so.1")
    _patchelf("--replace-needed", "libc.so.6", "libc.musl-x86_64.so.1",
              str(tree / "lib/libz.so.1"))


def _glibc_loader_needed(tree: Path) -> None:
    _patchelf("--add-needed", "ld-linux-x86-64.so.2", str(tree / "lib/libbar.so.2"))


def _absolute_needed(tree: Path) -> None:
    _patchelf("--add-needed", "/usr/lib/libfoo.so.1", str(tree / "bin/python3.11"))


def _relative_needed(tree: Path) -> None:
    _patchelf("--add-needed", "../../../etc/libevil.so", str(tree / "lib/libfoo.so.1"))


def _symlink_up(tree: Path) -> None:
    (tree / "lib/escape").symlink_to("../../etc")


def _symlink_absolute(tree: Path) -> None:
    (tree / "bin/python3").unlink()
    (tree / "bin/python3").symlink_to("/usr/bin/python3.11")


def _shebang_build_path(tree: Path) -> None:
    (tree / "lib/python3.11/config-3.11-x86_64-linux-musl/makesetup").write_text(
        "#!/home/buildozer/aports/main/python3/pkg/bin/bash\necho setup\n")


def _shebang_usr_perl(tree: Path) -> None:
    (tree / "bin/helper").write_text("#!/usr/bin/perl -w\nprint 1;\n")


def _sysconfig_other_prefix(tree: Path) -> None:
    path = tree / SYSCONFIG
    path.write_text(_SYSCONFIG_TEXT.format(p="/opt/build/python"))
    relocate_sysconfigdata(path, "/usr")  # the prefix was not /usr: nothing is relocated


def _sysconfig_not_relocated(tree: Path) -> None:
    (tree / SYSCONFIG).write_text(_SYSCONFIG_TEXT.format(p="/install"))  # no relocation hook


def _makefile_other_prefix(tree: Path) -> None:
    (tree / MAKEFILE).write_text(_MAKEFILE_TEXT.format(p="/home/buildozer/pkg/usr"))


def _pkgconfig_other_prefix(tree: Path) -> None:
    (tree / "lib/pkgconfig/python3.pc").write_text(_PC_TEXT.format(p="/opt/build"))


DEFECTS: dict[str, tuple[Callable[[Path], None], set[tuple[str, str]], str]] = {
    "rpath-dollar-token": (_dollar_rpath, {("rpath", "python/bin/python3.11"),
                                           ("needed", "python/bin/python3.11")},
                           "musl then ignores the whole RPATH"),
    "glibc-soname-and-versions": (_glibc_library, {("glibc", "python/lib/libz.so.1")},
                                  "needs libc.so.6, a glibc library"),
    "glibc-versions-only": (_glibc_versions_only, {("glibc", "python/lib/libz.so.1")},
                            "GLIBC_2.14"),
    "glibc-loader": (_glibc_loader_needed, {("glibc", "python/lib/libbar.so.2")},
                     "ld-linux-x86-64.so.2"),
    "absolute-needed": (_absolute_needed, {("needed-path", "python/bin/python3.11")},
                        "'/usr/lib/libfoo.so.1' is a path"),
    "relative-path-needed": (_relative_needed, {("needed-path", "python/lib/libfoo.so.1")},
                             "is a path"),
    "symlink-up": (_symlink_up, {("symlink", "python/lib/escape")}, "outside python/"),
    "symlink-absolute": (_symlink_absolute, {("symlink", "python/bin/python3")},
                         "'/usr/bin/python3.11'"),
    "shebang-build-path": (_shebang_build_path, {
        ("shebang", "python/lib/python3.11/config-3.11-x86_64-linux-musl/makesetup")},
        "/home/buildozer/aports/main/python3/pkg/bin/bash"),
    "shebang-usr-interpreter": (_shebang_usr_perl, {("shebang", "python/bin/helper")},
                                "'/usr/bin/perl'"),
    "sysconfig-other-prefix": (_sysconfig_other_prefix, {("prefix", f"python/{SYSCONFIG}")},
                               "prefix is '/opt/build/python'"),
    "sysconfig-not-relocatable": (_sysconfig_not_relocated, {("prefix", f"python/{SYSCONFIG}")},
                                  "lacks the relocation code"),
    "makefile-other-prefix": (_makefile_other_prefix, {("prefix", f"python/{MAKEFILE}")},
                              "prefix is '/home/buildozer/pkg/usr'"),
    "pkgconfig-other-prefix": (_pkgconfig_other_prefix,
                               {("prefix", "python/lib/pkgconfig/python3.pc")},
                               "prefix is '/opt/build'"),
}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_each_defect_fires_its_rule(defect: str, tree: Path) -> None:
    plant, expected, message = DEFECTS[defect]
    if "glibc" in defect and not GLIBC_LIBZ.exists():
        pytest.skip(f"{GLIBC_LIBZ} (a glibc library of this host) is missing")
    plant(tree)
    findings = audit(tree)
    assert rules(findings) == expected, findings
    assert all(f.check in AUDIT_RULES for f in findings)
    assert any(message in f.message for f in findings), findings


def test_braced_origin_is_relocatable(tree: Path) -> None:
    _braced_origin_is_fine(tree)
    assert audit(tree) == []


def _archive(tree: Path, out: Path) -> Path:
    packed = pack(tree, ArchiveName("3.11.2", X86_64), out,
                  {"arch": "x86_64", "python_version": "3.11.2"}, 1000, NullReporter())
    return packed.gz


def test_verify_is_a_gate_at_the_cli(
    tmp_path: Path, musl_elves: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _archive(make_tree(tmp_path / "good", musl_elves), tmp_path / "good-dist")
    assert main(["verify", "--static-only", str(good)]) == 0
    capsys.readouterr()

    bad_tree = make_tree(tmp_path / "bad", musl_elves)
    _dollar_rpath(bad_tree)
    _symlink_up(bad_tree)
    bad = _archive(bad_tree, tmp_path / "bad-dist")
    assert main(["verify", "--static-only", str(bad)]) == 12
    err = capsys.readouterr().err
    assert "static:rpath: python/bin/python3.11: RPATH/RUNPATH entry '$ORIGIN/../lib:$LIB'" \
        not in err  # entries are reported one by one
    assert "static:rpath: python/bin/python3.11: RPATH/RUNPATH entry '$LIB'" in err
    assert "static:symlink: python/lib/escape" in err
    assert "Traceback" not in err
