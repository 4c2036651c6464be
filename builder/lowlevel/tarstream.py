"""Reading a tar once, in order, from a path or a stream, under caps.

A path may be plain, gzip, zstd, xz or bzip2 (told by its first bytes); a stream (such as
``docker export``) is read as a plain tar. Decompression is metered: past a floor, more
expanded bytes per compressed byte than :attr:`Limits.max_ratio` stop the read at once (a
decompression bomb). ``tarfile`` would end an archive quietly at a damaged header after
the first member; here only the end-of-archive marker ends it. Writing is
:mod:`builder.lowlevel.extract`'s job.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, cast

import zstandard

from builder.errors import ExtractionLimitError, MalformedArchiveError

MiB = 1 << 20
GiB = 1 << 30
CHUNK = MiB
# tarfile's read-ahead in stream mode. Each header read slices what is left of this buffer
# (a copy): 1 MiB cost 0.25 s CPU to read the 64 MB, 2,252-member export of the test
# ground, 64 KiB 0.09 s (bench/README.md, issue 22).
TAR_BUFFER = 64 * 1024
# What a damaged or foreign stream raises while being read.
READ_ERRORS: tuple[type[Exception], ...] = (
    tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError,
    zstandard.ZstdError, ValueError,
)
OPEN_ERRORS: tuple[type[Exception], ...] = (*READ_ERRORS, OSError)


class ByteStream(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class Limits:
    """Caps for one kind of input."""

    max_bytes: int  # regular-file bytes written
    max_members: int  # members read, skipped ones included
    max_name: int = 4096  # bytes of a member's name or link target
    max_ratio: float | None = None  # expanded / compressed bytes ...
    ratio_floor: int = 32 * MiB  # ... checked once this much has been expanded


# A built archive: CPython with its libraries is 50-250 MB unpacked, ratio 3-5.
ARCHIVE_LIMITS = Limits(max_bytes=512 * MiB, max_members=100_000, max_name=1024, max_ratio=40)
# A root filesystem exported by Docker (plain tar: no ratio).
ROOTFS_LIMITS = Limits(max_bytes=16 * GiB, max_members=500_000)


class Meter(io.RawIOBase):
    """Counts the bytes read through it and calls ``check`` after each read."""

    def __init__(self, raw: ByteStream, check: Callable[[], None] = lambda: None) -> None:
        self._raw = raw
        self._check = check
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.count += len(data)
        self._check()
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# Header errors of tarfile (not in typeshed): a zero block ends an archive properly.
_EOF_HEADER: type[Exception] = tarfile.EOFHeaderError  # type: ignore[attr-defined]
_SHORT_HEADER: tuple[type[Exception], ...] = (
    tarfile.EmptyHeaderError, tarfile.TruncatedHeaderError,  # type: ignore[attr-defined]
)


class _StrictInfo(tarfile.TarInfo):
    """``tarfile`` ends an archive quietly at a damaged or missing header after the first
    member; here only the end-of-archive marker (a zero block) ends it."""

    @classmethod
    def fromtarfile(cls, archive: tarfile.TarFile) -> _StrictInfo:
        try:
            return super().fromtarfile(archive)
        except _EOF_HEADER:
            raise
        except tarfile.HeaderError as e:
            what = "the archive ends" if isinstance(e, _SHORT_HEADER) else "a damaged header"
            raise MalformedArchiveError(
                f"{what} at byte {archive.offset} without the end-of-archive marker ({e})"
            ) from None


def _decompressor(magic: bytes, meter: Meter) -> ByteStream:
    source = cast(IO[bytes], meter)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=source, mode="rb")
    if magic.startswith(b"\x28\xb5\x2f\xfd"):
        reader: ByteStream = zstandard.ZstdDecompressor().stream_reader(
            source, read_across_frames=True
        )
        return reader
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(source)
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(source)
    return meter


@contextlib.contextmanager
def open_stream(source: Path | ByteStream, limits: Limits, label: str = ""
                ) -> Iterator[ByteStream]:
    """``source``'s expanded bytes (a path decompressed by its first bytes, a stream as
    it is), the decompression metered against ``limits.max_ratio``
    (:class:`ExtractionLimitError` as soon as it is exceeded)."""
    label = label or str(source)
    with contextlib.ExitStack() as stack:
        if isinstance(source, Path):
            try:
                f = stack.enter_context(source.open("rb"))
                magic = f.read(6)
                f.seek(0)
            except OSError as e:
                raise MalformedArchiveError(f"{label}: cannot read: {e.strerror}") from None
            raw: ByteStream = f
        else:
            raw, magic = source, b""
        compressed = Meter(raw)
        expanded_meter: Meter

        def check_ratio() -> None:
            done = expanded_meter.count
            if (limits.max_ratio is not None and done > limits.ratio_floor
                    and done > limits.max_ratio * max(compressed.count, 1)):
                raise ExtractionLimitError(
                    f"{label}: {done // MiB} MiB expanded from {compressed.count // 1024} KiB "
                    f"(more than {limits.max_ratio:g} times): refusing a decompression bomb"
                )

        try:
            inner = _decompressor(magic, compressed)
        except OPEN_ERRORS as e:
            raise MalformedArchiveError(f"{label}: not a readable archive ({e})") from None
        expanded_meter = Meter(inner, check_ratio)
        yield expanded_meter


@contextlib.contextmanager
def open_tar(
    source: Path | ByteStream, limits: Limits, label: str = ""
) -> Iterator[tarfile.TarFile]:
    """``source`` as a ``tarfile`` read once in order (for reading members' names and a
    few files; :mod:`builder.lowlevel.extract` unpacks through its own reader), its
    decompression metered as :func:`open_stream` does."""
    label = label or str(source)
    with contextlib.ExitStack() as stack:
        expanded = stack.enter_context(open_stream(source, limits, label))
        try:
            tar = stack.enter_context(
                tarfile.open(fileobj=cast(IO[bytes], expanded), mode="r|",
                             bufsize=TAR_BUFFER, tarinfo=_StrictInfo)
            )
        except OPEN_ERRORS as e:
            raise MalformedArchiveError(f"{label}: not a readable tar archive ({e})") from None
        except MalformedArchiveError as e:  # the first header, read by tarfile.open
            raise MalformedArchiveError(
                f"{label}: not a readable tar archive ({e.message})"
            ) from None
        yield tar


def engine_stream(archive: Path, chunk: int = CHUNK) -> Iterator[bytes]:
    """``archive`` as the Docker engine's ``put_archive`` takes it, in ``chunk`` pieces read
    as they are sent (never the whole archive in memory): a .tar.gz as it is (the engine
    unpacks gzip itself), a .tar.zst decompressed on the way (the engine knows no zstd).
    The file is opened on the first chunk asked for and closed after the last one."""
    with archive.open("rb") as f:
        reader: ByteStream = (
            zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
            if archive.name.endswith(".tar.zst") else f)
        while block := reader.read(chunk):
            yield block
