"""Every subcommand against a table of malformed inputs: each ends in a typed error (its exit
code, a message naming the input, a hint), never a traceback.

Each case runs ``builder.cli.main(argv)`` in-process (an uncaught exception fails the
test); the unreadable-directories case of ``detect`` runs as the user nobody in a
subprocess, whose whole output is checked for a traceback. ``install`` is run as if this
(glibc) host were musl: detection is swapped at the module boundary, everything after it
is real. Read-only and full file systems are real tmpfs mounts (skipped where mounting is
not allowed).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from builder import errors
from builder.cli import main
from builder.config import load_matrix
from builder.errors import ConfigError
from builder.host.detect import Detection
from builder.lowlevel.boundedio import CAP_CONFIG, CAP_MANIFEST, MIB
from builder.naming import ArchiveName
from builder.platforms import get_arch
from builder.progress import NullReporter
from builder.stages.pack import Packed, pack

REPO = Path(__file__).resolve().parents[2]
X86_64 = get_arch("x86_64")
NAME = ArchiveName("3.11.2", X86_64)
INFO = {"arch": "x86_64", "python_version": "3.11.2", "musl_version_needed": "1.2.4",
        "alpine_release": "3.19.0", "image": "alpine:3.19", "name": NAME.stem}

BOMB_YAML = "\n".join(
    ['image: "alpine:{tag}"', 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi",
                                                                   strict=True)]
) + "\n"


# ---------------------------------------------------------------------------- inputs


def _tree(base: Path) -> Path:
    tree = base / "python"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "python3").write_text("#!/bin/sh\necho hi\n")
    return tree


def release_dir(tmp: Path, name: str = "dist") -> Packed:
    """A real `build --out` directory of one (tiny) target: archives, manifest, sums."""
    return pack(_tree(tmp / f"tree-{name}"), NAME, tmp / name, dict(INFO), 1000,
                NullReporter())


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def truncate(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def garbage(path: Path) -> Path:
    path.write_bytes(os.urandom(4096))
    return path


def huge_json(path: Path, size: int = CAP_MANIFEST + MIB) -> Path:
    with path.open("w") as f:
        f.write('{"pad": "')
        f.write("x" * size)
        f.write('"}')
    return path


def archive_with_info(path: Path, info: bytes) -> Path:
    """An archive laid out like ours whose python/musl-pbs.json is ``info``."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("python/bin/python3", b"#!/bin/sh\n"),
                           ("python/musl-pbs.json", info)):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return path


def gz_of_spaces(size: int) -> bytes:
    """``{}`` padded with ``size`` spaces: valid JSON, tiny once compressed."""
    return b"{" + b" " * size + b"}"


# ---------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Env:
    tmp: Path
    readonly: Callable[[], Path]  # a directory on a read-only file system
    full: Callable[[], Path]  # a directory on a tiny (64 KiB) file system


@dataclass(frozen=True)
class Case:
    setup: Callable[[Env], list[str]]  # -> argv
    code: int
    message: str
    musl_host: bool = False  # install: pretend this host is musl x86_64


def _matrix(e: Env, text: str | bytes) -> str:
    path = e.tmp / "matrix.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


def _dir(e: Env, name: str) -> str:
    (e.tmp / name).mkdir()
    return str(e.tmp / name)


def _file(e: Env, name: str, text: str = "x") -> str:
    (e.tmp / name).write_text(text)
    return str(e.tmp / name)


def _verify(e: Env, prepare: Callable[[Packed], Path]) -> list[str]:
    return ["verify", "--static-only", str(prepare(release_dir(e.tmp)))]


def _manifest(p: Packed, text: str) -> Path:
    p.manifest.write_text(text)
    return p.gz


def _install(e: Env, prepare: Callable[[Packed], None], *extra: str) -> list[str]:
    p = release_dir(e.tmp)
    prepare(p)
    return ["install", "--from", str(p.gz.parent), "--dir", str(e.tmp / "py"), *extra]


def _install_meta(e: Env, data: object) -> list[str]:
    meta = e.tmp / "download-metadata.json"
    meta.write_text(json.dumps(data))
    return ["install", "--from", str(meta), "--dir", str(e.tmp / "py")]


