# The PgBouncer the benchmarks compare against (sourced by scripts/bench): the newest release
# Debian ships (1.24.1, from trixie's source package, which pools prepared statements in
# transaction mode), built once from its checksummed upstream tarball; the distribution's
# pgbouncer (1.18 on Debian 12, no prepared statements in transaction mode) when that fails.
# shellcheck shell=bash

PGBOUNCER_VERSION=1.24.1
PGBOUNCER_SHA256=da72a3aba13072876d055a3e58dd4aba4a5de4ed6148e73033185245598fd3e0
PGBOUNCER_URL=http://deb.debian.org/debian/pool/main/p/pgbouncer/pgbouncer_$PGBOUNCER_VERSION.orig.tar.gz

# Where the build lives: readable by the postgres user, which PgBouncer runs as under root.
pgbouncer_prefix() {
  if ((EUID == 0)); then
    printf '/opt/muxql-bench/pgbouncer-%s\n' "$PGBOUNCER_VERSION"
  else
    printf '%s/muxql-bench/pgbouncer-%s\n' "${XDG_CACHE_HOME:-$HOME/.cache}" "$PGBOUNCER_VERSION"
  fi
}

# build_pgbouncer PREFIX: downloads, verifies, configures and installs PgBouncer into PREFIX.
build_pgbouncer() {
  local prefix=$1 src
  src=$(mktemp -d "${TMPDIR:-/tmp}/pgbouncer-src.XXXXXX")
  (
    set -e
    cd "$src"
    curl -fsS --max-time 120 -o pgbouncer.tar.gz "$PGBOUNCER_URL"
    echo "$PGBOUNCER_SHA256  pgbouncer.tar.gz" | sha256sum -c --quiet
    tar xzf pgbouncer.tar.gz --strip-components=1
    ./configure --prefix="$prefix" --without-cares --without-systemd --without-pam \
      --without-ldap >configure.log 2>&1
    make -j"$(nproc)" >make.log 2>&1
    make install >install.log 2>&1
  )
  local rc=$?
  rm -rf "$src"
  return "$rc"
}

# pgbouncer_bin: prints the path of the PgBouncer to benchmark (BENCH_PGBOUNCER overrides).
pgbouncer_bin() {
  if [[ -n ${BENCH_PGBOUNCER:-} ]]; then
    printf '%s\n' "$BENCH_PGBOUNCER"
    return
  fi
  local prefix
  prefix=$(pgbouncer_prefix)
  if [[ ! -x $prefix/bin/pgbouncer ]]; then
    log "building PgBouncer $PGBOUNCER_VERSION into $prefix (once)"
    if ! build_pgbouncer "$prefix" >&2; then
      log "could not build PgBouncer $PGBOUNCER_VERSION; using the system pgbouncer"
      command -v pgbouncer
      return
    fi
  fi
  printf '%s\n' "$prefix/bin/pgbouncer"
}
