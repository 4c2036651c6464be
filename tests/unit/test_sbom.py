from __future__ import annotations

from builder.release.sbom import cyclonedx

MANIFEST = {
    "name": "cpython-3.12.8-linux-aarch64-musl", "python_version": "3.12.8", "arch": "aarch64",
    "builder": "musl-pbs 0.1.0", "musl_version_needed": "1.2.5", "image": "alpine:3.21",
    "image_id": "sha256:abc",
    "archives": {"tar.gz": {"file": "cpython-3.12.8-linux-aarch64-musl.tar.gz",
                            "sha256": "0" * 64, "size": 1}},
    "packages": [
        {"name": "python3", "version": "3.12.8-r1", "license": "PSF-2.0", "origin": "python3"},
        {"name": "libffi", "version": "3.4.6-r0", "license": "MIT", "origin": "libffi"},
    ],
}


def test_cyclonedx_lists_packages_with_purls_and_licences() -> None:
    bom = cyclonedx(MANIFEST)
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5"
    names = {c["name"]: c for c in bom["components"]}
    assert names["libffi"]["purl"] == "pkg:apk/alpine/libffi@3.4.6-r0?arch=aarch64"
    assert names["python3"]["licenses"] == [{"expression": "PSF-2.0"}]
    subject = bom["metadata"]["component"]
    assert subject["hashes"] == [{"alg": "SHA-256", "content": "0" * 64}]
    assert cyclonedx(MANIFEST) == bom  # deterministic: no timestamps, stable serial
