#!/usr/bin/env bash
# epoll_proxy (the C host) in front of the harness's PostgreSQL and MariaDB: psql and pgbench
# (100 clients over a pool of 4, simple/extended/prepared), the mariadb client and sysbench
# (ps-mode auto and disable) must run with zero failures. Needs the MUXQL_* environment of
# `scripts/dbs env` (scripts/test exports it). Then the same PostgreSQL clients through the
# server example (the Server API). Usage: proxy_test.sh PATH/TO/epoll_proxy PATH/TO/server
set -euo pipefail
proxy=$1
server=$2
: "${MUXQL_PG_PORT:?run under scripts/test, or eval \"\$(scripts/dbs env DIR)\" first}"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pg_port=$(free_port)
my_port=$(free_port)
log=$(mktemp)
"$proxy" --pool 4 --listen-pg "$pg_port" --listen-mysql "$my_port" \
  --route "pg,$MUXQL_PG_DB,127.0.0.1:$MUXQL_PG_PORT,$MUXQL_PG_SCRAM_USER,$MUXQL_PG_PASSWORD" \
  --route "mysql,$MUXQL_MY_DB,127.0.0.1:$MUXQL_MY_PORT,$MUXQL_MY_USER,$MUXQL_MY_PASSWORD" \
  2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$pg_port") 2>/dev/null && break
  sleep 0.05
done
fail() { echo "proxy_test: $*" >&2; cat "$log" >&2; exit 1; }

export PGPASSWORD=$MUXQL_PG_PASSWORD
got=$("$MUXQL_PG_BIN/psql" -X -At -h 127.0.0.1 -p "$pg_port" -U "$MUXQL_PG_SCRAM_USER" -d "$MUXQL_PG_DB" \
  -c "SELECT 40 + 2") || fail "psql failed"
[[ $got == 42 ]] || fail "psql answered $got"
"$MUXQL_PG_BIN/pgbench" -i -q -s 1 -h "$MUXQL_PG_HOST" -p "$MUXQL_PG_PORT" -U "$MUXQL_PG_SUPERUSER" \
  "$MUXQL_PG_DB" >/dev/null 2>&1 || fail "pgbench -i failed"
"$MUXQL_PG_BIN/psql" -X -q -h "$MUXQL_PG_HOST" -p "$MUXQL_PG_PORT" -U "$MUXQL_PG_SUPERUSER" -d "$MUXQL_PG_DB" \
  -c 'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO PUBLIC' >/dev/null
for mode in simple extended prepared; do
  out=$("$MUXQL_PG_BIN/pgbench" -n -S -M "$mode" -c 100 -j 100 -T 3 -h 127.0.0.1 -p "$pg_port" \
    -U "$MUXQL_PG_SCRAM_USER" "$MUXQL_PG_DB" 2>&1) || fail "pgbench -M $mode: $out"
  grep -q "number of failed transactions: 0" <<<"$out" || fail "pgbench -M $mode: $out"
  echo "proxy_test: pgbench -M $mode: $(grep -m1 '^tps' <<<"$out")"
done

got=$(MYSQL_PWD=$MUXQL_MY_PASSWORD mariadb --no-defaults --batch --skip-column-names --protocol=tcp \
  -h 127.0.0.1 -P "$my_port" -u "$MUXQL_MY_USER" "$MUXQL_MY_DB" -e "SELECT 40 + 2") || fail "mariadb failed"
[[ $got == 42 ]] || fail "mariadb answered $got"
sb=(--mysql-host=127.0.0.1 --mysql-port="$my_port" --mysql-user="$MUXQL_MY_USER"
  --mysql-password="$MUXQL_MY_PASSWORD" --mysql-db="$MUXQL_MY_DB" --tables=1 --table-size=1000)
sysbench oltp_point_select "${sb[@]}" cleanup >/dev/null 2>&1 || true
sysbench oltp_point_select "${sb[@]}" prepare >/dev/null 2>&1 || fail "sysbench prepare"
for ps in auto disable; do
  out=$(sysbench oltp_point_select "${sb[@]}" --db-ps-mode="$ps" --threads=100 --time=3 run 2>&1) ||
    fail "sysbench ps-mode $ps: $out"
  grep -qE "ignored errors: +0 " <<<"$out" || fail "sysbench ps-mode $ps: $out"
  echo "proxy_test: sysbench ps-mode $ps: $(grep -m1 'queries:' <<<"$out" | tr -s ' ')"
done
sysbench oltp_point_select "${sb[@]}" cleanup >/dev/null 2>&1 || true
kill -0 "$pid" || fail "epoll_proxy died"

s_port=$(free_port)
"$server" "$s_port" "127.0.0.1:$MUXQL_PG_PORT" "$MUXQL_PG_DB" "$MUXQL_PG_SCRAM_USER" \
  "$MUXQL_PG_PASSWORD" 2>>"$log" &
spid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$s_port") 2>/dev/null && break
  sleep 0.05
done
got=$("$MUXQL_PG_BIN/psql" -X -At -h 127.0.0.1 -p "$s_port" -U "$MUXQL_PG_SCRAM_USER" -d "$MUXQL_PG_DB" \
  -c "SELECT 6 * 7") || fail "psql through the server example failed"
[[ $got == 42 ]] || fail "psql through the server example answered $got"
out=$("$MUXQL_PG_BIN/pgbench" -n -S -c 100 -j 100 -T 3 -h 127.0.0.1 -p "$s_port" \
  -U "$MUXQL_PG_SCRAM_USER" "$MUXQL_PG_DB" 2>&1) || fail "pgbench through the server example: $out"
grep -q "number of failed transactions: 0" <<<"$out" || fail "pgbench through the server example: $out"
echo "proxy_test: server example, pgbench -S: $(grep -m1 '^tps' <<<"$out")"
kill -TERM "$spid"
wait "$spid" || fail "the server example did not stop cleanly"
echo "proxy_test: ok"
