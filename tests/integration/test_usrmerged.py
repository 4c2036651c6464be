"""End to end against the real engine: a usr-merged variant of the test ground's image
(``/lib``, ``/bin``, ``/sbin`` moved into ``/usr``, links left behind) builds and verifies.

The variant is derived here: a container of the test-ground image is exported (streamed
through the extraction core), usr-merged, and loaded as ``musl-pbs-test/usrmerged:<tag>``,
labelled with the source image id so that a later run reuses it.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import docker.errors
import pytest

from builder.cli import main
from builder.config import load_recipe
from builder.lowlevel.container import Container, docker_client
from builder.lowlevel.extract import extract
from builder.lowlevel.images import SOURCE_LABEL, load_rootfs_image
from builder.lowlevel.tarstream import ROOTFS_LIMITS
from builder.platforms import get_arch
from builder.progress import NullReporter
from builder.stages.acquire import Acquired, rootfs_transform
from builder.stages.stage import stage
from tests.usrmerge import usr_merge

pytestmark = pytest.mark.docker
X86_64 = get_arch("x86_64")


def _usrmerged_image(source: str, work: Path) -> str:
    client = docker_client()
    source_id = str(client.images.get(source).id)
    ref = f"musl-pbs-test/usrmerged:x86_64-{source_id.split(':')[-1][:12]}"
    try:
        if (client.images.get(ref).labels or {}).get(SOURCE_LABEL) == source_id:
            return ref
    except docker.errors.ImageNotFound:
        pass
    root = work / "root"
    with Container(client, source, platform=X86_64.docker_platform,
                   purpose="extract-usrmerge") as c, c.export_stream() as stream:
        extract(stream, root, ROOTFS_LIMITS, transform=rootfs_transform)
    usr_merge(root)
    layer = work / "layer.tar"
    with tarfile.open(layer, "w") as tar:
        for entry in sorted(root.iterdir()):
            tar.add(str(entry), arcname=entry.name)
    load_rootfs_image(client, layer, ref, X86_64, labels={SOURCE_LABEL: source_id})
    return ref


@pytest.fixture(scope="module")
def usrmerged_image(images_x86_64: tuple[str, str],
                    tmp_path_factory: pytest.TempPathFactory) -> str:
    return _usrmerged_image(images_x86_64[0], tmp_path_factory.mktemp("usrmerge"))


def test_the_variant_really_is_usr_merged(usrmerged_image: str) -> None:
    out = subprocess.run(["docker", "run", "--rm", usrmerged_image, "/bin/sh", "-c",
                          "readlink /lib; readlink /bin; readlink /sbin; "
                          "ls /usr/lib/apk/db/installed"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["usr/lib", "usr/bin", "usr/sbin", "/usr/lib/apk/db/installed"]


def test_build_and_verify_from_a_usr_merged_root(
    usrmerged_image: str, images_x86_64: tuple[str, str], tmp_path: Path
) -> None:
    dist, work = tmp_path / "dist", tmp_path / "work"
    code = main(["build", "--arch", "x86_64", "--image", usrmerged_image,
                 "--out", str(dist), "--work", str(work), "-q"])
    assert code == 0
    gz = next(dist.glob("cpython-3.*-linux-x86_64-musl.tar.gz"))
    manifest = json.loads(gz.with_name(gz.name.replace(".tar.gz", ".json")).read_text())
    assert manifest["alpine_release"]
    assert "python3" in {p["name"] for p in manifest["packages"]}
    assert "libz.so.1" in manifest["bundled_libraries"]
    root = work / "x86_64" / "acquire" / "rootfs"
    assert os.readlink(root / "lib") == "usr/lib"
    # The stream kept what the facts need and dropped what no archive holds.
    assert (root / "usr/lib/apk/db/installed").is_file() and not (root / "proc").exists()
    assert not list((work / "x86_64" / "acquire").glob("*.tar"))
    # acquire.json and rootfs/ are all a stage needs to run again alone.
    acquired = Acquired.load(work / "x86_64" / "acquire")
    staged = stage(acquired, load_recipe(acquired.python.minor), X86_64, tmp_path / "again",
                   NullReporter())
    assert staged.bundled == manifest["bundled_libraries"]
    assert main(["verify", str(gz), "--image", images_x86_64[1]]) == 0
