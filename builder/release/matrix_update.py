"""Follow Alpine: matrix.yaml gains the branches Alpine supports and loses the ended ones.

A new branch's Python minor and musl come from its own package index
(``<mirror>/v<tag>/main/x86_64/APKINDEX.tar.gz``: the ``python3`` and ``musl`` records),
its architectures from Alpine's releases.json. The file is edited line by line, so its
comments stay, and the result is loaded (validated) before it replaces the old one.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from builder.config import Matrix, Release, load_matrix
from builder.errors import ConfigError, InputTooLargeError, MalformedDocumentError, NetworkError
from builder.lowlevel.apkdb import parse_installed
from builder.lowlevel.boundedio import CAP_CONFIG, read_capped, read_capped_text
from builder.platforms import ARCHES
from builder.release.alpine_releases import (
    EndedRelease,
    ReleaseDocument,
    ended_releases,
    fetch,
    is_url,
    supported_branches,
)

DEFAULT_MIRROR = "https://dl-cdn.alpinelinux.org/alpine"
MAX_INDEX = 32 << 20  # bytes of an APKINDEX.tar.gz read at most
_RELEASE_LINE = re.compile(r'^\s+"?(\d+\.\d+|edge)"?\s*:')

Lookup = Callable[[str], dict[str, str]]  # branch tag -> {package name: apk version}


@dataclass(frozen=True)
class MatrixChange:
    added: list[Release] = field(default_factory=list)
    dropped: list[EndedRelease] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # branches that could not be added, why

    @property
    def empty(self) -> bool:
        return not self.added and not self.dropped


def index_url(mirror: str, tag: str, arch: str = "x86_64") -> str:
    return f"{mirror.rstrip('/')}/v{tag}/main/{arch}/APKINDEX.tar.gz"


def read_index(url: str, timeout: float = 30.0) -> dict[str, str]:
    """``{package: version}`` of an APKINDEX.tar.gz at a URL or a local path."""
    if is_url(url):
        data = fetch(url, cap=MAX_INDEX, timeout=timeout)
    else:
        data = read_capped(Path(url), cap=MAX_INDEX, what="an APKINDEX.tar.gz",
                           error=NetworkError)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            member = tar.getmember("APKINDEX")
            f = tar.extractfile(member) if member.isfile() else None
            text = f.read(MAX_INDEX).decode("utf-8", "replace") if f is not None else ""
    except (tarfile.TarError, KeyError, EOFError, OSError) as e:
        raise MalformedDocumentError(f"{url}: not an APKINDEX.tar.gz ({e})") from None
    return {p.name: p.version for p in parse_installed(text)}


def mirror_lookup(mirror: str, timeout: float = 30.0) -> Lookup:
    return lambda tag: read_index(index_url(mirror, tag), timeout)


def _release_from_index(tag: str, versions: dict[str, str], arches: list[str]) -> Release:
    python = re.match(r"(3\.\d+)\.", versions.get("python3", ""))
    musl = re.match(r"(\d+\.\d+\.\d+)", versions.get("musl", ""))
    if python is None or musl is None:
        raise MalformedDocumentError(
            f"the v{tag} index has no python3 or musl record "
            f"(python3 {versions.get('python3')!r}, musl {versions.get('musl')!r})")
    return Release(tag, python[1], musl[1], tuple(arches))


def plan(doc: ReleaseDocument, matrix: Matrix, today: date, lookup: Lookup) -> MatrixChange:
    """What matrix.yaml should gain and lose, as of ``today``."""
    change = MatrixChange(dropped=ended_releases(doc, matrix, today))
    have = {r.tag for r in matrix.releases}
    for branch in supported_branches(doc, today):
        if branch.tag in have:
            continue
        arches = [a for a in ARCHES if branch.arches is None or a in branch.arches]
        try:
            change.added.append(_release_from_index(branch.tag, lookup(branch.tag), arches))
        except (NetworkError, MalformedDocumentError, InputTooLargeError) as e:
            change.notes.append(f"Alpine {branch.tag} not added: {e.message}")
    return change


def _line(release: Release) -> str:
    return (f'  "{release.tag}": {{python: "{release.python}", musl: "{release.musl}", '
            f"arches: [{', '.join(release.arches)}]}}\n")


def rewrite(text: str, change: MatrixChange, matrix: Matrix) -> str:
    """matrix.yaml's text with the ended releases' lines removed and the new ones added
    after the last release; default_release moves to the newest release if it was dropped."""
    dropped = {e.tag for e in change.dropped}
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    last = -1
    for line in lines:
        m = _RELEASE_LINE.match(line)
        if m and m[1] in dropped:
            continue
        out.append(line)
        if m or (last < 0 and line.startswith("releases:")):
            last = len(out) - 1  # new lines go after the last release (or the key)
    if last < 0:
        raise MalformedDocumentError(f"{matrix.source}: no release lines to edit")
    out[last + 1:last + 1] = [_line(r) for r in change.added]
    remaining = [r.tag for r in matrix.releases if r.tag not in dropped]
    remaining += [r.tag for r in change.added]
    if matrix.default_release in dropped and remaining:
        newest = remaining[-1]
        out = [re.sub(r'^(default_release:\s*)"?[^"\s#]+"?', rf'\g<1>"{newest}"', ln)
               for ln in out]
    return "".join(out)


def apply(matrix: Matrix, change: MatrixChange) -> None:
    """Rewrite the matrix.yaml ``matrix`` was loaded from (validated under a temporary
    name, then renamed)."""
    path = matrix.source
    text = read_capped_text(path, cap=CAP_CONFIG, what="a YAML configuration file",
                            error=ConfigError)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(rewrite(text, change, matrix))
        load_matrix(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
