"""acquire on the real engine: what the recipe prunes never reaches the disk, and stage still
finds everything it reads (the interpreter, the standard library, the closure)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from builder.config import load_recipe
from builder.lowlevel.rootfs import resolve_in_root
from builder.platforms import get_arch
from builder.progress import NullReporter
from builder.stages.acquire import acquire
from builder.stages.stage import stage

pytestmark = pytest.mark.docker


def test_acquire_never_writes_what_the_recipe_prunes(images_x86_64: tuple[str, str],
                                                     tmp_path: Path) -> None:
    arch = get_arch("x86_64")
    base = load_recipe("3.11")
    # json/ is in every test-ground stdlib: pruned here, so never written by the export.
    recipe = dataclasses.replace(base, prune=(*base.prune, "lib/python3.11/json"))
    acquired = acquire(arch=arch, image=images_x86_64[0], recipe=recipe,
                       out_dir=tmp_path / "acquire", reporter=NullReporter())
    stdlib = resolve_in_root(acquired.rootfs, acquired.python.stdlib)
    assert stdlib is not None and (stdlib / "os.py").is_file()
    assert not (stdlib / "json").exists()
    assert (stdlib / "lib-dynload").is_dir()
    staged = stage(acquired, recipe, arch, tmp_path / "stage", NullReporter())
    tree = staged.tree / "lib" / "python3.11"
    assert (tree / "os.py").is_file() and not (tree / "json").exists()
    assert "libz.so.1" in staged.bundled  # the closure, read from the export's libraries
    assert (staged.tree / "bin" / "python3.11").is_file()