def _entry(**changes: object) -> dict[str, object]:
    entry: dict[str, object] = {"name": "cpython", "arch": {"family": "x86_64"}, "os": "linux",
                                "libc": "musl", "major": 3, "minor": 11, "patch": 2,
                                "url": NAME.gz, "sha256": "0" * 64}
    entry.update(changes)
    return entry


def _no_manifest(e: Env, archive: Callable[[Path], Path] | None = None,
                 sha256: str | None = "archive") -> list[str]:
    p = release_dir(e.tmp)
    p.manifest.unlink()
    if archive is not None:
        archive(p.gz)
    argv = ["install", "--from", str(p.gz.parent), "--dir", str(e.tmp / "py")]
    if sha256 == "archive":
        sha256 = sha(p.gz)
    return argv + (["--sha256", sha256] if sha256 else [])


def _assemble(e: Env, prepare: Callable[[Packed], None], *extra: str) -> list[str]:
    p = release_dir(e.tmp)
    prepare(p)
    return ["release", "assemble", str(p.gz.parent), "--out", str(e.tmp / "rel"), *extra]


def _symlink_swap(path: Path, outside: Path) -> None:
    shutil.copyfile(path, outside)  # same bytes, so only the link itself is wrong
    path.unlink()
    path.symlink_to(outside)


def _symlinked_dir(e: Env) -> list[str]:
    p = release_dir(e.tmp)
    (e.tmp / "link").symlink_to(p.gz.parent)
    return ["release", "assemble", str(e.tmp / "link"), "--out", str(e.tmp / "rel")]


def _check(e: Env, releases: str, state: str | None = None,
           matrix: str | None = None) -> list[str]:
    argv = ["alpine", "check", "--releases", releases,
            "--state", state or str(e.tmp / "none.json")]
    return argv + (["--matrix", matrix] if matrix else [])


RELEASES_JSON = REPO / "tests" / "data" / "alpine" / "releases.json"

