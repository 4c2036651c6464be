"""A CycloneDX SBOM of one archive, made from its manifest (pure: no I/O)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote


def purl(package: dict[str, Any], arch: str) -> str:
    name = quote(str(package["name"]), safe="")
    version = quote(str(package["version"]), safe="")
    return f"pkg:apk/alpine/{name}@{version}?arch={arch}"


def cyclonedx(manifest: dict[str, Any]) -> dict[str, Any]:
    """CycloneDX 1.5 JSON: the archive as the subject, the apk packages it holds as parts.

    The serial number derives from the archive's sha256, so the same archive gives the same
    SBOM (no timestamps either).
    """
    gz = manifest["archives"]["tar.gz"]
    serial = uuid.uuid5(uuid.NAMESPACE_URL, f"musl-pbs:{gz['sha256']}")
    arch = str(manifest.get("arch", ""))
    components = []
    for p in manifest.get("packages", []):
        component: dict[str, Any] = {
            "type": "library" if p["name"] != "python3" else "application",
            "bom-ref": purl(p, arch),
            "name": p["name"],
            "version": p["version"],
            "purl": purl(p, arch),
        }
        if p.get("license"):
            component["licenses"] = [{"expression": p["license"]}]
        if p.get("origin"):
            component["properties"] = [{"name": "apk:origin", "value": p["origin"]}]
        components.append(component)
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{serial}",
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "musl-pbs",
                                      "version": str(manifest.get("builder", ""))}]},
            "component": {
                "type": "application",
                "bom-ref": manifest["name"],
                "name": "cpython",
                "version": manifest["python_version"],
                "hashes": [{"alg": "SHA-256", "content": gz["sha256"]}],
                "properties": [
                    {"name": "musl-pbs:archive", "value": gz["file"]},
                    {"name": "musl-pbs:musl-version-needed",
                     "value": str(manifest.get("musl_version_needed", ""))},
                    {"name": "musl-pbs:image", "value": str(manifest.get("image", ""))},
                    {"name": "musl-pbs:image-id", "value": str(manifest.get("image_id", ""))},
                ],
            },
        },
        "components": components,
    }
