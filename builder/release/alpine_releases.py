"""Alpine's machine-readable release info, and which build targets it makes new.

Two documents are understood; which one was given is decided by its content:

- ``https://alpinelinux.org/releases.json``: a JSON object with ``latest_stable``,
  ``architectures`` and ``release_branches[]`` (each with ``rel_branch`` = ``edge`` or
  ``vX.Y``, ``arches``, ``eol_date`` and ``releases[]`` of ``{version, date}``).
- ``<mirror>/alpine/<branch>/releases/<arch>/latest-releases.yaml``: a YAML list of images
  (``title, branch, arch, version, flavor, file, date, size, sha256``). It speaks for its
  branch and its architecture only.

A target (an Alpine release branch of matrix.yaml x one of its architectures) is *new* when
the state file of the last release (``state.json``, written by ``musl-pbs release
assemble``) has no entry for it, or when the document lists a newer patch release of its
branch than the one it was built from. Branches and architectures outside the matrix, or
that the document does not speak for, never count.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from builder.config import Matrix
from builder.errors import InputTooLargeError, MalformedDocumentError, NetworkError, UsageError
from builder.lowlevel.boundedio import CAP_DOCUMENT, read_capped_text
from builder.lowlevel.jsonio import read_json
from builder.lowlevel.yamlio import parse_yaml
from builder.naming import target_key
from builder.platforms import get_arch

RELEASES_JSON = "releases.json"
LATEST_RELEASES_YAML = "latest-releases.yaml"
MAX_DOCUMENT = CAP_DOCUMENT  # bytes read from a URL or a file at most
_BRANCH = re.compile(r"^v(\d+\.\d+)$")
_RELEASE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


@dataclass(frozen=True)
class Branch:
    tag: str  # "3.21" or "edge": the spelling of matrix.yaml
    latest: str | None  # newest release listed, e.g. "3.21.3"; None when none is
    arches: frozenset[str] | None  # architectures the document speaks for; None: all
    eol: date | None = None  # end of life (releases.json's eol_date); None: unknown

    def ended(self, today: date) -> bool:
        return self.eol is not None and self.eol < today


@dataclass(frozen=True)
class ReleaseDocument:
    source: str
    kind: str  # RELEASES_JSON or LATEST_RELEASES_YAML
    branches: dict[str, Branch]


@dataclass(frozen=True)
class NewTarget:
    target: str  # target_key: "3.21:x86_64"
    alpine: str  # release branch tag, as in matrix.yaml
    arch: str  # Alpine architecture
    python: str  # the matrix's Python minor for the branch
    platform: str  # Docker platform
    image: str  # the matrix's build image
    alpine_release: str | None  # the newest release the document lists
    previous: str | None  # the release the last build came from; None: never built
    reason: str

    def to_json(self) -> dict[str, Any]:
        """One GitHub matrix entry (the keys of ``musl-pbs matrix --format github``, and more)."""
        return {
            "target": self.target,
            "alpine": self.alpine,
            "arch": self.arch,
            "python": self.python,
            "platform": self.platform,
            "image": self.image,
            "alpine_release": self.alpine_release,
            "previous": self.previous,
            "reason": self.reason,
        }


def release_tuple(version: str) -> tuple[int, int, int] | None:
    m = _RELEASE.match(version)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def branch_of_release(alpine_release: str) -> str | None:
    """``3.21.3`` -> ``3.21``; an edge snapshot (``3.22_alpha20250108``) -> ``edge``."""
    if "_alpha" in alpine_release:
        return "edge"
    parts = release_tuple(alpine_release)
    return f"{parts[0]}.{parts[1]}" if parts else None


def _branch_tag(value: object, source: str, where: str) -> str:
    if value == "edge":
        return "edge"
    m = _BRANCH.match(value) if isinstance(value, str) else None
    if m is None:
        raise MalformedDocumentError(
            f"{source}: {where}: branch {value!r} is neither 'edge' nor like 'v3.21'"
        )
    return m[1]


def _newest(versions: list[str]) -> str | None:
    known = [(t, v) for v in versions if (t := release_tuple(v)) is not None]
    return max(known)[1] if known else None


def _str_list(value: object, source: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MalformedDocumentError(f"{source}: {where} must be a list of strings")
    return list(value)


def _eol(value: object, source: str, where: str) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise MalformedDocumentError(f"{source}: {where}: {value!r} is not a date "
                                     "like 2026-11-01") from None


def _from_releases_json(data: Mapping[str, Any], source: str) -> ReleaseDocument:
    branches_raw = data.get("release_branches")
    if not isinstance(branches_raw, list):
        raise MalformedDocumentError(f"{source}: 'release_branches' must be a list")
    default_arches = None
    if "architectures" in data:
        default_arches = frozenset(_str_list(data["architectures"], source, "'architectures'"))
    branches: dict[str, Branch] = {}
    for i, entry in enumerate(branches_raw):
        where = f"release_branches[{i}]"
        if not isinstance(entry, dict):
            raise MalformedDocumentError(f"{source}: {where} must be an object")
        tag = _branch_tag(entry.get("rel_branch"), source, f"{where}.rel_branch")
        arches = default_arches
        if "arches" in entry:
            arches = frozenset(_str_list(entry["arches"], source, f"{where}.arches"))
        releases = entry.get("releases", [])
        if not isinstance(releases, list):
            raise MalformedDocumentError(f"{source}: {where}.releases must be a list")
        versions = []
        for j, rel in enumerate(releases):
            version = rel.get("version") if isinstance(rel, dict) else None
            if not isinstance(version, str):
                raise MalformedDocumentError(
                    f"{source}: {where}.releases[{j}] needs a 'version' string"
                )
            versions.append(version)
        branches[tag] = Branch(tag, _newest(versions), arches,
                               _eol(entry.get("eol_date"), source, f"{where}.eol_date"))
    if not branches:
        raise MalformedDocumentError(f"{source}: 'release_branches' is empty")
    return ReleaseDocument(source, RELEASES_JSON, branches)


def _from_latest_releases(items: list[Any], source: str) -> ReleaseDocument:
    if not items:
        raise MalformedDocumentError(f"{source}: the list of releases is empty")
    versions: dict[str, list[str]] = {}
    arches: dict[str, set[str]] = {}
    for i, item in enumerate(items):
        where = f"item {i}"
        if not isinstance(item, dict):
            raise MalformedDocumentError(f"{source}: {where} must be a mapping")
        if isinstance(item.get("title"), str):
            where = f"item {i} ({item['title']})"
        for key in ("branch", "arch"):
            if not isinstance(item.get(key), str):
                raise MalformedDocumentError(f"{source}: {where} needs a '{key}' string")
        tag = _branch_tag(item["branch"], source, where)
        arches.setdefault(tag, set()).add(item["arch"])
        version = item.get("version")
        if isinstance(version, (str, int)) and not isinstance(version, bool):
            versions.setdefault(tag, []).append(str(version))  # edge's is a date: 20250108
        elif version is not None:
            raise MalformedDocumentError(f"{source}: {where}: 'version' must be a string")
    if not versions:
        raise MalformedDocumentError(f"{source}: no item has a 'version'")
    branches = {
        tag: Branch(tag, _newest(versions.get(tag, [])), frozenset(arches[tag]))
        for tag in arches
    }
    return ReleaseDocument(source, LATEST_RELEASES_YAML, branches)


def parse_document(text: str, source: str) -> ReleaseDocument:
    """releases.json or latest-releases.yaml text -> :class:`ReleaseDocument`."""
    data: Any
    try:
        data = json.loads(text)
    except RecursionError:
        raise MalformedDocumentError(f"{source}: JSON nested too deeply") from None
    except ValueError as json_error:
        try:
            data, _node = parse_yaml(text, source, MalformedDocumentError)
        except MalformedDocumentError as e:
            raise MalformedDocumentError(
                f"{source}: neither JSON (releases.json: {json_error}) nor YAML "
                f"(latest-releases.yaml: {e.message.removeprefix(source + ':')})"
            ) from None
    if isinstance(data, dict):
        if "release_branches" not in data:
            raise MalformedDocumentError(
                f"{source}: an object without 'release_branches': not Alpine's releases.json"
            )
        return _from_releases_json(data, source)
    if isinstance(data, list):
        return _from_latest_releases(data, source)
    raise MalformedDocumentError(
        f"{source}: expected releases.json (an object) or latest-releases.yaml (a list), "
        f"got {type(data).__name__}"
    )


def is_url(source: str) -> bool:
    return source.startswith(("https://", "http://", "file://"))


def fetch(url: str, *, cap: int, timeout: float, hint: str | None = None) -> bytes:
    """The body of ``url`` (urllib, ``timeout`` seconds), at most ``cap`` bytes."""
    import urllib.error  # here: urllib.request (http.client, email) costs every start 40 ms
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": "musl-pbs"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: bytes = response.read(cap + 1)
    except (urllib.error.URLError, OSError) as e:
        raise NetworkError(f"cannot read {url}: {getattr(e, 'reason', e)}", hint=hint) \
            from None
    if len(body) > cap:
        raise InputTooLargeError(f"{url}: over its cap of {cap} bytes")
    return body


def read_document(source: str, timeout: float = 20.0) -> ReleaseDocument:
    """Read a document from a path, or from a URL (urllib, ``timeout`` seconds)."""
    if is_url(source):
        body = fetch(source, cap=MAX_DOCUMENT, timeout=timeout,
                     hint="check the network, or pass a saved copy with --releases FILE")
        text = body.decode("utf-8", errors="replace")
    else:
        text = read_capped_text(Path(source), cap=MAX_DOCUMENT, what="a release document",
                                error=UsageError)
    return parse_document(text, source)


def load_state(path: Path) -> dict[str, dict[str, Any]]:
    """state.json -> {target key: entry}. A missing file is an empty state (all is new)."""
    if not path.exists() and not path.is_symlink():
        return {}
    data = read_json(path, cap=CAP_DOCUMENT, what="state.json", error=MalformedDocumentError)
    targets = data.get("targets") if isinstance(data, dict) else None
    if not isinstance(targets, dict):
        raise MalformedDocumentError(
            f"{path}: expected an object with 'targets' (the state.json of "
            "`musl-pbs release assemble`)"
        )
    for key, entry in targets.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("alpine_release"), str):
            raise MalformedDocumentError(f"{path}: targets[{key!r}] needs 'alpine_release'")
    return targets


def new_targets(
    doc: ReleaseDocument, state: Mapping[str, Mapping[str, Any]], matrix: Matrix
) -> list[NewTarget]:
    """The matrix targets that the document makes new, in matrix order."""
    out = []
    for release in matrix.releases:
        branch = doc.branches.get(release.tag)
        if branch is None:
            continue
        for arch_name in release.arches:
            if branch.arches is not None and arch_name not in branch.arches:
                continue
            arch = get_arch(arch_name)
            key = target_key(release.tag, arch)
            built = state.get(key)
            previous = str(built["alpine_release"]) if built is not None else None
            if previous is None:
                reason = "never built"
            elif branch.latest is not None and _newer(branch.latest, previous):
                reason = f"Alpine {branch.latest} is out (last built from {previous or '?'})"
            else:
                continue
            out.append(NewTarget(key, release.tag, arch.alpine, release.python,
                                 arch.docker_platform, matrix.image_for(release.tag, arch.alpine),
                                 branch.latest, previous, reason))
    return out


def _newer(latest: str, previous: str) -> bool:
    new, old = release_tuple(latest), release_tuple(previous)
    if new is None:
        return False
    return old is None or new > old


@dataclass(frozen=True)
class EndedRelease:
    tag: str  # matrix.yaml's release tag
    eol: date

    def describe(self) -> str:
        return f"Alpine {self.tag} is past its end of life ({self.eol.isoformat()})"


def ended_releases(doc: ReleaseDocument, matrix: Matrix, today: date) -> list[EndedRelease]:
    """The matrix's releases whose branch the document says has ended before ``today``."""
    out = []
    for release in matrix.releases:
        branch = doc.branches.get(release.tag)
        if branch is not None and branch.eol is not None and branch.ended(today):
            out.append(EndedRelease(release.tag, branch.eol))
    return out


def supported_branches(doc: ReleaseDocument, today: date) -> list[Branch]:
    """The stable branches (not edge) that have not ended, oldest first."""
    stable = [b for b in doc.branches.values() if b.tag != "edge" and not b.ended(today)]
    return sorted(stable, key=lambda b: tuple(int(p) for p in b.tag.split(".")))
