"""uv gets our Pythons and uses them, offline, in a clean musl container of each arch: the
real uv (the static binary of its wheel on PyPI), the real engine, qemu-user for foreign
arches. Two ways in, both checked end to end:

- ``uv python install 3.X`` through our download-metadata.json (every arch with a uv binary);
- ``musl-pbs install --for-uv`` (x86_64: musl-pbs itself runs in the container), after which
  uv finds the Python among its managed installs with no setting at all.

Either way ``uv python list`` shows it, ``uv venv`` and ``uv run`` use it, a compiled
extension imports in the venv (PyPI's wheel, or where PyPI has none the probe verify
cross-builds against the archive's headers), and ``uv python uninstall`` removes it.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

from builder.build import write_download_metadata
from builder.lowlevel.container import Container, docker_client
from builder.lowlevel.crossext import IMPORT_CHECK as PROBE_IMPORT
from builder.lowlevel.crossext import PROJECT as PROBE
from builder.lowlevel.elf import read_elf
from builder.lowlevel.images import load_rootfs_image
from builder.lowlevel.wheelhouse import CACHE, EXTENSION_IMPORTS, extension_wheel
from builder.naming import ArchiveName, uv_install_name
from builder.platforms import ARCHES, Arch, get_arch
from builder.progress import NullReporter
from builder.stages.verify import cross_probe, identify
from tests.minirootfs import release as minirootfs_release

from .conftest import built_once, find_testground
from .test_install_in_container import tool_inputs

pytestmark = pytest.mark.docker

UV_VERSION = "0.13.9"  # the uv the README's table was tested with
UV_DIR = PurePosixPath("/root/.local/share/uv/python")  # `uv python dir` for root

# A Raspberry Pi 3's /proc/cpuinfo (32-bit kernel). On ARM uv calls the libc musleabihf
# only when the Features line has "vfp" (uv-platform cpuinfo.rs). qemu-user 7.2 (Debian 12)
# passes the x86 host's /proc/cpuinfo through, where uv would decide "musleabi"; ARM
# containers get this file so that uv sees what it sees on ARM hardware.
ARM_CPUINFO = """processor\t: 0
model name\t: ARMv7 Processor rev 4 (v7l)
BogoMIPS\t: 38.40
Features\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32
CPU implementer\t: 0x41
CPU architecture: 7
CPU variant\t: 0x0
CPU part\t: 0xd03
CPU revision\t: 4

Hardware\t: BCM2835
Revision\t: a02082
Model\t\t: Raspberry Pi 3 Model B Rev 1.2
"""
# A Raspberry Pi Zero W's (ARM1176JZF-S: ARMv6, VFPv2), for armhf, whose programs run as that
# CPU under qemu (QEMU_CPU=arm1176 from Arch.container_env).
ARMV6_CPUINFO = """processor\t: 0
model name\t: ARMv6-compatible processor rev 7 (v6l)
BogoMIPS\t: 697.95
Features\t: half thumb fastmult vfp edsp java tls
CPU implementer\t: 0x41
CPU architecture: 7
CPU variant\t: 0x0
CPU part\t: 0xb76
CPU revision\t: 7

