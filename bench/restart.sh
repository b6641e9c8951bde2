#!/usr/bin/env bash
# Time to ready (/readyz 200) of `vigil serve` on an existing data directory, started N times in a
# row with a clean stop (SIGTERM) between starts:
#
#   bench/restart.sh DATA_DIR [RUNS] [-- serve flags...]     (default 3 runs)
#   VIGIL_BIN=/path/to/vigil bench/restart.sh ...            (a prebuilt binary)
#
# The first start of a directory whose read models hold no kept index state reads the whole log
# into the in-memory indexes; every later start restores the state the clean stop before it kept
# (README "Read-model snapshots": "A restart works the same way"). Prints one line per start and
# the log lines of the keeping and the restoring. DATA_DIR is used in place: pass a copy.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: bench/restart.sh DATA_DIR [RUNS] [-- serve flags...]}
runs=${2:-3}
shift $(( $# >= 2 ? 2 : 1 ))
[ "${1:-}" = "--" ] && shift
addr=127.0.0.1:18777
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "${VIGIL_BIN:-}" ]; then cp "$VIGIL_BIN" "$work/vigil"; else go build -o "$work/vigil" ./cmd/vigil; fi
for i in $(seq "$runs"); do
  start=$(date +%s.%N)
  "$work/vigil" serve --data-dir "$dir" --addr "$addr" "$@" >"$work/log" 2>&1 &
  pid=$!
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/readyz")" = 200 ]; do
    kill -0 "$pid" 2>/dev/null || { echo "vigil stopped:"; tail -3 "$work/log"; exit 1; }
    sleep 0.1
  done
  end=$(date +%s.%N)
  echo "start $i: ready after $(echo "$end - $start" | bc) s (load $(cut -d' ' -f1 /proc/loadavg))"
  kill -TERM "$pid"
  wait "$pid" || true
  grep -E "indexes (kept|restored)" "$work/log" | cut -c1-200 || true
done
