# Helpers shared by scripts/demo and scripts/bench (sourced): start/stop muxql and PgBouncer, read metrics.
# shellcheck shell=bash

# Background processes started through these helpers; stop_all kills exactly these.
STARTED_PIDS=()

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "${0##*/}" "$*" >&2
  exit 1
}

# A free TCP port on 127.0.0.1, below the kernel's ephemeral range (32768 and up by default),
# so that no outgoing connection of a benchmark client holds it by the time it is bound.
free_port() {
  local port
  while :; do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      printf '%s\n' "$port"
      return
    fi
  done
}

# wait_port PORT PID: waits until 127.0.0.1:PORT accepts connections (PID must stay alive).
wait_port() {
  local port=$1 pid=$2 i
  for ((i = 0; i < 200; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# http_get PORT PATH: prints the body of GET http://127.0.0.1:PORT/PATH.
http_get() {
  local port=$1 path=$2
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
  sed '1,/^\r$/d' <&3
  exec 3<&-
}

# metric PORT SERIES_PREFIX: sums the values of series starting with SERIES_PREFIX.
metric() {
  http_get "$1" /metrics | awk -v p="$2" 'index($0, p) == 1 { s += $NF } END { printf "%g\n", s }'
}

# rss_kb PID: resident set size in KiB.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# start_muxql BIN PORT METRICS_PORT LOGFILE ARGS...: starts muxql with a PostgreSQL listener on
# PORT (MUXQL_LISTEN=--listen-mysql for a MySQL one), sets MUXQL_PID, waits for it.
start_muxql() {
  local bin=$1 port=$2 mport=$3 logfile=$4
  shift 4
  "$bin" "${MUXQL_LISTEN:---listen-pg}" "127.0.0.1:$port" --metrics "127.0.0.1:$mport" \
    --log-level warn "$@" >"$logfile" 2>&1 &
  MUXQL_PID=$!
  STARTED_PIDS+=("$MUXQL_PID")
  wait_port "$mport" "$MUXQL_PID" || die "muxql did not start: $(tail -n 1 "$logfile")"
}

# start_pgbouncer DIR PORT PG_PORT USER PASSWORD DB POOL_SIZE: transaction-mode PgBouncer as the
# postgres OS user (it refuses root), SCRAM client auth; sets PGBOUNCER_PID. PGBOUNCER names
# the binary (default: pgbouncer on PATH); PGBOUNCER_EXTRA holds extra ini lines for one run.
start_pgbouncer() {
  local dir=$1 port=$2 pgport=$3 user=$4 pw=$5 db=$6 pool=$7 bin=${PGBOUNCER:-pgbouncer}
  mkdir -p "$dir"
  printf '"%s" "%s"\n' "$user" "$pw" >"$dir/userlist.txt"
  cat >"$dir/pgbouncer.ini" <<INI
[databases]
$db = host=127.0.0.1 port=$pgport dbname=$db user=$user password=$pw

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = $pool
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 20000
max_db_connections = $pool
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
log_connections = 0
log_disconnections = 0
; The test PostgreSQL offers TLS; every peer in a comparison connects to it in plaintext.
server_tls_sslmode = disable
INI
  # Extra settings for one run (TLS, another auth_type): later lines override earlier ones.
  if [[ -n ${PGBOUNCER_EXTRA:-} ]]; then
    printf '%s\n' "$PGBOUNCER_EXTRA" >>"$dir/pgbouncer.ini"
  fi
  if "$bin" --version 2>/dev/null | grep -qE 'PgBouncer 1\.(2[1-9]|[3-9][0-9])'; then
    # 1.21 and later pool prepared statements in transaction mode.
    echo 'max_prepared_statements = 200' >>"$dir/pgbouncer.ini"
  fi
  chmod 755 "$dir"
  chmod 644 "$dir"/*
  if ((EUID == 0)); then
    chown postgres "$dir"
    # runuser's PAM session resets the descriptor limit: raise it again as postgres.
    # shellcheck disable=SC2016  # expanded by the inner shell
    runuser -u postgres -- bash -c 'ulimit -n "$1" 2>/dev/null; exec "$2" "$3"' _ \
      "$(ulimit -n)" "$bin" "$dir/pgbouncer.ini" >/dev/null 2>&1 &
  else
    "$bin" "$dir/pgbouncer.ini" >/dev/null 2>&1 &
  fi
  STARTED_PIDS+=("$!")
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -s $dir/pgbouncer.pid ]] && break
    sleep 0.05
  done
  PGBOUNCER_PID=$(cat "$dir/pgbouncer.pid" 2>/dev/null) || die "pgbouncer did not start; see $dir/pgbouncer.log"
  STARTED_PIDS+=("$PGBOUNCER_PID")
  wait_port "$port" "$PGBOUNCER_PID" || die "pgbouncer did not start; see $dir/pgbouncer.log"
}

# stop_pid PID: SIGTERM, then SIGKILL after 10 s.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
}

# Stops every process started by these helpers.
stop_all() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do
    stop_pid "$pid"
  done
  STARTED_PIDS=()
}

# pgbench_tps OUTPUT_FILE: the tps figure of a pgbench run (0 when it failed).
pgbench_tps() {
  awk '/^tps = / { print $3; found = 1 } END { if (!found) print 0 }' "$1"
}

# prepare_pgbench SCALE: initialises pgbench tables as the superuser, grants them to everyone.
prepare_pgbench() {
  local scale=$1
  log "initialising pgbench data (scale $scale)"
  PGPASSWORD='' "$MUXQL_PG_BIN/pgbench" -i -q -s "$scale" -h "$MUXQL_PG_HOST" -p "$MUXQL_PG_PORT" \
    -U "$MUXQL_PG_SUPERUSER" "$MUXQL_PG_DB" >/dev/null 2>&1 || die "pgbench -i failed"
  "$MUXQL_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$MUXQL_PG_HOST" -p "$MUXQL_PG_PORT" \
    -U "$MUXQL_PG_SUPERUSER" -d "$MUXQL_PG_DB" \
    -c 'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO PUBLIC' \
    >/dev/null || die "granting pgbench tables failed"
}

# sysbench_prepare TABLES SIZE: creates the sysbench tables straight on MariaDB.
sysbench_prepare() {
  local args=(--mysql-host=127.0.0.1 --mysql-port="$MUXQL_MY_PORT" --mysql-user="$MUXQL_MY_USER"
    --mysql-password="$MUXQL_MY_PASSWORD" --mysql-db="$MUXQL_MY_DB" --tables="$1")
  log "creating sysbench tables ($1 x $2 rows)"
  sysbench oltp_point_select "${args[@]}" cleanup >/dev/null 2>&1 || true
  sysbench oltp_point_select "${args[@]}" --table-size="$2" prepare >/dev/null 2>&1 ||
    die "sysbench prepare failed"
}

# sysbench_run OUT PORT PS_MODE THREADS SECONDS TABLES SIZE: oltp_point_select against
# 127.0.0.1:PORT, output in OUT.
sysbench_run() {
  local out=$1 port=$2 ps=$3 threads=$4 secs=$5 tables=$6 size=$7
  sysbench oltp_point_select --mysql-host=127.0.0.1 --mysql-port="$port" \
    --mysql-user="$MUXQL_MY_USER" --mysql-password="$MUXQL_MY_PASSWORD" --mysql-db="$MUXQL_MY_DB" \
    --tables="$tables" --table-size="$size" --db-ps-mode="$ps" --threads="$threads" \
    --time="$secs" --report-interval=0 run >"$out" 2>&1 || true
}

# sysbench_qps OUT: queries per second of a sysbench run (0 when it failed).
sysbench_qps() {
  if grep -q FATAL "$1"; then
    echo 0
    return
  fi
  awk '/queries:/ { gsub(/\(/, "", $3); print $3; found = 1 } END { if (!found) print 0 }' "$1"
}

# raise_fd_limit: lets one process hold thousands of sockets.
raise_fd_limit() {
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}
