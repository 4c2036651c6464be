"""End to end against the real Docker engine: the launcher (bin/python3.X) of a real
x86_64 build, unpacked at a random path, copied into venvs in every way, started under
names that are not its own, and run in a chroot without /proc — in the bare base image and
in the Alpine-like image after `apk add python3` (another Python in /usr)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path, PurePosixPath

import pytest

from builder.cli import main
from builder.lowlevel.container import Container, docker_client
from builder.lowlevel.patcher import Patchelf
from builder.platforms import ARCHES
from builder.stages.verify import tar_for_put

pytestmark = pytest.mark.docker

# Runs inside the container with the archive's own python3: argv = PREFIX DECOY_DIR.
PROBE = r'''
import json, os, shutil, subprocess, sys, venv
P, DECOY = sys.argv[1], sys.argv[2]
CODE = "import sys, zlib, _ssl; print(sys.prefix); print(sys.base_prefix)"
out = {}
def run(name, argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    out[name] = {"rc": r.returncode, "out": r.stdout.split(), "err": r.stderr[-600:]}
exe = os.path.join(P, "bin", "python3.11")
subprocess.run([sys.executable, "-m", "venv", "--copies", "--without-pip", "/tmp/vc"],
               check=True)
run("venv --copies", ["/tmp/vc/bin/python", "-c", CODE])
out["venv --copies"]["copy"] = not os.path.islink("/tmp/vc/bin/python")
venv.create("/tmp/vd")  # the default: symlinks=False
run("venv.create()", ["/tmp/vd/bin/python3", "-c", CODE])
out["venv.create()"]["copy"] = not os.path.islink("/tmp/vd/bin/python3")
os.makedirs("/tmp/vcp/bin")
subprocess.run(["cp", exe, "/tmp/vcp/bin/"], check=True)
with open("/tmp/vcp/pyvenv.cfg", "w") as f:
    f.write("home = %s\n" % os.path.join(P, "bin"))
run("cp into a venv layout", ["/tmp/vcp/bin/python3.11", "-c", CODE])
os.makedirs("/tmp/lone/bin")
subprocess.run(["cp", exe, "/tmp/lone/bin/"], check=True)
run("cp alone", ["/tmp/lone/bin/python3.11", "-c", CODE])
run("Popen executable=", ["somethingyoudonthave", "-c", CODE], executable=sys.executable)
run("argv[0] python3 (on PATH: the system's)", ["python3", "-c", CODE],
    executable=sys.executable, env={"PATH": "/usr/bin:/bin"})
run("os.execv", [sys.executable, "-c", "import os, sys; os.execv(sys.executable, "
    "['fancyname', '-c', %r])" % CODE])
run("exec -a", ["/bin/sh", "-c", 'exec -a fancyname "$0" -c "$1"', exe, CODE])
run("venv --copies, argv[0] unknown", ["nope", "-c", CODE], executable="/tmp/vc/bin/python")
subprocess.run([sys.executable, "-m", "venv", "--without-pip", "/tmp/vs"], check=True)
run("venv (symlinks), argv[0] unknown", ["nope", "-c", CODE], executable="/tmp/vs/bin/python")
out["venv (symlinks), argv[0] unknown"]["copy"] = not os.path.islink("/tmp/vs/bin/python")
# No /proc: the archive hard-linked into a chroot with a musl loader and, in /usr/lib, a
# libpython that only says who it is (what musl would load if it fell back to the system's).
root = "/opt/chroot"
shutil.copytree(os.path.dirname(P), root + "/a", symlinks=True, copy_function=os.link)
os.makedirs(root + "/lib")
os.makedirs(root + "/usr/lib")
for name in os.listdir("/lib"):
    if name.startswith("ld-musl-"):
        shutil.copy2("/lib/" + name, root + "/lib/")
def enter():
    os.chroot(root)
    os.chdir("/")
inside = "/a/python/bin/python3.11"
chroot_code = CODE + "; import os; assert not os.path.exists('/proc/self')"
for decoy in (False, True):
    if decoy:
        shutil.copy2(DECOY, root + "/usr/lib/libpython3.11.so.1.0")
    tag = "chroot without /proc%s" % (", a system libpython" if decoy else "")
    run(tag, [inside, "-c", chroot_code], preexec_fn=enter)
    run(tag + ", argv[0] unknown", ["nope", "-c", chroot_code], executable=inside,
        preexec_fn=enter)
print(json.dumps(out))
'''

DECOY_C = ('#include <stdio.h>\nint Py_BytesMain(int argc, char **argv) '
           '{ (void)argc; (void)argv; puts("SYSTEM-LIBPYTHON"); return 0; }\n')


@pytest.fixture(scope="module")
def decoy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A musl libpython3.11.so.1.0 whose Py_BytesMain only prints SYSTEM-LIBPYTHON."""
    if shutil.which("musl-gcc") is None:
        pytest.fail("musl-gcc is needed (.ci/setup installs musl-tools)")
    d = tmp_path_factory.mktemp("decoy")
    (d / "decoy.c").write_text(DECOY_C)
    subprocess.run(["musl-gcc", "-shared", "-fPIC", "-Wl,-soname,libpython3.11.so.1.0",
                    "-o", str(d / "libpython3.11.so.1.0"), str(d / "decoy.c")], check=True)
    return d / "libpython3.11.so.1.0"


