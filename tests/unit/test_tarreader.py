"""The extraction's own tar reader: what tarfile reads, it reads the same; damage is typed."""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.errors import ExtractionLimitError, MalformedArchiveError
from builder.lowlevel.tarreader import MAX_EXTENDED, Member, TarReader


def _read_all(data: bytes) -> list[tuple[Member, bytes]]:
    reader = TarReader(io.BytesIO(data), "t")
    out = []
    for m in reader:
        out.append((m, reader.read(m.size) if m.isreg() else b""))
    return out


def _with_tarfile(data: bytes) -> list[tuple[str, bytes, str, int, int, float, bytes]]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
        for m in tar:
            body = tar.extractfile(m).read() if m.isreg() else b""  # type: ignore[union-attr]
            out.append((m.name, m.type, m.linkname, m.mode, m.size if m.isreg() else 0,
                        float(m.mtime), body))
    return out


def _ours(data: bytes) -> list[tuple[str, bytes, str, int, int, float, bytes]]:
    return [(m.name, m.type, m.linkname, m.mode, m.size if m.isreg() else 0, float(m.mtime),
             body) for m, body in _read_all(data)]


_names = st.lists(
    st.text(st.characters(blacklist_characters="\0/", blacklist_categories=("Cs",)),
            min_size=1, max_size=40).filter(lambda s: s not in (".", "..")),
    min_size=1, max_size=8).map("/".join)
_member = st.tuples(
    st.sampled_from(["file", "dir", "sym", "hard"]), _names, _names,
    st.integers(0, 0o7777), st.integers(0, 2**33), st.binary(max_size=1500))


@settings(max_examples=150, deadline=None)
@given(st.lists(_member, max_size=8),
       st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
def test_it_reads_what_tarfile_reads(members: list[tuple[str, str, str, int, int, bytes]],
                                     fmt: int) -> None:
    buf = io.BytesIO()
    try:
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
            for kind, name, target, mode, mtime, body in members:
                info = tarfile.TarInfo(name)
                info.mode, info.mtime = mode, mtime
                if kind == "file":
                    info.size = len(body)
                    tar.addfile(info, io.BytesIO(body))
                    continue
                info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
                             "hard": tarfile.LNKTYPE}[kind]
                info.linkname = "" if kind == "dir" else target
                tar.addfile(info)
    except ValueError:  # a name or number the format cannot hold
        return
    data = buf.getvalue()
    assert _ours(data) == _with_tarfile(data)


def test_pax_records_long_names_and_globals() -> None:
    buf = io.BytesIO()
    long = "d/" * 80 + "long-name"
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"mtime": "1234.5"}) as tar:
        info = tarfile.TarInfo(long)
        info.size, info.mtime = 3, 99
        info.pax_headers = {"mtime": "5.25"}
        tar.addfile(info, io.BytesIO(b"abc"))
        link = tarfile.TarInfo("l")
        link.type, link.linkname = tarfile.SYMTYPE, "t" * 150
        tar.addfile(link)
    (f, body), (ln, _) = _read_all(buf.getvalue())
    assert (f.name, body, f.mtime) == (long, b"abc", 5.25)
    assert ln.linkname == "t" * 150
    assert ln.mtime == 1234.5  # the global header's


def test_gnu_long_names_and_base256_numbers() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("x" * 300)
        info.mtime = 8**12  # past 11 octal digits: base-256
        info.size = 1
        tar.addfile(info, io.BytesIO(b"z"))
    [(m, body)] = _read_all(buf.getvalue())
    assert (m.name, m.mtime, body) == ("x" * 300, 8**12, b"z")


def test_a_v7_directory_and_unread_data_is_skipped() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        d = tarfile.TarInfo("dir/")
        d.type = tarfile.AREGTYPE
        tar.addfile(d)
        for name in ("a", "b"):
            f = tarfile.TarInfo(name)
            f.size = 5000
            tar.addfile(f, io.BytesIO(name.encode() * 5000))
    reader = TarReader(io.BytesIO(buf.getvalue()), "t")
    seen = []
    for m in reader:
        seen.append((m.name, m.type, reader.read(3) if m.isreg() else b""))
    assert seen == [("dir", tarfile.DIRTYPE, b""), ("a", b"0", b"aaa"), ("b", b"0", b"bbb")]


def _one_file(fmt: int = tarfile.USTAR_FORMAT, size: int = 10) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        info = tarfile.TarInfo("f")
        info.size = size
        tar.addfile(info, io.BytesIO(b"q" * size))
    return buf.getvalue()


def _set_size(data: bytes, field: bytes) -> bytes:
    header = bytearray(data[:512])
    header[124:136] = field
    return bytes(_resum(header)) + data[512:]


def _resum(block: bytearray) -> bytearray:
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return block


@pytest.mark.parametrize("mangle, message", [
    (lambda b: b[:512 + 5], "ends at byte 517 inside a member's data"),
    (lambda b: b[:1024], "ends at byte 1024 before a header"),  # no end marker
    (lambda b: b[:300], "ends at byte 300 before a header"),
    (lambda b: b"", "ends at byte 0 before a header"),
    (lambda b: b[:100] + b"X" + b[101:], "bad checksum"),
    (lambda b: _set_size(b, b"9" * 12), "size b'999999999999' is not a number"),
    (lambda b: _set_size(b, b"\xff" * 12), "a negative size"),
])
def test_damage_is_a_typed_error_naming_the_byte(mangle: object, message: str) -> None:
    with pytest.raises(MalformedArchiveError, match=message):
        _read_all(mangle(_one_file()))  # type: ignore[operator]


def test_a_huge_extended_header_is_capped() -> None:
    block = bytearray(512)
    block[0:1] = b"p"
    block[100:108] = b"0000644\0"
    block[124:136] = b"%011o\0" % (MAX_EXTENDED + 1)
    block[136:148] = b"00000000000\0"
    block[156:157] = b"x"
    block[257:265] = b"ustar\x0000"
    with pytest.raises(ExtractionLimitError, match="pax header"):
        _read_all(bytes(_resum(block)) + bytes(1024))


@pytest.mark.parametrize("records, message", [
    (b"15 mtime=1e300\n", "out of range"),
    (b"13 mtime=nan\n", "mtime"),
    (b"11 size=-1\n", "size"),
    (b"99 path=x\n", "damaged pax header"),
])
def test_bad_pax_values_are_typed_errors(records: bytes, message: str) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("f")
        info.pax_headers = {"comment": "x"}
        tar.addfile(info)
    data = bytearray(buf.getvalue())
    # Replace the pax header's records (one block of data after the first header).
    body = records.ljust(512, b"\0")
    data[512:1024] = body
    data[124:136] = b"%011o\0" % len(records)
    _resum(memoryview(data)[:512])  # type: ignore[arg-type]
    with pytest.raises(MalformedArchiveError, match=message):
        _read_all(bytes(data))


def test_pax_sparse_is_reported_sparse() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("holes")
        info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}
        tar.addfile(info)
    [(m, _)] = _read_all(buf.getvalue())
    assert m.issparse()
