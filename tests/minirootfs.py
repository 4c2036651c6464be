"""The official Alpine minirootfs tarballs, for the tests: found (or downloaded) the way
tests/fixtures/build-images finds them (tests/fixtures/testground/alpine_minirootfs.py),
checked against the SHA-512 pinned there. Not found and not downloadable: the test fails
with the message that says where to put the file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TESTGROUND = REPO / "tests" / "fixtures" / "testground"
sys.path.insert(0, str(TESTGROUND))
import alpine_minirootfs  # noqa: E402

# Every pinned tarball, e.g. "alpine-minirootfs-3.20.3-x86_64.tar.gz".
NAMES: tuple[str, ...] = tuple(sorted(alpine_minirootfs.PINS))


def tarball(name: str) -> Path:
    """The path of the official tarball ``name``."""
    try:
        return alpine_minirootfs.locate(name)
    except alpine_minirootfs.MinirootfsError as e:
        pytest.fail(str(e), pytrace=False)


def release(release: str, arch: str) -> Path:
    """The tarball of Alpine ``release`` (3.20.3, 3.19.4) for ``arch``."""
    return tarball(f"alpine-minirootfs-{release}-{arch}.tar.gz")


# Real Alpine data beside the checkout that no release server publishes (see
# ../shared/alpine/README.md): the tests that read it skip when it is not there.
FACTS = REPO.parent / "shared" / "alpine" / "facts"
