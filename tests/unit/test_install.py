"""install: picks the archive that fits, checks it, refuses clearly when nothing fits."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from builder.cli import main
from builder.errors import MuslTooOldError, NoFittingArchiveError, NotOurArchiveError
from builder.host.detect import Detection
from builder.host.install import candidates_from_dir, choose, install
from builder.lowlevel.apkversion import compare
from builder.lowlevel.muslfloor import load_table, loader_symbols
from builder.naming import ArchiveName
from builder.platforms import get_arch
from builder.progress import NullReporter
from builder.stages.pack import pack


def _musl(arch: str = "x86_64", version: str = "1.2.5") -> Detection:
    return Detection(Path("/"), "musl", version, arch, "x86-64", "/lib/ld-musl-x86_64.so.1",
                     "/lib/ld-musl-x86_64.so.1", "/bin/sh", "cpython-*", None, ("test",))


def _release(tmp_path: Path, versions: list[str], musl: str = "1.2.5",
             floor: dict[str, object] | None = None) -> Path:
    dist = tmp_path / "dist"
    for v in versions:
        tree = tmp_path / f"tree-{v}" / "python"
        (tree / "bin").mkdir(parents=True)
        (tree / "bin" / "python3").write_text("#!/bin/sh\necho hi\n")
        info: dict[str, object] = {"musl_version_needed": musl}
        if floor is not None:
            info["musl_floor"] = floor
        pack(tree, ArchiveName(v, get_arch("x86_64")), dist, info, 1000, NullReporter())
    return dist


def test_newest_matching_version_is_chosen(tmp_path: Path) -> None:
    cands = candidates_from_dir(_release(tmp_path, ["3.11.2", "3.11.9", "3.12.8"]))
    assert choose(cands, _musl(), None).version == "3.12.8"
    assert choose(cands, _musl(), "3.11").version == "3.11.9"
    assert choose(cands, _musl(), "3.11.2").version == "3.11.2"
    with pytest.raises(NoFittingArchiveError, match="no archive for aarch64"):
        choose(cands, _musl("aarch64"), None)


def test_old_musl_is_refused(tmp_path: Path) -> None:
    cands = candidates_from_dir(_release(tmp_path, ["3.12.8"], musl="1.2.5"))
    with pytest.raises(NoFittingArchiveError, match=r"needs musl >= 1\.2\.5"):
        choose(cands, _musl(version="1.2.3"), None)


FOUR = ["1.2.4", "1.2.4_git20230717", "1.2.5", "1.2.5_git20240512"]


@pytest.mark.parametrize("needed", FOUR)
@pytest.mark.parametrize("host", FOUR)
def test_floor_judged_in_apks_order(tmp_path: Path, needed: str, host: str) -> None:
    """The four versions real Alpine has shipped or snapshots: 3.18's 1.2.4, 3.19's
    1.2.4_git20230717 (newer than 1.2.4), 1.2.5, and a 1.2.5 git snapshot."""
    cands = candidates_from_dir(_release(tmp_path, ["3.12.8"], musl=needed))
    if compare(host, needed) >= 0:
        assert choose(cands, _musl(version=host), None).version == "3.12.8"
    else:
        with pytest.raises(MuslTooOldError, match=f"needs musl >= {needed}"):
            choose(cands, _musl(version=host), None)
    # by hand, the cases issue 10 names: 1.2.4 on 3.19 accepted, 1.2.4_git on 3.18 refused
    assert compare("1.2.4_git20230717", "1.2.4") > 0


def test_refusal_names_the_missing_symbols(tmp_path: Path) -> None:
    floor = load_table().floor("x86_64", {"printf", "preadv2", "pwritev2"}, "1.2.5")
    cands = candidates_from_dir(_release(tmp_path, ["3.12.8"], floor=floor.to_json()))
    for host in ("1.2.4", "1.2.4_git20230717"):
        with pytest.raises(MuslTooOldError, match="lacks preadv2, pwritev2") as e:
            choose(cands, _musl(version=host), None)
        assert e.value.exit_code == 40 and "before unpacking" in e.value.message
    assert choose(cands, _musl(version="1.2.5_git20240512"), None).version == "3.12.8"


def test_the_hosts_own_loader_decides(tmp_path: Path) -> None:
    """With the host's real loader at hand, its exports decide, whatever its version says."""
    from tests.unit.test_muslfloor import real_loader

    floor = load_table().floor("x86_64", {"printf", "preadv2", "pwritev2"}, "1.2.5")
    cands = candidates_from_dir(_release(tmp_path, ["3.12.8"], floor=floor.to_json()))
    old = loader_symbols(real_loader(tmp_path, "3.19.4"))
    new = loader_symbols(real_loader(tmp_path, "3.20.3"))
    with pytest.raises(MuslTooOldError, match="lacks preadv2, pwritev2"):
        choose(cands, _musl(version="1.2.5"), None, old)  # a loader that lies about its age
    assert choose(cands, _musl(version="1.2.4"), None, new).version == "3.12.8"


