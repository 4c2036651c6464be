"""The export stream: the Docker SDK's chunks read as one file, an engine that goes away
mid-stream as a typed error (the SDK's generator is faked; the real stream is exercised by
tests/integration)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator

import pytest
import requests.exceptions

from builder.errors import DockerUnavailableError
from builder.lowlevel.container import ChunkReader


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


@pytest.mark.parametrize("ahead", [0, 1, 16])
def test_reads_of_any_size_give_back_the_bytes(ahead: int) -> None:
    data = bytes(range(256)) * 1000
    reader = ChunkReader(_chunks(data, 7777), "c", ahead=ahead)
    out = b""
    for size in (1, 10, 100_000, 3, 512):
        out += reader.read(size)
    out += reader.read()
    assert out == data and reader.read(10) == b""


def test_a_tar_read_straight_from_the_chunks() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("etc/alpine-release")
        info.size = 7
        tar.addfile(info, io.BytesIO(b"3.20.3\n"))
    with tarfile.open(fileobj=ChunkReader(_chunks(buf.getvalue(), 100), "c"), mode="r|") as t:
        member = next(iter(t))
        f = t.extractfile(member)
        assert f is not None and f.read() == b"3.20.3\n"


@pytest.mark.parametrize("ahead", [0, 4])
def test_the_engine_going_away_mid_stream(ahead: int) -> None:
    def broken() -> Iterator[bytes]:
        yield b"x" * 100
        raise requests.exceptions.ChunkedEncodingError("connection reset")

    reader = ChunkReader(broken(), "musl-pbs-acquire-1", ahead=ahead)
    with pytest.raises(DockerUnavailableError, match="musl-pbs-acquire-1 broke off") as e:
        reader.read(1000)
    assert e.value.hint


def test_closing_stops_the_read_ahead_thread() -> None:
    """Ctrl-C or an unsafe member mid-export: the reader stops fetching."""
    fetched = []

    def endless() -> Iterator[bytes]:
        while True:
            fetched.append(1)
            yield b"y" * 1000

    reader = ChunkReader(endless(), "c", ahead=3)
    assert reader.read(1500) == b"y" * 1500
    reader.close()
    assert reader._pump is not None and not reader._pump.is_alive()
    assert len(fetched) < 10  # a few chunks ahead, not the whole stream
