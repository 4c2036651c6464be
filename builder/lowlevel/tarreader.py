"""A tar read once, in order, header by header: the extraction's reader.

``tarfile`` spent half of the export's extraction time on its own bookkeeping (a buffered
stream layer, ``nti``/``nts`` per field, two checksums, a ``TarInfo`` per header): see
``bench/README.md``, issue 22. This reader parses the 512-byte headers itself and hands the
member's data out of the same buffered stream. It reads what ``tarfile`` reads and what
``docker export`` (Go's ``archive/tar``), GNU tar, busybox and ``tarfile`` write:

- ustar (``prefix`` joined to ``name``), old V7 (a directory as a name ending in ``/``),
  GNU (``L`` long names, ``K`` long link targets; base-256 numbers), pax (``x`` per
  member and ``g`` global: ``path``, ``linkpath``, ``size``, ``mtime``);
- a header's checksum is checked (unsigned or signed, as tarfile accepts);
- only the end-of-archive marker (a zero block) ends the archive; a stream that ends
  without it, a damaged header, a bad number: :class:`MalformedArchiveError` naming the
  byte offset. GNU sparse members (``S``, or pax ``GNU.sparse.*``) are reported as sparse
  for the extraction to refuse;
- caps: a long name or pax header larger than :data:`MAX_EXTENDED` is an
  :class:`ExtractionLimitError`.

Names are decoded as UTF-8 with ``surrogateescape`` (any byte survives, as ``os`` does).
What the names mean, and whether they may be written, is the extraction's business.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from builder.errors import ExtractionLimitError, MalformedArchiveError
from builder.lowlevel.tarstream import READ_ERRORS, ByteStream, Meter

BLOCK = 512
# Buffered reads of the expanded stream: a header and the small file after it usually come
# out of one buffer.
BUFFER = 256 * 1024
# A GNU long name/link or a pax header: a name is capped far below this by the extraction.
MAX_EXTENDED = 1 << 20

REGTYPE, AREGTYPE, LNKTYPE, SYMTYPE = b"0", b"\0", b"1", b"2"
CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE, CONTTYPE = b"3", b"4", b"5", b"6", b"7"
GNU_LONGNAME, GNU_LONGLINK, GNU_SPARSE = b"L", b"K", b"S"
PAX_MEMBER, PAX_GLOBAL, SOLARIS_PAX = b"x", b"g", b"X"
REGULAR_TYPES = frozenset((REGTYPE, AREGTYPE, CONTTYPE))
# Types whose size field says nothing of data blocks after the header (tarfile's rule).
_NO_DATA = frozenset((LNKTYPE, SYMTYPE, CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE))
_POSIX_MAGIC = b"ustar\x00"
_ZERO_BLOCK = bytes(BLOCK)
_SCRATCH = 1 << 20
_MAX_MTIME = float(1 << 40)  # seconds: beyond it, os.utime overflows; no real archive is


class Member:
    """One member as the extraction sees it (the subset of ``tarfile.TarInfo`` it uses,
    under the same names, so a transform can change ``name`` and ``linkname`` in place)."""

    __slots__ = ("linkname", "mode", "mtime", "name", "size", "sparse", "type")

    def __init__(self, name: str, linkname: str, type: bytes, mode: int, mtime: float,
                 size: int, sparse: bool = False) -> None:
        self.name = name
        self.linkname = linkname
        self.type = type
        self.mode = mode
        self.mtime = mtime
        self.size = size
        self.sparse = sparse

    def __repr__(self) -> str:
        return f"Member({self.name!r}, type={self.type!r}, size={self.size})"

    def isreg(self) -> bool:
        return self.type in REGULAR_TYPES

    def isdir(self) -> bool:
        return self.type == DIRTYPE

    def issym(self) -> bool:
        return self.type == SYMTYPE

    def islnk(self) -> bool:
        return self.type == LNKTYPE

    def ischr(self) -> bool:
        return self.type == CHRTYPE

    def isblk(self) -> bool:
        return self.type == BLKTYPE

    def isfifo(self) -> bool:
        return self.type == FIFOTYPE

    def issparse(self) -> bool:
        return self.sparse


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _field(block: bytes, start: int, end: int) -> bytes:
    """A NUL-terminated field."""
    raw = block[start:end]
    nul = raw.find(b"\0")
    return raw if nul < 0 else raw[:nul]


class TarReader:
    """Members of ``stream`` (an expanded tar) in order. After a member is yielded, up to
    ``member.size`` bytes of its data may be read with :meth:`read`; the rest is skipped
    when the next member is asked for."""

    def __init__(self, stream: ByteStream, label: str) -> None:
        # open_stream's metered stream is already a raw stream; anything else (a plain
        # file object, BytesIO) goes through the same adapter, its count unused.
        raw = stream if isinstance(stream, io.RawIOBase) else Meter(stream)
        self._f = io.BufferedReader(raw, BUFFER)
        self._label = label
        self.offset = 0  # bytes of the stream consumed
        self._left = 0  # data bytes of the current member not read yet
        self._pad = 0  # padding after them
        self._globals: dict[str, str] = {}
        self._scratch = bytearray(_SCRATCH)

    # -- bytes ---------------------------------------------------------------------------
    def _read_exact(self, n: int, what: str) -> bytes:
        try:
            data = self._f.read(n)
        except READ_ERRORS as e:
            raise MalformedArchiveError(
                f"unreadable data at byte {self.offset} ({e})") from None
        if len(data) != n:
            raise MalformedArchiveError(
                f"the archive ends at byte {self.offset + len(data)} {what} without the "
                "end-of-archive marker")
        self.offset += n
        return data

    def _discard(self, n: int) -> None:
        view = memoryview(self._scratch)
        while n > 0:
            k = min(n, _SCRATCH)
            try:
                got = self._f.readinto(view[:k])
            except READ_ERRORS as e:
                raise MalformedArchiveError(
                    f"unreadable data at byte {self.offset} ({e})") from None
            if not got:
                raise MalformedArchiveError(
                    f"the archive ends at byte {self.offset} inside a member's data without "
                    "the end-of-archive marker")
            self.offset += got
            n -= got

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes of the current member's data (never past its end)."""
        n = min(n, self._left)
        if n <= 0:
            return b""
        data = self._read_exact(n, "inside a member's data")
        self._left -= n
        return data

    # -- headers -------------------------------------------------------------------------
    def _number(self, block: bytes, start: int, end: int, what: str) -> int:
        raw = block[start:end]
        if raw[0] & 0x80:  # GNU base-256
            if raw[0] != 0x80:
                raise MalformedArchiveError(
                    f"a damaged header at byte {self.offset - BLOCK}: a negative {what}")
            return int.from_bytes(raw[1:], "big")
        nul = raw.find(b"\0")
        text = (raw if nul < 0 else raw[:nul]).strip(b" ")
        try:
            return int(text, 8) if text else 0
        except ValueError:
            raise MalformedArchiveError(
                f"a damaged header at byte {self.offset - BLOCK}: its {what} "
                f"{text[:20]!r} is not a number") from None

    def _check_sum(self, block: bytes) -> None:
        stored = self._number(block, 148, 156, "checksum")
        body = sum(block) - sum(block[148:156])
        if stored == body + 256:
            return
        signed = sum(b - 256 if b > 127 else b for b in block) \
            - sum(b - 256 if b > 127 else b for b in block[148:156])
        if stored != signed + 256:
            raise MalformedArchiveError(
                f"a damaged header at byte {self.offset - BLOCK} without the end-of-archive "
                "marker (bad checksum)")

    def _extended(self, size: int, what: str) -> bytes:
        if size > MAX_EXTENDED:
            raise ExtractionLimitError(
                f"a {what} of {size} bytes at byte {self.offset} (the cap is "
                f"{MAX_EXTENDED})")
        data = self._read_exact(size, f"inside a {what}")
        self._discard(-size % BLOCK)
        return data

    def _pax(self, data: bytes) -> dict[str, str]:
        """The records of a pax header: ``"%d %s=%s\\n"``, the length counting itself."""
        out: dict[str, str] = {}
        pos = 0
        while pos < len(data):
            space = data.find(b" ", pos)
            try:
                length = int(data[pos:space]) if space > pos else 0
            except ValueError:
                length = 0
            end = pos + length
            if length <= 0 or end > len(data) or data[end - 1:end] != b"\n":
                raise MalformedArchiveError(
                    f"a damaged pax header before byte {self.offset}")
            key, eq, value = data[space + 1:end - 1].partition(b"=")
            if not eq:
                raise MalformedArchiveError(
                    f"a damaged pax header before byte {self.offset}")
            out[_text(key)] = _text(value)
            pos = end
        return out

    def __iter__(self) -> Iterator[Member]:
        try:
            first = self._members()
            member = next(first, None)
        except MalformedArchiveError as e:
            raise MalformedArchiveError(f"not a readable tar archive ({e.message})") from None
        if member is None:
            return
        yield member
        yield from first

    def _members(self) -> Iterator[Member]:
        long_name: str | None = None
        long_link: str | None = None
        pax: dict[str, str] = {}
        while True:
            if self._left or self._pad:
                self._discard(self._left + self._pad)
                self._left = self._pad = 0
            block = self._read_exact(BLOCK, "before a header")
            if block == _ZERO_BLOCK:
                return
            self._check_sum(block)
            kind = block[156:157]
            size = self._number(block, 124, 136, "size")
            if kind in (GNU_LONGNAME, GNU_LONGLINK):
                text = _text(_field(self._extended(size, "long name"), 0, size))
                if kind == GNU_LONGNAME:
                    long_name = text
                else:
                    long_link = text
                continue
            if kind in (PAX_MEMBER, SOLARIS_PAX):
                pax = self._pax(self._extended(size, "pax header"))
                continue
            if kind == PAX_GLOBAL:
                self._globals.update(self._pax(self._extended(size, "pax header")))
                continue
            name = _text(_field(block, 0, 100))
            if block[257:263] == _POSIX_MAGIC:
                prefix = _field(block, 345, 500)
                if prefix:
                    name = _text(prefix) + "/" + name
            if kind == AREGTYPE and name.endswith("/"):
                kind = DIRTYPE
            linkname = _text(_field(block, 157, 257))
            mtime: float = self._number(block, 136, 148, "mtime")
            sparse = kind == GNU_SPARSE
            for records in (self._globals, pax) if self._globals else (pax,):
                if not records:
                    continue
                name = records.get("path", name)
                linkname = records.get("linkpath", linkname)
                if "size" in records:
                    size = self._pax_int(records["size"], "size")
                if "mtime" in records:
                    mtime = self._pax_float(records["mtime"])
                if any(k.startswith("GNU.sparse.") for k in records):
                    sparse = True
            if long_name is not None:
                name = long_name
            if long_link is not None:
                linkname = long_link
            long_name = long_link = None
            pax = {}
            if kind == DIRTYPE:
                name = name.rstrip("/") or name
            if not -_MAX_MTIME <= mtime <= _MAX_MTIME:
                raise MalformedArchiveError(
                    f"a damaged header before byte {self.offset}: the mtime of {name[:80]!r} "
                    "is out of range")
            has_data = kind not in _NO_DATA
            self._left = size if has_data else 0
            self._pad = -size % BLOCK if has_data else 0
            yield Member(name, linkname, kind, self._number(block, 100, 108, "mode"),
                         mtime, size, sparse)

    def _pax_int(self, value: str, what: str) -> int:
        if not value.isdigit():
            raise MalformedArchiveError(
                f"a damaged pax header before byte {self.offset}: {what} {value[:20]!r}")
        return int(value)

    def _pax_float(self, value: str) -> float:
        try:
            result = float(value)
        except ValueError:
            raise MalformedArchiveError(
                f"a damaged pax header before byte {self.offset}: mtime {value[:20]!r}"
            ) from None
        if result != result or result in (float("inf"), float("-inf")):
            raise MalformedArchiveError(
                f"a damaged pax header before byte {self.offset}: mtime {value[:20]!r}")
        return result
