"""stage: the script libraries of bundled Tcl/Tk (lib/tcl8.6, its modules in lib/tcl8,
lib/tk8.6) come from the directory each library was found in."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from builder.errors import StageError
from builder.stages.stage import _stage_script_libraries


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    lib = root / "usr" / "lib"
    for rel, text in (("libtcl8.6.so", "elf"), ("tcl8.6/init.tcl", "# init"),
                      ("tcl8.6/encoding/utf-8.enc", "enc"), ("tcl8/8.5/msgcat-1.6.1.tm", "tm"),
                      ("libtk8.6.so", "elf"), ("tk8.6/tk.tcl", "# tk"),
                      ("libz.so.1", "elf"), ("z/not-a-script-library", "x")):
        (lib / rel).parent.mkdir(parents=True, exist_ok=True)
        (lib / rel).write_text(text)
    return root


def _libs(root: Path, *names: str) -> dict[str, tuple[PurePosixPath, Path]]:
    return {n: (PurePosixPath("/usr/lib") / n, root / "usr" / "lib" / n) for n in names}


def test_tcl_and_tk_script_libraries_are_staged_next_to_the_libraries(tmp_path: Path) -> None:
    root = _root(tmp_path)
    tree = tmp_path / "out" / "python"
    staged = _stage_script_libraries(root, tree,
                                     _libs(root, "libtcl8.6.so", "libtk8.6.so", "libz.so.1"))
    assert staged == ["lib/tcl8.6", "lib/tcl8", "lib/tk8.6"]
    assert (tree / "lib/tcl8.6/init.tcl").read_text() == "# init"
    assert (tree / "lib/tcl8.6/encoding/utf-8.enc").is_file()
    assert (tree / "lib/tcl8/8.5/msgcat-1.6.1.tm").is_file()
    assert (tree / "lib/tk8.6/tk.tcl").read_text() == "# tk"
    assert not (tree / "lib/z").exists()


def test_no_tcl_no_script_library(tmp_path: Path) -> None:
    root = _root(tmp_path)
    tree = tmp_path / "out" / "python"
    assert _stage_script_libraries(root, tree, _libs(root, "libz.so.1")) == []
    assert not tree.exists()


def test_missing_tcl_modules_are_optional(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "usr/lib/tcl8/8.5/msgcat-1.6.1.tm").unlink()
    for d in ("usr/lib/tcl8/8.5", "usr/lib/tcl8"):
        (root / d).rmdir()
    staged = _stage_script_libraries(root, tmp_path / "python", _libs(root, "libtcl8.6.so"))
    assert staged == ["lib/tcl8.6"]


def test_bundled_tcl_without_its_script_library_is_an_error(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "usr/lib/tk8.6/tk.tcl").unlink()
    (root / "usr/lib/tk8.6").rmdir()
    with pytest.raises(StageError, match=r"libtk8\.6\.so is bundled but its script library "
                                         r"/usr/lib/tk8\.6 is not"):
        _stage_script_libraries(root, tmp_path / "python", _libs(root, "libtk8.6.so"))
