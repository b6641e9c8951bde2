#!/usr/bin/env bash
# whoami throughput and latency from a separate load process (wrk) on loopback.
#
#   bench/whoami.sh [duration] [connections]      (defaults: 10s, 32; wrk threads: WRK_THREADS, default 2)
#   VIGIL_BIN=/path/to/vigil bench/whoami.sh ...   (a prebuilt binary instead of building this tree)
#   PAIRS=N bench/whoami.sh ...                    (N alternating pairs against a baseline, see below)
#   PAIRS=N BASE_BIN=/path/to/vigil bench/whoami.sh ...   (the baseline is another Vigil build)
#   DATA_DIR=/path bench/whoami.sh ...             (serve a copy of an existing data directory)
#
# Builds vigil, starts it on a fresh data directory (or a copy of DATA_DIR) at 127.0.0.1:18080,
# registers an account, signs in, and drives GET /api/v1/whoami with that bearer token through
# wrk (Debian's wrk; installed if missing). Without PAIRS it prints wrk's report.
#
# With PAIRS=N it also starts the baseline at 127.0.0.1:18081: bench/barewhoami (a bare net/http
# handler answering Vigil's whoami body with the same headers), or with BASE_BIN a second Vigil
# build on its own copy of the data. Then it runs N pairs, the baseline and Vigil back to back,
# alternating which goes first, so that drift in a shared machine's load hits both; it prints
# each run's requests/s and, at the end, the medians, the ratio of the medians and the median of
# the per-pair ratios (vigil / baseline).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
conns=${2:-32}
threads=${WRK_THREADS:-2}
pairs=${PAIRS:-0}
addr=127.0.0.1:18080
base_addr=127.0.0.1:18081
account='{"email":"bench@example.com","password":"umbrella-cactus-violin-47","first_name":"Bench","last_name":"Mark"}'
login='{"email":"bench@example.com","password":"umbrella-cactus-violin-47"}'

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
work=$(mktemp -d)
pids=()
# Servers started in a command substitution (start_vigil) leave their pid in $work/*.pid.
trap 'for p in "${pids[@]}" $(cat "$work"/*.pid 2>/dev/null); do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
if [ -n "${VIGIL_BIN:-}" ]; then cp "$VIGIL_BIN" "$work/vigil"; else go build -o "$work/vigil" ./cmd/vigil; fi

# start_vigil BIN ADDR DIR: serves a fresh (or copied) data directory; prints a bearer token.
start_vigil() {
  local bin=$1 at=$2 dir=$3
  if [ -n "${DATA_DIR:-}" ]; then cp -r "$DATA_DIR" "$dir"; fi
  "$bin" serve --addr "$at" --data-dir "$dir" >/dev/null 2>"$dir.log" &
  echo $! >"$dir.pid"
  for _ in $(seq 600); do curl -fs "http://$at/readyz" >/dev/null && break; sleep 0.1; done
  # Not another server's answer: this one is still running (a taken port ends it).
  kill -0 "$(cat "$dir.pid")" 2>/dev/null || { echo "$bin did not start on $at: $(cat "$dir.log")" >&2; exit 1; }
  curl -s -o /dev/null -X POST "http://$at/api/v1/accounts" -H 'Content-Type: application/json' -d "$account"
  curl -fs -X POST "http://$at/api/v1/login" -H 'Content-Type: application/json' -d "$login" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["session_token"])'
}

token=$(start_vigil "$work/vigil" "$addr" "$work/data")
curl -fs "http://$addr/api/v1/whoami" -H "Authorization: Bearer $token" >"$work/body.json"

# cputicks PID: the process's user+system CPU time so far, in clock ticks.
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# rate ADDR TOKEN PID: one measured wrk run; prints requests/s and the server's CPU
# microseconds per request (process PID's user+system time over the run; on a shared machine
# this moves less with other load than the rate does), and wrk's report on stderr.
rate() {
  local out t0 t1
  t0=$(cputicks "$3")
  out=$(wrk -t"$threads" -c"$conns" -d"$duration" --latency -H "Authorization: Bearer $2" "http://$1/api/v1/whoami")
  t1=$(cputicks "$3")
  echo "$out" >&2
  if grep -q 'Non-2xx' <<<"$out"; then echo "non-2xx answers from $1" >&2; exit 1; fi
  awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" '/^Requests\/sec/ {rps = $2} / requests in / {n = $1}
    END {printf "%s %.1f\n", rps, t / hz * 1e6 / n}' <<<"$out"
}

# Warm up, then measure.
wrk -t"$threads" -c"$conns" -d2s -H "Authorization: Bearer $token" "http://$addr/api/v1/whoami" >/dev/null
if [ "$pairs" -eq 0 ]; then
  wrk -t"$threads" -c"$conns" -d"$duration" --latency -H "Authorization: Bearer $token" "http://$addr/api/v1/whoami"
  exit 0
fi

vigil_pid=$(cat "$work/data.pid")
if [ -n "${BASE_BIN:-}" ]; then
  base_token=$(start_vigil "$BASE_BIN" "$base_addr" "$work/base")
  base_pid=$(cat "$work/base.pid")
  base_name="base ($BASE_BIN)"
else
  go build -o "$work/bare" ./bench/barewhoami
  "$work/bare" -addr "$base_addr" -body "$work/body.json" &
  pids+=($!)
  base_pid=$!
  for _ in $(seq 100); do curl -fs "http://$base_addr/api/v1/whoami" -H "Authorization: Bearer x" >/dev/null && break; sleep 0.1; done
  kill -0 "$base_pid" 2>/dev/null || { echo "barewhoami did not start on $base_addr" >&2; exit 1; }
  base_token=x
  base_name="bare net/http"
fi
wrk -t"$threads" -c"$conns" -d2s -H "Authorization: Bearer $base_token" "http://$base_addr/api/v1/whoami" >/dev/null

: >"$work/pairs"
for i in $(seq "$pairs"); do
  if [ $((i % 2)) -eq 1 ]; then
    b=$(rate "$base_addr" "$base_token" "$base_pid" 2>/dev/null); v=$(rate "$addr" "$token" "$vigil_pid" 2>/dev/null)
  else
    v=$(rate "$addr" "$token" "$vigil_pid" 2>/dev/null); b=$(rate "$base_addr" "$base_token" "$base_pid" 2>/dev/null)
  fi
  read -r brps bcpu <<<"$b"; read -r vrps vcpu <<<"$v"
  echo "pair $i: $base_name $brps req/s ($bcpu us CPU/req), vigil $vrps req/s ($vcpu us CPU/req), ratio $(python3 -c "print(f'{$vrps/$brps:.3f}')")"
  echo "$brps $vrps $bcpu $vcpu" >>"$work/pairs"
done
python3 - "$work/pairs" "$base_name" "wrk -t$threads -c$conns -d$duration" <<'PY'
import statistics, sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
b = statistics.median(r[0] for r in rows)
v = statistics.median(r[1] for r in rows)
pr = statistics.median(r[1] / r[0] for r in rows)
bc = statistics.median(r[2] for r in rows)
vc = statistics.median(r[3] for r in rows)
print(f"{len(rows)} pairs of {sys.argv[3]}: {sys.argv[2]} median {b:,.0f} req/s; vigil median {v:,.0f} req/s")
print(f"ratio of medians {v/b:.3f}; median of pair ratios {pr:.3f} (min {min(r[1]/r[0] for r in rows):.3f}, max {max(r[1]/r[0] for r in rows):.3f})")
print(f"server CPU per request: baseline median {bc:.1f} us, vigil median {vc:.1f} us, vigil / baseline {vc/bc:.3f}")
PY
