"""uv's download-metadata.json, made from our manifests (a pure function: no I/O).

uv reads this map through ``UV_PYTHON_DOWNLOADS_JSON_URL`` / ``--python-downloads-json-url``
(an http(s) URL, a ``file://`` URL or a plain path). Each entry::

    "cpython-3.12.11-linux-x86_64-musl": {
        "name": "cpython", "arch": {"family": "x86_64", "variant": null},
        "os": "linux", "libc": "musl", "major": 3, "minor": 12, "patch": 11,
        "prerelease": "", "url": "...", "sha256": "...", "variant": null, "build": "20250101"
    }

uv ignores the keys. For a request like ``3.12`` older uv took the first matching entry in
file order (uv 0.13 sorts the entries itself), so entries are written newest version first,
as uv's own file is.
uv matches ``arch.family`` and ``libc`` exactly against the host it runs on, so both come
from the arch table: ``arch.family`` is :attr:`builder.platforms.Arch.uv_family`, ``libc`` is
:attr:`builder.platforms.Arch.uv_libc` (``musleabihf`` on armv7 and armhf: uv answers a
``musl`` entry there with "uv does not yet provide musl Python distributions on armv7").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from builder.errors import ReleaseInputError
from builder.naming import ArchiveName, parse_archive_name, uv_download_key

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:(a|b|rc)(\d+))?$")
_PRE_RANK = {"a": 0, "b": 1, "rc": 2}
FINAL = 3  # a final release sorts after its pre-releases


def version_parts(version: str) -> tuple[int, int, int, str]:
    """``3.13.0rc2`` -> (3, 13, 0, "rc2"); ``3.12.8`` -> (3, 12, 8, "")."""
    m = _VERSION.match(version)
    if m is None:
        raise ValueError(f"not a CPython version: {version!r}")
    pre = f"{m[4]}{m[5]}" if m[4] else ""
    return int(m[1]), int(m[2]), int(m[3]), pre


def version_sort_key(version: str) -> tuple[int, int, int, int, int]:
    m = _VERSION.match(version)
    if m is None:
        raise ValueError(f"not a CPython version: {version!r}")
    rank = _PRE_RANK[m[4]] if m[4] else FINAL
    return int(m[1]), int(m[2]), int(m[3]), rank, int(m[5] or 0)


def _archive(manifest: Mapping[str, Any], suffix: str) -> tuple[ArchiveName, str, str]:
    """(name, file, sha256) of the manifest's archive with ``suffix`` (``tar.gz``)."""
    where = manifest.get("name", "a manifest")
    archives = manifest.get("archives")
    entry = archives.get(suffix) if isinstance(archives, Mapping) else None
    if not isinstance(entry, Mapping):
        raise ReleaseInputError(f"{where}: the manifest lists no {suffix} archive")
    file, sha256 = entry.get("file"), entry.get("sha256")
    if not isinstance(file, str) or not isinstance(sha256, str):
        raise ReleaseInputError(f"{where}: archives.{suffix} needs 'file' and 'sha256'")
    name = parse_archive_name(file)
    if name is None:
        raise ReleaseInputError(f"{where}: {file!r} is not a musl-pbs archive name")
    return name, file, sha256


def download_entry(manifest: Mapping[str, Any], url: str, build: str | None) -> dict[str, Any]:
    name, _, sha256 = _archive(manifest, "tar.gz")
    major, minor, patch, pre = version_parts(name.version)
    return {
        "name": "cpython",
        "arch": {"family": name.arch.uv_family, "variant": None},
        "os": "linux",
        "libc": name.arch.uv_libc,
        "major": major,
        "minor": minor,
        "patch": patch,
        "prerelease": pre,
        "url": url,
        "sha256": sha256,
        "variant": None,
        "build": build,
    }


def file_url(base_url: str, filename: str) -> str:
    """``base_url`` (a directory URL, with or without its final ``/``) + the quoted name."""
    return base_url.rstrip("/") + "/" + quote(filename)


def download_metadata(
    manifests: Iterable[Mapping[str, Any]], base_url: str, build: str | None = None
) -> dict[str, dict[str, Any]]:
    """Our manifests -> uv's download-metadata.json map (newest version first).

    Each entry points at the target's ``.tar.gz`` at ``base_url``; ``build`` is the
    release's BUILD tag (uv shows it as ``+BUILD``), or None.
    """
    rows = []
    for manifest in manifests:
        name, file, _ = _archive(manifest, "tar.gz")
        rows.append((name, download_entry(manifest, file_url(base_url, file), build)))
    rows.sort(key=lambda r: r[0].arch.uv_family)
    rows.sort(key=lambda r: version_sort_key(r[0].version), reverse=True)  # stable
    out: dict[str, dict[str, Any]] = {}
    for name, entry in rows:
        key = uv_download_key(name)
        if key in out:
            raise ReleaseInputError(f"two manifests describe {key}")
        out[key] = entry
    return out