CASES: dict[str, Case] = {
    # -- matrix.yaml (matrix, build, alpine check all load it) --
    "matrix: matrix.yaml is a directory": Case(
        lambda e: ["matrix", "--matrix", _dir(e, "m.yaml")], 4, "is a directory"),
    "matrix: matrix.yaml is binary": Case(
        lambda e: ["matrix", "--matrix", _matrix(e, b"\x7fELF\x02\x01\x01\x00\xff\xfe" * 40)],
        4, "is not UTF-8 text"),
    "matrix: alias bomb (billion laughs)": Case(
        lambda e: ["matrix", "--matrix", _matrix(e, BOMB_YAML)], 4,
        "matrix.yaml:3: not valid YAML: YAML alias *a refused"),
    "matrix: over the size cap": Case(
        lambda e: ["matrix", "--matrix", _matrix(e, "#" * (CAP_CONFIG + 1))], 35,
        f"over its cap of {CAP_CONFIG} bytes"),
    "matrix: nested 5000 deep": Case(
        lambda e: ["matrix", "--matrix", _matrix(e, "[" * 5000)], 4, "nested too deeply"),
    "matrix: a list, not a mapping": Case(
        lambda e: ["matrix", "--matrix", _matrix(e, "- 1\n- 2\n")], 4,
        "expected a mapping at the top level"),
    "matrix: number and word keys mixed": Case(
        lambda e: ["matrix", "--matrix", _matrix(e, "1: x\nfoo: y\n")], 4, "unknown key"),
    "matrix: releases is a list": Case(
        lambda e: ["matrix", "--matrix", _matrix(e, "releases: [1, 2]\n")], 4,
        "releases: must be a non-empty mapping"),
    "matrix: unhashable key": Case(
        lambda e: ["matrix", "--matrix", _matrix(e, "? [a, b]\n: 1\n")], 4, "not valid YAML"),
    "build: alias-bomb matrix": Case(
        lambda e: ["build", "--arch", "x86_64", "--matrix", _matrix(e, BOMB_YAML)], 4,
        "YAML alias"),
    # -- build outputs --
    "build: --out is a file": Case(
        lambda e: ["build", "--arch", "x86_64", "--out", _file(e, "out"), "--work",
                   str(e.tmp / "w")], 36, "exists and is not a directory"),
    "build: --out below a file": Case(
        lambda e: ["build", "--arch", "x86_64", "--out", _file(e, "f") + "/dist"], 36,
        "is not a directory"),
    "build: --work is a file": Case(
        lambda e: ["build", "--arch", "x86_64", "--out", str(e.tmp / "d"), "--work",
                   _file(e, "work")], 36, "--work"),
    "build: --out on a read-only file system": Case(
        lambda e: ["build", "--arch", "x86_64", "--out", str(e.readonly() / "dist")], 36,
        "read-only file system"),
    # -- verify (and identify) --
    "verify: truncated .tar.gz": Case(
        lambda e: _verify(e, lambda p: truncate(p.gz)), 11, "not a readable tar archive"),
    "verify: garbage .tar.gz": Case(
        lambda e: _verify(e, lambda p: garbage(p.gz)), 11, "not a readable tar archive"),
    "verify: truncated .tar.zst": Case(
        lambda e: _verify(e, lambda p: truncate(p.zst)), 11, "not a readable tar archive"),
    "verify: garbage .tar.zst": Case(
        lambda e: _verify(e, lambda p: garbage(p.zst)), 11, "not a readable tar archive"),
    "verify: the archive is a directory": Case(
        lambda e: ["verify", "--static-only", _dir(e, NAME.gz)], 11, "no such file"),
    "verify: manifest beside is a JSON list": Case(
        lambda e: _verify(e, lambda p: _manifest(p, "[1, 2]")), 11,
        "must be a JSON object, not a list"),
    "verify: manifest beside is not JSON": Case(
        lambda e: _verify(e, lambda p: _manifest(p, "{'archives':")), 11, "is not valid JSON"),
    "verify: manifest beside over the cap": Case(
        lambda e: _verify(e, lambda p: (huge_json(p.manifest), p.gz)[1]), 35,
        f"over its cap of {CAP_MANIFEST} bytes"),
    "verify: manifest archives of the wrong shape": Case(
        lambda e: _verify(e, lambda p: _manifest(p, '{"archives": ["x"]}')), 12,
        "its manifest records no archives.tar.gz.sha256"),
    "verify: build info inside is a list": Case(
        lambda e: ["verify", "--static-only",
                   str(archive_with_info(e.tmp / NAME.gz, b"[]"))], 11,
        "musl-pbs.json: the build info must be a JSON object"),
    "verify: build info inside is not JSON": Case(
        lambda e: ["verify", "--static-only",
                   str(archive_with_info(e.tmp / NAME.gz, b"\xff\xfe"))], 11,
        "is not valid JSON"),
    "verify: build info inside over the cap (compresses to KiB)": Case(
        lambda e: ["verify", "--static-only", str(archive_with_info(
            e.tmp / NAME.gz, gz_of_spaces(CAP_MANIFEST + 1)))], 35,
        f"over its cap of {CAP_MANIFEST} bytes"),
    "verify: build info names an unknown arch": Case(
        lambda e: ["verify", "--static-only", str(archive_with_info(
            e.tmp / NAME.gz, b'{"arch": ["x86_64"]}'))], 3, "unknown architecture"),
    # -- install --
    "install: --from is missing": Case(
        lambda e: ["install", "--from", str(e.tmp / "nope")], 11,
        "neither a release directory nor a download-metadata.json", musl_host=True),
    "install: download-metadata is a list": Case(
        lambda e: _install_meta(e, [1, 2]), 11, "must be a JSON object, not a list",
        musl_host=True),
    "install: download-metadata is not JSON": Case(
        lambda e: ["install", "--from", _file(e, "m.json", "{")], 11, "is not valid JSON",
        musl_host=True),
    "install: download-metadata over the cap": Case(
        lambda e: ["install", "--from", str(huge_json(e.tmp / "m.json", 33 * MIB))], 35,
        "over its cap", musl_host=True),
    "install: download-metadata entry is a string": Case(
        lambda e: _install_meta(e, {"k": "cpython"}), 11, "entry 'k' must be an object",
        musl_host=True),
    "install: download-metadata entry lacks patch": Case(
        lambda e: _install_meta(e, {"k": _entry(patch=None)}), 11,
        "major, minor and patch must be numbers", musl_host=True),
    "install: download-metadata entry arch is a string": Case(
        lambda e: _install_meta(e, {"k": _entry(url="x.tar.gz", arch="x86_64")}), 16,
        "no archive for x86_64", musl_host=True),
    "install: download-metadata sha256 is not hex": Case(
        lambda e: _install_meta(e, {"k": _entry(sha256=["x"])}), 11,
        "sha256 is not a sha256", musl_host=True),
    "install: manifest is a list": Case(
        lambda e: _install(e, lambda p: p.manifest.write_text("[]")), 11,
        "must be a JSON object, not a list", musl_host=True),
    "install: manifest sha256 is a number": Case(
        lambda e: _install(e, lambda p: p.manifest.write_text(
            '{"archives": {"tar.gz": {"sha256": 1}}}')), 11,
        "archives.tar.gz.sha256 is not a sha256", musl_host=True),
    "install: manifest musl_version_needed is a list": Case(
        lambda e: _install(e, lambda p: p.manifest.write_text(json.dumps(
            {"archives": {"tar.gz": {"sha256": sha(p.gz)}}, "musl_version_needed": [1]}))),
        11, "musl_version_needed must be a string", musl_host=True),
    "install: manifest over the cap": Case(
        lambda e: _install(e, lambda p: (huge_json(p.manifest), None)[1]), 35,
        "over its cap", musl_host=True),
    "install: no manifest, no --sha256": Case(
        lambda e: _no_manifest(e, sha256=None), 37, "nothing vouches for it", musl_host=True),
    "install: --sha256 is not hex": Case(
        lambda e: _no_manifest(e, sha256="abc"), 2, "expected 64 hexadecimal digits",
        musl_host=True),
    "install: --sha256 does not match the file": Case(
        lambda e: _no_manifest(e, sha256="0" * 64), 11, "does not match the expected",
        musl_host=True),
    "install: --sha256 differs from the manifest's": Case(
        lambda e: _install(e, lambda p: None, "--sha256", "1" * 64), 21,
        "is not the release's", musl_host=True),
    "install: truncated archive (its sha256 given)": Case(
        lambda e: _no_manifest(e, truncate), 31, "not a readable tar archive", musl_host=True),
    "install: garbage archive (its sha256 given)": Case(
        lambda e: _no_manifest(e, garbage), 31, "not a readable tar archive", musl_host=True),
    "install: --dir is a file": Case(
        lambda e: [*_install(e, lambda p: None), "--dir", _file(e, "dirfile"), "--force"], 36,
        "exists and is not a directory", musl_host=True),
    "install: --dir below a file": Case(
        lambda e: [*_install(e, lambda p: None), "--dir", _file(e, "f") + "/py"], 36,
        "is not a directory", musl_host=True),
    "install: --dir on a read-only file system": Case(
        lambda e: [*_install(e, lambda p: None), "--dir", str(e.readonly() / "py")], 36,
        "read-only file system", musl_host=True),
    "install: --dir on a full file system (ENOSPC)": Case(
        lambda e: [*_install(e, lambda p: None), "--dir", str(e.full() / "py")], 36,
        "No space left on device", musl_host=True),
    # -- detect --
    "detect: --root is a file": Case(
        lambda e: ["detect", "--root", _file(e, "rootfile")], 2, "not a directory"),
    # -- alpine check --
    "alpine check: --releases is a directory": Case(
        lambda e: _check(e, _dir(e, "rel")), 2, "is a directory"),
    "alpine check: --releases is binary": Case(
        lambda e: _check(e, _matrix(e, b"\x00\xff" * 100)), 2, "not UTF-8 text"),
    "alpine check: --releases alias bomb": Case(
        lambda e: _check(e, _matrix(e, "- " + BOMB_YAML.replace("\n", "\n  "))), 23,
        "alias"),
    "alpine check: --releases over the cap": Case(
        lambda e: _check(e, str(huge_json(e.tmp / "r.json", 9 * MIB))), 35, "over its cap"),
    "alpine check: --state is a list": Case(
        lambda e: _check(e, str(RELEASES_JSON), _file(e, "s.json", "[]")), 23,
        "expected an object with 'targets'"),
    "alpine check: --state is not JSON": Case(
        lambda e: _check(e, str(RELEASES_JSON), _file(e, "s.json", "{")), 23,
        "is not valid JSON"),
    "alpine check: --state over the cap": Case(
        lambda e: _check(e, str(RELEASES_JSON), str(huge_json(e.tmp / "s.json", 9 * MIB))),
        35, "over its cap"),
    "alpine check: --matrix is a directory": Case(
        lambda e: _check(e, str(RELEASES_JSON), None, _dir(e, "m")), 4, "is a directory"),
    # -- release assemble --
    "assemble: manifest is a list": Case(
        lambda e: _assemble(e, lambda p: p.manifest.write_text("[]")), 20,
        "must be a JSON object, not a list"),
    "assemble: manifest archives is a list": Case(
        lambda e: _assemble(e, lambda p: p.manifest.write_text('{"archives": []}')), 20,
        "the manifest has no 'archives'"),
    "assemble: manifest over the cap": Case(
        lambda e: _assemble(e, lambda p: (huge_json(p.manifest), None)[1]), 35,
        "over its cap"),
    "assemble: SHA256SUMS is binary": Case(
        lambda e: _assemble(e, lambda p: p.checksums.write_bytes(b"\xff" * 10)), 20,
        "not UTF-8 text"),
    "assemble: input directory is a symlink": Case(_symlinked_dir, 38,
                                                   "the input directory is a symbolic link"),
    "assemble: archive is a symlink": Case(
        lambda e: _assemble(e, lambda p: _symlink_swap(p.gz, e.tmp / "outside.tar.gz")), 38,
        "is a symbolic link"),
    "assemble: manifest is a symlink": Case(
        lambda e: _assemble(e, lambda p: _symlink_swap(p.manifest, e.tmp / "outside.json")),
        38, "is a symbolic link"),
    "assemble: --out is a file": Case(
        lambda e: [*_assemble(e, lambda p: None)[:-2], "--out", _file(e, "relfile")], 2,
        "exists and is not a directory"),
    "assemble: --out below a file": Case(
        lambda e: [*_assemble(e, lambda p: None)[:-2], "--out", _file(e, "f") + "/rel"], 36,
        "is not a directory"),
    "assemble: --previous-state is a list": Case(
        lambda e: _assemble(e, lambda p: None, "--previous-state", _file(e, "st.json", "[]")),
        23, "expected an object with 'targets'"),
}


