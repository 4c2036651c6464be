"""Property: whatever the archive, extraction changes nothing outside its destination.

Random trees of files, directories, symlinks and hard links over a small alphabet of
names, plus the chains of issue 9 (a link to ``.``, a link going through it many times
and back up as many ``..``, then a file or hard link written through it). Around the
destination: a sibling directory and files in the parent, snapshotted before and after.

``MUSL_PBS_PROPERTY_EXAMPLES=20000 pytest tests/unit/test_extract_property.py`` runs it long.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.errors import MuslPbsError
from builder.lowlevel.extract import extract
from builder.lowlevel.tarstream import ARCHIVE_LIMITS

EXAMPLES = int(os.environ.get("MUSL_PBS_PROPERTY_EXAMPLES", "150"))

_plain = st.lists(st.sampled_from(["a", "b", "c", "sib", "dest"]), min_size=1, max_size=4)
_any = st.lists(st.sampled_from(["a", "b", "c", "sib", "dest", ".", ".."]), min_size=1,
                max_size=5)
_targets = st.one_of(
    _plain.map("/".join),
    _plain.map("/".join),
    _plain.map("/".join),
    _any.map("/".join),
    _any.map(lambda p: "/" + "/".join(p)),
    st.integers(1, 12).map(lambda n: "a/" * n + "../" * n),
    st.integers(1, 12).map(lambda n: "a/" * n + "../" * (n + 1) + "sib"),
    st.integers(1, 12).map(lambda n: "../" * n + "c"),
    st.just("."), st.just(".."), st.just("../sib/victim"),
)
_kinds = st.sampled_from(["file", "file", "dir", "dir", "sym", "sym", "hard"])


@st.composite
def _members(draw: st.DrawFn, most: int = 14) -> list[tuple[str, str, str]]:
    """Kinds, names and targets; hard links mostly name an earlier member."""
    out: list[tuple[str, str, str]] = []
    hostile_names = draw(st.booleans())  # else every name is plain and most archives get far
    for _ in range(draw(st.integers(0, most))):
        parts = draw(_any if hostile_names and draw(st.integers(0, 4)) == 0 else _plain)
        kind, name = draw(_kinds), "/".join(parts)
        if kind == "hard" and out and draw(st.booleans()):
            target = draw(st.sampled_from([m[1] for m in out]))
        else:
            target = draw(_targets)
        out.append((kind, name, target))
    return out


def _chain(depth: int, last: str) -> list[tuple[str, str, str]]:
    """The attack of issue 9 spelled out: ``a -> .``, ``b -> a/a/.../../..``, then ``b/x``."""
    return [("sym", "a", "."), ("sym", "b", "a/" * depth + "../" * depth),
            (last, "b/x", "a" if last == "hard" else ""),
            (last, "b/sib/victim", "../sib/victim")]


_archives = st.one_of(
    _members(),
    _members(),
    st.tuples(st.integers(1, 12), st.sampled_from(["file", "hard", "sym"]),
              _members(6)).map(lambda t: _chain(t[0], t[1]) + t[2]),
)


def _tar(members: list[tuple[str, str, str]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, target in members:
            info = tarfile.TarInfo(name)
            info.mode = 0o755
            if kind == "file":
                data = b"planted"
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
                         "hard": tarfile.LNKTYPE}[kind]
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def _snapshot(box: Path, skip: Path) -> dict[str, tuple[object, ...]]:
    """Every entry under ``box`` but ``skip``: kind, mode, size, inode, links, content
    (the directory holding ``skip`` gains a link and a new time, nothing else)."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(box):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            if p == skip or skip in p.parents:
                continue
            s = p.lstat()
            if stat.S_ISDIR(s.st_mode):  # its entries are compared one by one
                out[str(p.relative_to(box))] = (s.st_mode, None, s.st_ino)
                continue
            extra: object = None
            if stat.S_ISLNK(s.st_mode):
                extra = os.readlink(p)
            elif stat.S_ISREG(s.st_mode):
                extra = p.read_bytes()
            out[str(p.relative_to(box))] = (s.st_mode, s.st_size, s.st_ino, s.st_nlink,
                                            s.st_mtime_ns, extra)
    return out


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_archives)
def test_nothing_outside_the_destination_changes(members: list[tuple[str, str, str]]) -> None:
    with tempfile.TemporaryDirectory(prefix="musl-pbs-prop-") as tmp:
        outer = Path(tmp)
        box = outer / "box"
        (box / "sib").mkdir(parents=True)
        (box / "sib" / "victim").write_bytes(b"original")
        (box / "a").write_bytes(b"parent file")
        (outer / "x").write_bytes(b"grandparent file")
        archive = outer / "archive.tar"
        archive.write_bytes(_tar(members))
        dest = box / "dest"
        before = _snapshot(outer, dest)
        try:
            extract(archive, dest, ARCHIVE_LIMITS)
        except MuslPbsError:
            assert not dest.exists()
        after = _snapshot(outer, dest)
        assert after == before
        if not dest.exists():
            return
        outside_inodes = {v[2] for v in before.values()}
        real_dest = dest.resolve()
        for dirpath, dirnames, filenames in os.walk(dest):
            for name in dirnames + filenames:
                p = Path(dirpath, name)
                s = p.lstat()
                assert s.st_ino not in outside_inodes, p
                if stat.S_ISLNK(s.st_mode):
                    where = Path(os.path.realpath(p))
                    assert where.is_relative_to(real_dest), (p, os.readlink(p), where)