Hardware\t: BCM2835
Revision\t: 9000c1
Model\t\t: Raspberry Pi Zero W Rev 1.1
"""


def uv_binary(arch: Arch) -> Path | None:
    """The static uv binary of uv's wheel for ``arch`` on PyPI (musllinux, or linux_armv6l
    for ARMv6), downloaded once; None when PyPI has none for the arch."""
    home = CACHE / "uv" / UV_VERSION / arch.alpine
    dest, none = home / "uv", home / "none"
    if dest.exists():
        return dest
    if none.exists():
        return None
    tmp = home / "download"
    shutil.rmtree(tmp, ignore_errors=True)
    w = arch.wheel_arch
    out = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--platform", f"musllinux_1_1_{w}", "--platform", f"musllinux_1_2_{w}",
         "--platform", f"linux_{w}", "-d", str(tmp), f"uv=={UV_VERSION}"],
        capture_output=True, text=True)
    if out.returncode != 0:
        if "No matching distribution" in out.stderr:
            home.mkdir(parents=True, exist_ok=True)
            none.write_text(out.stderr[-2000:])
            return None
        pytest.fail(f"could not download uv's wheel for {w}: {out.stderr[-2000:]}")
    wheel = next(tmp.glob("uv-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        member = next(n for n in z.namelist() if n.endswith(".data/scripts/uv"))
        dest.write_bytes(z.read(member))
    dest.chmod(0o755)
    shutil.rmtree(tmp)
    info = read_elf(dest)
    assert info is not None and info.machine == arch.elf_machine and info.interpreter is None, (
        f"{wheel.name}: not a static {arch.elf_machine} binary")
    return dest


# The import that proves each extension's compiled part loaded: PyPI's projects, and the
# probe verify cross-builds where PyPI has none (armhf, loongarch64).
IMPORTS = {**EXTENSION_IMPORTS, PROBE: PROBE_IMPORT}


def cross_built(archive: Path, dest: Path) -> tuple[str, Path]:
    """verify's probe extension, cross-built against ``archive``'s headers: (project, dir)."""
    dest.mkdir()
    wheel = cross_probe(archive, identify(archive), dest, NullReporter())
    assert isinstance(wheel, Path), wheel
    return PROBE, dest


def _tar(files: dict[str, Path]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, path in files.items():
            tar.add(str(path), arcname=name)
    return buf.getvalue()



class UvBox:
    """A container with uv at /usr/local/bin/uv; ``run`` asserts success."""

    def __init__(self, c: Container, env: dict[str, str]) -> None:
        self.c, self.env = c, env

    def run(self, *argv: str, env: dict[str, str] | None = None) -> str:
        r = self.c.call(list(argv), env={**self.env, **(env or {})})
        assert r.exit_code == 0, f"{' '.join(argv)} (exit {r.exit_code}):\n{r.output[-3000:]}"
        return r.output


@contextlib.contextmanager
def uv_box(arch: Arch, image: str, files: dict[str, Path], tmp: Path) -> Iterator[UvBox]:
    binds = {}
    if arch.elf_machine == "EM_ARM":
        (tmp / "cpuinfo").write_text(ARMV6_CPUINFO if arch.qemu_cpu else ARM_CPUINFO)
        binds[tmp / "cpuinfo"] = PurePosixPath("/proc/cpuinfo")
    uv = uv_binary(arch)
    assert uv is not None
    env = {"HOME": "/root", "UV_CACHE_DIR": "/tmp/uv-cache", "UV_NO_PROGRESS": "1",
           "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
    with Container(docker_client(), image, platform=arch.docker_platform, network=False,
                   purpose="uv", binds=binds, environment=arch.container_env) as c:
        c.put_tar(PurePosixPath("/"), _tar({**files, "usr/local/bin/uv": uv}))
        yield UvBox(c, env)


def use_python_with_uv(box: UvBox, name: ArchiveName, minor: str,
                       ext: tuple[str, Path] | None) -> None:
    """With the Python installed among uv's managed ones: list, venv, run, an extension,
    uninstall."""
    managed = UV_DIR / uv_install_name(name)
    # uv's own installs also get a minor-version link it hands out instead (for upgrades).
    homes = {str(managed), str(UV_DIR / uv_install_name(ArchiveName(minor, name.arch)))}
    listed = box.run("uv", "python", "list", "--only-installed")
    # The row's key is what uv detects in the interpreter (armv7: "linux-armv7-musl"), the
    # path is its managed directory (armv7: "...-musleabihf"): check the path.
    assert any(f"{h}/bin/python" in listed for h in homes), listed
    found = box.run("uv", "python", "find", minor).strip()
    assert any(found.startswith(f"{h}/bin/python") for h in homes), found
    box.run("uv", "venv", "--python", minor, "/tmp/venv")
    base = box.run("/tmp/venv/bin/python", "-c", "import sys; print(sys.base_prefix)").strip()
    assert base in homes, base
    ran = box.run("uv", "run", "--offline", "--no-project", "--python", minor, "python", "-c",
                  "import sys, sysconfig; print(sys.prefix, sysconfig.get_config_var('LIBDIR'))")
    prefix, libdir = ran.split()
    assert prefix in homes and libdir in {f"{h}/lib" for h in homes}, ran
    if ext is not None:
        project, _ = ext
        box.run("uv", "pip", "install", "--python", "/tmp/venv/bin/python", "--offline",
                "--no-index", "--find-links", "/wheels", project)
        out = box.run("/tmp/venv/bin/python", "-c", IMPORTS[project])
        assert out.startswith(project), out
    box.run("uv", "python", "uninstall", minor)
    assert uv_install_name(name) not in box.run("uv", "python", "list", "--only-installed")
    r = box.c.call(["ls", str(managed)])
    assert r.exit_code != 0, r.output  # gone


@pytest.mark.parametrize("alpine", sorted(ARCHES))
def test_uv_python_install_venv_and_extension(
    alpine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Every arch with a uv binary and a test-ground image: `uv python install` through our
    metadata, in the bare base container, offline."""
    arch = get_arch(alpine)
    if uv_binary(arch) is None:
        pytest.skip(f"PyPI has no static uv {UV_VERSION} wheel for {arch.wheel_arch}")
    found = find_testground(alpine)
    if found is None:
        pytest.skip(f"the test ground has no {alpine} image yet")
    minor, alpine_like, base = found
    archive = built_once(alpine, minor, alpine_like, request)
    release = tmp_path / "release"
    release.mkdir()
    shutil.copy2(archive, release)
    shutil.copy2(archive.with_name(archive.name.replace(".tar.gz", ".json")), release)
    metadata = json.loads(write_download_metadata(release, "file:///release").read_text())
    name = ArchiveName(archive.name.split("-")[1], arch)
    ext = extension_wheel(minor, arch) or cross_built(archive, tmp_path / "cross")
    files = {"release": release, "wheels": ext[1]}
    with uv_box(arch, base, files, tmp_path) as box:
        box.env["UV_PYTHON_DOWNLOADS_JSON_URL"] = "/release/download-metadata.json"
        if arch.qemu_cpu:  # armhf: an ARMv6 CPU, as qemu-user tells it (ARMv7 by default)
            assert box.run("uname", "-m").strip() == "armv6l"
        key = next(iter(metadata))
        assert metadata[key]["libc"] == arch.uv_libc
        assert metadata[key]["arch"]["family"] == arch.uv_family
        out = box.run("uv", "python", "install", minor)
        assert uv_install_name(name) in out, out
        use_python_with_uv(box, name, minor, ext)


