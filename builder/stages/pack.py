"""pack: deterministic tar -> .tar.gz and .tar.zst, SHA256SUMS and the JSON manifest.

The tar is never written out: tarfile writes into a fan-out that feeds both compressors,
each in its own thread, as it goes.

Everything is written under a temporary name and renamed into place at the end, so a
failed build leaves nothing that looks like an archive.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import queue
import stat
import tarfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import zstandard

from builder import __version__
from builder.errors import StageError
from builder.lowlevel.jsonio import dumps
from builder.lowlevel.outdir import unwritable, writing
from builder.lowlevel.tarstream import ByteStream
from builder.lowlevel.threads import POLL, join_all, offer, start_shielded
from builder.naming import CHECKSUMS, ArchiveName
from builder.progress import Reporter

# Levels chosen by measurement on the real 3.11 tars, streamed into both at once on two cores
# (bench/README.md has the tables): the pair is as fast as the slower side, and gzip runs in
# one thread. zlib-ng level 5 costs under a ninth of zlib level 9's CPU time for a .tar.gz 0.2 %
# larger than its level 6; zstd level 7 with long-distance matching over a 64 MiB window,
# in worker threads, then finishes beside it: level 10 was 3 % smaller (0.44 of the seed's
# .tar.gz against 0.45) for 1.7 times the pack's wall time (0.87 s against 0.50 s stripped,
# 1.38 s against 0.74 s with debug info). Any zstd decoder accepts the window (the default
# limit is 128 MiB).
GZIP_LEVEL = 5
ZSTD_LEVEL = 7
ZSTD_WINDOW_LOG = 26
CHUNK = 1 << 20
_CHECKSUMS_LOCK = threading.Lock()  # concurrent targets share one SHA256SUMS
BUILDINFO = "musl-pbs.json"  # inside python/: what the archive is, without checksums


@dataclass(frozen=True)
class Packed:
    gz: Path
    zst: Path
    manifest: Path
    checksums: Path
    data: dict[str, Any]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _members(tree: Path) -> Iterator[Path]:
    """Every path under ``tree`` (tree included), parents before children, sorted."""
    paths = [tree]
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames + filenames:
            paths.append(Path(dirpath, name))
    yield from sorted(paths, key=lambda p: p.relative_to(tree.parent).parts)


def pyc_pinned_sources(paths: list[Path]) -> set[Path]:
    """The ``.py`` files among ``paths`` that a timestamp ``.pyc`` beside them matches.

    A timestamp ``.pyc`` records its source's mtime and size; CPython recompiles when they
    differ from the source's, on every import when it cannot write the ``__pycache__`` (a
    read-only install). These sources keep their own mtime in the archive instead of the
    epoch clamp, which would make such a ``.pyc`` stale.
    """
    pinned: set[Path] = set()
    for pyc in paths:
        if pyc.suffix != ".pyc" or pyc.parent.name != "__pycache__":
            continue
        src = pyc.parent.parent / (pyc.name.split(".", 1)[0] + ".py")
        try:
            with pyc.open("rb") as f:
                header = f.read(16)
            st = src.lstat()
        except OSError:
            continue
        if len(header) < 16 or not stat.S_ISREG(st.st_mode):
            continue
        flags, mtime, size = (int.from_bytes(header[i:i + 4], "little") for i in (4, 8, 12))
        if flags != 0:
            continue  # hash-based (checked or not): the mtime plays no part
        if mtime == int(st.st_mtime) & 0xFFFFFFFF and size == st.st_size & 0xFFFFFFFF:
            pinned.add(src)
    return pinned


def _normalised(path: Path, arcname: str, epoch: int,
                keep_mtime: bool = False) -> tarfile.TarInfo:
    """The member for ``path``, made from its ``lstat`` alone (tarfile's gettarinfo also
    looks up the owner's and group's names, which every member drops)."""
    st = path.lstat()
    info = tarfile.TarInfo(arcname)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime) if keep_mtime else min(int(st.st_mtime), epoch)
    if stat.S_ISDIR(st.st_mode):
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, os.readlink(path)
    elif stat.S_ISREG(st.st_mode):
        # A staged file may be a hard link (to the export): each is a file of its own here.
        info.type, info.size = tarfile.REGTYPE, st.st_size
        info.mode = 0o755 if st.st_mode & 0o111 else 0o644
    else:
        raise StageError(f"{path}: neither a file, a directory nor a symbolic link",
                         hint="the staged tree holds only these; report this as a bug")
    return info


def write_tar(tree: Path, dest: IO[bytes], epoch: int) -> int:
    """Write ``tree`` (its name as the single top directory) as a plain tar into ``dest``;
    return the member count.

    mtimes are clamped to ``epoch``, except those of sources a ``.pyc`` depends on."""
    count = 0
    members = list(_members(tree))
    pinned = pyc_pinned_sources(members)
    # copybufsize: each file's bytes in 1 MiB reads (16 KiB by default)
    with tarfile.TarFile(fileobj=dest, mode="w", format=tarfile.GNU_FORMAT,
                         copybufsize=CHUNK) as tar:
        for path in members:
            arcname = path.relative_to(tree.parent).as_posix()
            info = _normalised(path, arcname, epoch, path in pinned)
            if info.isreg():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
            count += 1
    return count


def gzip_library() -> tuple[str, Callable[..., Any]]:
    """(name, GzipFile class): zlib-ng's where it is installed, else CPython's zlib.

    PyPI has zlib-ng wheels for x86_64 and aarch64 only, so pyproject.toml asks for it there
    alone: elsewhere (a musl ppc64le host running ``musl-pbs install``) nothing needs building,
    and a build there writes the same gzip format with zlib's bytes. Imported here, not at the
    top, so that install and verify never import it."""
    try:
        from zlib_ng import gzip_ng
    except ImportError:
        return "zlib", gzip.GzipFile
    return "zlib-ng", gzip_ng.GzipNGFile


class _Hashing:
    """A write-only file that hashes what it passes on (the archive's SHA-256 as it is
    written: no second read of it)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