# ---------------------------------------------------------------------------- fixtures


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        path = tmp_path / name
        if not _mount_tmpfs(path, options):
            pytest.skip(f"cannot mount a tmpfs here (needs root): {options}")
        mounted.append(path)
        return path

    def full() -> Path:
        path = mount("full", "size=64k")
        fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT)
        try:  # fill it up: the next write gets ENOSPC
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        return path

    yield Env(tmp_path, lambda: mount("ro", "ro,size=64k"), full)
    for path in mounted:
        subprocess.run(["umount", str(path)], check=False)


def _musl_detection(_root: Path) -> Detection:
    return Detection(Path("/"), "musl", "1.2.5", "x86_64", "x86-64",
                     "/lib/ld-musl-x86_64.so.1", "/lib/ld-musl-x86_64.so.1", "/bin/sh",
                     "cpython-*-linux-x86_64-musl.tar.gz", None, ("test",))


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_input_is_a_typed_error(
    case: str, env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    c = CASES[case]
    if c.musl_host:
        monkeypatch.setattr("builder.host.detect.detect", _musl_detection)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{env.tmp}/no-docker.sock")  # never reached
    argv = c.setup(env)
    code = main(argv)
    out, err = capsys.readouterr()
    assert (code, c.message in err) == (c.code, True), err
    assert "Traceback" not in out + err
    if code:
        assert "error:" in err and "hint:" in err, err
    assert not (env.tmp / "py").exists()  # install wrote nothing on failure
    leftovers = [p.name for p in env.tmp.glob(".py.*")]
    assert leftovers == []  # nor left its temporary directory


def test_every_error_has_its_own_exit_code_and_a_hint() -> None:
    classes = [c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, errors.MuslPbsError)
               and c is not errors.MuslPbsError]
    codes = [c.exit_code for c in classes]
    assert len(set(codes)) == len(codes), sorted(codes)
    no_hint = [c.__name__ for c in classes if not c.default_hint]
    assert no_hint == []


