#!/usr/bin/env bash
# Runs the pgjdbc + HikariCP driver suite against PostgreSQL directly and through muxql.
#
#   MUXQL_TEST_PG_DIRECT_URL=postgres://user:pass@host:port/db \
#   MUXQL_TEST_PG_MUXQL_URL=postgres://user:pass@host:port/db \
#   tests/drivers/pgjdbc/run.sh [maven flags, e.g. -Dtest='IssuesTest#cancel*']
#
# Every dependency and every plugin the test phase uses has a fixed version in pom.xml, so once
# they are in the local repository (~/.m2) Maven needs no network; the first run fetches them.
# Exits non-zero on any failure; each failing case is listed in Maven's summary with a
# message that starts with [direct] or [muxql].
set -euo pipefail
cd "$(dirname "$0")"

for v in MUXQL_TEST_PG_DIRECT_URL MUXQL_TEST_PG_MUXQL_URL; do
  if [[ -z ${!v:-} ]]; then
    echo "pgjdbc suite: $v is not set (a postgres:// URL); see tests/drivers/README.md" >&2
    exit 2
  fi
done

mvn -q -B -Dstyle.color=never test "$@"
