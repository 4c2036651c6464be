"""Every artifact file name, made and parsed in one place."""

from __future__ import annotations

import re
from dataclasses import dataclass

from builder.platforms import ARCHES, Arch

SUFFIXES = (".tar.gz", ".tar.zst")
CHECKSUMS = "SHA256SUMS"
_STEM = re.compile(
    r"^cpython-(?P<version>3\.\d+\.\d+(?:(?:a|b|rc)\d+)?)-linux-(?P<arch>[a-z0-9_]+)-musl$"
)


@dataclass(frozen=True)
class ArchiveName:
    version: str
    arch: Arch

    @property
    def stem(self) -> str:
        return f"cpython-{self.version}-linux-{self.arch.archive_arch}-musl"

    @property
    def gz(self) -> str:
        return self.stem + ".tar.gz"

    @property
    def zst(self) -> str:
        return self.stem + ".tar.zst"

    @property
    def manifest(self) -> str:
        return self.stem + ".json"

    @property
    def sbom(self) -> str:
        """The CycloneDX SBOM beside the archive."""
        return self.stem + ".cdx.json"


def parse_archive_name(filename: str) -> ArchiveName | None:
    """``cpython-3.11.2-linux-x86_64-musl.tar.gz`` -> ArchiveName, else None."""
    for suffix in (*SUFFIXES, ".json"):
        if filename.endswith(suffix):
            m = _STEM.match(filename[: -len(suffix)])
            if m is None:
                return None
            for arch in ARCHES.values():
                if arch.archive_arch == m["arch"]:
                    return ArchiveName(m["version"], arch)
            return None
    return None


# --- release files (musl-pbs release assemble) ---

MANIFEST_INDEX = "manifest.json"  # every target's manifest, as a JSON list
STATE = "state.json"  # what the nightly check compares against
UV_DOWNLOADS = "download-metadata.json"  # uv's --python-downloads-json-url format

_BUILD_TAG = re.compile(r"^\d{8}$")
_PBS = re.compile(
    r"^cpython-(?P<version>3\.\d+\.\d+(?:(?:a|b|rc)\d+)?)\+(?P<build>\d{8})-"
    r"(?P<triple>[a-z0-9_]+-unknown-linux-[a-z]+)-install_only\.tar\.gz$"
)


def is_build_tag(tag: str) -> bool:
    """A release's BUILD tag: a date, ``YYYYMMDD`` (python-build-standalone's convention)."""
    return _BUILD_TAG.match(tag) is not None


def pbs_install_only_name(name: ArchiveName, build: str) -> str:
    """python-build-standalone's spelling of the same archive, e.g.
    ``cpython-3.12.8+20250101-x86_64-unknown-linux-musl-install_only.tar.gz``.

    ``build`` is the release's date tag (YYYYMMDD): a release tagged with it is laid out as
    ``{mirror}/{build}/{this name}``, python-build-standalone's layout.
    """
    if not is_build_tag(build):
        raise ValueError(f"build tag {build!r} is not YYYYMMDD")
    return f"cpython-{name.version}+{build}-{name.arch.target_triple}-install_only.tar.gz"


def parse_pbs_install_only_name(filename: str) -> tuple[ArchiveName, str] | None:
    """``cpython-3.12.8+20250101-x86_64-unknown-linux-musl-install_only.tar.gz`` ->
    (ArchiveName, build), else None."""
    m = _PBS.match(filename)
    if m is None:
        return None
    for arch in ARCHES.values():
        if arch.target_triple == m["triple"]:
            return ArchiveName(m["version"], arch), m["build"]
    return None


def uv_download_key(name: ArchiveName) -> str:
    """The key of an entry in uv's download-metadata.json, e.g.
    ``cpython-3.12.11-linux-x86_64-musl``, ``cpython-3.12.11-linux-armv7-musleabihf``
    (uv ignores the keys; they follow uv's own file: arch family, then libc)."""
    return f"cpython-{name.version}-linux-{name.arch.uv_family}-{name.arch.uv_libc}"


def uv_install_name(name: ArchiveName) -> str:
    """The directory uv gives this Python among its managed installs (``uv python dir``),
    e.g. ``cpython-3.12.11-linux-x86-musl``: uv finds a managed Python by this name only."""
    return f"cpython-{name.version}-linux-{name.arch.uv_arch}-{name.arch.uv_libc}"


def target_key(release_tag: str, arch: Arch) -> str:
    """One build target: an Alpine release branch and an architecture, ``3.21:x86_64`` (the
    spelling of :attr:`builder.plan.Target.name`, used by state.json and `alpine check`)."""
    return f"{release_tag}:{arch.alpine}"