def compress_gz(src: ByteStream, dest: Path) -> str:
    """gzip what ``src`` reads until its end (no name, mtime 0: the same bytes every run);
    return the SHA-256 of ``dest``."""
    _, gzip_file = gzip_library()
    with dest.open("wb") as raw:
        hashed = _Hashing(raw)
        with gzip_file(filename="", mode="wb", fileobj=hashed, mtime=0,
                       compresslevel=GZIP_LEVEL) as gz:
            for block in iter(lambda: src.read(CHUNK), b""):
                gz.write(block)
    return hashed.sha256.hexdigest()


def zstd_threads(jobs: int = 1) -> int:
    """Worker threads for one compression when ``jobs`` targets build at once."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cpus or 1) // max(1, jobs))


def compress_zst(src: ByteStream, dest: Path, threads: int = 1) -> str:
    """zstd what ``src`` reads until its end, with ``threads`` workers; return the SHA-256
    of ``dest``.

    zstd's multi-threaded format is the same for every worker count >= 1 (and differs from
    its single-threaded one), so ``threads`` is never 0: the bytes do not depend on the
    machine's cores.
    """
    params = zstandard.ZstdCompressionParameters.from_level(
        ZSTD_LEVEL, window_log=ZSTD_WINDOW_LOG, enable_ldm=True, threads=max(1, threads),
        write_checksum=True, write_content_size=True,
    )
    cctx = zstandard.ZstdCompressor(compression_params=params)
    with dest.open("wb") as fout:
        hashed = _Hashing(fout)
        cctx.copy_stream(cast(IO[bytes], src), cast(IO[bytes], hashed), read_size=CHUNK,
                         write_size=CHUNK)
    return hashed.sha256.hexdigest()


class _Stopped(Exception):
    """The other side gave up: stop writing or reading."""


class _Fanout:
    """A write-only file for ``tarfile``: its bytes go, in ``CHUNK`` blocks, to a bounded
    queue per compressor (the same blocks whatever sizes tarfile writes in)."""

    def __init__(self, consumers: int, stop: threading.Event) -> None:
        self.queues: list[queue.Queue[bytes]] = [
            queue.Queue(maxsize=4) for _ in range(consumers)]
        self.stop = stop  # set by whichever side fails first
        self.size = 0
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        self.size += len(data)
        while len(self._buffer) >= CHUNK:
            self._send(bytes(self._buffer[:CHUNK]))
            del self._buffer[:CHUNK]
        return len(data)

    def tell(self) -> int:
        return self.size

    def _send(self, block: bytes) -> None:
        for q in self.queues:
            if not offer(q, block, self.stop):
                raise _Stopped

    def finish(self) -> None:
        if self._buffer:
            self._send(bytes(self._buffer))
        self._send(b"")  # the end


class _QueueReader:
    """What one compressor reads: the fan-out's blocks, then ``b""``; :class:`_Stopped` as
    soon as the stop flag is set (nobody has to reach the queue to stop it)."""

    def __init__(self, blocks: queue.Queue[bytes], stop: threading.Event) -> None:
        self._blocks = blocks
        self._stop = stop
        self._rest = b""
        self._ended = False

    def read(self, size: int = -1, /) -> bytes:
        while not self._rest and not self._ended:
            if self._stop.is_set():
                raise _Stopped
            try:
                block = self._blocks.get(timeout=POLL)
            except queue.Empty:
                continue
            self._ended = not block
            self._rest = block
        if size < 0 or size >= len(self._rest):
            data, self._rest = self._rest, b""
        else:
            data, self._rest = self._rest[:size], self._rest[size:]
        return data


def compress_stream(write: Callable[[IO[bytes]], int], gz: Path, zst: Path,
                    threads: int = 1) -> tuple[int, int, dict[Path, str]]:
    """Run ``write`` (a tar writer: it returns its member count) into .tar.gz and .tar.zst
    at once, streamed: no plain tar on disk; each compressor in its own thread (both
    release the GIL), fed the same blocks. Returns (members, uncompressed bytes, the
    SHA-256 of each file written).

    Any failure — the writer's, a compressor's, Ctrl-C at any point — sets one stop flag
    that both sides poll, and this returns only once both compressor threads have ended
    (their files closed); a compressor's own error is what is raised."""
    stop = threading.Event()
    fan = _Fanout(2, stop)
    errors: list[BaseException] = []
    digests: dict[Path, str] = {}

    def run(dest: Path, work: Callable[[], str]) -> None:
        try:
            digests[dest] = work()
        except BaseException as e:
            errors.append(e)
            stop.set()

    readers = [_QueueReader(q, stop) for q in fan.queues]
    jobs = [
        threading.Thread(target=run, args=(gz, lambda: compress_gz(readers[0], gz)),
                         name="compress-gz", daemon=True),
        threading.Thread(target=run, args=(zst, lambda: compress_zst(readers[1], zst, threads)),
                         name="compress-zst", daemon=True),
    ]
    try:
        start_shielded(jobs)
        count = write(cast(IO[bytes], fan))
        fan.finish()
        for job in jobs:
            job.join()
    except BaseException as e:
        stop.set()
        join_all(jobs)
        failure = _first_failure(errors)
        if isinstance(e, _Stopped) and failure is not None:
            raise failure from None  # the writer stopped because a compressor failed
        raise
    failure = _first_failure(errors)
    if failure is not None:
        raise failure
    return count, fan.size, digests


