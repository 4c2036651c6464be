"""The armhf test ground is ARMv6 code, against the real engine under qemu-arm: its python3
runs as an ARM1176 (``QEMU_CPU=arm1176``, an ARMv6KZ core), where the armv7 test ground's
python3 (ARMv7, Thumb-2) dies of SIGILL. So running as an ARM1176 tells the two apart,
and the armhf build's self-test and checks, which run that way, prove ARMv6 code.

qemu-user reads QEMU_CPU from the environment of the program it runs, also inside a
container (binfmt_misc with the F flag starts it for every foreign program)."""

from __future__ import annotations

import signal

import pytest

from builder.lowlevel.container import Container, docker_client
from builder.platforms import get_arch

from .conftest import find_testground

pytestmark = pytest.mark.docker
ARM1176 = {"QEMU_CPU": "arm1176"}
KILLED_BY_SIGILL = 128 + signal.SIGILL  # docker's exit code of a process killed by SIGILL


def _python3_in(alpine: str) -> tuple[str, str]:
    """(Alpine-like image, docker platform) of the arch's test ground; skips when not built."""
    found = find_testground(alpine)
    if found is None:
        pytest.skip(f"the test ground has no {alpine} image")
    return found[1], get_arch(alpine).docker_platform


def _install_python3(c: Container, env: dict[str, str]) -> None:
    c.check_call(["apk", "add", "--no-cache", "python3"], what="apk add python3", env=env)


def test_armhf_python3_runs_as_an_arm1176() -> None:
    image, platform = _python3_in("armhf")
    with Container(docker_client(), image, platform=platform, network=False,
                   purpose="armhf-cpu") as c:
        _install_python3(c, ARM1176)  # apk and busybox are Alpine's own ARMv6 builds
        r = c.call(["python3", "-c", "import platform, ssl, ctypes, sqlite3, lzma, decimal; "
                    "print(platform.machine())"], env=ARM1176)
        assert r.exit_code == 0, r.output
        assert r.output.split() == ["armv6l"], r.output  # qemu's CPU really is an ARMv6 one


def test_armv7_python3_dies_of_sigill_as_an_arm1176() -> None:
    """The negative control: ARMv7 code does not pass for ARMv6 under QEMU_CPU=arm1176."""
    image, platform = _python3_in("armv7")
    with Container(docker_client(), image, platform=platform, network=False,
                   purpose="armv7-cpu") as c:
        _install_python3(c, {})
        ok = c.call(["python3", "-c", "import platform; print(platform.machine())"])
        assert ok.exit_code == 0 and ok.output.split() == ["armv7l"], ok.output
        r = c.call(["python3", "-c", "pass"], env=ARM1176)
        assert r.exit_code == KILLED_BY_SIGILL, (r.exit_code, r.output)
