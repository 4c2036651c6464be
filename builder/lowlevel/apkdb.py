"""Alpine's package database (``/lib/apk/db/installed``): records of installed packages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class ApkPackage:
    name: str
    version: str
    arch: str = ""
    license: str = ""
    origin: str = ""
    build_time: int | None = None
    commit: str = ""
    files: tuple[PurePosixPath, ...] = ()  # absolute paths inside the root

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "arch": self.arch,
            "license": self.license,
            "origin": self.origin,
            "build_time": self.build_time,
        }


def parse_installed(text: str) -> list[ApkPackage]:
    """Parse the installed database: blank-line separated records of ``X:value`` lines."""
    packages: list[ApkPackage] = []
    for record in text.split("\n\n"):
        fields: dict[str, str] = {}
        files: list[PurePosixPath] = []
        directory = PurePosixPath("/")
        for line in record.splitlines():
            if len(line) < 2 or line[1] != ":":
                continue
            key, value = line[0], line[2:]
            if key == "F":
                directory = PurePosixPath("/", value)
            elif key == "R":
                files.append(directory / value)
            elif key not in fields:
                fields[key] = value
        if "P" not in fields:
            continue
        build_time: int | None = None
        if fields.get("t", "").isdigit():
            build_time = int(fields["t"])
        packages.append(
            ApkPackage(
                name=fields["P"],
                version=fields.get("V", ""),
                arch=fields.get("A", ""),
                license=fields.get("L", ""),
                origin=fields.get("o", ""),
                build_time=build_time,
                commit=fields.get("c", ""),
                files=tuple(files),
            )
        )
    return packages

