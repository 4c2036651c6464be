"""Reading a whole input file, never more than a cap: the one way musl-pbs reads a file
that someone else wrote (manifests, metadata, release documents, YAML, checksum lists).

A file over its cap, a directory, a FIFO or a device, an unreadable or missing file: each
is a typed error naming the file (and the cap), never a hang, a traceback or a 1 GiB read.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from builder.errors import InputTooLargeError, MuslPbsError, SymlinkedInputError

MIB = 1 << 20

# Caps, each far above the largest real file of its kind.
CAP_MANIFEST = 4 * MIB  # a musl-pbs manifest (beside an archive or inside it): ~30 KiB
CAP_METADATA = 32 * MIB  # uv's download-metadata.json (all of python-build-standalone: ~3 MiB)
CAP_DOCUMENT = 8 * MIB  # Alpine's releases.json, latest-releases.yaml, our state.json
CAP_CONFIG = 1 * MIB  # matrix.yaml, recipes/*.yaml: a few KiB
CAP_CHECKSUMS = 4 * MIB  # SHA256SUMS: one line per archive


def read_capped(
    path: Path,
    *,
    cap: int,
    what: str,
    error: type[MuslPbsError],
    follow_symlinks: bool = True,
) -> bytes:
    """The bytes of the regular file ``path``, at most ``cap`` of them.

    Over the cap: :class:`InputTooLargeError`. Missing, not a regular file, unreadable:
    ``error`` (the caller's class, so the exit code says whose input it was). With
    ``follow_symlinks=False`` a symbolic link is refused (:class:`SymlinkedInputError`).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC  # O_NONBLOCK: a FIFO never hangs us
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP and not follow_symlinks:
            raise SymlinkedInputError(f"{path}: {what} is a symbolic link") from None
        if e.errno == errno.ENOENT:
            raise error(f"{path}: no such file (expected {what})") from None
        raise error(f"{path}: cannot read {what}: {_reason(e)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise error(f"{path}: {what} is {kind}")
        if st.st_size > cap:
            raise InputTooLargeError(
                f"{path}: {what} is {st.st_size} bytes, over its cap of {cap} bytes"
            )
        chunks: list[bytes] = []
        got = 0
        while got <= cap:  # the size can change while we read: count what comes
            chunk = os.read(fd, min(MIB, cap + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got > cap:
            raise InputTooLargeError(f"{path}: {what} is over its cap of {cap} bytes")
        return b"".join(chunks)
    except OSError as e:
        raise error(f"{path}: cannot read {what}: {_reason(e)}") from None
    finally:
        os.close(fd)


def read_capped_text(
    path: Path,
    *,
    cap: int,
    what: str,
    error: type[MuslPbsError],
    follow_symlinks: bool = True,
) -> str:
    """:func:`read_capped`, decoded as UTF-8; binary content is ``error``, not garbage."""
    data = read_capped(path, cap=cap, what=what, error=error, follow_symlinks=follow_symlinks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: {what} is not UTF-8 text (byte {e.start}): a binary file?") \
            from None


def _reason(e: OSError) -> str:
    return e.strerror or type(e).__name__
