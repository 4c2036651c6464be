"""Alpine architectures: the one table that maps Alpine names to everything else.

Docker platform, musl loader, ELF identity and the spellings used in archive names all
come from here; nothing else in the package hard-codes an architecture.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from builder.errors import UnknownArchError


@dataclass(frozen=True)
class ArmLevel:
    """The ARM code level an arch's ELF files must declare in their ``aeabi`` build
    attributes (ARM IHI 0045; read by builder.lowlevel.elf.arm_attributes). armhf and armv7
    share the loader name, so only these attributes tell their code apart."""

    name: str  # "ARMv6", "ARMv7"
    cpu_arch: frozenset[int]  # the Tag_CPU_arch values allowed
    thumb2: bool  # may Tag_THUMB_ISA_use say Thumb-2
    max_fp_arch: int | None  # the highest Tag_FP_arch allowed (2: VFPv2); None: any
    simd: bool  # may Tag_Advanced_SIMD_arch say NEON
    # Must every ELF carry the attributes? Where running code of a higher level faults
    # (SIGILL), an ELF whose level cannot be read is refused; elsewhere it is let through.
    attributes_required: bool


# ARMv6 (Alpine armhf: gcc --with-arch=armv6zk --with-fpu=vfp, the ARM1176JZF-S of the
# Raspberry Pi 1 and Zero): pre-v4 up to v6KZ and v6K, no v6T2 (Thumb-2), VFPv2, no NEON.
ARMV6 = ArmLevel("ARMv6", frozenset({0, 1, 2, 3, 4, 5, 6, 7, 9}), thumb2=False,
                 max_fp_arch=2, simd=False, attributes_required=True)
# ARMv7 (Alpine armv7: -march=armv7-a -mfpu=vfpv3-d16): v7 exactly. Lower says the file
# came from the ARMv6 port; v8 code would fault on ARMv7 CPUs. NEON is allowed (OpenSSL
# selects its NEON code at run time). An ELF without attributes proves no wrong level.
ARMV7 = ArmLevel("ARMv7", frozenset({10}), thumb2=True, max_fp_arch=None, simd=True,
                 attributes_required=False)


@dataclass(frozen=True)
class Arch:
    alpine: str  # Alpine's name: x86_64, aarch64, armv7, ...
    docker_platform: str  # OCI platform string for the Docker engine
    musl_arch: str  # the ARCH in ld-musl-ARCH.so.1 / libc.musl-ARCH.so.1
    elf_machine: str  # pyelftools e_machine name
    elf_class: int  # 32 or 64
    little_endian: bool
    archive_arch: str  # spelling in cpython-X.Y.Z-linux-<archive_arch>-musl
    triple_arch: str  # first component of the target triple (python-build-standalone style)
    triple_libc: str  # libc component of the target triple
    uv_family: str  # uv's download-metadata.json "arch.family" (see uv_arch, uv_libc)
    multiarch: str  # CPython's sys.implementation._multiarch on Alpine
    # The largest page size a kernel of this arch may use: PT_LOAD must align to it.
    max_page_size: int = 4096
    hard_float: bool | None = None  # ARM only: EF_ARM_ABI_FLOAT_HARD expected
    arm_level: ArmLevel | None = None  # ARM only: the code level of every ELF
    # qemu-user's CPU model for running this arch's programs (the QEMU_CPU environment
    # variable, read by qemu-user inside the container): qemu-arm's default CPU runs ARMv7
    # code, so an ARMv6 check under qemu proves nothing without "arm1176". None: default.
    qemu_cpu: str | None = None
    # Cross-compiling a C extension on the host (zig cc): the target and CPU.
    cross_target: str = ""
    cross_cpu: str | None = None

    @property
    def wheel_arch(self) -> str:
        """The arch in musllinux wheel platform tags (PEP 656)."""
        return _WHEEL_ARCH.get(self.alpine, self.alpine)

    @property
    def uv_arch(self) -> str:
        """How uv spells this arch in its keys and managed-install names (``uv python list``).

        uv parses ``arch.family`` with target_lexicon and prints 32-bit x86 as ``x86``
        (uv-platform arch.rs). uv's own arch is the one its binary was compiled for: the
        armv6 uv (``arm-unknown-linux-musleabihf``) asks for ``arm``, the armv7 uv for
        ``armv7``, hence armhf's family ``arm``.
        """
        return _UV_ARCH.get(self.uv_family, self.uv_family)

    @property
    def uv_libc(self) -> str:
        """uv's libc for this arch: the environment of the target triple (``musl``, and
        ``musleabihf`` on hard-float ARM). uv matches it exactly; on ARM it detects
        ``musleabihf`` when /proc/cpuinfo lists ``vfp`` (uv-platform libc.rs, cpuinfo.rs)."""
        return self.triple_libc

    @property
    def container_env(self) -> dict[str, str]:
        """Environment for every container that runs this arch's programs (under qemu-user
        on a foreign host; on real hardware the variables are ignored)."""
        return {"QEMU_CPU": self.qemu_cpu} if self.qemu_cpu else {}

    @property
    def loader(self) -> PurePosixPath:
        return PurePosixPath(f"/lib/ld-musl-{self.musl_arch}.so.1")

    @property
    def libc_soname(self) -> str:
        return f"libc.musl-{self.musl_arch}.so.1"

    @property
    def target_triple(self) -> str:
        return f"{self.triple_arch}-unknown-linux-{self.triple_libc}"


ARCHES: dict[str, Arch] = {
    a.alpine: a
    for a in (
        Arch("x86_64", "linux/amd64", "x86_64", "EM_X86_64", 64, True,
             "x86_64", "x86_64", "musl", "x86_64", "x86_64-linux-musl",
             cross_target="x86_64-linux-musl"),
        Arch("aarch64", "linux/arm64/v8", "aarch64", "EM_AARCH64", 64, True,
             "aarch64", "aarch64", "musl", "aarch64", "aarch64-linux-musl", 65536,
             cross_target="aarch64-linux-musl"),
        Arch("armv7", "linux/arm/v7", "armhf", "EM_ARM", 32, True,
             "armv7", "armv7", "musleabihf", "armv7", "arm-linux-musleabihf", hard_float=True,
             arm_level=ARMV7, cross_target="arm-linux-musleabihf",
             cross_cpu="generic+v7a+vfp3d16"),
        Arch("armhf", "linux/arm/v6", "armhf", "EM_ARM", 32, True,
             "armv6", "armv6", "musleabihf", "arm", "arm-linux-musleabihf", hard_float=True,
             arm_level=ARMV6, qemu_cpu="arm1176", cross_target="arm-linux-musleabihf",
             cross_cpu="arm1176jzf_s"),
        Arch("x86", "linux/386", "i386", "EM_386", 32, True,
             "i686", "i686", "musl", "i686", "i386-linux-musl",
             cross_target="x86-linux-musl", cross_cpu="i686"),
        Arch("ppc64le", "linux/ppc64le", "powerpc64le", "EM_PPC64", 64, True,
             "ppc64le", "ppc64le", "musl", "powerpc64le", "powerpc64le-linux-musl", 65536,
             cross_target="powerpc64le-linux-musl"),
        Arch("s390x", "linux/s390x", "s390x", "EM_S390", 64, False,
             "s390x", "s390x", "musl", "s390x", "s390x-linux-musl",
             cross_target="s390x-linux-musl"),
        Arch("riscv64", "linux/riscv64", "riscv64", "EM_RISCV", 64, True,
             "riscv64", "riscv64gc", "musl", "riscv64gc", "riscv64-linux-musl",
             cross_target="riscv64-linux-musl", cross_cpu="baseline_rv64"),
        # Alpine's ninth arch, from 3.21; its kernels use 16 KiB pages.
        Arch("loongarch64", "linux/loong64", "loongarch64", "EM_LOONGARCH", 64, True,
             "loongarch64", "loongarch64", "musl", "loongarch64", "loongarch64-linux-musl",
             16384, cross_target="loongarch64-linux-musl", cross_cpu="generic_la64+f+d"),
    )
}

_WHEEL_ARCH = {"armv7": "armv7l", "armhf": "armv6l", "x86": "i686"}
_UV_ARCH = {"i686": "x86"}

# Names people commonly type for an Alpine arch.
_ALIASES = {"amd64": "x86_64", "arm64": "aarch64", "i386": "x86", "i686": "x86",
            "ppc64el": "ppc64le", "armv6": "armhf", "loong64": "loongarch64"}

MUSL_LIBC_STEMS = ("libc", "libpthread", "librt", "libm", "libdl", "libutil", "libxnet")


def get_arch(name: str) -> Arch:
    """Return the :class:`Arch` for an Alpine arch name (or a common alias)."""
    key = _ALIASES.get(name, name)
    try:
        return ARCHES[key]
    except KeyError:
        valid = ", ".join(ARCHES)
        raise UnknownArchError(
            f"unknown architecture {name!r}",
            hint=f"use one of Alpine's architectures: {valid}",
        ) from None


def is_musl_libc_name(soname: str) -> bool:
    """musl's loader answers any lib{c,pthread,rt,m,dl,util,xnet}.* itself (ldso/dynlink.c)."""
    if soname.startswith("libc.musl-") or soname.startswith("ld-musl-"):
        return True
    stem = soname.split(".", 1)[0]
    return stem in MUSL_LIBC_STEMS and "." in soname


# Sonames only glibc's objects need (musl-built objects never name them): glibc's libc and
# its split-off libraries with glibc's version numbers, and glibc's loaders.
GLIBC_SONAMES = frozenset({
    "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
    "libutil.so.1", "libresolv.so.2", "libanl.so.1", "libnsl.so.1", "libmvec.so.1",
    "libBrokenLocale.so.1", "libc_malloc_debug.so.0", "libthread_db.so.1",
})
_GLIBC_LOADER = re.compile(r"^(?:ld-linux[-.].*\.so\.\d+|ld64\.so\.\d+|ld\.so\.\d+)$")


def is_glibc_only_name(soname: str) -> bool:
    """A DT_NEEDED that says the object was linked against glibc (``libc.so.6``...)."""
    return soname in GLIBC_SONAMES or soname.startswith("libnss_") or bool(
        _GLIBC_LOADER.match(soname))
