#!/usr/bin/env bash
# `.ci/run` in a fresh clone as a newcomer has it: no ../shared beside it, the official Alpine
# minirootfs tarballs downloaded through the documented setting, MUSL_PBS_ALPINE_MIRROR,
# from a mirror on the loopback (no Alpine mirror is reachable here):
#   bench/fresh_clone_offline.sh [--quick] [--with-shared] [DIR]
# - a `git clone` of this checkout's HEAD in DIR/clone (default DIR: a new
#   /var/tmp/musl-pbs-fresh.XXXX), nothing beside it;
# - a loopback HTTP server (python3 -m http.server) serving the tarballs, laid out as Alpine's
#   release server (<branch>/releases/<arch>/NAME; copied from where this checkout finds
#   them: tests/fixtures/testground/alpine_minirootfs.py --mirror-tree);
# - MUSL_PBS_MINIROOTFS_CACHE=DIR/minirootfs-cache, empty: the download path is really used;
#   every other cache (~/.cache/musl-pbs: the test ground, wheels, pip) is the normal, warm one;
# - then `bash .ci/run` in the clone: prints its exit code and wall time (log DIR/ci.log) and
#   what the loopback server served.
# --quick: instead of .ci/run, only .ci/setup (the clone's .venv), build-images --cached-only
#   for x86_64/3.11 and the unit tests that read the minirootfs (test_rootfs_layouts.py,
#   test_closure_inside.py, test_testground_minirootfs.py): the plumbing, in a minute or two.
# --with-shared: the other case: ../shared beside the clone (a link to this checkout's), no
#   server, no mirror setting.
set -euo pipefail
mode=full shared=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) mode=quick; shift ;;
    --with-shared) shared=1; shift ;;
    *) break ;;
  esac
done
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$(mktemp -d /var/tmp/musl-pbs-fresh.XXXX)}
mkdir -p "$dir"
chmod 755 "$dir"  # a checkout readable by other users (the detect-as-nobody test)
git clone -q "$here" "$dir/clone"
echo "clone of $(git -C "$here" rev-parse --short HEAD) in $dir/clone" >&2

unset MUSL_PBS_MINIROOTFS_DIR
server=
cleanup() { [ -z "$server" ] || { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; } || true; }
trap cleanup EXIT
if [ -n "$shared" ]; then
  ln -sfn "$(cd "$here/.." && pwd)/shared" "$dir/shared"
  unset MUSL_PBS_ALPINE_MIRROR MUSL_PBS_MINIROOTFS_CACHE
else
  [ ! -e "$dir/shared" ] || { echo "$dir/shared exists: not a clone without ../shared" >&2; exit 2; }
  python3 "$here/tests/fixtures/testground/alpine_minirootfs.py" --all --no-download \
    --mirror-tree "$dir/mirror" >/dev/null
  python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$dir/mirror" \
    >"$dir/server.log" 2>&1 &
  server=$!
  port=
  for _ in $(seq 100); do
    port=$(sed -n 's/^Serving HTTP on .* port \([0-9]*\) .*/\1/p' "$dir/server.log")
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "the loopback server did not start: $dir/server.log" >&2; exit 1; }
  export MUSL_PBS_ALPINE_MIRROR=http://127.0.0.1:$port
  export MUSL_PBS_MINIROOTFS_CACHE=$dir/minirootfs-cache
  echo "mirror $MUSL_PBS_ALPINE_MIRROR (from $dir/mirror), minirootfs cache" \
       "$MUSL_PBS_MINIROOTFS_CACHE (empty)" >&2
fi

run() {  # as CI runs it: SIGINT at its default (started with & or nohup it would be ignored)
  (cd "$dir/clone" && python3 -c \
     'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' \
     "$@")
}
start=$(date +%s)
set +e
if [ "$mode" = quick ]; then
  run bash -c 'source .ci/setup; code=0
               tests/fixtures/build-images --arch x86_64 --python 3.11 --cached-only || code=$?
               echo "build-images --cached-only: exit $code (0: cached, 3: not built yet)" >&2
               [ "$code" = 0 ] || [ "$code" = 3 ] || exit "$code"
               .venv/bin/pytest -q -p no:cacheprovider tests/unit/test_rootfs_layouts.py \
                 tests/unit/test_closure_inside.py tests/unit/test_testground_minirootfs.py' \
    >"$dir/ci.log" 2>&1
else
  CI=true run bash .ci/run >"$dir/ci.log" 2>&1
fi
code=$?
set -e
took=$(( $(date +%s) - start ))
what=".ci/run"; [ "$mode" = quick ] && what="setup + build-images --cached-only + 3 test files"
printf '%s (%s%s) in %s: exit %s, %d min %02d s (log %s)\n' "$what" "$mode" "${shared:+, beside ../shared}" "$dir/clone" "$code" \
  $((took / 60)) $((took % 60)) "$dir/ci.log"
if [ -n "$server" ]; then
  echo "served by the loopback mirror:"
  grep -o '"GET [^"]*" [0-9]*' "$dir/server.log" | sort | uniq -c || echo "  nothing"
  echo "in the minirootfs cache: $(ls "$MUSL_PBS_MINIROOTFS_CACHE" 2>/dev/null | tr '\n' ' ')"
fi
tail -n 3 "$dir/ci.log"
exit "$code"
