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

from builder.errors import NoFittingArchiveError, NotOurArchiveError
from builder.host.detect import Detection
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

    @property
    def version_key(self) -> tuple[int, int, int, int, int]:
        return version_sort_key(self.version)  # pre-releases sort before the final


def _vkey(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split(".") if p.isdigit())


def candidates_from_dir(directory: Path) -> list[Candidate]:
    """Archives of a release directory, with sha256 and musl floor from their manifests."""
    out = []
    for archive in sorted(directory.glob("cpython-*-musl.tar.gz")):
        name = parse_archive_name(archive.name)
        if name is None:
            continue
        manifest_path = archive.with_name(name.manifest)
        sha = musl = None
        if manifest_path.is_file():
            manifest = json.loads(manifest_path.read_text())
            sha = manifest.get("archives", {}).get("tar.gz", {}).get("sha256")
            musl = manifest.get("musl_version_needed") or None
        out.append(Candidate(name.version, name.arch.alpine, archive, sha, musl))
    return out


def candidates_from_metadata(path: Path) -> list[Candidate]:
    """Entries of a uv download-metadata.json for musl (``musl``, ``musleabihf``) with a
    local file URL."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise NotOurArchiveError(f"{path}: not a readable download-metadata.json ({e})") from None
    out = []
    for _key, entry in sorted(data.items()):
        if not str(entry.get("libc", "")).startswith("musl") or entry.get("os") != "linux":
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


def choose(cands: list[Candidate], detection: Detection, version: str | None) -> Candidate:
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
    if best.musl_needed and detection.version and _vkey(detection.version) < _vkey(
        best.musl_needed
    ):
        raise NoFittingArchiveError(
            f"{best.path.name} needs musl >= {best.musl_needed}; this system has "
            f"musl {detection.version}",
            hint="upgrade the system (apk upgrade musl) or use an archive built on an older "
            "Alpine release",
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
