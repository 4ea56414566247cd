#!/usr/bin/env bash
# Ingest and forwarding benchmark of deskbridge (see docs/PERFORMANCE.md).
#   bench/run.sh [DURATION_SECONDS]
# Needs wrk and nginx (Debian packages wrk, nginx-light). Everything listens on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-15}"
out=bench/out
mkdir -p "$out"
body=samples/chat.json
hook="http://127.0.0.1:18080"
bin=target/release/deskbridge

command -v wrk >/dev/null && command -v nginx >/dev/null || {
  echo "install wrk and nginx first: apt-get install wrk nginx-light" >&2; exit 1; }
cargo build --release --quiet

nginx -c "$PWD/bench/nginx.conf" -s stop 2>/dev/null || true
sleep 0.3
nginx -c "$PWD/bench/nginx.conf"
trap 'nginx -c "$PWD/bench/nginx.conf" -s stop 2>/dev/null || true; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true' EXIT

metric() { curl -s "$hook/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
rss_kib() { awk -v f="$2" '$1 == f":" { print $2 }' "/proc/$1/status"; }
# CPU ticks (user + system) of a process, and the bytes it has caused to be written to storage.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
written() { awk '$1 == "write_bytes:" { print $2 }' "/proc/$1/io"; }
hz=$(getconf CLK_TCK)

start() {
  rm -f "$out"/bench.sqlite*
  "$bin" serve --config bench/deskbridge.bench.yaml 2>"$out/deskbridge.log" &
  pid=$!
  for _ in $(seq 100); do curl -sf "$hook/healthz" >/dev/null && return; sleep 0.1; done
  echo "deskbridge did not start" >&2; cat "$out/deskbridge.log" >&2; exit 1
}

# The admin API on the store the load left behind (best of 3 per request, milliseconds).
admin_timings() {
  local n; n=$(curl -s -H "Authorization: Bearer bench-admin-token" "$hook/admin/api/overview" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["hooks_last_day"])')
  local key; key=$(curl -s -H "Authorization: Bearer bench-admin-token" "$hook/admin/api/conversations?limit=1" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["conversations"][0]["key"])')
  echo "admin API with $n conversations stored (best of 3, ms):"
  for path in /admin/api/overview "/admin/api/conversations" "/admin/api/conversations?q=dusan" \
      "/admin/api/conversations?q=nobody%40example.com" "/admin/api/conversations?q=$key" \
      "/admin/api/conversations/$key" "/admin/api/deliveries?state=dead"; do
    local best=999999
    for _ in 1 2 3; do
      local t; t=$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer bench-admin-token" "$hook$path")
      best=$(echo "if ($t * 1000 < $best) $t * 1000 else $best" | bc)
    done
    printf '  %-60s %8.1f\n' "$path" "$best"
  done
}

run_load() { # concurrency
  local c=$1
  start
  sleep 1
  local idle; idle=$(rss_kib "$pid" VmRSS)
  local cpu0; cpu0=$(cpu_ticks "$pid")
  local w0; w0=$(written "$pid")
  wrk -t1 -c"$c" -d"${duration}s" --latency -s bench/hook.lua "$hook" -- "$body" /hooks/smartsupp/bench-token >"$out/wrk-c$c.txt"
  local t0; t0=$(date +%s.%N)
  local accepted; accepted=$(curl -s "$hook/metrics" | awk '$1 == "deskbridge_hooks_received_total{outcome=\"accepted\"}" { print $2 }')
  while true; do
    pending=$(metric deskbridge_deliveries_pending)
    [ "${pending:-1}" = "0" ] && break
    sleep 0.05
  done
  local drain; drain=$(echo "$(date +%s.%N) - $t0" | bc)
  local done_n; done_n=$(curl -s "$hook/metrics" | awk '$1 == "deskbridge_delivery_attempts_total{destination=\"sink\",outcome=\"done\"}" { print $2 }')
  local peak; peak=$(rss_kib "$pid" VmHWM)
  # Per conversation, load and drain included: CPU time and bytes written to the store.
  local cpu_us; cpu_us=$(echo "($(cpu_ticks "$pid") - $cpu0) * 1000000 / $hz / $accepted" | bc)
  local bytes; bytes=$(echo "($(written "$pid") - $w0) / $accepted" | bc)
  local rps; rps=$(awk '/Requests\/sec/ { print $2 }' "$out/wrk-c$c.txt")
  local p50; p50=$(awk '$1 == "50%" { print $2 }' "$out/wrk-c$c.txt")
  local p99; p99=$(awk '$1 == "99%" { print $2 }' "$out/wrk-c$c.txt")
  local errors; errors=$(awk '/Non-2xx/ { print $5 }' "$out/wrk-c$c.txt")
  [ "$c" = 64 ] && admin_timings >"$out/admin-c$c.txt"
  kill -TERM "$pid"; wait "$pid" || true; pid=
  printf 'deskbridge c=%-3s %9s hooks/s  p50 %-8s p99 %-8s non-2xx %-4s accepted %-7s delivered %-7s drain %.2fs  RSS idle %d KiB peak %d KiB  CPU %d us/conversation  written %d bytes/conversation\n' \
    "$c" "$rps" "$p50" "$p99" "${errors:-0}" "$accepted" "$done_n" "$drain" "$idle" "$peak" "$cpu_us" "$bytes"
  [ -f "$out/admin-c$c.txt" ] && cat "$out/admin-c$c.txt" && rm -f "$out/admin-c$c.txt"
  return 0
}

baseline() { # concurrency
  local c=$1
  wrk -t1 -c"$c" -d"${duration}s" --latency -s bench/hook.lua http://127.0.0.1:18081 -- "$body" /ticket >"$out/nginx-c$c.txt"
  printf 'nginx      c=%-3s %9s req/s    p50 %-8s p99 %s\n' "$c" \
    "$(awk '/Requests\/sec/ { print $2 }' "$out/nginx-c$c.txt")" \
    "$(awk '$1 == "50%" { print $2 }' "$out/nginx-c$c.txt")" \
    "$(awk '$1 == "99%" { print $2 }' "$out/nginx-c$c.txt")"
}

big_conversation() {
  python3 - "$out/big.json" <<'PY'
import json, sys
c = json.load(open("samples/chat.json"))
c["channel"]["id"] = 9_000_000
c["messages"] = [{"type": "visitor" if i % 2 == 0 else "agent", "name": "Dusan Kmet" if i % 2 == 0 else "John Doe",
                  "from": "x", "content": f"message {i}: the quick brown fox jumps over the lazy dog",
                  "sentAt": 1427470439703 + i * 1000, "triggeredBy": None} for i in range(5000)]
json.dump(c, open(sys.argv[1], "w"))
PY
  start
  local t; t=$(curl -s -o /dev/null -w '%{time_total}' -X POST --data-binary @"$out/big.json" "$hook/hooks/smartsupp/bench-token")
  kill -TERM "$pid"; wait "$pid" || true; pid=
  printf '5,000-message conversation (%s bytes): accepted in %.1f ms\n' "$(stat -c %s "$out/big.json")" "$(echo "$t * 1000" | bc)"
  cargo run --release --quiet --example render_bench -- "$out/big.json" bench/templates bench/ticket.json.hbs
}

echo "machine: $(nproc) cores, $(uname -m); duration ${duration}s per run; wrk -t1"
run_load 64
run_load 16
baseline 64
baseline 16
big_conversation