def test_install_of_an_archive_without_manifest_with_sha256(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("builder.host.detect.detect", _musl_detection)
    assert main(_no_manifest(env)) == 0
    assert (env.tmp / "py" / "bin" / "python3").is_file()
    assert capsys.readouterr().out.strip() == str(env.tmp / "py" / "bin" / "python3")


def test_install_from_download_metadata_uses_its_sha256(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("builder.host.detect.detect", _musl_detection)
    p = release_dir(env.tmp)
    p.manifest.unlink()  # the metadata alone vouches for the archive
    meta = p.gz.parent / "meta.json"
    meta.write_text(json.dumps({"k": _entry(sha256=sha(p.gz))}))
    assert main(["install", "--from", str(meta), "--dir", str(env.tmp / "py")]) == 0
    meta.write_text(json.dumps({"k": _entry(sha256=None)}))
    assert main(["install", "--from", str(meta), "--dir", str(env.tmp / "py2")]) == 37
    assert "nothing vouches" in capsys.readouterr().err


def test_assemble_never_publishes_what_a_symlink_names(env: Env) -> None:
    secret = env.tmp / "secret.txt"
    secret.write_text("not for publishing")
    p = release_dir(env.tmp)
    p.gz.unlink()
    p.gz.symlink_to(secret)
    assert main(["release", "assemble", str(p.gz.parent), "--out", str(env.tmp / "rel")]) == 38
    assert not (env.tmp / "rel").exists()
    assert [q.name for q in env.tmp.iterdir() if q.name.startswith(".rel")] == []


def test_detect_on_unreadable_directories_as_nobody() -> None:
    """As a user who may not read parts of the tree: a report (or exit 14), no traceback."""
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run as the user nobody")
    site = next(p for p in sys.path if p.endswith("site-packages"))
    base = Path(tempfile.mkdtemp(prefix="musl-pbs-detect-"))
    try:
        base.chmod(0o755)
        root = base / "root"
        for d in ("bin", "lib", "etc", "usr/bin", "usr/lib", "sbin"):
            (root / d).mkdir(parents=True)
        shutil.copy2("/bin/true", root / "bin/true")
        (root / "sbin/loop1").symlink_to("loop2")
        (root / "sbin/loop2").symlink_to("loop1")
        (root / "etc/apk").mkdir()
        for d, mode in (("lib", 0o000), ("etc", 0o700), ("usr/bin", 0o300), ("usr/lib", 0o311)):
            (root / d).chmod(mode)
        code = (f"import sys; sys.path[:0] = [{str(REPO)!r}, {site!r}]\n"
                "from builder.cli import main\n"
                f"sys.exit(main(['detect', '--root', {str(root)!r}]))\n")
        run = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              sys.executable if sys.executable.startswith("/usr") else
                              "/usr/bin/python3", "-c", code],
                             capture_output=True, text=True, cwd="/")
        if "ModuleNotFoundError" in run.stderr or "Permission denied: '/" in run.stderr[:200]:
            pytest.skip(f"nobody cannot run this checkout's Python: {run.stderr[-300:]}")
        assert "Traceback" not in run.stdout + run.stderr, run.stderr
        assert run.returncode in (0, 14), run.stderr
        assert str(root) in run.stdout + run.stderr
    finally:
        for d in ("lib", "etc", "usr/bin", "usr/lib"):
            (base / "root" / d).chmod(0o755)
        shutil.rmtree(base)


def test_alias_bomb_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    """The matrix's first alias is refused with file:line; nothing is expanded."""
    path = tmp_path / "matrix.yaml"
    path.write_text(BOMB_YAML)
    assert len(BOMB_YAML) < 460
    with pytest.raises(ConfigError, match=r"matrix\.yaml:3: .*alias \*a refused"):
        load_matrix(path)

