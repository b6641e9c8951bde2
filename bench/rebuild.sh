#!/usr/bin/env bash
# `vigil projections rebuild` timed from outside, on a fresh copy of a seeded data directory
# each run (a rebuild swaps its read models in: the next run would start from another state):
#
#   bench/rebuild.sh SEED_DIR CITY_MMDB [RUNS]           (default 3 runs; builds this tree)
#   VIGIL_BIN=/path/to/vigil bench/rebuild.sh ...        (a prebuilt binary)
#   BASE_BIN=/path/to/vigil bench/rebuild.sh ...         (RUNS alternating pairs against it)
#
# SEED_DIR is a data directory made by `vigil-dev seed` (BENCHMARKS.md: the 1M log is
# `go run ./cmd/vigil-dev seed --data-dir SEED_DIR --accounts 10000 --events 1000000 --seed 1
# --until 2026-11-23T00:00:00Z --city-db CITY_MMDB`); it is only read. Each run prints the
# rebuild's own line (events and events/s) and the command's wall time, user and system CPU and
# maximum RSS. With BASE_BIN the pairs alternate which binary goes first, so that drift in a
# shared machine's speed hits both (after one run not counted), and the end prints the median
# of the per-pair ratios of the wall time (base / this build: above 1 is faster) and of the
# CPU time.
set -euo pipefail
cd "$(dirname "$0")/.."
seed=${1:?usage: bench/rebuild.sh SEED_DIR CITY_MMDB [RUNS]}
city=${2:?usage: bench/rebuild.sh SEED_DIR CITY_MMDB [RUNS]}
runs=${3:-3}
[ -f "$seed/events.db" ] || { echo "$seed holds no events.db: seed it first (see above)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "${VIGIL_BIN:-}" ]; then cp "$VIGIL_BIN" "$work/vigil"; else go build -o "$work/vigil" ./cmd/vigil; fi
if [ -n "${BASE_BIN:-}" ]; then cp "$BASE_BIN" "$work/base"; fi

# run BIN LABEL: one timed rebuild on a fresh copy; prints a line and appends "wall cpu" to
# $work/LABEL.times.
run() {
  local bin=$1 label=$2
  rm -rf "$work/d"
  cp -r "$seed" "$work/d"
  rm -f "$work"/d/projections*
  sync
  /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$bin" projections rebuild --data-dir "$work/d" \
    --geoip-city-db "$city" >"$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }
  read -r wall user sys rss <"$work/time"
  printf '%-5s %s | %s s wall, %s s user, %s s sys, %s KB max RSS\n' "$label" \
    "$(grep -o '^rebuilt .*events/s)' "$work/out" || echo '?')" "$wall" "$user" "$sys" "$rss"
  awk -v w="$wall" -v u="$user" -v s="$sys" 'BEGIN { print w, u + s }' >>"$work/$label.times"
}

# A first run, not counted: the first rebuild after the seed is copied pays about two seconds
# more system time (the page cache settling), whichever binary it is.
run "$work/vigil" warm >/dev/null
for i in $(seq "$runs"); do
  if [ -z "${BASE_BIN:-}" ]; then
    run "$work/vigil" this
  elif [ $((i % 2)) -eq 1 ]; then
    run "$work/base" base
    run "$work/vigil" this
  else
    run "$work/vigil" this
    run "$work/base" base
  fi
done
if [ -n "${BASE_BIN:-}" ]; then
  paste "$work/base.times" "$work/this.times" | python3 -c '
import statistics, sys
pairs = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
wall = [b[0] / b[2] for b in pairs]
cpu = [b[1] / b[3] for b in pairs]
print("median pair ratio, base / this: wall %.3f (%.3f-%.3f), CPU %.3f (%.3f-%.3f)" % (
    statistics.median(wall), min(wall), max(wall), statistics.median(cpu), min(cpu), max(cpu)))'
fi
