"""The one capped reader: never more than the cap, never a hang, always a typed error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builder.errors import ConfigError, InputTooLargeError, SymlinkedInputError
from builder.lowlevel.boundedio import read_capped, read_capped_text
from builder.lowlevel.jsonio import read_json
from builder.lowlevel.yamlio import parse_yaml


def test_exactly_the_cap_is_read_one_more_byte_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_capped(path, cap=100, what="a file", error=ConfigError) == b"x" * 100
    with pytest.raises(InputTooLargeError, match=r"f: a file is 100 bytes, over its cap of 99"):
        read_capped(path, cap=99, what="a file", error=ConfigError)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody writes to it: a plain open() would wait forever
    with pytest.raises(ConfigError, match="is not a regular file"):
        read_capped(fifo, cap=10, what="a file", error=ConfigError)


def test_symlinks_are_followed_only_when_allowed(tmp_path: Path) -> None:
    (tmp_path / "real").write_text("{}")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert read_json(tmp_path / "link", cap=10, what="a file", error=ConfigError) == {}
    with pytest.raises(SymlinkedInputError, match="link: a file is a symbolic link"):
        read_json(tmp_path / "link", cap=10, what="a file", error=ConfigError,
                  follow_symlinks=False)


def test_missing_unreadable_and_binary_are_the_callers_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope: no such file"):
        read_capped(tmp_path / "nope", cap=10, what="a file", error=ConfigError)
    (tmp_path / "bin").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        read_capped_text(tmp_path / "bin", cap=10, what="a file", error=ConfigError)
    with pytest.raises(ConfigError, match="is a directory"):
        read_capped(tmp_path, cap=10, what="a file", error=ConfigError)


def test_yaml_without_aliases_is_read_with_its_lines() -> None:
    data, node = parse_yaml("a: &x 1\nb:\n  - 2\n", "f.yaml", ConfigError)  # an anchor alone
    assert data == {"a": 1, "b": [2]} and node is not None
    with pytest.raises(ConfigError, match=r"^f\.yaml:2: .*alias \*x refused"):
        parse_yaml("a: &x 1\nb: *x\n", "f.yaml", ConfigError)
    with pytest.raises(ConfigError, match=r"^f\.yaml:2: not valid YAML"):
        parse_yaml("a: 1\n  b: [\n", "f.yaml", ConfigError)
