"""release assemble: merge the outputs of many `musl-pbs build` runs into one release.

Each input directory holds one or more targets: ``cpython-X.Y.Z-linux-ARCH-musl.tar.gz``,
``.tar.zst`` and the manifest ``.json`` beside them (maybe a ``SHA256SUMS``). The release
directory gets:

- every archive and manifest (hard links where the file system allows, else copies), each
  archive's sha256 checked against its manifest (and the input's SHA256SUMS, if it lists it);
- each ``.tar.gz`` once more under python-build-standalone's name,
  ``cpython-X.Y.Z+BUILD-TRIPLE-install_only.tar.gz`` (a hard link: same bytes), for tools
  that know that naming. A GitHub release tagged BUILD is laid out as
  ``{mirror}/{BUILD}/{file}``, the layout of uv's ``UV_PYTHON_INSTALL_MIRROR``; but uv only
  rewrites the URLs of its download list with it, and its built-in list names
  python-build-standalone's own builds (their versions, ``install_only_stripped`` and their
  sha256s), so for uv point ``UV_PYTHON_DOWNLOADS_JSON_URL`` at our download-metadata.json;
- ``SHA256SUMS`` (every archive, sorted by name), ``manifest.json`` (the list of the
  per-target manifests), ``download-metadata.json`` (uv's format, see :mod:`builder.release.uvmeta`)
  and ``state.json`` (what ``musl-pbs alpine check`` compares against).

BUILD is the release's date tag, ``YYYYMMDD``: ``--build``, else the ``build`` the manifests
agree on (when they carry one), else today's date (UTC).

Nothing is written into the release directory until every input has been checked: it is
assembled in a temporary sibling directory that is renamed into place at the end, so a
failure leaves no half-written release.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.errors import (
    ChecksumMismatchError,
    DuplicateTargetError,
    ReleaseInputError,
    SymlinkedInputError,
    UsageError,
)
from builder.lowlevel.boundedio import CAP_CHECKSUMS, CAP_MANIFEST, read_capped_text
from builder.lowlevel.jsonio import dumps, read_json_object
from builder.lowlevel.outdir import check_writable_dir, unwritable, writing
from builder.naming import (
    CHECKSUMS,
    MANIFEST_INDEX,
    STATE,
    SUFFIXES,
    UV_DOWNLOADS,
    ArchiveName,
    is_build_tag,
    parse_archive_name,
    pbs_install_only_name,
    target_key,
)
from builder.release.alpine_releases import branch_of_release, load_state
from builder.release.uvmeta import download_metadata
from builder.stages.pack import sha256_file

STATE_SCHEMA = 1
_ARCHIVE_KEYS = tuple(s.lstrip(".") for s in SUFFIXES)  # manifest "archives" keys


@dataclass(frozen=True)
class TargetInput:
    """One target found in an input directory."""

    directory: Path
    manifest_path: Path
    manifest: dict[str, Any]
    name: ArchiveName
    archives: dict[str, str]  # file name -> sha256 the manifest records
    listed: dict[str, str]  # file name -> sha256 the directory's SHA256SUMS records

    @property
    def alpine_branch(self) -> str:
        """The release branch the target was built from (matrix.yaml's spelling)."""
        explicit = self.manifest.get("alpine_branch")
        if isinstance(explicit, str) and explicit:
            return explicit
        release = str(self.manifest.get("alpine_release") or "")
        branch = branch_of_release(release)
        if branch is None:
            image = str(self.manifest.get("image") or "")
            tag = image.rpartition(":")[2]
            branch = tag if tag == "edge" or branch_of_release(tag + ".0") else None
        if branch is None:
            raise ReleaseInputError(
                f"{self.manifest_path}: cannot tell the Alpine release branch "
                f"(alpine_release {release!r}, image {self.manifest.get('image')!r})"
            )
        return branch


@dataclass(frozen=True)
class Assembled:
    out: Path
    build: str
    base_url: str
    targets: tuple[str, ...]  # target keys, sorted
    files: tuple[str, ...]  # every file name in the release, sorted


def _read_sums(path: Path) -> dict[str, str]:
    sums: dict[str, str] = {}
    if not path.exists() and not path.is_symlink():
        return sums
    text = read_capped_text(path, cap=CAP_CHECKSUMS, what="a SHA256SUMS file",
                            error=ReleaseInputError, follow_symlinks=False)
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        if name:
            sums[name.lstrip("*")] = digest.strip().lower()
    return sums


def _load_manifest(path: Path) -> dict[str, Any]:
    return read_json_object(path, cap=CAP_MANIFEST, what="a manifest", error=ReleaseInputError,
                            follow_symlinks=False)


def _regular_file(path: Path, listed_in: str) -> None:
    """``path`` is a regular file of its directory, not a link to one (never followed)."""
    if path.is_symlink():
        raise SymlinkedInputError(f"{path}: is a symbolic link (listed in {listed_in})")
    if not path.is_file():
        raise ReleaseInputError(f"{path}: missing (listed in {listed_in})")


def find_targets(directory: Path) -> list[TargetInput]:
    """Every target in one `musl-pbs build` output directory (not recursive)."""
    if directory.is_symlink():
        raise SymlinkedInputError(f"{directory}: the input directory is a symbolic link")
    if not directory.is_dir():
        raise ReleaseInputError(f"{directory}: not a directory")
    listed = _read_sums(directory / CHECKSUMS)
    targets = []
    archives_seen: set[str] = set()
    for path in sorted(directory.glob("*.json")):
        name = parse_archive_name(path.name)
        if name is None or path.name != name.manifest:
            continue
        manifest = _load_manifest(path)
        raw = manifest.get("archives")
        if not isinstance(raw, dict):
            raise ReleaseInputError(f"{path}: the manifest has no 'archives'")
        archives: dict[str, str] = {}
        for key in _ARCHIVE_KEYS:
            entry = raw.get(key)
            if not isinstance(entry, dict):
                raise ReleaseInputError(f"{path}: the manifest lists no {key} archive")
            file, digest = entry.get("file"), entry.get("sha256")
            if not isinstance(file, str) or not isinstance(digest, str):
                raise ReleaseInputError(f"{path}: archives.{key} needs 'file' and 'sha256'")
            if parse_archive_name(file) != name or not file.endswith("." + key):
                raise ReleaseInputError(
                    f"{path}: archives.{key} names {file!r}, not an archive of {name.stem}"
                )
            _regular_file(directory / file, path.name)
            archives[file] = digest.lower()
        archives_seen.update(archives)
        targets.append(TargetInput(directory, path, manifest, name, archives, listed))
    for path in sorted(directory.iterdir()):
        if path.name in archives_seen or not path.name.endswith(SUFFIXES):
            continue
        orphan = parse_archive_name(path.name)
        if orphan is not None:
            raise ReleaseInputError(
                f"{path}: an archive without its manifest ({orphan.manifest} is missing)"
            )
    if not targets:
        raise ReleaseInputError(f"{directory}: holds no musl-pbs manifest (cpython-*-musl.json)")
    return targets


def _check_duplicates(targets: Sequence[TargetInput]) -> None:
    seen: dict[str, TargetInput] = {}
    for t in targets:
        for file in (*t.archives, t.name.manifest):
            first = seen.get(file)
            if first is not None:
                raise DuplicateTargetError(
                    f"{file} comes from two directories: {first.directory} and {t.directory}"
                )
            seen[file] = t


def choose_build(
    targets: Sequence[TargetInput], build: str | None, today: dt.date | None = None
) -> str:
    if build is not None:
        if not is_build_tag(build):
            raise UsageError(f"--build {build!r}: expected a date tag YYYYMMDD, e.g. 20250101")
        return build
    tags = {t.manifest.get("build") for t in targets}
    if len(tags) == 1:
        (tag,) = tags
        if isinstance(tag, str) and is_build_tag(tag):
            return tag
    day = today or dt.datetime.now(dt.UTC).date()
    return day.strftime("%Y%m%d")


def _link_or_copy(src: Path, dest: Path) -> None:
    """Hard link (else copy) the regular file ``src``: never what a symbolic link names,
    even one swapped in after the inputs were checked."""
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise SymlinkedInputError(f"{src}: is a symbolic link") from None
        raise ReleaseInputError(f"{src}: cannot read: {e.strerror}") from None
    with os.fdopen(fd, "rb") as fin:
        st = os.fstat(fin.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ReleaseInputError(f"{src}: not a regular file")
        try:
            os.link(src, dest, follow_symlinks=False)
        except OSError:
            with dest.open("xb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
            return
        linked = dest.lstat()
        if (linked.st_dev, linked.st_ino) != (st.st_dev, st.st_ino):
            dest.unlink()
            raise SymlinkedInputError(f"{src}: changed while it was being linked")


def _write_json(path: Path, data: Any) -> None:
    path.write_text(dumps(data, sort_keys=False))  # inside the temporary release directory


def state_entry(t: TargetInput, build: str) -> dict[str, Any]:
    gz = t.name.gz
    m = t.manifest
    return {
        "target": target_key(t.alpine_branch, t.name.arch),
        "alpine": t.alpine_branch,
        "alpine_release": str(m.get("alpine_release") or ""),
        "arch": t.name.arch.alpine,
        "python_version": t.name.version,
        "musl_version_needed": m.get("musl_version_needed"),
        "image": m.get("image"),
        "image_id": m.get("image_id"),
        "archive": gz,
        "sha256": t.archives[gz],
        "build": build,
    }


def make_state(
    targets: Sequence[TargetInput], build: str, previous: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """state.json: this release's targets, plus the previous state's other targets (carried
    forward with the build they come from, so a partial nightly release forgets nothing)."""
    entries = {k: dict(v) for k, v in previous.items()}
    for t in targets:
        entry = state_entry(t, build)
        entries[entry["target"]] = entry
    return {"schema": STATE_SCHEMA, "build": build,
            "targets": {k: entries[k] for k in sorted(entries)}}


def _prepare_out(out: Path, inputs: Sequence[Path]) -> None:
    if out.is_symlink():
        raise UsageError(f"--out {out}: is a symbolic link",
                         hint="name the release directory itself")
    check_writable_dir(out.parent, "--out's parent")
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"--out {out}: exists and is not a directory")
        if any(out.iterdir()):
            raise UsageError(
                f"--out {out}: exists and is not empty",
                hint="assemble into a new directory (a release is written whole, not merged)",
            )
    resolved = out.resolve()
    for d in inputs:
        if d.resolve() == resolved:
            raise UsageError(f"--out {out}: is also an input directory")


def assemble(
    directories: Sequence[Path],
    out: Path,
    *,
    base_url: str | None = None,
    build: str | None = None,
    previous_state: Path | None = None,
    today: dt.date | None = None,
    check_branches: Callable[[list[str]], object] | None = None,
) -> Assembled:
    """Merge the build outputs in ``directories`` into the release directory ``out``.

    ``check_branches`` is given the Alpine branch of every target before anything is
    written; it raises to refuse them (the end-of-life rule, :mod:`builder.release.eol`)."""
    if not directories:
        raise UsageError("release assemble needs at least one input directory")
    _prepare_out(out, directories)
    targets = [t for d in directories for t in find_targets(d)]
    _check_duplicates(targets)
    tag = choose_build(targets, build, today)
    keys = [target_key(t.alpine_branch, t.name.arch) for t in targets]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        dirs = [str(t.directory) for t, k in zip(targets, keys, strict=True) if k == dup]
        raise DuplicateTargetError(f"target {dup} comes from more than one: {', '.join(dirs)}")
    previous = load_state(previous_state) if previous_state else {}
    if check_branches is not None:  # policy, once every input has been read
        check_branches([t.alpine_branch for t in targets])
    url = base_url or out.resolve().as_uri() + "/"

    with writing(f"the release directory {out}"):
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        sums: dict[str, str] = {}
        for t in targets:
            for file, expected in t.archives.items():
                dest = tmp / file
                _link_or_copy(t.directory / file, dest)
                actual = sha256_file(dest)
                if actual != expected:
                    raise ChecksumMismatchError(
                        f"{t.directory / file}: sha256 is {actual}, but its manifest "
                        f"{t.manifest_path.name} says {expected}"
                    )
                listed = t.listed.get(file)
                if listed is not None and listed != actual:
                    raise ChecksumMismatchError(
                        f"{t.directory / file}: sha256 is {actual}, but "
                        f"{t.directory / CHECKSUMS} says {listed}"
                    )
                sums[file] = actual
            pbs = pbs_install_only_name(t.name, tag)
            os.link(tmp / t.name.gz, tmp / pbs)
            sums[pbs] = sums[t.name.gz]
            _link_or_copy(t.manifest_path, tmp / t.name.manifest)
            if (t.directory / t.name.sbom).exists() or (t.directory / t.name.sbom).is_symlink():
                _link_or_copy(t.directory / t.name.sbom, tmp / t.name.sbom)
        manifests = sorted((t.manifest for t in targets), key=lambda m: str(m.get("name")))
        (tmp / CHECKSUMS).write_text("".join(f"{d}  {n}\n" for n, d in sorted(sums.items())))
        _write_json(tmp / MANIFEST_INDEX, manifests)
        _write_json(tmp / UV_DOWNLOADS, download_metadata(manifests, url, tag))
        _write_json(tmp / STATE, make_state(targets, tag, previous))
        files = tuple(sorted(p.name for p in tmp.iterdir()))
        tmp.chmod(0o755)
        if out.exists():
            out.rmdir()  # empty: checked above
        os.rename(tmp, out)
    except OSError as e:  # reading the inputs raises typed errors (_link_or_copy)
        shutil.rmtree(tmp, ignore_errors=True)
        raise unwritable(e, f"the release directory {out}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Assembled(out, tag, url, tuple(sorted(set(keys))), files)
