"""install: detect this host, pick the archive that fits, check it, unpack it atomically."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.errors import MuslTooOldError, NoFittingArchiveError, NotOurArchiveError
from builder.host.detect import Detection
from builder.lowlevel.apkversion import ApkVersion, compare
from builder.lowlevel.muslfloor import lacking, loader_symbols
from builder.lowlevel.safetar import extract_all
from builder.naming import parse_archive_name
from builder.platforms import ARCHES, get_arch
from builder.release.uvmeta import version_sort_key
from builder.stages.pack import sha256_file


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


def candidates_from_dir(directory: Path) -> list[Candidate]:
    """Archives of a release directory, with sha256 and musl floor from their manifests."""
    out = []
    for archive in sorted(directory.glob("cpython-*-musl.tar.gz")):
        name = parse_archive_name(archive.name)
        if name is None:
            continue
        manifest_path = archive.with_name(name.manifest)
        sha = musl = floor = None
        if manifest_path.is_file():
            manifest = json.loads(manifest_path.read_text())
            sha = manifest.get("archives", {}).get("tar.gz", {}).get("sha256")
            musl = manifest.get("musl_version_needed") or None
            floor = manifest.get("musl_floor")
        out.append(Candidate(name.version, name.arch.alpine, archive, sha, musl,
                             floor if isinstance(floor, dict) else None))
    return out


def candidates_from_metadata(path: Path) -> list[Candidate]:
    """Entries of a uv download-metadata.json with ``libc: musl`` and a local file URL."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise NotOurArchiveError(f"{path}: not a readable download-metadata.json ({e})") from None
    out = []
    for _key, entry in sorted(data.items()):
        if entry.get("libc") != "musl" or entry.get("os") != "linux":
            continue
        url = str(entry.get("url", ""))
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme == "file":
            local = Path(urllib.parse.unquote(parsed.path))
        elif parsed.scheme == "":
            local = (path.parent / url).resolve()
        else:
            continue  # remote downloads are uv's job
        name = parse_archive_name(local.name)
        arch = name.arch.alpine if name else None
        if arch is None:
            family = entry.get("arch", {}).get("family")
            arch = next((a.alpine for a in ARCHES.values() if a.uv_family == family), None)
        if arch is None:
            continue
        version = f"{entry['major']}.{entry['minor']}.{entry['patch']}"
        out.append(Candidate(version, arch, local, entry.get("sha256"), None))
    return out


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


def install(candidate: Candidate, dest: Path, *, force: bool = False) -> Path:
    """Check the sha256, unpack to a temporary sibling of ``dest``, rename into place."""
    if dest.exists() and not force:
        raise NoFittingArchiveError(f"{dest} already exists", hint="pass --force to replace it")
    if not candidate.path.is_file():
        raise NotOurArchiveError(f"{candidate.path}: no such file")
    if candidate.sha256:
        actual = sha256_file(candidate.path)
        if actual != candidate.sha256:
            raise NotOurArchiveError(
                f"{candidate.path.name}: sha256 {actual} does not match the release's "
                f"{candidate.sha256}",
                hint="download it again; do not install a file that does not match",
            )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with tarfile.open(candidate.path) as tar:
            extract_all(tar, tmp)
        top = tmp / "python"
        if not (top / "bin" / "python3").exists():
            raise NotOurArchiveError(f"{candidate.path.name} holds no python/bin/python3")
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
