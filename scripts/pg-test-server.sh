#!/usr/bin/env bash
# Starts (or stops) a throwaway PostgreSQL server for deskbridge's tests, on loopback only, with
# TLS on (a throwaway CA and a server certificate for localhost and 127.0.0.1, made with openssl
# when the data folder is new; clients may connect with or without TLS).
#   scripts/pg-test-server.sh start   # prints DESKBRIDGE_TEST_PG_URL and DESKBRIDGE_TEST_PG_CA to export
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

# $data/ca.crt (the CA tests trust), $data/server.crt and $data/server.key (PostgreSQL's
# defaults for ssl_cert_file and ssl_key_file). The CA's key is thrown away.
make_certs() {
  command -v openssl >/dev/null || { echo "openssl not found (apt-get install openssl)" >&2; exit 1; }
  local tmp; tmp="$(mktemp -d)"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -days 3650 -subj "/CN=deskbridge test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$tmp/ca.key" -out "$tmp/ca.crt" 2>/dev/null
  openssl req "${ec[@]}" -subj "/CN=localhost" -keyout "$tmp/server.key" -out "$tmp/server.csr" 2>/dev/null
  printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$tmp/ext"
  openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" \
    -CAcreateserial -CAserial "$tmp/ca.srl" -days 3650 -extfile "$tmp/ext" -out "$tmp/server.crt" 2>/dev/null
  chmod 600 "$tmp/server.key"
  chmod 644 "$tmp/ca.crt" "$tmp/server.crt"
  [ "$(id -u)" != 0 ] || chown postgres "$tmp/server.key" "$tmp/server.crt" "$tmp/ca.crt"
  mv "$tmp/server.key" "$tmp/server.crt" "$tmp/ca.crt" "$data/"
  rm -rf "$tmp"
}

case "${1:-start}" in
  start)
    if [ ! -s "$data/PG_VERSION" ]; then
      mkdir -p "$data"
      [ "$(id -u)" != 0 ] || chown postgres "$data"
      as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
    fi
    [ -s "$data/server.crt" ] && [ -s "$data/ca.crt" ] || make_certs
    if ! as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      as_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
        -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=300 -c ssl=on" start >/dev/null
    fi
    if [ "$(as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc "SHOW ssl")" != on ]; then
      echo "note: the server on port $port runs without TLS (started by an older version of this script);" \
        "stop and start it again for the TLS tests" >&2
    fi
    as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc \
      "SELECT 1 FROM pg_roles WHERE rolname = 'deskbridge'" | grep -q 1 ||
      as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -qc \
        "CREATE ROLE deskbridge LOGIN SUPERUSER PASSWORD 'deskbridge'"
    echo "export DESKBRIDGE_TEST_PG_URL=postgres://deskbridge:deskbridge@127.0.0.1:$port/postgres"
    echo "export DESKBRIDGE_TEST_PG_CA=$data/ca.crt"
    ;;
  stop)
    as_pg "$bin/pg_ctl" -D "$data" -m fast stop >/dev/null 2>&1 || true
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
