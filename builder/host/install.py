"""install: detect this host, pick the archive that fits, check it, unpack it atomically."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.errors import (
    ChecksumMismatchError,
    ManifestMissingError,
    MuslTooOldError,
    NoFittingArchiveError,
    NotOurArchiveError,
    UnwritableOutputError,
    UsageError,
)
from builder.host.detect import Detection
from builder.lowlevel.apkversion import ApkVersion, compare
from builder.lowlevel.boundedio import CAP_MANIFEST, CAP_METADATA
from builder.lowlevel.extract import extract
from builder.lowlevel.jsonio import read_json_object
from builder.lowlevel.muslfloor import imported_from_libc, lacking, loader_symbols
from builder.lowlevel.outdir import check_writable_dir, unwritable, writing
from builder.lowlevel.tarstream import ARCHIVE_LIMITS
from builder.naming import parse_archive_name
from builder.platforms import ARCHES, get_arch
from builder.release.uvmeta import version_sort_key
from builder.stages.pack import sha256_file

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Candidate:
    version: str
    arch: str  # Alpine name
    path: Path
    sha256: str | None
    musl_needed: str | None
    musl_floor: dict[str, Any] | None = None  # the manifest's musl_floor (symbols, by release)

    @property
    def version_key(self) -> tuple[int, int, int, int, int]:
        return version_sort_key(self.version)  # pre-releases sort before the final


def _manifest_facts(path: Path) -> tuple[str | None, str | None, dict[str, Any] | None]:
    """(sha256 of the .tar.gz, musl version needed, musl floor) from a manifest beside an
    archive."""
    manifest = read_json_object(path, cap=CAP_MANIFEST, what="a manifest",
                                error=NotOurArchiveError)
    entry = manifest.get("archives", {})
    entry = entry.get("tar.gz") if isinstance(entry, dict) else None
    sha = entry.get("sha256") if isinstance(entry, dict) else None
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise NotOurArchiveError(f"{path}: archives.tar.gz.sha256 is not a sha256 "
                                 f"(got {_short(sha)})")
    musl = manifest.get("musl_version_needed")
    if musl is not None and not isinstance(musl, str):
        raise NotOurArchiveError(f"{path}: musl_version_needed must be a string "
                                 f"(got {_short(musl)})")
    floor = manifest.get("musl_floor")
    if floor is not None and not isinstance(floor, dict):
        raise NotOurArchiveError(f"{path}: musl_floor must be an object (got {_short(floor)})")
        # its lists are checked where they are used (lacking() takes any strings)
    return sha.lower(), musl or None, floor


def candidates_from_dir(directory: Path) -> list[Candidate]:
    """Archives of a release directory, with sha256 and musl floor from their manifests."""
    if not directory.is_dir():
        raise NotOurArchiveError(
            f"--from {directory}: neither a release directory nor a download-metadata.json"
        )
    out = []
    for archive in sorted(directory.glob("cpython-*-musl.tar.gz")):
        name = parse_archive_name(archive.name)
        if name is None:
            continue
        manifest_path = archive.with_name(name.manifest)
        sha = musl = floor = None
        if manifest_path.exists() or manifest_path.is_symlink():
            sha, musl, floor = _manifest_facts(manifest_path)
        out.append(Candidate(name.version, name.arch.alpine, archive, sha, musl, floor))
    return out


def _metadata_entry(path: Path, key: str, entry: Any) -> Candidate | None:
    """One entry of a download-metadata.json: a local musl archive, or None to skip it."""
    where = f"{path}: entry {key!r}"
    if not isinstance(entry, dict):
        raise NotOurArchiveError(f"{where} must be an object, not {_short(entry)}")
    if not str(entry.get("libc", "")).startswith("musl") or entry.get("os") != "linux":
        return None
    url = entry.get("url")
    if not isinstance(url, str) or not url:
        raise NotOurArchiveError(f"{where} has no 'url' string")
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        local = Path(urllib.parse.unquote(parsed.path))
    elif parsed.scheme == "":
        local = (path.parent / url).resolve()
    else:
        return None  # remote downloads are uv's job
    name = parse_archive_name(local.name)
    arch = name.arch.alpine if name else None
    if arch is None:
        family = entry.get("arch")
        family = family.get("family") if isinstance(family, dict) else None
        arch = next((a.alpine for a in ARCHES.values() if a.uv_family == family), None)
    if arch is None:
        return None
    parts = [entry.get(k) for k in ("major", "minor", "patch")]
    if not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in parts):
        raise NotOurArchiveError(f"{where}: major, minor and patch must be numbers "
                                 f"(got {_short(parts)})")
    sha = entry.get("sha256")
    if sha is not None and (not isinstance(sha, str) or not _SHA256.fullmatch(sha)):
        raise NotOurArchiveError(f"{where}: sha256 is not a sha256 (got {_short(sha)})")
    return Candidate(".".join(map(str, parts)), arch, local, sha.lower() if sha else None, None)


def candidates_from_metadata(path: Path) -> list[Candidate]:
    """Entries of a uv download-metadata.json for musl (``musl``, and ``musleabihf`` as uv
    spells hard-float ARM) with a local file URL."""
    data = read_json_object(path, cap=CAP_METADATA, what="a download-metadata.json",
                            error=NotOurArchiveError)
    out = []
    for key, entry in sorted(data.items()):
        cand = _metadata_entry(path, key, entry)
        if cand is not None:
            out.append(cand)
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."




def host_loader(detection: Detection) -> tuple[frozenset[str], frozenset[str]] | None:
    """The exports (and LFS64 aliases) of the loader the detected system really uses."""
    if detection.libc != "musl" or not detection.loader_resolved:
        return None
    return loader_symbols(detection.root / detection.loader_resolved.lstrip("/"))


def musl_shortfall(cand: Candidate, musl: str | None,
                   loader: tuple[frozenset[str], frozenset[str]] | None) -> list[str] | None:
    """Why ``cand`` cannot run on a musl ``musl`` whose loader exports ``loader``: the
    missing symbols (possibly none named), or None when it can. The loader's own exports
    decide when both they and the archive's needed symbols are known; otherwise the
    recorded floor, compared in apk's order."""
    floor = cand.musl_floor or {}
    needed = floor.get("needed")
    if loader is not None and isinstance(needed, list) and needed:
        missing = lacking(needed, *loader)
        return missing or None
    if not cand.musl_needed or not musl or compare(musl, cand.musl_needed) >= 0:
        return None
    by_version = floor.get("missing_by_version") or {}
    known = [v for v in by_version if compare(v, musl) <= 0]
    if known:  # the newest release the table knows at or below this one
        return list(by_version[max(known, key=ApkVersion)])
    return list(floor.get("set_by") or [])


