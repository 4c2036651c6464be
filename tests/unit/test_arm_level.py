"""The ARM code level from the ELF build attributes: armhf (ARMv6) and armv7 share the
loader name, so only ``.ARM.attributes`` tells their code apart.

Real ELF files throughout: objects compiled here with zig cc for the CPUs in question
(ARM1176JZF-S, ARM1156T2F-S, Cortex-A7, generic ARMv7-A), and the libraries and programs of
the official Alpine 3.20.3 armhf and armv7 minirootfs tarballs.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from builder.lowlevel.crossext import zig_command
from builder.lowlevel.elf import arm_attributes, is_elf
from builder.platforms import ARCHES, get_arch
from builder.stages.audit import arm_level_findings, audit_elves, rules_for
from tests.minirootfs import release as minirootfs

ARMHF, ARMV7 = get_arch("armhf"), get_arch("armv7")
SOURCE = "int triple(int x) { return 3 * x; }\nint main(void) { return triple(0); }\n"
# -mcpu -> what its code is: (Tag_CPU_arch name, Thumb-2?)
CPUS = {
    "arm1176jzf_s": "v6",  # Raspberry Pi 1 / Zero: Alpine armhf's CPU
    "arm1156t2f_s": "v6T2",  # ARMv6 with Thumb-2: not an armhf CPU
    "cortex_a7": "v7",  # ARMv7-A with VFPv4 and NEON
    "generic+v7a+vfp3d16-neon": "v7",  # Alpine armv7's baseline
}


def _zig(*args: str) -> None:
    zig = zig_command()
    if zig is None:
        pytest.fail("zig is missing: pip install -e '.[test]' installs the ziglang wheel")
    subprocess.run([*zig, "cc", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """cpu -> a shared object compiled for it (arm-linux-musleabihf, hard-float)."""
    d = tmp_path_factory.mktemp("arm-objects")
    (d / "t.c").write_text(SOURCE)
    out = {}
    for cpu in CPUS:
        so = d / f"{cpu.replace('+', '_')}.so"
        _zig("-target", "arm-linux-musleabihf", f"-mcpu={cpu}", "-shared", "-o", str(so),
             str(d / "t.c"))
        out[cpu] = so
    return out


def _without_attributes(src: Path, dest: Path) -> Path:
    """``src`` with its .ARM.attributes section retyped as plain data (SHT_PROGBITS): the
    bytes stay, the build attributes are gone, as from a toolchain that writes none."""
    shutil.copy(src, dest)
    with dest.open("rb") as f:
        elf = ELFFile(f)
        index = next(i for i, s in enumerate(elf.iter_sections())
                     if s["sh_type"] == "SHT_ARM_ATTRIBUTES")
        where = elf["e_shoff"] + index * elf["e_shentsize"] + 4  # Elf32_Shdr.sh_type
    with dest.open("r+b") as f:
        f.seek(where)
        f.write(struct.pack("<I", 1))
    return dest


def test_the_reader_gives_the_level_each_cpu_builds(built: dict[str, Path]) -> None:
    for cpu, name in CPUS.items():
        attrs = arm_attributes(built[cpu])
        assert attrs is not None and attrs.cpu_arch_name == name, cpu
        assert attrs.vfp_args == 1  # hard-float argument passing
    v6, a7 = arm_attributes(built["arm1176jzf_s"]), arm_attributes(built["cortex_a7"])
    assert v6 is not None and (v6.thumb_isa, v6.fp_arch, v6.simd_arch) == (1, 2, None)
    assert a7 is not None and a7.thumb_isa == 2 and a7.simd_arch


def test_armv6_code_passes_armhf_and_is_not_armv7(built: dict[str, Path]) -> None:
    so = built["arm1176jzf_s"]
    assert arm_level_findings("python/lib/x.so", so, ARMHF) == []
    [f] = arm_level_findings("python/lib/x.so", so, ARMV7)
    assert (f.check, f.path) == ("elf-arm-level", "python/lib/x.so")
    assert f.message == "Tag_CPU_arch v6: not code for armv7 (ARMv7), whose files say v7"


def test_armv7_code_passes_armv7_and_fails_armhf_on_each_count(built: dict[str, Path]) -> None:
    for cpu in ("cortex_a7", "generic+v7a+vfp3d16-neon"):
        assert arm_level_findings("x.so", built[cpu], ARMV7) == [], cpu
    messages = [f.message for f in arm_level_findings("x.so", built["cortex_a7"], ARMHF)]
    assert messages == [
        "Tag_CPU_arch v7: not code for armhf (ARMv6), whose files say v6KZ/v6K",
        "Tag_THUMB_ISA_use Thumb-2: armhf (ARMv6) CPUs have no Thumb-2",
        "Tag_FP_arch VFPv4: above VFPv2, the floating point of armhf (ARMv6) CPUs",
        "Tag_Advanced_SIMD_arch 2: NEON code, which armhf (ARMv6) CPUs lack",
    ]


def test_v6t2_is_armv6_but_has_thumb2(built: dict[str, Path]) -> None:
    messages = [f.message for f in arm_level_findings("x.so", built["arm1156t2f_s"], ARMHF)]
    assert messages[:2] == [
        "Tag_CPU_arch v6T2: not code for armhf (ARMv6), whose files say v6KZ/v6K",
        "Tag_THUMB_ISA_use Thumb-2: armhf (ARMv6) CPUs have no Thumb-2",
    ]


def test_an_elf_without_attributes(built: dict[str, Path], tmp_path: Path) -> None:
    """armhf refuses it (a higher level would fault, and nothing shows it is not);
    armv7 lets it through (nothing shows a wrong level, and ARMv6 code runs on ARMv7)."""
    bare = _without_attributes(built["arm1176jzf_s"], tmp_path / "bare.so")
    assert arm_attributes(bare) is None
    [f] = arm_level_findings("python/lib/bare.so", bare, ARMHF)
    assert f.message == ("no ARM build attributes (.ARM.attributes): its code level cannot "
                         "be shown to fit armhf (ARMv6)")
    assert arm_level_findings("python/lib/bare.so", bare, ARMV7) == []


def test_not_arm_and_not_elf(tmp_path: Path) -> None:
    (tmp_path / "text").write_text("hello")
    assert arm_attributes(tmp_path / "text") is None
    assert arm_attributes(Path("/bin/sh").resolve()) is None  # an x86_64 ELF: no aeabi
    assert arm_level_findings("x", Path("/bin/sh").resolve(), get_arch("x86_64")) == []


def test_the_audit_names_the_file_and_the_rule(built: dict[str, Path], tmp_path: Path) -> None:
    """audit_elves runs the rule on every ELF of the tree, for the ARM ports only."""
    tree = tmp_path / "python"
    (tree / "bin").mkdir(parents=True)
    (tree / "lib").mkdir()
    (tmp_path / "m.c").write_text(SOURCE)
    _zig("-target", "arm-linux-musleabihf", "-mcpu=arm1176jzf_s", "-o",
         str(tree / "bin" / "python3"), str(tmp_path / "m.c"))
    shutil.copy(built["cortex_a7"], tree / "lib" / "libv7.so")
    armhf = [f for f in audit_elves(tree, ARMHF) if f.check == "elf-arm-level"]
    assert {f.path for f in armhf} == {"python/lib/libv7.so"}
    armv7 = [f for f in audit_elves(tree, ARMV7) if f.check == "elf-arm-level"]
    assert {f.path for f in armv7} == {"python/bin/python3"}
    assert "elf-arm-level" in rules_for(ARMHF) and "elf-arm-level" in rules_for(ARMV7)
    assert "elf-arm-level" not in rules_for(get_arch("x86_64"))


@pytest.mark.parametrize(("port", "other"), [("armhf", "armv7"), ("armv7", "armhf")])
def test_real_alpine_elves_fit_their_own_port_only(port: str, other: str,
                                                    tmp_path: Path) -> None:
    """Every ELF of the official 3.20.3 minirootfs passes its own port's level and fails the
    other's. One exception: armhf's musl loader says Thumb-2 (musl selects its ARMv7
    atomics at run time); the loader is never in an archive (musl is the system's)."""
    with tarfile.open(minirootfs("3.20.3", port)) as tar:
        regular = [m for m in tar.getmembers() if m.isreg()]  # links: busybox applets
        tar.extractall(tmp_path, members=regular, filter="data")
    elves = [p for p in sorted(tmp_path.rglob("*")) if is_elf(p)]
    assert len(elves) > 10
    for p in elves:
        rel = p.relative_to(tmp_path).as_posix()
        own = arm_level_findings(rel, p, get_arch(port))
        if rel == "lib/ld-musl-armhf.so.1" and port == "armhf":
            assert [f.message for f in own] == [
                "Tag_THUMB_ISA_use Thumb-2: armhf (ARMv6) CPUs have no Thumb-2"]
        else:
            assert own == [], rel
        assert arm_level_findings(rel, p, get_arch(other)), rel


def test_qemu_cpu_only_for_armv6() -> None:
    """qemu-arm's default CPU runs ARMv7 code: armhf's programs run as an ARM1176."""
    assert ARMHF.qemu_cpu == "arm1176"
    assert ARMHF.container_env == {"QEMU_CPU": "arm1176"}
    assert {a.alpine for a in ARCHES.values() if a.container_env} == {"armhf"}
    assert {a.alpine for a in ARCHES.values() if a.arm_level} == {"armhf", "armv7"}
