#!/usr/bin/env bash
# The whole test suite. Starts a throwaway PostgreSQL server on 127.0.0.1:5433 (see
# scripts/pg-test-server.sh), installs the browser test's playwright-core (npm ci, from the
# npm registry, once) and the pinned Python tools (PyPI, once, in target/ci-venv), then runs
# every test with SQLite as the store (the multi-instance and outage tests use PostgreSQL; the
# admin browser test needs /usr/bin/chromium and is skipped, saying so, without it, except
# under CI), the integration tests of the spine, the destinations, operations, the admin API,
# the worker's decisions, the security checks, the recipe engine, the events API and the import
# again with PostgreSQL as the store, and last schemathesis against a running instance
# (scripts/api-check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v npm >/dev/null 2>&1; then
  echo "npm is missing: the admin browser test will be skipped (CI fails it)" >&2
elif [ ! -d tests/browser/node_modules/playwright-core ] \
  || [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
fi
# Python tools from PyPI, pinned, in target/ci-venv (about 30 s the first time): the OTLP test's
# collector decodes spans with opentelemetry-proto (tests/otlp.rs); openapi-spec-validator and
# schemathesis hold docs/openapi.yaml to the OpenAPI 3.1 schema and a running instance to it.
venv=target/ci-venv
py_tools=(opentelemetry-proto==1.45.2 openapi-spec-validator==0.7.2 schemathesis==4.32.5)
if ! "$venv/bin/python" -m pip freeze 2>/dev/null | grep -qx 'schemathesis==4.32.5'; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${py_tools[@]}"
fi
export DESKBRIDGE_TEST_PYTHON_OTLP="$venv/bin/python"
eval "$(scripts/pg-test-server.sh start)"
export DESKBRIDGE_TEST_PG_RESTARTABLE=1
cargo test --locked
DESKBRIDGE_TEST_BACKEND=postgres cargo test --locked --test spine --test zendesk --test hubspot --test ops --test admin --test worker --test security --test zendesk_oauth --test recipe_engine --test events --test import
# schemathesis against a running instance's admin API and hook route (about 30 s).
cargo build --locked
scripts/api-check.sh
