#!/usr/bin/env python3
"""Peak RSS of build, verify, install and release assemble with a 512 MiB file inside.

Usage: .venv/bin/python bench/peak_rss.py [--member-mib 512] [--tmp DIR] [--keep]

An image is derived from the test ground's x86_64 3.11 Alpine-like image with one file of
zeros (``--member-mib``) in ``/usr/lib/python3.11/zz_bench/``, which the build stages into
the archive like any file of the stdlib (kept as ``musl-pbs-bench/big-member:...`` for the
next run; ``docker rmi`` it when done). Then, each under GNU time (its maximum resident
set size: the command and whatever it waited for; the Docker daemon's own work, the export
and the unpacking in the container, is counted for none):

- ``musl-pbs build`` from that image (export, extraction, stage, pack of the 512 MiB file);
- ``musl-pbs verify`` of the .tar.zst and of the .tar.gz (the archive streamed into the
  container), and ``verify --old-put``: the same with the archive decompressed whole in
  memory, as verify did before (for the before/after figure);
- ``install`` (builder.host.install.install, which the musl-only CLI runs: this host is
  glibc) of the .tar.gz into a directory;
- ``musl-pbs release assemble`` of the build's output directory.

A step's exit code is printed beside its figure: a 512 MiB file is at the archive cap
(ARCHIVE_LIMITS: 512 MiB unpacked), so verify's static audit and install refuse the archive
by design, after streaming it up to the cap; verify's runtime part runs regardless.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MUSL_PBS = REPO / ".venv" / "bin" / "musl-pbs"
PYTHON = REPO / ".venv" / "bin" / "python"
GNU_TIME = "/usr/bin/time"
MiB = 1 << 20

OLD_VERIFY = """
import sys, zstandard
from pathlib import Path
import builder.stages.verify as v
def tar_for_put(archive: Path) -> bytes:  # verify before: the archive whole in memory
    if archive.name.endswith(".tar.zst"):
        with archive.open("rb") as f:
            return zstandard.ZstdDecompressor().stream_reader(f).read()
    return archive.read_bytes()
v.tar_for_put = tar_for_put
from builder.cli import main
sys.exit(main(sys.argv[1:]))
"""

INSTALL = """
import json, sys
from pathlib import Path
from builder.host.install import Candidate, install
from builder.errors import MuslPbsError
archive, manifest, dest = map(Path, sys.argv[1:4])
m = json.loads(manifest.read_text())
c = Candidate(m["python_version"], m["arch"], archive, m["archives"]["tar.gz"]["sha256"],
              m.get("musl_version_needed"))
try:
    print(install(c, dest))
except MuslPbsError as e:
    print("refused:", e.message)
    sys.exit(e.exit_code)
"""


def test_ground() -> tuple[str, str]:
    out = subprocess.run([str(REPO / "tests/fixtures/build-images"), "--arch", "x86_64",
                          "--python", "3.11"], capture_output=True, text=True, check=True)
    alpine_like, base = out.stdout.split()
    return alpine_like, base


def big_image(source: str, mib: int) -> str:
    """``source`` with ``mib`` MiB of zeros in /usr/lib/python3.11/zz_bench/big.bin."""
    tag = f"musl-pbs-bench/big-member:{source.rsplit(':', 1)[-1]}-{mib}"
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True,
                      check=False).returncode == 0:
        return tag
    name = f"musl-pbs-bench-{os.getpid()}"
    script = (f"mkdir -p /usr/lib/python3.11/zz_bench && dd if=/dev/zero bs=1048576 "
              f"count={mib} of=/usr/lib/python3.11/zz_bench/big.bin 2>/dev/null")
    try:
        subprocess.run(["docker", "run", "--name", name, "--network", "none", source,
                        "sh", "-c", script], check=True, capture_output=True)
        subprocess.run(["docker", "commit", name, tag], check=True, capture_output=True)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    return tag


def measured(label: str, cmd: list[str], logs: Path) -> tuple[str, int, float, int]:
    """(label, exit code, seconds, peak RSS in MiB)."""
    rss = logs / f"{label.replace(' ', '_')}.rss"
    start = time.monotonic()
    proc = subprocess.run([GNU_TIME, "-f", "%M", "-o", str(rss), *cmd], capture_output=True,
                          text=True, cwd=REPO, check=False)
    seconds = time.monotonic() - start
    rss.with_suffix(".log").write_text(proc.stdout + proc.stderr)
    peak = int(rss.read_text().split()[-1]) // 1024
    print(f"{label:<28} exit {proc.returncode:>3}  {seconds:6.1f} s  peak RSS {peak:5d} MiB",
          flush=True)
    return label, proc.returncode, seconds, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--member-mib", type=int, default=512)
    parser.add_argument("--tmp", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}", flush=True)
    alpine_like, base = test_ground()
    image = big_image(alpine_like, args.member_mib)
    tmp = Path(tempfile.mkdtemp(prefix="musl-pbs-peak-rss-", dir=args.tmp))
    logs = tmp / "logs"
    logs.mkdir()
    rows = []
    try:
        dist = tmp / "dist"
        rows.append(measured("build", [str(MUSL_PBS), "build", "--arch", "x86_64", "--image",
                                       image, "--out", str(dist), "--work", str(tmp / "work"),
                                       "-q"], logs))
        shutil.rmtree(tmp / "work", ignore_errors=True)
        gz = next(dist.glob("cpython-*-musl.tar.gz"))
        zst = gz.with_name(gz.name.replace(".tar.gz", ".tar.zst"))
        manifest = gz.with_name(gz.name.replace(".tar.gz", ".json"))
        print(f"archive: {gz.name}, {gz.stat().st_size / MiB:.1f} MiB .tar.gz, "
              f"{zst.stat().st_size / MiB:.1f} MiB .tar.zst", flush=True)
        for label, archive, extra in (("verify .tar.zst", zst, []), ("verify .tar.gz", gz, []),
                                      ("verify .tar.zst --old-put", zst, ["old"])):
            argv = ["verify", str(archive), "--image", base, "--json"]
            cmd = ([str(PYTHON), "-c", OLD_VERIFY, *argv] if extra
                   else [str(MUSL_PBS), *argv])
            rows.append(measured(label, cmd, logs))
        rows.append(measured("install .tar.gz", [str(PYTHON), "-c", INSTALL, str(gz),
                                                 str(manifest), str(tmp / "installed")], logs))
        shutil.rmtree(tmp / "installed", ignore_errors=True)
        # --allow-eol: the test ground's archives are of Alpine 3.20 (ended, not in matrix.yaml)
        rows.append(measured("release assemble", [str(MUSL_PBS), "release", "assemble",
                                                  str(dist), "--allow-eol",
                                                  "--out", str(tmp / "release")],
                             logs))
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"load after: {os.getloadavg()}")
    print(f"\n| step ({args.member_mib} MiB member) | exit | s | peak RSS MiB |")
    print("|---|---|---|---|")
    for label, code, seconds, peak in rows:
        print(f"| {label} | {code} | {seconds:.1f} | {peak} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
