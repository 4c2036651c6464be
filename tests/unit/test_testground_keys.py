"""tests/fixtures/build-images: the cache keys of x86_64 and aarch64 ignore the new-arch
blocks (armv7, x86, riscv64), whose own keys do not; the keys of those five ignore the
arches2 blocks (ppc64le, s390x), whose own keys hash both kinds; the keys of those seven
ignore the arches3 blocks (armhf, loongarch64), whose own keys hash all three kinds.

No Docker, nothing is built: only the key functions run, on copies of the script."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.minirootfs import tarball

SCRIPT = Path(__file__).resolve().parents[1] / "fixtures" / "build-images"


def _load(script: Path = SCRIPT, name: str = "build_images_under_test") -> ModuleType:
    loader = importlib.machinery.SourceFileLoader(name, str(script))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # dataclasses look their module up
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bi() -> ModuleType:
    module = _load()
    for arch in module.ARCHES.values():
        tarball(arch.minirootfs)  # found or downloaded, or the test fails saying where to put it
    return module


def _keys(bi: ModuleType, script: Path) -> dict[str, tuple[str, str, str]]:
    old = bi.SCRIPT.path
    bi.SCRIPT.path = script
    try:
        py = bi.PYTHONS["3.11"]
        return {name: (bi.libs_key(arch), bi.python_key(arch, py), bi.images_key(arch, py))
                for name, arch in bi.ARCHES.items()}
    finally:
        bi.SCRIPT.path = old


def _before_arches3(bi: ModuleType) -> bytes:
    """The script as it was before armhf and loongarch64."""
    return bi.ARCHES3_BLOCK.sub(b"", SCRIPT.read_bytes())  # type: ignore[no-any-return]


def test_blocks_are_what_only_the_new_arches_run(bi: ModuleType) -> None:
    text = bi.ARCHES2_BLOCK.sub(b"", _before_arches3(bi))  # the script before arches2
    stripped = bi.SCRIPT.read_bytes()
    assert bi.SCRIPT.blocks(recipe_only=True)
    assert len(stripped) + len(bi.SCRIPT.blocks(recipe_only=False)) == len(text)
    # Without the blocks, the script knows only the first two arches.
    assert b"NewArch" not in stripped and b"armv7" not in stripped
    assert {"x86_64", "aarch64", "armv7", "x86", "riscv64"} <= set(bi.ARCHES)


FIRST_FIVE = ("x86_64", "aarch64", "armv7", "x86", "riscv64")
ARCHES2 = ("ppc64le", "s390x")
FIRST_SEVEN = (*FIRST_FIVE, *ARCHES2)
ARCHES3 = ("armhf", "loongarch64")


def test_arches2_blocks_are_what_only_ppc64le_and_s390x_run(bi: ModuleType) -> None:
    text = _before_arches3(bi)
    without = bi.ARCHES2_BLOCK.sub(b"", text)
    assert bi.SCRIPT.blocks2(recipe_only=True)
    assert len(without) + len(bi.SCRIPT.blocks2(recipe_only=False)) == len(text)
    assert b"ppc64le" not in without and b"s390x" not in without
    assert b"arches2" not in without
    assert set(ARCHES2) <= set(bi.ARCHES) and set(bi.ARCHES2) == set(ARCHES2)


def test_the_script_without_arches2_blocks_gives_the_first_five_the_same_keys(
    bi: ModuleType, tmp_path: Path
) -> None:
    # The script as it was before ppc64le and s390x (its own, older key code runs), beside
    # the same testground/ directory: the keys of the first five arches are unchanged.
    old = tmp_path / "build-images"
    old.write_bytes(bi.ARCHES2_BLOCK.sub(b"", _before_arches3(bi)))
    (tmp_path / "testground").symlink_to(SCRIPT.parent / "testground")
    before = _load(old, "build_images_before_arches2")
    assert not hasattr(before, "ARCHES2") and set(before.ARCHES) == set(FIRST_FIVE)
    now = _keys(bi, SCRIPT)
    for name in FIRST_FIVE:
        for minor in ("3.11", "3.13"):
            py_old, py_now = before.PYTHONS[minor], bi.PYTHONS[minor]
            arch_old, arch_now = before.ARCHES[name], bi.ARCHES[name]
            assert before.images_key(arch_old, py_old) == bi.images_key(arch_now, py_now)
            assert before.python_key(arch_old, py_old) == bi.python_key(arch_now, py_now)
        assert before.base_key(before.ARCHES[name]) == bi.base_key(bi.ARCHES[name])
        assert now[name][0] == before.libs_key(before.ARCHES[name]), name


@pytest.mark.parametrize(("block", "unchanged", "changed"), [
    ("arches2", FIRST_FIVE, (*ARCHES2, *ARCHES3)),  # arches3 hash the arches2 blocks too
    ("arches3", FIRST_SEVEN, ARCHES3),
])
def test_editing_a_later_arches_block_changes_only_those_arches_keys(
    bi: ModuleType, tmp_path: Path, block: str, unchanged: tuple[str, ...],
    changed: tuple[str, ...]
) -> None:
    before = _keys(bi, SCRIPT)
    for marker in (f"# >>> {block} recipe\n", f"# >>> {block}\n"):
        edited = tmp_path / "build-images"
        text, n = re.subn(rf"({marker})", r"\1# an edit\n", SCRIPT.read_text(), count=1)
        assert n == 1
        edited.write_text(text)
        after = _keys(bi, edited)
        for old in unchanged:
            assert after[old] == before[old], old
        for new in changed:
            assert after[new][2] != before[new][2], new  # image key
            if "recipe" in marker:  # builds too
                assert all(a != b for a, b in zip(after[new], before[new], strict=True)), new


def test_editing_a_recipe_block_changes_only_the_new_arches_keys(
    bi: ModuleType, tmp_path: Path
) -> None:
    before = _keys(bi, SCRIPT)
    edited = tmp_path / "build-images"
    text = SCRIPT.read_text()
    text, n = re.subn(r"(# >>> new-arches recipe\n)", r"\1# an edit\n", text, count=1)
    assert n == 1
    edited.write_text(text)
    after = _keys(bi, edited)
    for old in ("x86_64", "aarch64"):
        assert after[old] == before[old], old
    for new in ("armv7", "x86", "riscv64", *ARCHES2, *ARCHES3):  # they hash these blocks too
        assert all(a != b for a, b in zip(after[new], before[new], strict=True)), new


def test_editing_outside_the_blocks_changes_every_image_key(
    bi: ModuleType, tmp_path: Path
) -> None:
    before = _keys(bi, SCRIPT)
    edited = tmp_path / "build-images"
    edited.write_text(SCRIPT.read_text() + "# an edit outside the blocks\n")
    after = _keys(bi, edited)
    for name in bi.ARCHES:
        assert after[name][2] != before[name][2], name  # image key
        assert after[name][0] == before[name][0], name  # recipes untouched: same builds


def test_arches3_blocks_are_what_only_armhf_and_loongarch64_run(bi: ModuleType) -> None:
    text = SCRIPT.read_bytes()
    without = bi.ARCHES3_BLOCK.sub(b"", text)
    assert bi.SCRIPT.blocks3(recipe_only=True)
    assert len(without) + len(bi.SCRIPT.blocks3(recipe_only=False)) == len(text)
    assert b"loongarch" not in without and b"zig" not in without.lower()
    assert b"arches3" not in without
    assert set(ARCHES3) <= set(bi.ARCHES) and set(bi.ARCHES3) == set(ARCHES3)
    assert all(isinstance(bi.ARCHES[a], bi.ZigArch) for a in ARCHES3)
    # Their Debian names are not added to the private apt configuration (zig brings musl
    # and the kernel headers): loong64 is no Debian bookworm architecture.
    assert "loong64" not in bi.Apt.FOREIGN


def test_the_script_without_arches3_blocks_gives_the_first_seven_the_same_keys(
    bi: ModuleType, tmp_path: Path
) -> None:
    # The script as it was before armhf and loongarch64 (its own, older key code runs), beside
    # the same testground/ directory: the keys of the first seven arches are unchanged.
    old = tmp_path / "build-images"
    old.write_bytes(_before_arches3(bi))
    (tmp_path / "testground").symlink_to(SCRIPT.parent / "testground")
    before = _load(old, "build_images_before_arches3")
    assert not hasattr(before, "ARCHES3") and set(before.ARCHES) == set(FIRST_SEVEN)
    for name in FIRST_SEVEN:
        for minor in ("3.11", "3.13"):
            py_old, py_now = before.PYTHONS[minor], bi.PYTHONS[minor]
            arch_old, arch_now = before.ARCHES[name], bi.ARCHES[name]
            assert before.images_key(arch_old, py_old) == bi.images_key(arch_now, py_now)
            assert before.python_key(arch_old, py_old) == bi.python_key(arch_now, py_now)
        assert before.base_key(before.ARCHES[name]) == bi.base_key(bi.ARCHES[name])
        assert before.libs_key(before.ARCHES[name]) == bi.libs_key(bi.ARCHES[name]), name
