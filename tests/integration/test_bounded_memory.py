"""verify hands the archive to the container as a stream: an archive holding a 512 MiB
member goes into a real container through verify's own function (:func:`tar_for_put`,
then ``put_tar``) in a child process whose peak RSS (``VmHWM``) stays under 256 MiB. Before,
the .tar.zst was decompressed whole in memory (1,065 MiB peak for 512 MiB).

The member is zeros: tiny once compressed, 512 MiB on the way in and in the container."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

from builder.platforms import get_arch

pytestmark = pytest.mark.docker

MiB = 1 << 20
BIG = 512 * MiB
PEAK_CAP = 256 * MiB
REPO = Path(__file__).resolve().parents[2]


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def big_archive(path: Path, size: int = BIG) -> Path:
    """``python/`` with a tiny file and a ``size``-byte member of zeros, as .tar.zst or
    .tar.gz (told by the name), written as a stream."""
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(path.open("wb"))
        if path.name.endswith(".tar.zst"):
            writer = stack.enter_context(
                zstandard.ZstdCompressor(level=1).stream_writer(raw, closefd=False))
            tar = stack.enter_context(tarfile.open(fileobj=writer, mode="w|"))
        else:
            writer = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1))
            tar = stack.enter_context(tarfile.open(fileobj=writer, mode="w|"))
        small = tarfile.TarInfo("python/bin/python3")
        small.size = 3
        tar.addfile(small, io.BytesIO(b"hi\n"))
        big = tarfile.TarInfo("python/share/big.bin")
        big.size = size
        tar.addfile(big, io.BufferedReader(_Zeros(size), 4 * MiB))
    return path


CHILD = """
import json, sys
from pathlib import Path, PurePosixPath
from builder.lowlevel.container import Container, docker_client
from builder.stages.verify import tar_for_put
image, platform, archive = sys.argv[1:4]
with Container(docker_client(), image, platform=platform, network=False,
               purpose="test") as c:
    c.put_tar(PurePosixPath("/opt/big"), tar_for_put(Path(archive)))
    size = c.call(["stat", "-c", "%s", "/opt/big/python/share/big.bin"]).output.strip()
status = Path("/proc/self/status").read_text()
hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
print(json.dumps({"size": int(size), "peak": int(hwm.split()[1]) * 1024}))
"""


@pytest.mark.parametrize("suffix", ["tar.zst", "tar.gz"])
def test_verify_streams_a_512_mib_member_in_bounded_memory(
    suffix: str, tmp_path: Path, images_x86_64: tuple[str, str]
) -> None:
    archive = big_archive(tmp_path / f"cpython-3.11.0-linux-x86_64-musl.{suffix}")
    assert archive.stat().st_size < 8 * MiB  # zeros: the expansion happens on the way
    r = subprocess.run([sys.executable, "-c", CHILD, images_x86_64[1],
                        get_arch("x86_64").docker_platform, str(archive)],
                       capture_output=True, text=True, cwd=REPO, timeout=900, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["size"] == BIG  # all of it arrived
    assert got["peak"] <= PEAK_CAP, f"peak RSS {got['peak'] / MiB:.0f} MiB"
