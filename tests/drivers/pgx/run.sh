#!/usr/bin/env bash
# Runs the pgx v5 driver suite against PostgreSQL directly and through muxql.
#
#   MUXQL_TEST_PG_DIRECT_URL=postgres://user:pass@host:port/db \
#   MUXQL_TEST_PG_MUXQL_URL=postgres://user:pass@host:port/db \
#   tests/drivers/pgx/run.sh [go test flags, e.g. -v or -run TestBatch]
#
# Modules are pinned by go.mod/go.sum; once they are in the module cache no network is used
# (GOFLAGS=-mod=mod is never set, so go.sum is not rewritten). Exits non-zero on any failure;
# a failing case is reported as e.g. `--- FAIL: TestBatch/muxql/DescribeExec` with messages
# that start with [direct] or [muxql].
set -euo pipefail
cd "$(dirname "$0")"

for v in MUXQL_TEST_PG_DIRECT_URL MUXQL_TEST_PG_MUXQL_URL; do
  if [[ -z ${!v:-} ]]; then
    echo "pgx suite: $v is not set (a postgres:// URL); see tests/drivers/README.md" >&2
    exit 2
  fi
done

# The local toolchain is enough (go.mod asks for go 1.25); never download another one.
export GOTOOLCHAIN=local

if [[ -n $(gofmt -l .) ]]; then
  echo "pgx suite: gofmt would change: $(gofmt -l . | tr '\n' ' ')" >&2
  exit 1
fi
go vet ./...
go test -race -count=1 -timeout 5m "$@" ./...
