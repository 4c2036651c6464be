"""Real Debian packages for `detect`'s test trees, fetched once and cached.

A private apt state (its own sources, lists and archive dirs under
``~/.cache/musl-pbs/detect-apt``) lets ``apt-get download`` fetch foreign-architecture
packages without ``dpkg --add-architecture``: the host's dpkg and apt configuration are
never touched. Downloads are kept in ``~/.cache/musl-pbs/debs/`` under their Debian file
name (package, version, arch), so a later run needs no network at all. The mirror's
foreign indexes are sometimes served inconsistent ("Mirror sync in progress?"): the index
update is retried, a cached .deb of the same package and arch is used when the index is
unusable, and otherwise the test is skipped with the reason instead of hanging.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "musl-pbs"
DEB_CACHE = CACHE / "debs"
APT_STATE = CACHE / "detect-apt"
MIRROR = os.environ.get("MUSL_PBS_DEBIAN_MIRROR", "http://deb.debian.org/debian")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
BOOKWORM_ARCHES = ("amd64", "i386", "armhf", "armel", "arm64", "s390x", "ppc64el")
TRIXIE_ARCHES = ("amd64",)
_MAX_INDEX_AGE = 7 * 24 * 3600
_TIMEOUT = 300

_SOURCES = f"""\
Types: deb
URIs: {MIRROR}
Suites: bookworm
Components: main
Architectures: {" ".join(BOOKWORM_ARCHES)}
Signed-By: {KEYRING}

