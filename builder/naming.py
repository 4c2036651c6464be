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