def test_armv7_musl_entry_is_what_uv_refused(tmp_path: Path) -> None:
    """Why the libc is musleabihf: uv's armv7 binary answers a "musl" armv7 entry (what
    musl-pbs wrote before) with its refusal, and finds the musleabihf one. No archive needed:
    uv decides before it downloads."""
    arch = get_arch("armv7")
    if uv_binary(arch) is None:
        pytest.skip(f"PyPI has no static uv {UV_VERSION} wheel for armv7l")
    release = tmp_path / "release"
    release.mkdir()
    entry = {"name": "cpython", "arch": {"family": "armv7", "variant": None}, "os": "linux",
             "major": 3, "minor": 12, "patch": 8, "prerelease": "", "variant": None,
             "url": "file:///release/missing.tar.gz", "sha256": None, "build": None}
    for libc in ("musl", "musleabihf"):
        (release / f"{libc}.json").write_text(json.dumps(
            {f"cpython-3.12.8-linux-armv7-{libc}": {**entry, "libc": libc}}))
    image = "musl-pbs-test/alpine-minirootfs:3.20.3-armv7"
    _minirootfs_image(arch, image)
    with uv_box(arch, image, {"release": release}, tmp_path) as box:
        r = box.c.call(["uv", "python", "install", "3.12"],
                       env={**box.env, "UV_PYTHON_DOWNLOADS_JSON_URL": "/release/musl.json"})
        assert r.exit_code != 0
        assert "does not yet provide musl Python distributions on armv7" in r.output, r.output
        r = box.c.call(["uv", "python", "install", "3.12"], env={
            **box.env, "UV_PYTHON_DOWNLOADS_JSON_URL": "/release/musleabihf.json"})
        assert r.exit_code != 0  # found it, then the file is missing
        assert "missing.tar.gz" in r.output, r.output


def _minirootfs_image(arch: Arch, ref: str) -> None:
    """The official Alpine 3.20.3 minirootfs of ``arch`` as an image."""
    client = docker_client()
    if client.images.list(name=ref):
        return
    src = minirootfs_release("3.20.3", arch.alpine)
    layer = CACHE / "uv" / f"minirootfs-3.20.3-{arch.alpine}.tar"
    with gzip.open(src) as g, layer.open("wb") as f:
        shutil.copyfileobj(g, f)
    load_rootfs_image(client, layer, ref, arch)
    layer.unlink()


def test_install_for_uv_then_uv_finds_it(
    built_x86_64: Path, images_x86_64: tuple[str, str], tmp_path: Path
) -> None:
    """`musl-pbs install --for-uv` on a musl system, then plain uv (no metadata URL, no
    network) lists it, makes a venv with it, runs it and uninstalls it."""
    arch = get_arch("x86_64")
    tool = tool_inputs(built_x86_64, tmp_path)
    minor = tool.manifest["python_minor"]
    ext = extension_wheel(minor, arch)
    assert ext is not None and ext[0] == "numpy"
    name = ArchiveName(tool.manifest["python_version"], arch)
    files = {"dist": built_x86_64, "wh": tool.wheels, f"wh/{tool.pip.name}": tool.pip,
             "wheels": ext[1]}
    with uv_box(arch, images_x86_64[1], files, tmp_path) as box:
        # A first Python to run musl-pbs with, outside PATH (uv must not find it).
        for command in tool.bootstrap:
            box.run("sh", "-c", command)
        result = json.loads(box.run("/opt/tool/bin/musl-pbs", "install", "--for-uv",
                                    "--from", "/dist", "--json"))
        assert result["prefix"] == str(UV_DIR / uv_install_name(name)), result
        assert box.run("uv", "python", "dir").strip() == str(UV_DIR)
        use_python_with_uv(box, name, minor, ext)