Types: deb
URIs: {MIRROR}
Suites: trixie
Components: main
Architectures: {" ".join(TRIXIE_ARCHES)}
Signed-By: {KEYRING}
"""

_updated: list[bool] = []  # once per session


def _apt_options() -> list[str]:
    arches = sorted({*BOOKWORM_ARCHES, *TRIXIE_ARCHES})
    opts = [
        f"-oDir::State::Lists={APT_STATE / 'lists'}",
        f"-oDir::State::status={APT_STATE / 'status'}",
        f"-oDir::Cache={APT_STATE / 'cache'}",
        f"-oDir::Etc::SourceList={APT_STATE / 'sources.sources'}",
        "-oDir::Etc::SourceParts=/dev/null",
        "-oDir::Etc::Preferences=/dev/null",
        "-oDir::Etc::PreferencesParts=/dev/null",
        "-oAPT::Sandbox::User=root",
        "-oAcquire::Retries=2",
        "-oAcquire::http::Timeout=30",
        "-oAPT::Architecture=amd64",
        "-oAPT::Architectures::=",  # reset, then list ours
    ]
    opts += [f"-oAPT::Architectures::={a}" for a in arches]
    return opts


def _apt(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["apt-get", *_apt_options(), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=_TIMEOUT, check=False)


def _prepare_state() -> None:
    for d in ("lists/partial", "cache/archives/partial"):
        (APT_STATE / d).mkdir(parents=True, exist_ok=True)
    (APT_STATE / "status").touch()
    src = APT_STATE / "sources.sources"
    if not src.exists() or src.read_text() != _SOURCES:
        src.write_text(_SOURCES)
        for old in (APT_STATE / "lists").glob("*_Packages*"):
            old.unlink()


def _index_fresh() -> bool:
    lists = list((APT_STATE / "lists").glob("*_Packages*"))
    want = len(BOOKWORM_ARCHES) + len(TRIXIE_ARCHES)
    return len(lists) >= want and all(
        time.time() - p.stat().st_mtime < _MAX_INDEX_AGE for p in lists)


def update_index() -> str | None:
    """Refresh the private index (at most once per session). Returns the last error."""
    if _updated:
        return None
    _prepare_state()
    if _index_fresh():
        _updated.append(True)
        return None
    error = "apt-get update was not run"
    for attempt in range(3):
        try:
            out = _apt("update")
        except subprocess.TimeoutExpired:
            error = f"apt-get update timed out after {_TIMEOUT}s"
            continue
        failed = [ln for ln in out.stderr.splitlines() if ln.startswith(("E:", "W: Failed"))]
        if out.returncode == 0 and not failed:
            _updated.append(True)
            return None
        error = "\n".join(failed)[-1500:] or out.stderr.strip()[-1500:]
        if attempt < 2:
            time.sleep(5)  # "Mirror sync in progress?" is transient
    _updated.append(True)  # use what arrived; a missing index shows up per package
    return error


def _record(pkg: str, arch: str, suite: str) -> Path:
    """Which cached file a spec last resolved to (used when the index is unusable)."""
    return DEB_CACHE / f"{pkg}_{arch}_{suite}.last"


def _cached(pkg: str, arch: str, suite: str) -> Path | None:
    rec = _record(pkg, arch, suite)
    if rec.is_file():
        deb = DEB_CACHE / rec.read_text().strip()
        if deb.is_file():
            return deb
    return None


def _remember(pkg: str, arch: str, suite: str, deb: Path) -> Path:
    _record(pkg, arch, suite).write_text(deb.name + "\n")
    return deb


def _split(spec: str) -> tuple[str, str, str]:
    name, suite = spec.split("/", 1)
    pkg, arch = name.split(":", 1)
    return pkg, arch, suite


def fetch(*specs: str) -> list[Path]:
    """``pkg:arch/suite`` (e.g. ``libc6:armhf/bookworm``) -> cached .deb files.

    A spec fetched before is answered from the cache without asking apt (any real build of
    the package will do for these tests); the others are looked up and downloaded together.
    """
    DEB_CACHE.mkdir(parents=True, exist_ok=True)
    found = {spec: _cached(*_split(spec)) for spec in specs}
    missing = [spec for spec, deb in found.items() if deb is None]
    while missing:
        # One apt call per batch; a batch never holds one package:arch twice (two suites).
        batch: dict[str, str] = {}
        for spec in missing:
            batch.setdefault(spec.split("/", 1)[0], spec)
        group = list(batch.values())
        for spec, deb in zip(group, _download(group), strict=True):
            found[spec] = deb
        missing = [spec for spec in missing if spec not in group]
    return [d for d in found.values() if d is not None]


def _download(specs: list[str]) -> list[Path]:
    update_error = update_index()
    why = ""
    try:
        uris = _apt("download", "--print-uris", *specs)
        why = uris.stderr.strip()[-800:]
        names = {f[1] for f in (ln.split() for ln in uris.stdout.splitlines()) if len(f) >= 2}
    except subprocess.TimeoutExpired:
        names, why = set(), f"apt-get timed out after {_TIMEOUT}s"
    with tempfile.TemporaryDirectory(dir=DEB_CACHE) as tmp:
        if names and len(names) == len(specs):
            for _ in range(3):
                try:
                    got = _apt("download", *specs, cwd=Path(tmp))
                except subprocess.TimeoutExpired:
                    why = f"apt-get download timed out after {_TIMEOUT}s"
                    continue
                if got.returncode == 0:
                    break
                why = got.stderr.strip()[-800:]
                time.sleep(3)
        result = []
        for spec in specs:
            pkg, arch, suite = _split(spec)
            name = next((n for n in names if n.startswith(f"{pkg}_") and
                         n.endswith(f"_{arch}.deb")), None)
            if name is not None and (Path(tmp) / name).is_file():
                os.replace(Path(tmp) / name, DEB_CACHE / name)
            if name is not None and (DEB_CACHE / name).is_file():
                result.append(_remember(pkg, arch, suite, DEB_CACHE / name))
                continue
            pytest.skip(f"cannot fetch {spec} from {MIRROR} (and none cached in {DEB_CACHE}): "
                        f"{why or 'no download URI'}"
                        + (f"; index update: {update_error[-500:]}" if update_error else ""))
    return result


def extract(deb: Path, root: Path) -> None:
    """Unpack a .deb's files into ``root`` (maintainer scripts are not run)."""
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, timeout=_TIMEOUT)


def tree(root: Path, *specs: str) -> Path:
    """A root filesystem holding the files of the given packages."""
    if shutil.which("dpkg-deb") is None or shutil.which("apt-get") is None:
        pytest.skip("needs apt-get and dpkg-deb (a Debian host)")
    for deb in fetch(*specs):
        extract(deb, root)
    return root


def merge_usr(root: Path) -> None:
    """The links debootstrap makes on a merged-/usr system (trixie packages need them)."""
    for d in ("bin", "sbin", "lib", "lib64"):
        (root / "usr" / d).mkdir(parents=True, exist_ok=True)
        link = root / d
        if not link.exists() and not link.is_symlink():
            link.symlink_to(f"usr/{d}")
