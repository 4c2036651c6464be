"""The musl floor from symbols, on the table made from real Alpine loaders."""

from __future__ import annotations

import tarfile
from pathlib import Path

from builder.lowlevel.muslfloor import imported_from_libc, lacking, load_table, loader_symbols
from builder.platforms import ARCHES
from tests.minirootfs import release as minirootfs


def real_loader(tmp_path: Path, release: str, arch: str = "x86_64") -> Path:
    """The loader file of an official minirootfs, unpacked into ``tmp_path``."""
    tarball = minirootfs(release, arch)
    name = ARCHES[arch].loader
    with tarfile.open(tarball) as tar:
        f = tar.extractfile(f".{name}")
        assert f is not None
        dest = tmp_path / f"{release}-{name.name}"
        dest.write_bytes(f.read())
    return dest


def test_table_covers_every_arch_and_three_releases() -> None:
    table = load_table()
    assert table.versions == ("1.2.3", "1.2.4_git20230717", "1.2.5")
    for arch in ARCHES:
        assert table.set_for(arch, "1.2.5") is not None, arch
    assert table.set_for("aarch64", "1.2.4_git20230717") is not None
    # time64: 32-bit arches export the 64-bit time_t entry points, 64-bit ones do not
    for arch in ("x86", "armv7", "armhf"):
        s = table.set_for(arch, "1.2.5")
        assert s is not None and "__clock_gettime64" in s.exports
    s = table.set_for("x86_64", "1.2.5")
    assert s is not None and "__clock_gettime64" not in s.exports
    assert {"preadv2", "pwritev2"} <= s.exports


def test_floor_set_by_preadv2_pwritev2() -> None:
    floor = load_table().floor("x86_64", {"printf", "pwritev2", "preadv2"}, "1.2.5")
    assert (floor.version, floor.set_by) == ("1.2.5", ("preadv2", "pwritev2"))
    assert floor.missing_by_version["1.2.4_git20230717"] == ["preadv2", "pwritev2"]
    assert floor.missing_by_version["1.2.5"] == []
    assert floor.method == "symbols"


def test_floor_of_plain_symbols_is_the_oldest_known() -> None:
    floor = load_table().floor("aarch64", {"printf", "malloc"}, "1.2.5")
    assert (floor.version, floor.set_by) == ("1.2.3", ())


def test_lfs64_names_resolve_through_the_loaders_alias_list() -> None:
    table = load_table()
    s = table.set_for("x86_64", "1.2.5")
    assert s is not None and "fopen64" not in s.exports and "fopen" in s.lfs64
    assert s.lacks(["fopen64", "stat64", "nosuch64"]) == ["nosuch64"]
    assert table.floor("x86_64", {"fopen64"}, "1.2.5").version == "1.2.3"


def test_unknown_symbols_fall_back_to_the_build_release() -> None:
    floor = load_table().floor("x86_64", {"printf", "a_symbol_from_musl_1_2_6"}, "1.2.6")
    assert (floor.version, floor.method, floor.unknown) == (
        "1.2.6", "build-release", ("a_symbol_from_musl_1_2_6",))


def test_arch_without_history_uses_x86_64s_for_generic_names() -> None:
    floor = load_table().floor("armv7", {"pwritev2", "__clock_gettime64"}, "1.2.5")
    assert (floor.version, floor.set_by) == ("1.2.5", ("pwritev2",))


def test_floor_never_above_the_release_it_was_built_on() -> None:
    # crypt_r is missing from Debian's 1.2.3 build only; built on 3.18 (1.2.4) it ran there.
    assert load_table().floor("x86_64", {"crypt_r"}, "1.2.4").version == "1.2.4"


def test_real_loaders_agree_with_the_table(tmp_path: Path) -> None:
    old = loader_symbols(real_loader(tmp_path, "3.19.4"))
    new = loader_symbols(real_loader(tmp_path, "3.20.3"))
    assert old is not None and new is not None
    assert lacking(["pwritev2", "preadv2", "printf", "fopen64"], *old) == ["preadv2", "pwritev2"]
    assert lacking(["pwritev2", "preadv2", "printf", "fopen64"], *new) == []
    s = load_table().set_for("x86_64", "1.2.5")
    assert s is not None and new == (s.exports, s.lfs64)


def test_imported_from_libc_of_real_alpine_files(tmp_path: Path) -> None:
    """apk with its libraries from the 3.20.3 minirootfs: what they define is not counted."""
    tree = tmp_path / "tree"
    tree.mkdir()
    with tarfile.open(minirootfs("3.20.3", "x86_64")) as tar:
        for name in ("./sbin/apk", "./lib/libapk.so.2.14.0", "./lib/libcrypto.so.3",
                     "./lib/libssl.so.3", "./lib/libz.so.1.3.1"):
            f = tar.extractfile(name)
            assert f is not None
            (tree / Path(name).name).write_bytes(f.read())
    needed = imported_from_libc(tree)
    assert "malloc" in needed
    assert not any(n.startswith(("apk_", "BIO_", "inflate")) for n in needed)
    floor = load_table().floor("x86_64", needed, "1.2.5")
    assert floor.missing_by_version["1.2.5"] == []


