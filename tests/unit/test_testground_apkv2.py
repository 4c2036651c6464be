"""tests/fixtures/testground/apkv2.py: the apk v2 layout the test ground's packages use.

The real apk-tools inside the minirootfs is the oracle (build-images' self-test installs
these packages with it); here the layout is checked piece by piece without Docker."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "testground"))
import apkv2

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _gzip_members(blob: bytes) -> list[bytes]:
    """The compressed bytes of each concatenated gzip stream."""
    out = []
    while blob:
        d = zlib.decompressobj(wbits=31)
        d.decompress(blob)
        used = len(blob) - len(d.unused_data)
        out.append(blob[:used])
        blob = d.unused_data
    return out


def _members(stream: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(zlib.decompress(stream, wbits=31))) as tar:
        return tar.getmembers()


def _verify(key: apkv2.SigningKey, signed: bytes, sig: bytes, tmp: Path) -> bool:
    (tmp / "data").write_bytes(signed)
    (tmp / "sig").write_bytes(sig)
    return subprocess.run(["openssl", "dgst", "-sha1", "-verify", str(key.public),
                           "-signature", str(tmp / "sig"), str(tmp / "data")],
                          capture_output=True).returncode == 0


def _key(tmp: Path) -> apkv2.SigningKey:
    return apkv2.SigningKey.generate(tmp / "keys", "test@musl-pbs.invalid-0001")


def test_package_streams_signature_datahash_and_identity(tmp_path: Path) -> None:
    key = _key(tmp_path)
    long_name = "usr/share/x/" + "n" * 120
    members = [apkv2.Member("usr", "dir", 0o755), apkv2.Member("usr/share", "dir", 0o755),
               apkv2.Member("usr/share/x", "dir", 0o755),
               apkv2.Member(long_name, "file", 0o644, data=b"hello\n"),
               apkv2.Member("usr/share/x/link", "symlink", 0o777, target="hello")]
    info = apkv2.PkgInfo("demo", "1.0-r0", "x86_64", "demo", "https://example.invalid",
                         "MIT", "demo", "t <t@example.invalid>", 1725580800,
                         depends=["so:libc.musl-x86_64.so.1"], install_if=["other=1.0-r0"])
    apk = apkv2.build_apk(info, members, key)
    sig, control, data = _gzip_members(apk.data)
    # 1: the signature over the control stream's gzip bytes, under the key's file name
    (sig_member,) = _members(sig)
    assert sig_member.name == f".SIGN.RSA.{key.name}"
    with tarfile.open(fileobj=io.BytesIO(zlib.decompress(sig, wbits=31))) as tar:
        f = tar.extractfile(sig_member)
        assert f is not None
        assert _verify(key, control, f.read(), tmp_path)
    # cut tars: no end-of-archive blocks after the last member
    raw_control = zlib.decompress(control, wbits=31)
    assert len(raw_control) % 512 == 0 and raw_control[-1024:] != b"\0" * 1024
    # 2: .PKGINFO with the data stream's sha256; identity = Q1 + sha1 of the control stream
    with tarfile.open(fileobj=io.BytesIO(raw_control)) as tar:
        f = tar.extractfile(".PKGINFO")
        assert f is not None
        pkginfo = f.read().decode()
    assert f"datahash = {hashlib.sha256(data).hexdigest()}" in pkginfo
    assert "depend = so:libc.musl-x86_64.so.1" in pkginfo
    assert "install_if = other=1.0-r0" in pkginfo
    assert apk.identity == apkv2.q1(control)
    # 3: a complete data tar, each file and link with its SHA-1 as a pax header
    with tarfile.open(fileobj=io.BytesIO(zlib.decompress(data, wbits=31))) as tar:
        got = {m.name: m for m in tar.getmembers()}
    assert got[long_name].pax_headers["APK-TOOLS.checksum.SHA1"] == \
        hashlib.sha1(b"hello\n").hexdigest()
    assert got["usr/share/x/link"].pax_headers["APK-TOOLS.checksum.SHA1"] == \
        hashlib.sha1(b"hello").hexdigest()
    assert got["usr/share/x"].isdir()


def test_signed_index(tmp_path: Path) -> None:
    key = _key(tmp_path)
    apks = [apkv2.build_apk(apkv2.PkgInfo(n, "2-r0", "aarch64", n, "u", "MIT", n, "m", 1),
                            [], key) for n in ("b", "a")]
    out = apkv2.write_repository(tmp_path / "repo", "aarch64", apks, key, "desc", 1)
    assert sorted(p.name for p in out.iterdir()) == ["APKINDEX.tar.gz", "a-2-r0.apk",
                                                     "b-2-r0.apk"]
    sig, index = _gzip_members((out / "APKINDEX.tar.gz").read_bytes())
    with tarfile.open(fileobj=io.BytesIO(zlib.decompress(sig, wbits=31))) as tar:
        f = tar.extractfile(f".SIGN.RSA.{key.name}")
        assert f is not None
        assert _verify(key, index, f.read(), tmp_path)
    with tarfile.open(fileobj=io.BytesIO(zlib.decompress(index, wbits=31))) as tar:
        f = tar.extractfile("APKINDEX")
        assert f is not None
        text = f.read().decode()
    records = text.strip().split("\n\n")
    assert [r.splitlines()[1] for r in records] == ["P:a", "P:b"]
    a = dict(line.split(":", 1) for line in records[0].splitlines())
    assert a["C"] == apks[1].identity and a["S"] == str(len(apks[1].data)) and a["A"] == "aarch64"
