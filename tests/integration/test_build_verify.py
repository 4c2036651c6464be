"""End to end against the real Docker engine: build x86_64 from the Alpine-like image,
verify it in the musl-only base image, and see verify fail on a broken copy."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from builder.cli import main
from builder.config import load_recipe
from builder.errors import ContainerCommandError
from builder.lowlevel.elf import read_elf
from builder.lowlevel.rootfs import resolve_in_root
from builder.lowlevel.tarreader import Member
from builder.platforms import get_arch
from builder.progress import NullReporter
from builder.stages.acquire import acquire
from tests.integration.conftest import archive_without

pytestmark = pytest.mark.docker


def _leftover_containers() -> list[str]:
    out = subprocess.run(["docker", "ps", "-aq", "--filter",
                          f"label=org.musl-pbs.pid={os.getpid()}"],
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def _archive(dist: Path, suffix: str = ".tar.gz") -> Path:
    found = sorted(dist.glob(f"cpython-3.*-linux-x86_64-musl{suffix}"))
    assert len(found) == 1, list(dist.iterdir())
    return found[0]


def test_build_writes_archives_checksums_and_manifest(built_x86_64: Path) -> None:
    gz = _archive(built_x86_64)
    zst = _archive(built_x86_64, ".tar.zst")
    manifest = json.loads(gz.with_name(gz.name.replace(".tar.gz", ".json")).read_text())
    assert manifest["arch"] == "x86_64" and manifest["libc"] == "musl"
    assert gz.name == f"cpython-{manifest['python_version']}-linux-x86_64-musl.tar.gz"
    assert manifest["musl_version_needed"].startswith("1.2.")
    assert manifest["alpine_release"]
    names = {p["name"]: p for p in manifest["packages"]}
    assert "python3" in names and names["python3"]["license"]
    assert "libffi.so.8" in manifest["bundled_libraries"] or any(
        n.startswith("libffi") for n in manifest["bundled_libraries"])
    assert manifest["archives"]["tar.gz"]["size"] == gz.stat().st_size
    sums = (built_x86_64 / "SHA256SUMS").read_text()
    assert manifest["archives"]["tar.gz"]["sha256"] + "  " + gz.name in sums
    assert manifest["archives"]["tar.zst"]["sha256"] + "  " + zst.name in sums
    assert manifest["file_count"] > 500
    assert not list(built_x86_64.glob("*.tmp")) and not list(built_x86_64.glob(".*"))
    assert (built_x86_64 / gz.name.replace(".tar.gz", ".cdx.json")).is_file()
    assert (built_x86_64 / "download-metadata.json").is_file()
    assert manifest["image_id"].startswith("sha256:")
    with tarfile.open(gz) as tar:
        names_in = tar.getnames()
    assert {n.split("/")[0] for n in names_in} == {"python"}
    assert not any("EXTERNALLY-MANAGED" in n for n in names_in)
    assert not any("/lib/apk/" in n or n.startswith("python/share/man") for n in names_in)
    assert not any(n.startswith(f"python/lib/python{manifest['python_minor']}/test/")
                   for n in names_in)
    assert _leftover_containers() == []


def test_verify_passes(built_x86_64: Path, images_x86_64: tuple[str, str],
                       capsys: pytest.CaptureFixture[str]) -> None:
    gz = _archive(built_x86_64)
    code = main(["verify", str(gz), "--image", images_x86_64[1], "--json"])
    report = json.loads(capsys.readouterr().out)
    failed = [r for r in report["results"] if not r["ok"] and r["level"] == "error"]
    assert code == 0, failed
    checks = {r["check"]: r for r in report["results"]}
    for name in ("prefix", "zlib", "ctypes-callback", "musl-abi", "thread-stack", "venv",
                 "venv-python", "pip-install-numpy", "numpy", "static:needed", "static:rpath",
                 "static:elf-interpreter", "static:elf-machine", "checksum"):
        assert checks[name]["ok"], checks[name]
    assert "105" in checks["numpy"]["detail"]
    assert checks["prefix"]["detail"].startswith("/opt/unpacked-")
    assert sum(c.startswith("import:") for c in checks) >= 20
    assert _leftover_containers() == []


def test_thread_stack_probe_catches_musls_default_stack(
    built_x86_64: Path, images_x86_64: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Deep recursion in a thread: 2 MiB (what Alpine's python3 asks for) passes, musl's
    default 128 KiB fails and verify names the check. In the musl-only base, too."""
    gz = _archive(built_x86_64)
    code = main(["verify", str(gz), "--image", images_x86_64[1], "--musl-only",
                 "--thread-stack-probe", "131072"])
    err = capsys.readouterr().err
    assert code == 12, err
    failed = err[err.index("check(s) failed"):]
    assert "thread-stack" in failed and "threading.stack_size(131072)" in failed
    assert "SIGSEGV" in failed or "RecursionError" in failed
    code = main(["verify", str(gz), "--image", images_x86_64[1], "--musl-only",
                 "--thread-stack-probe", "2097152", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, [r for r in report["results"] if not r["ok"]]
    stack = next(r for r in report["results"] if r["check"] == "thread-stack")
    assert stack["ok"] and "threading.stack_size(2097152)" in stack["detail"], stack


def test_verify_zst_statically(built_x86_64: Path) -> None:
    assert main(["verify", str(_archive(built_x86_64, ".tar.zst")), "--static-only"]) == 0


def test_verify_fails_without_libffi(
    built_x86_64: Path, images_x86_64: tuple[str, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gz = _archive(built_x86_64)
    broken = archive_without(gz, tmp_path / gz.name,
                             lambda name: name.startswith("python/lib/libffi"))
    code = main(["verify", str(broken), "--image", images_x86_64[1]])
    err = capsys.readouterr().err
    assert code == 12
    assert "_ctypes" in err
    assert "libffi.so" in err
    assert "static:needed" in err and "import:_ctypes" in err


def test_missing_image_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    code = main(["build", "--arch", "x86_64", "--image", "musl-pbs-test/no-such-image:1",
                 "--out", str(tmp_path / "dist"), "--work", str(tmp_path / "work")])
    err = capsys.readouterr().err
    assert code == 6
    assert "musl-pbs-test/no-such-image:1" in err and "hint:" in err
    assert not (tmp_path / "dist").exists()


def test_apk_failure_shows_apks_message(images_x86_64: tuple[str, str], tmp_path: Path) -> None:
    recipe = load_recipe("3.11")
    bad = type(recipe)(**{**recipe.__dict__, "packages": ("no-such-package-xyz",)})

    class Quiet:
        def stage(self, name: str, message: str) -> None: ...
        def detail(self, message: str) -> None: ...
        def output(self, line: str) -> None: ...

    with pytest.raises(ContainerCommandError) as e:
        acquire(arch=get_arch("x86_64"), image=images_x86_64[0], recipe=bad,
                out_dir=tmp_path, reporter=Quiet())
    assert "no-such-package-xyz" in e.value.message
    assert "apk add --no-cache no-such-package-xyz" in e.value.message
    assert _leftover_containers() == []
    assert not (tmp_path / "rootfs").exists()


def test_ctrl_c_removes_the_container(images_x86_64: tuple[str, str], tmp_path: Path) -> None:
    class Interrupt:
        def stage(self, name: str, message: str) -> None: ...
        def detail(self, message: str) -> None: ...
        def output(self, line: str) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        acquire(arch=get_arch("x86_64"), image=images_x86_64[0], recipe=load_recipe("3.11"),
                out_dir=tmp_path, reporter=Interrupt())
    assert _leftover_containers() == []


def test_ctrl_c_during_the_export_stream_leaves_no_container_and_no_tree(
    images_x86_64: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export flows into the extraction; an interrupt halfway through it removes the
    container and the half-made tree, and nothing is left under the final name."""
    import builder.stages.acquire as acquire_module

    seen: list[str] = []
    transform = acquire_module.rootfs_transform

    def interrupt_halfway(member: Member) -> Member | None:
        seen.append(member.name)
        if len(seen) == 800:
            raise KeyboardInterrupt
        return transform(member)

    monkeypatch.setattr(acquire_module, "rootfs_transform", interrupt_halfway)
    with pytest.raises(KeyboardInterrupt):
        acquire(arch=get_arch("x86_64"), image=images_x86_64[0], recipe=load_recipe("3.11"),
                out_dir=tmp_path, reporter=NullReporter())
    assert len(seen) == 800
    assert _leftover_containers() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_ctrl_c_while_the_container_goes_in_the_background(
    images_x86_64: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build removes the acquire container in a thread while stage runs; Ctrl-C in stage
    still ends with the container gone, before main returns."""
    import builder.build as build_module

    removing: list[int] = []

    def interrupted_stage(*args: object, **kwargs: object) -> None:
        from builder.lowlevel import container
        removing.append(len(container._REMOVING))
        raise KeyboardInterrupt

    monkeypatch.setattr(build_module, "stage", interrupted_stage)
    code = main(["build", "--arch", "x86_64", "--image", images_x86_64[0],
                 "--out", str(tmp_path / "dist"), "--work", str(tmp_path / "work"), "-q"])
    assert code == 130
    assert removing == [1]  # the removal was under way when stage began
    assert _leftover_containers() == []
    assert not (tmp_path / "dist").exists() or list((tmp_path / "dist").iterdir()) == []


def test_same_image_same_recipe_same_bytes(
    built_x86_64: Path, images_x86_64: tuple[str, str], tmp_path: Path
) -> None:
    """Reproducible archives: a second build of the same image gives identical bytes."""
    code = main(["build", "--arch", "x86_64", "--image", images_x86_64[0],
                 "--out", str(tmp_path / "dist"), "--work", str(tmp_path / "work"), "-q"])
    assert code == 0
    for suffix in (".tar.gz", ".tar.zst"):
        first, second = _archive(built_x86_64, suffix), _archive(tmp_path / "dist", suffix)
        assert first.name == second.name
        assert first.read_bytes() == second.read_bytes(), suffix


def test_the_export_stays_as_acquire_left_it(built_x86_64: Path) -> None:
    """stage hard-links from the export; relocate changes its files without touching the
    export's (any stage can run again from it)."""
    work = built_x86_64.parent / "work" / "x86_64"
    facts = json.loads((work / "acquire" / "acquire.json").read_text())["python"]
    rootfs = work / "acquire" / "rootfs"
    exported_exe = resolve_in_root(rootfs, facts["executable"])
    assert exported_exe is not None
    minor = facts["minor"]
    staged = work / "stage" / "python"
    exported, ours = read_elf(exported_exe), read_elf(staged / "bin" / f"python{minor}")
    assert exported is not None and ours is not None
    assert not any("$ORIGIN" in p for p in exported.search_path), exported.search_path
    assert any("$ORIGIN" in p for p in ours.search_path), ours.search_path
    assert exported_exe.stat().st_ino != (staged / "bin" / f"python{minor}").stat().st_ino
    # the sysconfig data relocate rewrote still names the image's prefix in the export
    name = next((staged / "lib" / f"python{minor}").glob("_sysconfigdata_*.py")).name
    text = (rootfs / facts["stdlib"].lstrip("/") / name).read_text()
    assert f"'prefix': '{facts['prefix']}'" in text and "'prefix': '/install'" not in text
    assert "'prefix': '/install'" in (staged / "lib" / f"python{minor}" / name).read_text()
    # an untouched module is the same inode in both trees: nothing was copied
    os_py = "os.py"
    assert (staged / "lib" / f"python{minor}" / os_py).stat().st_ino == (
        rootfs / facts["stdlib"].lstrip("/") / os_py).stat().st_ino


def test_derived_base_image_has_only_loader_and_busybox(
    built_x86_64: Path, images_x86_64: tuple[str, str]
) -> None:
    """verify's default: a base derived from the build image (here the Alpine-like one)."""
    from builder.lowlevel.images import derive_base_image
    from builder.progress import NullReporter

    arch = get_arch("x86_64")
    ref = derive_base_image(images_x86_64[0], arch, NullReporter())
    assert derive_base_image(images_x86_64[0], arch, NullReporter()) == ref  # reused
    listing = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", ref, "sh", "-c",
         "ls /lib /usr/lib 2>/dev/null; ls /usr/bin | head -3"],
        capture_output=True, text=True, check=True).stdout.split()
    assert "ld-musl-x86_64.so.1" in listing
    assert not any(name.startswith(("libz", "libffi", "libssl", "python")) for name in listing)
    assert main(["verify", str(_archive(built_x86_64)), "--image", ref]) == 0
