#!/usr/bin/env bash
# Ingest and drain on PostgreSQL with 1, 2 and 3 deskbridge instances, next to SQLite
# (see docs/PERFORMANCE.md and docs/SCALING.md).
#   bench/pg.sh [DURATION_SECONDS]
# Needs wrk, nginx, curl and PostgreSQL's server binaries; everything listens on loopback.
# Total concurrency is 64 connections, split evenly over the instances (one wrk each).
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-15}"
out=bench/out
mkdir -p "$out"
# DESKBRIDGE_BIN: another build to measure (an earlier release, say) instead of this tree's.
bin="${DESKBRIDGE_BIN:-target/release/deskbridge}"
[ -n "${DESKBRIDGE_BIN:-}" ] || cargo build --release --quiet
eval "$(scripts/pg-test-server.sh start)"
admin="$DESKBRIDGE_TEST_PG_URL"
server="${admin%/*}"

nginx -c "$PWD/bench/nginx.conf" -s stop 2>/dev/null || true
sleep 0.3
nginx -c "$PWD/bench/nginx.conf"
pids=()
cleanup() {
  nginx -c "$PWD/bench/nginx.conf" -s stop 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

pending() { psql -tAq "$1" -c "SELECT COUNT(*) FROM deliveries WHERE state = 'pending'"; }

run() { # instances
  local n=$1 db="bench_$1_$$"
  psql -q "$admin" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  local url="$server/$db"
  pids=()
  for i in $(seq 1 "$n"); do
    DESKBRIDGE_STORE__URL="$url" DESKBRIDGE_SERVER__LISTEN="127.0.0.1:$((18090 + i))" \
      "$bin" serve --config bench/deskbridge.bench.yaml 2>"$out/pg-$n-$i.log" &
    pids+=($!)
  done
  for i in $(seq 1 "$n"); do
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$((18090 + i))/healthz" >/dev/null && break; sleep 0.1; done
  done
  local c=$((64 / n)) wrks=()
  for i in $(seq 1 "$n"); do
    wrk -t1 -c"$c" -d"${duration}s" --latency -s bench/hook.lua "http://127.0.0.1:$((18090 + i))" \
      -- samples/chat.json /hooks/smartsupp/bench-token "$i" >"$out/wrk-pg-$n-$i.txt" &
    wrks+=($!)
  done
  wait "${wrks[@]}"
  local t0; t0=$(date +%s.%N)
  while [ "$(pending "$url")" != "0" ]; do sleep 0.1; done
  local drain; drain=$(echo "$(date +%s.%N) - $t0" | bc)
  local total=0 p99s=""
  for i in $(seq 1 "$n"); do
    total=$(echo "$total + $(awk '/Requests\/sec/ { print $2 }' "$out/wrk-pg-$n-$i.txt")" | bc)
    p99s="$p99s $(awk '$1 == "99%" { print $2 }' "$out/wrk-pg-$n-$i.txt")"
  done
  local stored; stored=$(psql -tAq "$url" -c "SELECT COUNT(*) FROM conversations")
  local done_n; done_n=$(psql -tAq "$url" -c "SELECT COUNT(*) FROM deliveries WHERE state = 'done'")
  for p in "${pids[@]}"; do kill -TERM "$p"; done
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
  printf 'postgres instances=%s  %9.0f hooks/s  p99 per instance:%s  stored %s delivered %s  drain %.2fs\n' \
    "$n" "$total" "$p99s" "$stored" "$done_n" "$drain"
}

echo "machine: $(nproc) cores; duration ${duration}s per run; 64 connections in all"
run "${ONLY:-1}"; [ -n "${ONLY:-}" ] && exit 0
run 2
run 3
