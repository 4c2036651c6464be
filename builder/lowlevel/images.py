"""Images musl-pbs makes itself: a musl-only base image derived from an Alpine release.

Images are assembled as a docker-archive (``manifest.json``, ``config.json``, one layer)
and loaded, because ``docker import`` records the host's architecture whatever the
platform asked for, and the engine then refuses to run a foreign-arch import.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import tempfile
from pathlib import Path

import docker.errors

from builder.errors import ImageNotFoundError
from builder.lowlevel.container import Container, docker_client, ensure_image
from builder.platforms import Arch
from builder.progress import Reporter

SOURCE_LABEL = "org.musl-pbs.source-image-id"


def load_rootfs_image(
    client: object, layer: Path, ref: str, arch: Arch, labels: dict[str, str] | None = None
) -> None:
    """Load ``layer`` (a rootfs tar) as image ``ref`` whose config says ``arch``."""
    digest = hashlib.sha256(layer.read_bytes()).hexdigest()
    parts = arch.docker_platform.split("/")
    config = {
        "architecture": parts[1],
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "Labels": labels or {},
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{digest}"]},
        "history": [{"created_by": "musl-pbs"}],
    }
    if len(parts) > 2:
        config["variant"] = parts[2]
    manifest = [{"Config": "config.json", "RepoTags": [ref], "Layers": ["layer.tar"]}]
    with tempfile.TemporaryDirectory(prefix="musl-pbs-image-") as tmp:
        archive = Path(tmp, "image.tar")
        with tarfile.open(archive, "w") as tar:
            for name, data in (("manifest.json", manifest), ("config.json", config)):
                blob = json.dumps(data).encode()
                info = tarfile.TarInfo(name)
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
            tar.add(str(layer), arcname="layer.tar")
        with archive.open("rb") as f:
            client.images.load(f)  # type: ignore[attr-defined]


def _keep_for_base(member: tarfile.TarInfo, loader_name: str, libc_name: str) -> bool:
    name = member.name.lstrip("./")
    if name in ("lib", "bin", "sbin", "usr", "usr/bin", "usr/sbin", "tmp", "root", "etc"):
        return member.isdir()
    if name in (f"lib/{loader_name}", f"lib/{libc_name}", "bin/busybox",
                "etc/passwd", "etc/group", "etc/alpine-release", "etc/os-release"):
        return True
    if member.issym() and name.split("/", 1)[0] in ("bin", "sbin", "usr"):
        return member.linkname.endswith("busybox")
    return False


def base_image_name(source: str, arch: Arch) -> str:
    """``alpine:3.19`` -> ``musl-pbs-base:alpine-3.19-x86_64``."""
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", source).strip("-.")[:100]
    return f"musl-pbs-base:{tag}-{arch.alpine}"


def derive_base_image(source: str, arch: Arch, reporter: Reporter) -> str:
    """A musl-only image made from ``source``: its loader and busybox, nothing else.

    So that a library the distribution itself ships cannot hide one the archive lacks.
    """
    ref = base_image_name(source, arch)
    client = docker_client()
    ensure_image(
        client, source, arch.docker_platform,
        hint=f"pass --image with a musl-only base image (the test ground prints one: "
        f"`tests/fixtures/build-images --arch {arch.alpine}`, second line)",
    )
    source_id = str(client.images.get(source).id)
    try:
        labels = client.images.get(ref).labels or {}
        if labels.get(SOURCE_LABEL) == source_id:
            return ref  # made from this very image before
    except docker.errors.ImageNotFound:
        pass
    reporter.stage("verify", f"deriving {ref} from {source} (loader + busybox only)")
    with tempfile.TemporaryDirectory(prefix="musl-pbs-base-") as tmp:
        layer = Path(tmp, "layer.tar")
        loader, libc = arch.loader.name, arch.libc_soname
        kept: set[str] = set()
        with Container(client, source, platform=arch.docker_platform, network=False,
                       purpose="base", environment=arch.container_env) as c, \
                c.export_stream() as stream, \
                tarfile.open(fileobj=stream, mode="r|") as src, \
                tarfile.open(layer, "w") as dst:
            for m in src:  # the export, streamed: only what the base keeps is written
                if _keep_for_base(m, loader, libc):
                    f = src.extractfile(m) if m.isfile() else None
                    dst.addfile(m, f)
                    kept.add(m.name.lstrip("./"))
        if f"lib/{loader}" not in kept:
            raise ImageNotFoundError(
                f"{source} has no {arch.loader} to derive a base image from"
            )
        load_rootfs_image(client, layer, ref, arch, labels={SOURCE_LABEL: source_id})
    return ref