def choose(
    cands: list[Candidate],
    detection: Detection,
    version: str | None,
    loader: tuple[frozenset[str], frozenset[str]] | None = None,
) -> Candidate:
    if detection.libc != "musl":
        what = (f"{detection.libc} {detection.version or ''}".strip() if detection.libc
                else "no libc that could be identified")
        raise NoFittingArchiveError(
            f"this system uses {what}, not musl: musl-pbs archives would not run here",
            hint="on glibc systems use python-build-standalone's gnu builds "
            "(`uv python install`), or your distribution's python3",
        )
    if detection.arch is None:
        raise NoFittingArchiveError(
            f"no musl-pbs architecture fits this system ({detection.machine})",
            hint=detection.archive_note or "",
        )
    fits = [c for c in cands if c.arch == detection.arch]
    if version:
        fits = [c for c in fits if c.version == version or c.version.startswith(version + ".")]
    if not fits:
        have = ", ".join(sorted({f"{c.version} ({c.arch})" for c in cands})) or "none"
        raise NoFittingArchiveError(
            f"no archive for {detection.arch}" + (f" and Python {version}" if version else "")
            + f" in the release (it has: {have})",
        )
    best = max(fits, key=lambda c: c.version_key)
    missing = musl_shortfall(best, detection.version, loader)
    if missing is not None:
        named = (f": this musl lacks {', '.join(missing)}" if missing else "")
        raise MuslTooOldError(
            f"{best.path.name} needs musl >= {best.musl_needed}; this system has "
            f"musl {detection.version}{named} (refused before unpacking: it would fail "
            "with 'symbol not found')",
        )
    return best


def _expected_sha256(candidate: Candidate, given: str | None) -> str:
    """The sha256 the archive must have: the release's, or ``given`` (--sha256)."""
    if given is not None:
        given = given.lower()
        if not _SHA256.fullmatch(given):
            raise UsageError(f"--sha256 {given!r}: expected 64 hexadecimal digits")
        if candidate.sha256 is not None and candidate.sha256 != given:
            raise ChecksumMismatchError(
                f"{candidate.path.name}: --sha256 {given} is not the release's "
                f"{candidate.sha256}",
                hint="check which file you meant; do not install a file that does not match",
            )
        return given
    if candidate.sha256 is None:
        raise ManifestMissingError(
            f"{candidate.path.name}: no manifest or download-metadata gives its sha256, "
            "so nothing vouches for it"
        )
    return candidate.sha256


def install(candidate: Candidate, dest: Path, *, force: bool = False,
            sha256: str | None = None,
            loader: tuple[frozenset[str], frozenset[str]] | None = None) -> Path:
    """Check the sha256, unpack to a temporary sibling of ``dest``, rename into place.

    An archive is unpacked only when its sha256 is known (from its manifest, the
    download-metadata, or ``sha256``) and matches. With the system's ``loader`` exports
    given, the unpacked files must import nothing it lacks, or nothing is put in place
    (the check that covers archives whose manifest records no symbols, e.g. from uv's
    download-metadata).
    """
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise UnwritableOutputError(f"--dir {dest}: exists and is not a directory")
    if dest.exists() and not force:
        raise NoFittingArchiveError(f"{dest} already exists", hint="pass --force to replace it")
    if not candidate.path.is_file():
        raise NotOurArchiveError(f"{candidate.path}: no such file")
    expected = _expected_sha256(candidate, sha256)
    actual = sha256_file(candidate.path)
    if actual != expected:
        raise NotOurArchiveError(
            f"{candidate.path.name}: sha256 {actual} does not match the expected {expected}",
            hint="download it again; do not install a file that does not match",
        )
    check_writable_dir(dest.parent, "--dir's parent")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    except OSError as e:
        raise unwritable(e, f"--dir {dest}") from None
    try:
        extract(candidate.path, tmp / "tree", ARCHIVE_LIMITS, label=candidate.path.name)
        top = tmp / "tree" / "python"
        if not (top / "bin" / "python3").exists():
            raise NotOurArchiveError(f"{candidate.path.name} holds no python/bin/python3")
        missing = lacking(imported_from_libc(top), *loader) if loader is not None else []
        if missing:
            raise MuslTooOldError(
                f"{candidate.path.name}: this system's musl lacks {', '.join(missing)}, "
                "which its files import; nothing was installed (it would fail with "
                "'symbol not found')")
        with writing(f"--dir {dest}"):
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(top, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest / "bin" / "python3"


def default_dest(candidate: Candidate) -> Path:
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    arch = get_arch(candidate.arch).archive_arch
    return base / "musl-pbs" / f"cpython-{candidate.version}-linux-{arch}-musl"
