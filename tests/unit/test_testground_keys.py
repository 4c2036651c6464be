"""tests/fixtures/build-images: the cache keys of x86_64 and aarch64 ignore the new-arch
blocks (armv7, x86, riscv64), whose own keys do not.

No Docker, nothing is built: only the key functions run, on copies of the script."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "fixtures" / "build-images"


def _load() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("build_images_under_test", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # dataclasses look their module up
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bi() -> ModuleType:
    module = _load()
    missing = [a.minirootfs for a in module.ARCHES.values()
               if not (module.MINIROOTFS_DIR / a.minirootfs).is_file()]
    if missing:
        pytest.skip(f"official minirootfs tarballs missing: {', '.join(missing)}")
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


def test_blocks_are_what_only_the_new_arches_run(bi: ModuleType) -> None:
    text = SCRIPT.read_bytes()
    stripped = bi.SCRIPT.read_bytes()
    assert bi.SCRIPT.blocks(recipe_only=True)
    assert len(stripped) + len(bi.SCRIPT.blocks(recipe_only=False)) == len(text)
    # Without the blocks, the script knows only the first two arches.
    assert b"NewArch" not in stripped and b"armv7" not in stripped
    assert {"x86_64", "aarch64", "armv7", "x86", "riscv64"} <= set(bi.ARCHES)


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
    for new in ("armv7", "x86", "riscv64"):
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
