#!/usr/bin/env bash
# Holds a running deskbridge to docs/openapi.yaml: validates the document against the OpenAPI
# 3.1 schema (openapi-spec-validator), starts `deskbridge serve` on a throwaway SQLite store
# with the admin API on, and runs schemathesis against its admin API and hook route with a
# bounded number of examples: no 5xx, every status, content type, header and body as
# documented. Needs the Python tools of scripts/test.sh's virtual environment (PYTHON_ENV, default
# target/ci-venv) and a built binary (BIN, default target/debug/deskbridge).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${PYTHON_ENV:-target/ci-venv}"
bin="${BIN:-target/debug/deskbridge}"
examples="${API_CHECK_EXAMPLES:-100}"
"$venv/bin/python" -m openapi_spec_validator docs/openapi.yaml

work="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
hook_token="api-check-hook-token"
admin_token="api-check-admin-token"
cat >"$work/deskbridge.yaml" <<YAML
server:
  listen: "127.0.0.1:$port"
  hook_tokens: ["$hook_token"]
  admin_token: "$admin_token"
  max_body_bytes: 65536
store:
  url: "sqlite://$work/db.sqlite"
log:
  level: "warn"
smartsupp:
  webhook_secrets: ["api-check-events-secret"]
destinations:
  archive:
    kind: file
    dir: "$work/out"
YAML
"$bin" serve --config "$work/deskbridge.yaml" 2>"$work/log" &
server=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null

# The hook's token is fixed to the configured one: random tokens would only meet 401 and then
# the limiter's 429, for the admin API too.
cat >"$work/schemathesis.toml" <<TOML
[parameters]
"path.token" = "$hook_token"
TOML
status=0
repo="$PWD"
# From the throwaway folder, where schemathesis keeps its cache. Two runs: the events route
# last and alone, because schemathesis cannot sign its bodies, and every 401 for a bad
# signature counts against the address in the limiter, which would soon answer the other
# routes' requests from the same address with 429 instead of reaching their logic.
schemathesis_run() { # path regex
  (cd "$work" && "$repo/$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$repo/docs/openapi.yaml" \
    --url "http://127.0.0.1:$port" \
    --header "Authorization: Bearer $admin_token" \
    --include-path-regex "$1" \
    --mode positive \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --max-examples "$examples" --seed 1 --workers 2 \
    --suppress-health-check all)
}
schemathesis_run '^/(admin/api/|hooks/smartsupp/\{token\}$|healthz|readyz|metrics)' || status=$?
schemathesis_run '^/hooks/smartsupp/events/\{token\}$' || status=$?
# The hook route must have been reached with the right token (accepted conversations).
hooks="$(curl -fsS "http://127.0.0.1:$port/metrics" | grep '^deskbridge_hooks_received_total')"
echo "$hooks"
if ! echo "$hooks" | grep -Eq 'outcome="accepted"\} [1-9]'; then
  echo "schemathesis never had a hook accepted: the token override did not apply" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "deskbridge's log:" >&2
  cat "$work/log" >&2
fi
exit "$status"
