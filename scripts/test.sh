#!/usr/bin/env bash
# The whole test suite. Starts a throwaway PostgreSQL server on 127.0.0.1:5433 (see
# scripts/pg-test-server.sh), then runs every test with SQLite as the store (the multi-instance
# and outage tests use PostgreSQL), and the integration tests of the spine and the destinations
# again with PostgreSQL as the store.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/pg-test-server.sh start)"
export DESKBRIDGE_TEST_PG_RESTARTABLE=1
cargo test --locked
DESKBRIDGE_TEST_BACKEND=postgres cargo test --locked --test spine --test zendesk --test hubspot --test ops
