"""Expand the matrix into build targets. Pure: no Docker, no files."""

from __future__ import annotations

from dataclasses import dataclass

from builder.config import Matrix
from builder.errors import UsageError
from builder.naming import target_key
from builder.platforms import Arch, get_arch


@dataclass(frozen=True)
class Target:
    release: str  # Alpine tag, e.g. "3.19"
    arch: Arch
    python: str  # expected minor, e.g. "3.11"
    image: str

    @property
    def name(self) -> str:
        """``3.19:x86_64`` — how targets are named on the command line and in logs."""
        return target_key(self.release, self.arch)

    def to_json(self) -> dict[str, str]:
        return {
            "target": self.name,
            "alpine": self.release,
            "arch": self.arch.alpine,
            "python": self.python,
            "platform": self.arch.docker_platform,
            "image": self.image,
        }


def expand(matrix: Matrix, *, releases: list[str] | None = None,
           arches: list[str] | None = None) -> list[Target]:
    """Every release x arch of the matrix, optionally narrowed, in matrix order."""
    wanted_arches = {get_arch(a).alpine for a in arches} if arches else None
    if releases:
        unknown = [r for r in releases if matrix.release(r) is None]
        if unknown:
            raise UsageError(
                f"release(s) {', '.join(unknown)} are not in {matrix.source}",
                hint=f"the matrix has: {', '.join(r.tag for r in matrix.releases)}",
            )
    out = []
    for rel in matrix.releases:
        if releases and rel.tag not in releases:
            continue
        for a in rel.arches:
            if wanted_arches is not None and a not in wanted_arches:
                continue
            out.append(Target(rel.tag, get_arch(a), rel.python, matrix.image_for(rel.tag, a)))
    return out


def select(matrix: Matrix, names: list[str]) -> list[Target]:
    """Targets named ``TAG:ARCH`` (``ARCH`` alone means the default release)."""
    everything = {t.name: t for t in expand(matrix)}
    out = []
    for name in names:
        tag, _, arch = name.rpartition(":")
        key = f"{tag or matrix.default_release}:{get_arch(arch).alpine}"
        if key not in everything:
            raise UsageError(
                f"target {name!r} is not in {matrix.source}",
                hint="list them with `musl-pbs matrix`; targets are named TAG:ARCH",
            )
        out.append(everything[key])
    return out
