"""Which image verify runs an archive in: the release's Alpine as users run it, or the
stricter musl-only base derived from it. (The runs themselves: tests/integration.)"""

from __future__ import annotations

from typing import Any

import pytest

import builder.stages.verify as verify
from builder.platforms import get_arch
from builder.progress import NullReporter
from builder.stages.verify import ArchiveIdentity, release_image, runtime_image


def _ident(release: str) -> ArchiveIdentity:
    return ArchiveIdentity(None, {"alpine_release": release}, None, get_arch("aarch64"),
                           "3.12.8", "3.12")


def test_release_image_is_alpine_of_the_release() -> None:
    assert release_image(_ident("3.20.3")) == "alpine:3.20"
    assert release_image(_ident("3.21.0_alpha20240923")) == "alpine:3.21"


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Fakes at the Docker boundary: what verify asked for."""
    asked: list[tuple[str, ...]] = []

    def ensure(client: Any, ref: str, platform: str, *, hint: str = "") -> None:
        asked.append(("ensure", ref, platform))

    def derive(source: str, arch: Any, reporter: Any) -> str:
        asked.append(("derive", source, arch.alpine))
        return f"musl-pbs-base:{source}"

    monkeypatch.setattr(verify, "docker_client", lambda: object())
    monkeypatch.setattr(verify, "ensure_image", ensure)
    monkeypatch.setattr(verify, "derive_base_image", derive)
    return asked


def test_default_is_the_release_image_as_it_is(engine: list[tuple[str, ...]]) -> None:
    assert runtime_image(_ident("3.20.3"), None, False, NullReporter()) == "alpine:3.20"
    assert engine == [("ensure", "alpine:3.20", "linux/arm64/v8")]


def test_musl_only_derives_the_base(engine: list[tuple[str, ...]]) -> None:
    got = runtime_image(_ident("3.20.3"), None, True, NullReporter())
    assert got == "musl-pbs-base:alpine:3.20"
    assert engine == [("derive", "alpine:3.20", "aarch64")]
    engine.clear()
    assert runtime_image(_ident("3.20.3"), "my/alpine:1", True, NullReporter()) == (
        "musl-pbs-base:my/alpine:1")
    assert runtime_image(_ident("3.20.3"), "my/alpine:1", False, NullReporter()) == (
        "my/alpine:1")
    assert engine == [("derive", "my/alpine:1", "aarch64"),
                      ("ensure", "my/alpine:1", "linux/arm64/v8")]
