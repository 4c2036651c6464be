"""acquire.json and stage.json, the facts that let a stage run again alone: what save()
writes, load() reads back; anything else in their place is a typed error, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest

from builder.errors import InputTooLargeError, StageError
from builder.lowlevel.apkdb import ApkPackage
from builder.lowlevel.boundedio import CAP_MANIFEST
from builder.stages.acquire import FACTS_NAME, Acquired, PythonFacts
from builder.stages.stage import STAGE_FACTS, Staged

FACTS = PythonFacts(
    version="3.12.8", minor="3.12", executable="/usr/bin/python3.12", prefix="/usr",
    stdlib="/usr/lib/python3.12", include="/usr/include/python3.12", libdir="/usr/lib",
    ldlibrary="libpython3.12.so", instsoname="libpython3.12.so.1.0",
    soabi="cpython-312-x86_64-linux-musl", ext_suffix=".cpython-312-x86_64-linux-musl.so",
    multiarch="x86_64-linux-musl", builtin_modules=("sys", "time"),
)


def _acquired(directory: Path) -> Acquired:
    return Acquired(
        directory=directory, arch="x86_64", image="alpine:3.21", image_id="sha256:ab",
        image_digests=("alpine@sha256:cd",), platform="linux/amd64", alpine_release="3.21.2",
        musl_version="1.2.5", python=FACTS,
        packages=(ApkPackage("python3", "3.12.8-r1", files=(PurePosixPath("/usr/bin/x"),)),),
        installed=("python3",), missing_optional=("python3-tkinter",), apk_version="2.14.6",
    )


def test_acquire_facts_round_trip(tmp_path: Path) -> None:
    acquired = _acquired(tmp_path)
    acquired.save()
    assert Acquired.load(tmp_path) == acquired


def test_staged_facts_round_trip(tmp_path: Path) -> None:
    staged = Staged(tmp_path, {"libz.so.1": "/lib/libz.so.1.3"},
                    {"bin/python3.12": "/usr/bin/python3.12"})
    staged.save()
    assert Staged.load(tmp_path) == staged


def test_missing_acquire_facts_say_to_run_acquire(tmp_path: Path) -> None:
    with pytest.raises(StageError, match=f"holds no {FACTS_NAME}") as e:
        Acquired.load(tmp_path)
    assert "musl-pbs build" in e.value.hint


@pytest.mark.parametrize("text", [
    "not json", "[]", "{}", '{"packages": 3}', '{"packages": [], "python": {}}',
    '{"packages": [{"nom": 1}], "python": {}, "installed": []}',
])
def test_malformed_acquire_facts_are_a_stage_error(tmp_path: Path, text: str) -> None:
    good = _acquired(tmp_path)
    good.save()
    if text == "{}":  # everything but one required field
        data = json.loads((tmp_path / FACTS_NAME).read_text())
        del data["musl_version"]
        text = json.dumps(data)
    (tmp_path / FACTS_NAME).write_text(text)
    with pytest.raises(StageError, match=FACTS_NAME):
        Acquired.load(tmp_path)


@pytest.mark.parametrize("text", [
    "", "[1]", '{"bundled": {}}', '{"bundled": {}, "origins": {"a": 1}}',
    '{"bundled": [], "origins": {}}',
])
def test_malformed_stage_facts_are_a_stage_error(tmp_path: Path, text: str) -> None:
    (tmp_path / STAGE_FACTS).write_text(text)
    with pytest.raises(StageError, match=STAGE_FACTS):
        Staged.load(tmp_path)


def test_oversized_stage_facts_are_refused_unread(tmp_path: Path) -> None:
    (tmp_path / STAGE_FACTS).write_text('{"bundled": {}, "origins": {}}'
                                        + " " * CAP_MANIFEST)
    with pytest.raises(InputTooLargeError, match=r"stage's facts .* over its cap"):
        Staged.load(tmp_path)
