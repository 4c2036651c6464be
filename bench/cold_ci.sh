#!/usr/bin/env bash
# A cold `.ci/run`, as on a fresh machine, without disturbing this one (root):
#   bench/cold_ci.sh [--warm-too] [REPO [DIR]]   REPO: the clone's source (default: this checkout)
# - a fresh `git clone` of REPO in DIR/repo (default DIR: a new /var/tmp/musl-pbs-cold.XXXX),
#   with ../shared beside it (a link to this checkout's ../shared), as CI lays it out;
# - HOME=DIR/home: every cache under ~/.cache is empty (the test ground, pip, zig, uv,
#   wheels): everything is downloaded and built again;
# - a private dockerd of its own (socket, data root, exec root, bridge `mpbscold0`, no
#   iptables) with no images: DOCKER_HOST points every docker client of the run at it.
# Prints the wall time of `CI=true bash .ci/run` and its exit code; the log is DIR/ci.log.
# --warm-too: then runs it once more in the same clone, caches and engine (the warm figure;
# log DIR/ci-warm.log).
# Not covered: the Debian packages .ci/setup installs (docker.io, qemu-user-static, ...) are
# already on this machine, and binfmt_misc entries are kernel-wide.
set -euo pipefail
warm_too=
if [ "${1:-}" = --warm-too ]; then warm_too=1; shift; fi
here=$(cd "$(dirname "$0")/.." && pwd)
repo=${1:-$here}
dir=${2:-$(mktemp -d /var/tmp/musl-pbs-cold.XXXX)}
bridge=mpbscold0
[ "$(id -u)" = 0 ] || { echo "cold_ci.sh: needs root (a private dockerd)" >&2; exit 2; }
mkdir -p "$dir/home" "$dir/docker"
chmod 755 "$dir"  # mktemp made it 0700: a CI checkout is readable by other users (the
                  # detect-as-nobody test imports the checkout as the user nobody)
git clone -q "$repo" "$dir/repo"
ln -sfn "$(cd "$here/.." && pwd)/shared" "$dir/shared"
run=/run/mpbs-cold  # short: containerd's socket paths must stay under 108 bytes
mkdir -p "$run"
if ! ip link show "$bridge" >/dev/null 2>&1; then
  ip link add "$bridge" type bridge
  ip addr add 172.29.0.1/16 dev "$bridge"
  ip link set "$bridge" up
fi
dockerd --host "unix://$run/docker.sock" --data-root "$dir/docker" --exec-root "$run/exec" \
  --pidfile "$run/docker.pid" --bridge "$bridge" --iptables=false --ip-masq=false \
  --ip6tables=false >"$dir/dockerd.log" 2>&1 &
dpid=$!
cleanup() {
  kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null || true
  ip link del "$bridge" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 60); do
  DOCKER_HOST="unix://$run/docker.sock" docker info >/dev/null 2>&1 && break; sleep 1
done
ci_run() {  # $1: log file. As CI runs it: in the foreground's signal dispositions (started
  # with `&` or nohup, this script's children would inherit SIGINT ignored, which bash
  # cannot undo).
  (cd "$dir/repo" && env HOME="$dir/home" PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}" \
     DOCKER_HOST="unix://$run/docker.sock" CI=true python3 -c \
     'import os, signal; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp("bash", ["bash", ".ci/run"])'
  ) >"$1" 2>&1
}
code=0
for pass in cold ${warm_too:+warm}; do
  log=$dir/ci.log; [ "$pass" = warm ] && log=$dir/ci-warm.log
  echo "$pass run in $dir (log $log), load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  start=$(date +%s)
  set +e
  ci_run "$log"
  rc=$?
  set -e
  [ "$rc" = 0 ] || code=$rc
  took=$(( $(date +%s) - start ))
  echo "$pass .ci/run: exit $rc in $((took / 60)) min $((took % 60)) s," \
       "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
  tail -3 "$log"
done
exit "$code"
