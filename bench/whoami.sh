#!/usr/bin/env bash
# whoami throughput and latency from a separate load process (wrk) on loopback.
#
#   bench/whoami.sh [duration] [connections]     (defaults: 10s, 32)
#   VIGIL_BIN=/path/to/vigil bench/whoami.sh ...  (a prebuilt binary, e.g. an older build to
#                                                  compare against, instead of building this tree)
#
# Builds vigil, starts it on a fresh data directory at 127.0.0.1:18080, registers an account,
# signs in, and drives GET /api/v1/whoami with that bearer token through wrk (Debian's wrk;
# installed if missing). Prints wrk's report (requests/s and the latency distribution).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
conns=${2:-32}
addr=127.0.0.1:18080

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
if [ -n "${VIGIL_BIN:-}" ]; then cp "$VIGIL_BIN" "$work/vigil"; else go build -o "$work/vigil" ./cmd/vigil; fi
"$work/vigil" serve --addr "$addr" --data-dir "$work/data" >/dev/null 2>"$work/vigil.log" &
pid=$!
for _ in $(seq 100); do curl -fs "http://$addr/healthz" >/dev/null && break; sleep 0.1; done

curl -fs -X POST "http://$addr/api/v1/accounts" -H 'Content-Type: application/json' \
  -d '{"email":"bench@example.com","password":"umbrella-cactus-violin-47","first_name":"Bench","last_name":"Mark"}' >/dev/null
token=$(curl -fs -X POST "http://$addr/api/v1/login" -H 'Content-Type: application/json' \
  -d '{"email":"bench@example.com","password":"umbrella-cactus-violin-47"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["session_token"])')
curl -fs "http://$addr/api/v1/whoami" -H "Authorization: Bearer $token" >/dev/null

# One wrk thread: the server gets the other core. Warm up, then measure.
wrk -t1 -c"$conns" -d2s -H "Authorization: Bearer $token" "http://$addr/api/v1/whoami" >/dev/null
wrk -t1 -c"$conns" -d"$duration" --latency -H "Authorization: Bearer $token" "http://$addr/api/v1/whoami"