def _first_failure(errors: list[BaseException]) -> BaseException | None:
    """A compressor's own error (not its being told to stop), if any."""
    return next((x for x in errors if not isinstance(x, _Stopped)), None)


def update_checksums(path: Path, entries: dict[str, str]) -> None:
    """Merge ``name -> sha256`` into a SHA256SUMS file (sorted, temp name then rename)."""
    with _CHECKSUMS_LOCK:
        _update_checksums(path, entries)


def _update_checksums(path: Path, entries: dict[str, str]) -> None:
    current: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            digest, _, name = line.partition("  ")
            if name:
                current[name] = digest
    current.update(entries)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{d}  {n}\n" for n, d in sorted(current.items())))
    os.replace(tmp, path)


def pack(
    tree: Path,
    name: ArchiveName,
    out_dir: Path,
    info: dict[str, Any],
    epoch: int,
    reporter: Reporter,
    threads: int | None = None,
) -> Packed:
    """Pack ``tree`` (a directory named ``python``) into ``out_dir``.

    ``threads``: zstd workers (default: every core this process may use).
    """
    if tree.name != "python":
        raise ValueError("the staged tree must be named python/")
    with writing(f"the archives in {out_dir}"):  # a typed error, never an OSError
        out_dir.mkdir(parents=True, exist_ok=True)
    (tree / BUILDINFO).write_text(dumps(info))
    final = {"gz": out_dir / name.gz, "zst": out_dir / name.zst, "json": out_dir / name.manifest}
    unique = uuid.uuid4().hex[:8]  # concurrent writers never share a temporary file
    tmps = {k: v.with_name(f".{v.name}.{unique}.tmp") for k, v in final.items()}
    try:
        workers = zstd_threads() if threads is None else threads
        compressors = {"gz": f"{gzip_library()[0]} {GZIP_LEVEL}",
                       "zst": f"zstd {ZSTD_LEVEL}, long matching, window 2^{ZSTD_WINDOW_LOG}"}
        reporter.stage("pack", f"{name.stem}: tar (epoch {epoch}) streamed into .tar.gz "
                       f"({compressors['gz']}) and .tar.zst (level {ZSTD_LEVEL}, "
                       f"{workers} threads) at once")
        count, plain_size, digests = compress_stream(
            lambda dest: write_tar(tree, dest, epoch), tmps["gz"], tmps["zst"], workers)
        archives: dict[str, dict[str, Any]] = {}
        for key, suffix in (("gz", "tar.gz"), ("zst", "tar.zst")):
            archives[suffix] = {
                "file": final[key].name,
                "size": tmps[key].stat().st_size,
                "sha256": digests[tmps[key]],
                "compressor": compressors[key],  # what made these bytes, to make them again
            }
        manifest = {
            **info,
            "file_count": count,
            "uncompressed_size": plain_size,
            "archives": archives,
        }
        tmps["json"].write_text(dumps(manifest))
        for key in ("gz", "zst", "json"):
            os.replace(tmps[key], final[key])
        update_checksums(
            out_dir / CHECKSUMS, {a["file"]: a["sha256"] for a in archives.values()}
        )
    except OSError as e:  # out of space, the directory gone or read-only meanwhile
        raise unwritable(e, f"the archives in {out_dir}") from None
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
    return Packed(final["gz"], final["zst"], final["json"], out_dir / CHECKSUMS, manifest)


def build_info(**fields: Any) -> dict[str, Any]:
    return {"schema": 1, "builder": f"musl-pbs {__version__}", **fields}