def _probe(archive: Path, image: str, decoy: Path, setup: list[str] | None = None
           ) -> tuple[str, dict[str, dict[str, object]]]:
    arch = ARCHES["x86_64"]
    prefix = PurePosixPath("/opt") / f"r-{uuid.uuid4().hex[:10]}" / "python"
    with Container(docker_client(), image, platform=arch.docker_platform, network=False,
                   purpose="test-launcher") as c:
        if setup:
            c.check_call(setup, what=" ".join(setup))
        c.put_tar(prefix.parent, tar_for_put(archive))
        c.put_files(PurePosixPath("/opt/probe"), [("probe.py", _write(decoy.parent, PROBE)),
                                                  ("decoy.so", decoy)])
        r = c.call([str(prefix / "bin" / "python3"), "/opt/probe/probe.py", str(prefix),
                    "/opt/probe/decoy.so"], env={"LD_LIBRARY_PATH": ""})
        assert r.exit_code == 0, r.output[-3000:]
        return str(prefix), json.loads(r.output.strip().splitlines()[-1])


def _write(d: Path, text: str) -> Path:
    (d / "probe.py").write_text(text)
    return d / "probe.py"


def _assert_prefixes(prefix: str, got: dict[str, dict[str, object]]) -> None:
    own = ["Popen executable=", "argv[0] python3 (on PATH: the system's)", "os.execv",
           "exec -a"]
    venvs = {"venv --copies": "/tmp/vc", "venv.create()": "/tmp/vd",
             "cp into a venv layout": "/tmp/vcp", "venv --copies, argv[0] unknown": "/tmp/vc",
             "venv (symlinks), argv[0] unknown": "/tmp/vs"}
    for name in own:
        assert got[name]["rc"] == 0 and got[name]["out"] == [prefix, prefix], (name, got[name])
    for name, where in venvs.items():
        assert got[name]["rc"] == 0 and got[name]["out"] == [where, prefix], (name, got[name])
    assert got["venv --copies"]["copy"] and got["venv.create()"]["copy"]
    assert not got["venv (symlinks), argv[0] unknown"]["copy"]
    # A lone copy (no pyvenv.cfg, no lib/ beside it, no standard library above it) started
    # by our interpreter finds the parent's libpython, but refuses to fall back to /usr.
    assert got["cp alone"]["rc"] == 127
    assert "a lone copy with no standard library above it" in str(got["cp alone"]["err"])
    for name in ("chroot without /proc", "chroot without /proc, argv[0] unknown",
                 "chroot without /proc, a system libpython",
                 "chroot without /proc, a system libpython, argv[0] unknown"):
        assert got[name]["rc"] == 0 and got[name]["out"] == ["/a/python", "/a/python"], (
            name, got[name])


def test_launcher_in_the_bare_base(built_x86_64: Path, images_x86_64: tuple[str, str],
                                   decoy: Path) -> None:
    archive = next(built_x86_64.glob("cpython-*-musl.tar.gz"))
    prefix, got = _probe(archive, images_x86_64[1], decoy)
    _assert_prefixes(prefix, got)


def test_launcher_beside_the_systems_python(built_x86_64: Path,
                                            images_x86_64: tuple[str, str],
                                            decoy: Path) -> None:
    """The Alpine-like image with its own python3 3.11 in /usr: nothing falls back to it."""
    archive = next(built_x86_64.glob("cpython-*-musl.tar.gz"))
    prefix, got = _probe(archive, images_x86_64[0], decoy,
                         setup=["apk", "add", "--no-cache", "python3"])
    _assert_prefixes(prefix, got)


def test_verify_runs_the_launcher_checks(built_x86_64: Path, images_x86_64: tuple[str, str],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    archive = next(built_x86_64.glob("cpython-*-musl.tar.gz"))
    code = main(["verify", str(archive), "--image", images_x86_64[1], "--json"])
    report = json.loads(capsys.readouterr().out)
    checks = {r["check"]: r for r in report["results"]}
    assert code == 0, [r for r in report["results"] if not r["ok"]]
    for name in ("static:launcher", "venv-copies", "argv0-prefix", "no-proc",
                 "default-thread-stack"):
        assert checks[name]["ok"], checks[name]
    assert "decoy" in checks["no-proc"]["detail"]
    manifest = json.loads(archive.with_name(archive.name.replace(".tar.gz", ".json"))
                          .read_text())
    assert manifest["interpreter"]["kind"] == "launcher"
    assert manifest["interpreter"]["libpython"] == "lib/libpython3.11.so.1.0"
    assert manifest["interpreter"]["thread_stack_size"] >= 0x200000


def test_verify_fails_alpines_own_program(built_x86_64: Path, images_x86_64: tuple[str, str],
                                          tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The planted defect: the archive with Alpine's own python3.11 (relocated as before the
    launcher, RPATH $ORIGIN/../lib) instead of the launcher. verify names the program, and
    the copied venv, the unknown argv[0] and the chroot without /proc fail."""
    archive = next(built_x86_64.glob("cpython-*-musl.tar.gz"))
    original = (built_x86_64.parent / "work" / "x86_64" / "acquire" / "rootfs" / "usr" / "bin"
                / "python3.11")
    program = tmp_path / "python3.11"
    shutil.copyfile(original, program)
    Patchelf().set_rpath(program, "$ORIGIN/../lib")
    planted = tmp_path / "d" / archive.name
    planted.parent.mkdir()
    with tarfile.open(archive) as src, tarfile.open(planted, "w:gz") as dst:
        for member in src:
            if member.name == "python/bin/python3.11":
                member.size = program.stat().st_size
                with program.open("rb") as f:
                    dst.addfile(member, f)
            else:
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    code = main(["verify", str(planted), "--image", images_x86_64[1], "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code != 0
    failed = {r["check"]: r for r in report["results"] if not r["ok"]}
    assert failed["static:launcher"]["path"] == "python/bin/python3.11"
    assert "venv --copies" in failed["static:launcher"]["detail"]
    assert "exited 127" in failed["venv-copies"]["detail"]
    assert "argv0-prefix" in failed and "no-proc" in failed
    assert "prefix" not in failed and "zlib" not in failed  # the rest of it works
