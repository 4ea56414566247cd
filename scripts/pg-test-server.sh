#!/usr/bin/env bash
# Starts (or stops) a throwaway PostgreSQL server for deskbridge's tests, on loopback only.
#   scripts/pg-test-server.sh start   # prints the DESKBRIDGE_TEST_PG_URL to export
#   scripts/pg-test-server.sh stop
# Needs PostgreSQL's server binaries (Debian: postgresql). As root it runs the server as user
# postgres, otherwise as the current user.
set -euo pipefail
port="${DESKBRIDGE_PG_PORT:-5433}"
data="${DESKBRIDGE_PG_DATA:-/tmp/deskbridge-pg}"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[ -x "$bin/pg_ctl" ] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }
# PostgreSQL refuses to run as root: as root, run it as user postgres; otherwise as yourself.
as_pg() { if [ "$(id -u)" != 0 ]; then "$@"; else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; fi; }

case "${1:-start}" in
  start)
    if [ ! -s "$data/PG_VERSION" ]; then
      mkdir -p "$data"
      [ "$(id -u)" != 0 ] || chown postgres "$data"
      as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
    fi
    if ! as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      as_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
        -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
    fi
    as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc \
      "SELECT 1 FROM pg_roles WHERE rolname = 'deskbridge'" | grep -q 1 ||
      as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -qc \
        "CREATE ROLE deskbridge LOGIN SUPERUSER PASSWORD 'deskbridge'"
    echo "export DESKBRIDGE_TEST_PG_URL=postgres://deskbridge:deskbridge@127.0.0.1:$port/postgres"
    ;;
  stop)
    as_pg "$bin/pg_ctl" -D "$data" -m fast stop >/dev/null 2>&1 || true
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
