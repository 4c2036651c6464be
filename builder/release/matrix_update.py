"""Follow Alpine: matrix.yaml gains the branches Alpine supports and loses the ended ones.

A new branch's Python minor and musl come from its own package index
(``<mirror>/v<tag>/main/x86_64/APKINDEX.tar.gz``: the ``python3`` and ``musl`` records),
its architectures and end of life from Alpine's releases.json; the ``eol`` of the releases
the matrix keeps follows releases.json's ``eol_date`` too. When the default release is
dropped, the oldest remaining one becomes the default. The file is edited line by line, so its
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
    eol: dict[str, date] = field(default_factory=dict)  # kept release -> releases.json's eol

    @property
    def empty(self) -> bool:
        return not self.added and not self.dropped and not self.eol


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


def _release_from_index(tag: str, versions: dict[str, str], arches: list[str],
                        eol: date | None = None) -> Release:
    python = re.match(r"(3\.\d+)\.", versions.get("python3", ""))
    musl = re.match(r"(\d+\.\d+\.\d+)", versions.get("musl", ""))
    if python is None or musl is None:
        raise MalformedDocumentError(
            f"the v{tag} index has no python3 or musl record "
            f"(python3 {versions.get('python3')!r}, musl {versions.get('musl')!r})")
    return Release(tag, python[1], musl[1], tuple(arches), eol)


def plan(doc: ReleaseDocument, matrix: Matrix, today: date, lookup: Lookup) -> MatrixChange:
    """What matrix.yaml should gain and lose, as of ``today``."""
    change = MatrixChange(dropped=ended_releases(doc, matrix, today))
    dropped = {e.tag for e in change.dropped}
    for release in matrix.releases:
        branch = doc.branches.get(release.tag)
        if (release.tag not in dropped and branch is not None and branch.eol is not None
                and branch.eol != release.eol):
            change.eol[release.tag] = branch.eol
    have = {r.tag for r in matrix.releases}
    for branch in supported_branches(doc, today):
        if branch.tag in have:
            continue
        arches = [a for a in ARCHES if branch.arches is None or a in branch.arches]
        try:
            change.added.append(_release_from_index(branch.tag, lookup(branch.tag), arches,
                                                    branch.eol))
        except (NetworkError, MalformedDocumentError, InputTooLargeError) as e:
            change.notes.append(f"Alpine {branch.tag} not added: {e.message}")
    return change


def _line(release: Release) -> str:
    eol = f'eol: "{release.eol.isoformat()}", ' if release.eol else ""
    return (f'  "{release.tag}": {{python: "{release.python}", musl: "{release.musl}", '
            f"{eol}arches: [{', '.join(release.arches)}]}}\n")


_EOL_VALUE = re.compile(r"""(\beol:\s*)("[^"]*"|'[^']*'|[0-9-]+)""")


def _set_eol(lines: list[str], tag: str, eol: date) -> None:
    """Write ``eol`` into release ``tag``'s entry: a flow mapping on its line, or a block
    mapping on the lines below it (the value replaced, or a line added)."""
    value = f'"{eol.isoformat()}"'
    for i, line in enumerate(lines):
        m = _RELEASE_LINE.match(line)
        if not m or m[1] != tag:
            continue
        if "{" in line:
            if _EOL_VALUE.search(line):
                lines[i] = _EOL_VALUE.sub(lambda g: g[1] + value, line, count=1)
            else:
                lines[i] = line.replace("{", "{eol: " + value + ", ", 1)
            return
        indent = len(line) - len(line.lstrip())
        j = i + 1
        inner = None
        while j < len(lines) and (not lines[j].strip() or
                                  len(lines[j]) - len(lines[j].lstrip()) > indent):
            if lines[j].strip() and inner is None:
                inner = lines[j][:len(lines[j]) - len(lines[j].lstrip())]
            if re.match(r"\s+eol\s*:", lines[j]):
                lines[j] = _EOL_VALUE.sub(lambda g: g[1] + value, lines[j], count=1)
                return
            j += 1
        lines.insert(i + 1, f"{inner or ' ' * (indent + 2)}eol: {value}\n")
        return


def rewrite(text: str, change: MatrixChange, matrix: Matrix) -> str:
    """matrix.yaml's text with the ended releases' lines removed, the new ones added after
    the last release and the kept ones' eol set; default_release moves to the oldest
    remaining release if it was dropped."""
    dropped = {e.tag for e in change.dropped}
    lines = text.splitlines(keepends=True)
    for tag, eol in change.eol.items():
        _set_eol(lines, tag, eol)
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
    stable = sorted((t for t in remaining if t != "edge"),
                    key=lambda t: tuple(int(p) for p in t.split(".")))
    if matrix.default_release in dropped and (stable or remaining):
        oldest = (stable or remaining)[0]
        out = [re.sub(r'^(default_release:\s*)"?[^"\s#]+"?', rf'\g<1>"{oldest}"', ln)
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