def test_verify_judges_the_images_own_loader(tmp_path: Path) -> None:
    """verify's check, fed the real 3.19.4 and 3.20.3 loaders as an image would hand them."""
    from builder.platforms import get_arch
    from builder.stages.verify import ArchiveIdentity, musl_floor_check

    class Image:
        def __init__(self, loader: Path) -> None:
            self.image, self.loader = f"alpine-{loader.name}", loader

        def read_file(self, path: object, limit: int = 0) -> bytes:
            return self.loader.read_bytes()

    ident = ArchiveIdentity(None, {"musl_version_needed": "1.2.5"}, None, get_arch("x86_64"),
                            "3.12.8", "3.12")
    needed = frozenset({"printf", "preadv2", "pwritev2", "fopen64"})
    old = musl_floor_check(Image(real_loader(tmp_path, "3.19.4")), ident, needed)
    assert not old.ok and "lacks preadv2, pwritev2" in old.detail
    assert "musl >= 1.2.5" in old.detail and "before unpacking" in old.detail
    new = musl_floor_check(Image(real_loader(tmp_path, "3.20.3")), ident, needed)
    assert new.ok and "all 4 symbols" in new.detail


def test_a_file_whose_library_is_missing_does_not_count(tmp_path: Path) -> None:
    """apk without libapk in the tree: what apk imports may be libapk's, so it is left out
    (the static audit names the missing library); libz, complete, still counts."""
    tree = tmp_path / "tree"
    tree.mkdir()
    with tarfile.open(minirootfs("3.20.3", "x86_64")) as tar:
        for name in ("./sbin/apk", "./lib/libz.so.1.3.1"):
            f = tar.extractfile(name)
            assert f is not None
            (tree / Path(name).name).write_bytes(f.read())
    needed = imported_from_libc(tree)
    assert "malloc" in needed  # libz's
    assert not any(n.startswith("apk_") for n in needed)


def test_verify_refuses_a_record_below_the_proven_floor() -> None:
    from builder.platforms import get_arch
    from builder.stages.verify import ArchiveIdentity, recorded_floor_check

    def ident(recorded: str) -> ArchiveIdentity:
        return ArchiveIdentity(None, {"musl_version_needed": recorded,
                                      "musl_floor": {"built_on": "1.2.5"}}, None,
                               get_arch("x86_64"), "3.12.8", "3.12")

    needed = frozenset({"printf", "preadv2", "pwritev2"})
    low = recorded_floor_check(ident("1.2.4"), needed)
    assert not low.ok and "symbols need 1.2.5 (preadv2, pwritev2)" in low.detail
    assert recorded_floor_check(ident("1.2.5"), needed).ok
    assert recorded_floor_check(ident("1.2.5_git20240512"), needed).ok  # higher is safe


def test_dynamic_symbols_of_real_musl_elves(musl_elves: Path) -> None:
    from builder.lowlevel.elf import dynamic_symbols

    foo = dynamic_symbols(musl_elves / "libfoo.so.1")
    assert foo is not None
    assert "foo" in foo.defined and "bar" not in foo.defined
    assert "bar" in foo.undefined
    prog = dynamic_symbols(musl_elves / "prog")
    assert prog is not None and {"foo", "printf"} <= prog.undefined


def test_dynamic_symbols_of_a_table_past_the_end_is_none(musl_elves: Path,
                                                        tmp_path: Path) -> None:
    """A .dynsym whose size runs past the end of the file (hostile or cut off): None, no
    traceback, nothing read out of bounds."""
    import struct

    from elftools.elf.elffile import ELFFile

    from builder.lowlevel.elf import dynamic_symbols

    data = bytearray((musl_elves / "libfoo.so.1").read_bytes())
    with (musl_elves / "libfoo.so.1").open("rb") as f:
        elf = ELFFile(f)
        assert elf.elfclass == 64 and elf.little_endian  # musl-gcc on x86_64
        index = next(i for i, s in enumerate(elf.iter_sections()) if s.name == ".dynsym")
        header = elf["e_shoff"] + index * elf["e_shentsize"]
    struct.pack_into("<Q", data, header + 32, len(data) * 4)  # Elf64_Shdr.sh_size
    bad = tmp_path / "libfoo.so.1"
    bad.write_bytes(bytes(data))
    assert dynamic_symbols(bad) is None
