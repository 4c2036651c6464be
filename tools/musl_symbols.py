#!/usr/bin/env python3
"""Build builder/data/musl_symbols.json: the dynamic symbols each musl release exports,
per architecture, read from real libc files (nothing is executed).

    tools/musl_symbols.py [--out builder/data/musl_symbols.json] SOURCE...

A SOURCE is an Alpine minirootfs tarball (its lib/ld-musl-*.so.1, the musl version from
its lib/apk/db/installed and the release from etc/alpine-release), or
`debian:VERSION:ARCH:PATH` for a libc.so from a distribution package (e.g. Debian
bookworm's musl 1.2.3: `debian:1.2.3:x86_64:/usr/lib/x86_64-linux-musl/libc.so`).
The loader's LFS64 compatibility list (musl >= 1.2.4 resolves `foo64` to `foo` for the
names in it) is recorded too.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import sys
import tarfile
import tempfile
from pathlib import Path

from builder.lowlevel.apkdb import parse_installed
from builder.lowlevel.apkversion import compare, upstream_version
from builder.lowlevel.elf import dynamic_symbols
from builder.lowlevel.muslfloor import lfs64_names
from builder.platforms import ARCHES


def from_minirootfs(tarball: Path) -> dict[str, object]:
    with tarfile.open(tarball) as tar, tempfile.TemporaryDirectory() as tmp:
        members = {m.name.lstrip("./"): m for m in tar.getmembers()}
        loader = next(n for n in members if n.startswith("lib/ld-musl-") and members[n].isfile())
        db = tar.extractfile(members["lib/apk/db/installed"])
        release_file = tar.extractfile(members["etc/alpine-release"])
        assert db is not None and release_file is not None
        release = release_file.read().decode().strip()
        musl = next(p for p in parse_installed(db.read().decode()) if p.name == "musl")
        f = tar.extractfile(members[loader])
        assert f is not None
        data = f.read()
        path = Path(tmp, "loader")
        path.write_bytes(data)
        syms = dynamic_symbols(path)
    assert syms is not None
    musl_arch = loader.removeprefix("lib/ld-musl-").removesuffix(".so.1")
    arches = [a.alpine for a in ARCHES.values() if a.musl_arch == musl_arch]
    arch = next((a for a in arches if a in tarball.name), arches[0])
    return {
        "musl": upstream_version(musl.version), "apk_version": musl.version, "arch": arch,
        "distribution": f"Alpine {release}",
        "file": f"{tarball.name}:{loader}", "sha256": hashlib.sha256(data).hexdigest(),
        "exports": sorted(syms.defined), "lfs64": lfs64_names(data),
    }


def from_file(spec: str) -> dict[str, object]:
    distro, version, arch, path = spec.split(":", 3)
    data = Path(path).read_bytes()
    syms = dynamic_symbols(Path(path))
    assert syms is not None
    return {
        "musl": version, "apk_version": None, "arch": arch,
        "distribution": f"{distro.capitalize()} package musl {version}", "file": path,
        "sha256": hashlib.sha256(data).hexdigest(), "exports": sorted(syms.defined),
        "lfs64": lfs64_names(data),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("builder/data/musl_symbols.json"))
    parser.add_argument("sources", nargs="+")
    args = parser.parse_args(argv)
    sets = [from_file(s) if s.startswith("debian:") else from_minirootfs(Path(s))
            for s in args.sources]
    common = set.intersection(*(set(s["exports"]) for s in sets))  # type: ignore[arg-type]
    for s in sets:
        s["extra"] = sorted(set(s.pop("exports")) - common)  # type: ignore[arg-type]
    sets.sort(key=lambda s: (str(s["arch"]), str(s["musl"])))
    versions = sorted({str(s["musl"]) for s in sets}, key=functools.cmp_to_key(compare))
    doc = {
        "schema": 1,
        "made_by": "tools/musl_symbols.py " + " ".join(Path(s).name for s in args.sources),
        "note": "exports of each set = common + extra; a name foo64 also resolves when foo "
                "is in the set's lfs64 list (musl >= 1.2.4's loader maps it)",
        "versions": versions,
        "common": sorted(common),
        "sets": sets,
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{args.out}: {len(sets)} sets, versions {versions}, {len(common)} common names",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