def test_install_checks_sha256_and_unpacks(tmp_path: Path) -> None:
    dist = _release(tmp_path, ["3.12.8"])
    cand = choose(candidates_from_dir(dist), _musl(), None)
    python = install(cand, tmp_path / "opt" / "py")
    assert python == tmp_path / "opt" / "py" / "bin" / "python3" and python.exists()
    assert [p.name for p in (tmp_path / "opt").iterdir()] == ["py"]  # no temp left
    with pytest.raises(NoFittingArchiveError, match="already exists"):
        install(cand, tmp_path / "opt" / "py")
    cand.path.write_bytes(cand.path.read_bytes() + b"tampered")
    with pytest.raises(NotOurArchiveError, match="does not match"):
        install(cand, tmp_path / "opt" / "py2")
    assert not (tmp_path / "opt" / "py2").exists()


def test_glibc_host_is_refused_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # This machine (Debian) is glibc: the real detection must refuse.
    dist = _release(tmp_path, ["3.12.8"])
    assert main(["install", "--from", str(dist), "--dir", str(tmp_path / "py")]) == 16
    err = capsys.readouterr().err
    assert "uses glibc" in err and "not musl" in err and "hint:" in err
    assert not (tmp_path / "py").exists()
    manifest = json.loads((dist / "cpython-3.12.8-linux-x86_64-musl.json").read_text())
    assert manifest["musl_version_needed"] == "1.2.5"


@pytest.mark.skipif(shutil.which("musl-gcc") is None, reason="needs musl-gcc")
def test_unpacked_files_are_checked_against_the_hosts_loader(tmp_path: Path) -> None:
    """No manifest symbols (as from uv's metadata): the files themselves are read after
    unpacking, and nothing is put in place when the host's loader lacks what they import."""
    from tests.unit.test_muslfloor import real_loader

    src = tmp_path / "p2.c"
    src.write_text("#include <sys/uio.h>\n"
                   "extern long preadv2(int, const struct iovec *, int, long, int);\n"
                   "long f(int fd) { struct iovec v = {0, 0};\n"
                   "                 return preadv2(fd, &v, 1, 0, 0); }\n")
    dist = _release(tmp_path, ["3.12.8"], musl="1.2.4")  # a manifest that says too little
    tree = tmp_path / "tree-3.12.8" / "python"
    (tree / "lib").mkdir()
    subprocess.run(["musl-gcc", "-shared", "-fPIC", "-o", str(tree / "lib" / "libp2.so"),
                    str(src)], check=True)
    for p in dist.iterdir():
        p.unlink()
    pack(tree, ArchiveName("3.12.8", get_arch("x86_64")), dist,
         {"musl_version_needed": "1.2.4"}, 1000, NullReporter())
    cand = choose(candidates_from_dir(dist), _musl(version="1.2.4_git20230717"), None)
    old = loader_symbols(real_loader(tmp_path, "3.19.4"))
    with pytest.raises(MuslTooOldError, match="lacks preadv2") as e:
        install(cand, tmp_path / "opt" / "py", loader=old)
    assert "nothing was installed" in e.value.message
    assert not (tmp_path / "opt" / "py").exists()
    assert [p.name for p in (tmp_path / "opt").iterdir()] == []  # no temporary left
    new = loader_symbols(real_loader(tmp_path, "3.20.3"))
    assert install(cand, tmp_path / "opt" / "py", loader=new).exists()
