from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from builder.errors import UnknownArchError
from builder.lowlevel.elf import read_elf
from builder.naming import ArchiveName, parse_archive_name
from builder.platforms import ARCHES, get_arch, is_musl_libc_name
from tests.minirootfs import NAMES
from tests.minirootfs import tarball as minirootfs


def test_all_nine_alpine_arches() -> None:
    assert set(ARCHES) == {"x86_64", "aarch64", "armv7", "armhf", "x86", "ppc64le",
                           "s390x", "riscv64", "loongarch64"}
    loong = get_arch("loongarch64")
    assert (loong.docker_platform, str(loong.loader), loong.elf_machine) == (
        "linux/loong64", "/lib/ld-musl-loongarch64.so.1", "EM_LOONGARCH")
    assert get_arch("loong64") is loong
    assert get_arch("aarch64").docker_platform == "linux/arm64/v8"
    assert str(get_arch("armv7").loader) == "/lib/ld-musl-armhf.so.1"
    assert str(get_arch("x86").loader) == "/lib/ld-musl-i386.so.1"
    assert get_arch("s390x").little_endian is False


def test_unknown_arch_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownArchError) as e:
        get_arch("sparc")
    assert "sparc" in e.value.message
    for name in ARCHES:
        assert name in e.value.hint
    assert e.value.exit_code == 3


def test_aliases() -> None:
    assert get_arch("amd64").alpine == "x86_64"
    assert get_arch("arm64").alpine == "aarch64"


@pytest.mark.parametrize("name", ["libc.musl-x86_64.so.1", "libc.so", "libpthread.so.0",
                                  "libm.so.6", "libdl.so.2", "ld-musl-aarch64.so.1"])
def test_musl_answers_libc_names(name: str) -> None:
    assert is_musl_libc_name(name)


@pytest.mark.parametrize("name", ["libz.so.1", "libcrypto.so.3", "libcurses.so", "libc"])
def test_other_names_are_not_libc(name: str) -> None:
    assert not is_musl_libc_name(name)


def test_archive_names_round_trip() -> None:
    for arch in ARCHES.values():
        name = ArchiveName("3.12.8", arch)
        for filename in (name.gz, name.zst, name.manifest):
            assert parse_archive_name(filename) == name
    assert ArchiveName("3.11.2", get_arch("x86_64")).gz == "cpython-3.11.2-linux-x86_64-musl.tar.gz"
    assert parse_archive_name("cpython-3.11.2-linux-x86_64-gnu.tar.gz") is None
    assert parse_archive_name("python.tar.gz") is None


def test_every_error_class_has_its_own_exit_code() -> None:
    import builder.errors as errors

    classes = [c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, errors.MuslPbsError)
               and c is not errors.MuslPbsError]
    codes = [c.exit_code for c in classes]
    duplicated = {c.__name__: c.exit_code for c in classes if codes.count(c.exit_code) > 1}
    assert not duplicated
    assert all(2 <= code < 126 for code in codes)


@pytest.mark.parametrize("tarball", NAMES)
def test_table_matches_the_real_alpine_loader(tarball: str, tmp_path: Path) -> None:
    """Each official minirootfs's loader has the name, ELF identity and PT_LOAD alignment
    (the largest page size its kernels use: 64 KiB aarch64/ppc64le, 16 KiB loongarch64)
    the arch table says."""
    arch = get_arch(tarball.removesuffix(".tar.gz").rsplit("-", 1)[1])
    with tarfile.open(minirootfs(tarball)) as tar:
        member = tar.getmember(f".{arch.loader}")
        f = tar.extractfile(member)
        assert f is not None
        (tmp_path / "ld").write_bytes(f.read())
    info = read_elf(tmp_path / "ld")
    assert info is not None
    assert (info.machine, info.elf_class, info.little_endian) == (
        arch.elf_machine, arch.elf_class, arch.little_endian)
    assert {align for _off, _addr, align in info.loads} == {arch.max_page_size}
    assert info.arm_hard_float is arch.hard_float


# (uv arch family in download-metadata.json, uv's own spelling in keys and install names,
# uv's libc), as confirmed by running uv 0.13.9's musl binaries in the real Alpine 3.20.3
# minirootfs of each arch (`uv python install` with a request for each spelling) and by
# uv's source (uv-platform arch.rs, libc.rs; uv-python downloads.rs).
UV_SPELLINGS = {
    "x86_64": ("x86_64", "x86_64", "musl"),
    "aarch64": ("aarch64", "aarch64", "musl"),
    "armv7": ("armv7", "armv7", "musleabihf"),
    "armhf": ("arm", "arm", "musleabihf"),  # the armv6 uv binary is arm-unknown-linux-...
    "x86": ("i686", "x86", "musl"),
    "ppc64le": ("powerpc64le", "powerpc64le", "musl"),
    "s390x": ("s390x", "s390x", "musl"),
    "riscv64": ("riscv64gc", "riscv64gc", "musl"),
    # From uv's source only (target_lexicon's LoongArch64; uv-platform libc.rs knows
    # ld-musl-loongarch64.so.1): PyPI has no uv binary for loongarch64 to run.
    "loongarch64": ("loongarch64", "loongarch64", "musl"),
}


def test_every_arch_has_its_uv_spelling_checked() -> None:
    assert set(UV_SPELLINGS) == set(ARCHES)


@pytest.mark.parametrize("arch", sorted(UV_SPELLINGS))
def test_uv_spellings(arch: str) -> None:
    a = get_arch(arch)
    assert (a.uv_family, a.uv_arch, a.uv_libc) == UV_SPELLINGS[arch]


def test_uv_install_names() -> None:
    from builder.naming import uv_download_key, uv_install_name

    x86 = ArchiveName("3.12.8", get_arch("x86"))
    assert uv_download_key(x86) == "cpython-3.12.8-linux-i686-musl"
    assert uv_install_name(x86) == "cpython-3.12.8-linux-x86-musl"
    armv7 = ArchiveName("3.12.8", get_arch("armv7"))
    assert uv_install_name(armv7) == "cpython-3.12.8-linux-armv7-musleabihf"
