#!/usr/bin/env bash
# The whole test suite. Starts a throwaway PostgreSQL server on 127.0.0.1:5433 (see
# scripts/pg-test-server.sh) and installs the browser test's playwright-core (npm ci, from the
# npm registry, once), then runs every test with SQLite as the store (the multi-instance and
# outage tests use PostgreSQL; the admin browser test needs /usr/bin/chromium and is skipped,
# saying so, without it, except under CI), and the
# integration tests of the spine, the destinations, operations, the admin API, the worker's
# decisions and the security checks again with PostgreSQL as the store.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v npm >/dev/null 2>&1; then
  echo "npm is missing: the admin browser test will be skipped (CI fails it)" >&2
elif [ ! -d tests/browser/node_modules/playwright-core ] \
  || [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
fi
eval "$(scripts/pg-test-server.sh start)"
export DESKBRIDGE_TEST_PG_RESTARTABLE=1
cargo test --locked
DESKBRIDGE_TEST_BACKEND=postgres cargo test --locked --test spine --test zendesk --test hubspot --test ops --test admin --test worker --test security --test zendesk_oauth --test recipe_engine
