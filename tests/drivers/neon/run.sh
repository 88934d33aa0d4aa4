#!/usr/bin/env bash
# Runs the @neondatabase/serverless driver suite (Node's test runner) against PostgreSQL directly
# (through a WebSocket-to-TCP relay inside the test process) and through muxql's WebSocket
# listeners:
#
#   MUXQL_TEST_WS_URL=ws://127.0.0.1:PORT/v2          muxql --listen-ws, --auth cleartext
#   MUXQL_TEST_WS_SCRAM_URL=ws://127.0.0.1:PORT2/v2   muxql --listen-ws, --auth scram
#   MUXQL_TEST_PG_USER=... MUXQL_TEST_PG_PASSWORD=... MUXQL_TEST_PG_DB=...
#   MUXQL_TEST_PG_DIRECT_URL=postgres://user:pass@host:port/db \
#   tests/drivers/neon/run.sh [node --test flags, e.g. --test-name-pattern=Pool]
#
# Packages are pinned by package-lock.json and installed with `npm ci` when node_modules is
# missing or older than the lock file; after that no network is used. Exits non-zero on any
# failure; a failing case is named e.g. `Pool [muxql]` and its messages start with [muxql].
set -euo pipefail
cd "$(dirname "$0")"

for v in MUXQL_TEST_WS_URL MUXQL_TEST_WS_SCRAM_URL MUXQL_TEST_PG_USER MUXQL_TEST_PG_PASSWORD \
  MUXQL_TEST_PG_DB MUXQL_TEST_PG_DIRECT_URL; do
  if [[ -z ${!v:-} ]]; then
    echo "neon suite: $v is not set; see tests/drivers/README.md" >&2
    exit 2
  fi
done

# npm ci writes node_modules/.package-lock.json; it is older than package-lock.json when the
# lock file changed since the last install.
stamp=node_modules/.package-lock.json
if [[ ! -f $stamp || package-lock.json -nt $stamp || package.json -nt $stamp ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

npm test --silent -- "$@"
