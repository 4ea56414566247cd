#!/usr/bin/env bash
# Admin dashboard and API latency on a large store (see docs/PERFORMANCE.md).
#   bench/admin.sh [CONVERSATIONS [sqlite|postgres]]     default 300000 sqlite
# Writes a store as an older deskbridge left it (migration 1: each conversation with its body,
# a visitor of its own and one delivery, 1 in 100 dead), lets `deskbridge migrate` bring it up
# to date (timed), then serves it and times each admin request (best of 3). Needs python3, curl
# and bc; postgres also uses scripts/pg-test-server.sh and psql.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-300000}"
backend="${2:-sqlite}"
out=bench/out/admin
# DESKBRIDGE_BIN: another build to measure (an earlier release, say) instead of this tree's.
bin="${DESKBRIDGE_BIN:-target/release/deskbridge}"
port=18090
[ -n "${DESKBRIDGE_BIN:-}" ] || cargo build --release --quiet
rm -rf "$out"; mkdir -p "$out"
if [ "$backend" = postgres ]; then
  eval "$(scripts/pg-test-server.sh start)"
  server="${DESKBRIDGE_TEST_PG_URL%/*}"
  psql -q "$DESKBRIDGE_TEST_PG_URL" -c "DROP DATABASE IF EXISTS bench_admin" -c "CREATE DATABASE bench_admin"
  url="$server/bench_admin"
  psql -q "$url" -f src/store/migrations/postgres/0001_init.sql
  psql -q "$url" -v n="$n" -v now="$(date +%s%3N)" -v body="$(cat samples/chat.json)" <<'SQL'
CREATE TABLE deskbridge_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL);
INSERT INTO deskbridge_migrations VALUES (1, 0);
INSERT INTO conversations (key, version, digest, raw, received_at)
SELECT '208-' || i, 1, int8send(i),
       convert_to(replace(replace(replace(:'body', '"id": 55039', '"id": ' || i),
                                  'dusan@domain.com', 'visitor' || i || '@example.com'),
                          '"Dusan Kmet"', '"Visitor ' || i || '"'), 'UTF8'),
       :now - :n + i
FROM generate_series(0, :n - 1) AS i;
INSERT INTO deliveries (conversation_id, key, version, destination, state, next_attempt_at, last_error,
                        created_at, updated_at)
SELECT id, key, version, 'sink', CASE WHEN id % 100 = 0 THEN 'dead' ELSE 'done' END, received_at,
       CASE WHEN id % 100 = 0 THEN 'HTTP 400' END, received_at, received_at FROM conversations;
VACUUM ANALYZE;
SQL
else
  url="sqlite://$out/db.sqlite"
python3 - "$out/db.sqlite" "$n" <<'PY'
import json, sqlite3, sys, time
path, n = sys.argv[1], int(sys.argv[2])
db = sqlite3.connect(path)
db.executescript(open("src/store/migrations/sqlite/0001_init.sql").read())
db.execute("PRAGMA user_version = 1")
body = json.load(open("samples/chat.json"))
now = int(time.time() * 1000)
def rows():
    for i in range(n):
        body["channel"]["id"] = i
        body["visitor"]["email"] = f"visitor{i}@example.com"
        body["visitor"]["name"] = f"Visitor {i}"
        yield (f"208-{i}", 1, i.to_bytes(8, "big"), json.dumps(body).encode(), now - n + i)
db.executemany("INSERT INTO conversations (key, version, digest, raw, received_at) VALUES (?, ?, ?, ?, ?)", rows())
db.execute("""INSERT INTO deliveries (conversation_id, destination, state, next_attempt_at, last_error, created_at, updated_at)
              SELECT id, 'sink', CASE WHEN id % 100 = 0 THEN 'dead' ELSE 'done' END, received_at,
                     CASE WHEN id % 100 = 0 THEN 'HTTP 400' END, received_at, received_at FROM conversations""")
db.commit()
PY
fi
cp -r templates "$out/"
cat >"$out/deskbridge.yaml" <<YAML
server:
  listen: "127.0.0.1:$port"
  hook_tokens: ["bench-token"]
  admin_token: "bench-admin-token"
store:
  url: "$url"
templates:
  dir: "$out/templates"
log:
  level: "warn"
destinations:
  sink:
    kind: webhook
    url: "http://127.0.0.1:9/unused"
YAML
t0=$(date +%s.%N)
"$bin" migrate --config "$out/deskbridge.yaml" >/dev/null
printf 'machine: %s cores; %s; %d conversations; migration 2 (search fields filled from bodies): %.1f s\n' \
  "$(nproc)" "$backend" "$n" "$(echo "$(date +%s.%N) - $t0" | bc)"
"$bin" serve --config "$out/deskbridge.yaml" 2>"$out/deskbridge.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
cookie=$(curl -s -o /dev/null -D - -X POST -d "token=bench-admin-token" "http://127.0.0.1:$port/admin/login" \
  | awk -F'[ ;]' 'tolower($1) == "set-cookie:" { print $2 }')
mid=$((n / 2))
echo "request (best of 3)                                           ms"
for path in /admin/api/overview /admin/api/conversations "/admin/api/conversations?kind=missed" \
    "/admin/api/conversations?state=dead" "/admin/api/conversations?q=208-$mid" \
    "/admin/api/conversations?q=visitor$mid%40example.com" "/admin/api/conversations?q=nobody%40example.com" \
    "/admin/api/conversations?q=example.com" "/admin/api/conversations/208-$mid" \
    "/admin/api/deliveries?state=dead" /admin "/admin/conversations?q=visitor$mid%40example.com" \
    "/admin/conversations/208-$mid" /admin/dead; do
  best=999999
  for _ in 1 2 3; do
    t=$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer bench-admin-token" -H "Cookie: $cookie" \
      "http://127.0.0.1:$port$path")
    best=$(echo "if ($t * 1000 < $best) $t * 1000 else $best" | bc)
  done
  printf '  %-58s %7.1f\n' "$path" "$best"
done
