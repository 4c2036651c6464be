#!/bin/sh
# The seed: the few shell lines musl-pbs started from, kept as the baseline that
# bench/build_vs_seed.py times `musl-pbs build` against. Faithful, not improved: the whole
# exported root filesystem goes into the archive, the interpreter gets one extra RPATH,
# and gzip runs at tar's default level.
#
# usage: bench/seed.sh IMAGE OUT.tar.gz   (PATCHELF=... to choose the patchelf binary;
#        SEED_TIMES=FILE appends the seconds of `docker create` + `apk add` to FILE)
set -eu
image=$1
out=$2
patchelf=${PATCHELF:-patchelf}

work=$(mktemp -d)
t0=$(date +%s.%N)
cid=$(docker create "$image" apk add --no-cache python3)
trap 'docker rm -f "$cid" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT INT TERM
docker start -a "$cid" >/dev/null
if [ -n "${SEED_TIMES:-}" ]; then
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f\n", b - a }' >>"$SEED_TIMES"
fi
mkdir "$work/rootfs"
docker export "$cid" | tar -x -C "$work/rootfs"
for py in "$work"/rootfs/usr/bin/python3.*; do
    case $py in *-config) continue ;; esac
    "$patchelf" --add-rpath '$ORIGIN/../lib' "$py"
done
tar czf "$out" -C "$work/rootfs" .
