#!/usr/bin/env bash
# Local PostgreSQL for FirstLine development and tests: a private cluster, not the system one.
#
#   deploy/postgres/postgres.sh install          apt-get install postgresql if no server binaries
#   deploy/postgres/postgres.sh start            install if needed, initdb once, start, wait until ready
#   deploy/postgres/postgres.sh createdb NAME... create databases (owner role firstline) if absent
#   deploy/postgres/postgres.sh url NAME         print postgresql+asyncpg://firstline:firstline@127.0.0.1:PORT/NAME
#   deploy/postgres/postgres.sh psql [NAME]      interactive psql as firstline (default db: postgres)
#   deploy/postgres/postgres.sh stop             fast shutdown (immediate after 30 s)
#   deploy/postgres/postgres.sh status           exit 0 if running, 3 if not
#   deploy/postgres/postgres.sh reset            stop and delete the cluster (all databases)
#
# Listens on 127.0.0.1:${FIRSTLINE_PG_PORT:-55432} only (not 5432: no clash with a system
# cluster). FIRSTLINE_PG_VAR (default <repo>/var/postgres) holds a second cluster beside the
# first, e.g. the fault suite's, which it stops and starts on its own port. Role firstline / password firstline, a member of nothing special but allowed to
# create databases. TCP connections authenticate with that password (scram-sha-256); the
# Unix socket (private directory, see below) is trust, for the postgres superuser used by
# this script. See deploy/postgres/README.md.
#
# Files: <repo>/var/postgres/{data,run,postgres.log}. PostgreSQL refuses to run as root, so
# as root the cluster belongs to the `postgres` OS user (runuser -u postgres). If that user
# cannot reach <repo>/var/postgres (a parent directory such as /root is not traversable), the
# cluster lives in /var/lib/firstline-postgres/<hash of the repo path> instead, and
# <repo>/var/postgres/LOCATION says where.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd -P)"
PORT="${FIRSTLINE_PG_PORT:-55432}"
HOST=127.0.0.1
APP_ROLE=firstline
APP_PASSWORD=firstline
PG_USER=postgres           # OS user that owns and runs the cluster when we are root
START_TIMEOUT=60
STOP_TIMEOUT=30

log() { echo "postgres.sh: $*"; }
die() { echo "postgres.sh: ERROR: $*" >&2; exit 1; }

# ---------------------------------------------------------------- binaries
# Newest server under /usr/lib/postgresql/*/bin (Debian's layout), else whatever is on PATH.
find_bindir() {
  local d best=""
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x "$d/postgres" && -x "$d/initdb" && -x "$d/pg_ctl" ]] || continue
    best="$(printf '%s\n%s\n' "$best" "$d" | sed '/^$/d' | sort -V | tail -n1)"
  done
  if [[ -z "$best" ]] && command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    best="$(dirname "$(readlink -f "$(command -v pg_ctl)")")"
  fi
  [[ -n "$best" ]] && echo "$best"
}

cmd_install() {
  if BIN="$(find_bindir)"; then
    [[ "${1:-}" == quiet ]] || log "PostgreSQL server binaries found in $BIN"
    return 0
  fi
  [[ $EUID -eq 0 ]] || die "PostgreSQL is not installed and installing needs root (apt-get install postgresql)"
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is not available"
  log "installing PostgreSQL with apt-get ..."
  # noninteractive: no debconf questions in CI. The Debian package may create (and try to
  # start) its own 'main' cluster on 5432; ours is separate and uses another port.
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q postgresql
  BIN="$(find_bindir)" || die "apt-get installed postgresql but no server binaries were found"
  log "installed: $("$BIN/postgres" --version)"
}

# ---------------------------------------------------------------- where the cluster lives
as_owner() {
  # Run a command as the cluster's owner, from / (the postgres user may not be able to
  # read the caller's working directory).
  if [[ $EUID -eq 0 ]]; then
    (cd / && runuser -u "$PG_USER" -- "$@")
  else
    "$@"
  fi
}

resolve_home() {
  local preferred="${FIRSTLINE_PG_VAR:-$REPO_ROOT/var/postgres}"
  PG_HOME="$preferred"
  mkdir -p "$preferred"
  if [[ $EUID -eq 0 ]]; then
    id -u "$PG_USER" >/dev/null 2>&1 || die "OS user '$PG_USER' does not exist (it comes with the postgresql package: run '$0 install')"
    if ! (cd / && runuser -u "$PG_USER" -- test -x "$preferred") ; then
      # A parent directory is not traversable by the postgres user: use a system location,
      # one per checkout so that two clones never share a cluster.
      local h; h="$(printf '%s' "${FIRSTLINE_PG_VAR:-$REPO_ROOT}" | sha256sum | cut -c1-12)"
      PG_HOME="/var/lib/firstline-postgres/$h"
      mkdir -p "$PG_HOME"
      chown "$PG_USER:" "/var/lib/firstline-postgres" "$PG_HOME"
      if [[ ! -f "$preferred/LOCATION" ]] || [[ "$(cat "$preferred/LOCATION")" != "$PG_HOME" ]]; then
        echo "$PG_HOME" > "$preferred/LOCATION"
      fi
    else
      chown "$PG_USER:" "$preferred"
    fi
  fi
  DATA_DIR="$PG_HOME/data"
  LOG_FILE="$PG_HOME/postgres.log"
  SOCK_DIR="$PG_HOME/run"
  # A Unix socket path is limited to 107 bytes; a deep checkout would exceed it.
  if (( ${#SOCK_DIR} + 20 > 100 )); then
    SOCK_DIR="/tmp/firstline-pg-$(printf '%s' "$PG_HOME" | sha256sum | cut -c1-12)"
  fi
}

prepare_dirs() {
  as_owner mkdir -p "$SOCK_DIR"
  as_owner chmod 700 "$SOCK_DIR"   # the socket is 'trust': only root and the owner may reach it
}

# ---------------------------------------------------------------- server helpers
is_running() {
  [[ -f "$DATA_DIR/PG_VERSION" ]] || return 1
  as_owner "$BIN/pg_ctl" -D "$DATA_DIR" status >/dev/null 2>&1
}

# psql as the superuser over the private socket.
su_psql() {
  as_owner "$BIN/psql" -X -q -h "$SOCK_DIR" -p "$PORT" -U postgres -v ON_ERROR_STOP=1 "$@"
}

write_conf() {
  # Our settings live in their own file, rewritten on every start, so that changing this
  # script changes the cluster; postgresql.conf only includes it.
  local conf="$DATA_DIR/firstline.conf"
  as_owner tee "$conf" >/dev/null <<EOF
# Written by deploy/postgres/postgres.sh on every start: edit the script, not this file.
listen_addresses = '$HOST'           # loopback only
port = $PORT                           # not 5432: leaves room for a system cluster
unix_socket_directories = '$SOCK_DIR'
unix_socket_permissions = 0700
# Tests open many pools (one per service, several workers each): the default 100 is tight.
max_connections = 200
# Default 128MB; 256MB keeps test data sets in memory on a 24 GiB machine.
shared_buffers = 256MB
# Durability settings (fsync, synchronous_commit, full_page_writes) stay at their defaults:
# the transactional-outbox tests must see the same commit semantics as production.
logging_collector = off                # pg_ctl -l writes the log file
log_line_prefix = '%m [%p] %q%u@%d '
log_timezone = 'UTC'
timezone = 'UTC'
EOF
  if ! grep -q "^include_if_exists = 'firstline.conf'" "$DATA_DIR/postgresql.conf"; then
    echo "include_if_exists = 'firstline.conf'" | as_owner tee -a "$DATA_DIR/postgresql.conf" >/dev/null
  fi
}

write_hba() {
  as_owner tee "$DATA_DIR/pg_hba.conf" >/dev/null <<EOF
# Written by deploy/postgres/postgres.sh.
# TYPE  DATABASE  USER  ADDRESS        METHOD
# Unix socket in a 0700 directory: only root and the cluster owner can reach it.
local   all       all                  trust
# TCP on loopback: password (the services connect this way with firstline/firstline).
host    all       all   127.0.0.1/32   scram-sha-256
host    all       all   ::1/128        scram-sha-256
EOF
}

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

ensure_role() {
  su_psql -d postgres <<EOF
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', '$APP_ROLE', '$APP_PASSWORD')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$APP_ROLE')
\\gexec
-- Tests and benchmarks drop their databases WITH (FORCE): that needs to end other sessions.
GRANT pg_signal_backend TO "$APP_ROLE";
EOF
}

# ---------------------------------------------------------------- commands
cmd_start() {
  cmd_install quiet
  resolve_home
  prepare_dirs
  if is_running; then
    log "already running on $HOST:$PORT (data $DATA_DIR)"
    return 0
  fi
  port_in_use && die "$HOST:$PORT is already in use by another process; stop it or set FIRSTLINE_PG_PORT"

  if [[ ! -f "$DATA_DIR/PG_VERSION" ]]; then
    log "initdb in $DATA_DIR ($("$BIN/postgres" --version))"
    # --no-locale + UTF8: byte-order collation, identical on every machine; -A trust is
    # replaced by write_hba below before the server ever listens.
    as_owner "$BIN/initdb" -D "$DATA_DIR" -U postgres -A trust --no-locale -E UTF8 >/dev/null \
      || die "initdb failed"
  fi
  write_conf
  write_hba

  log "starting PostgreSQL on $HOST:$PORT (log: $LOG_FILE)"
  local t0; t0=$(date +%s.%N)
  # -w: pg_ctl waits until the server accepts connections (or fails). Started detached
  # (pg_ctl daemonises postgres), so it outlives this shell.
  if ! as_owner "$BIN/pg_ctl" -D "$DATA_DIR" -l "$LOG_FILE" -w -t "$START_TIMEOUT" start >/dev/null; then
    echo "----- last lines of $LOG_FILE:" >&2; tail -n 30 "$LOG_FILE" >&2 || true
    die "PostgreSQL did not start"
  fi
  local i
  for (( i = 0; i < START_TIMEOUT; i++ )); do
    "$BIN/pg_isready" -q -h "$HOST" -p "$PORT" && break
    sleep 1
  done
  "$BIN/pg_isready" -q -h "$HOST" -p "$PORT" || { tail -n 30 "$LOG_FILE" >&2; die "pg_isready does not answer on $HOST:$PORT"; }
  ensure_role
  log "ready on $HOST:$PORT after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s (data $DATA_DIR)"
}

cmd_stop() {
  BIN="$(find_bindir)" || { log "PostgreSQL not installed: nothing to stop"; return 0; }
  resolve_home
  if ! is_running; then
    log "not running"
    return 0
  fi
  log "stopping ..."
  # fast: roll back open transactions and disconnect clients, then a clean checkpoint.
  if ! as_owner "$BIN/pg_ctl" -D "$DATA_DIR" -m fast -w -t "$STOP_TIMEOUT" stop >/dev/null; then
    log "no clean stop within ${STOP_TIMEOUT}s, stopping immediately (crash recovery on next start)"
    as_owner "$BIN/pg_ctl" -D "$DATA_DIR" -m immediate -w -t 10 stop >/dev/null || true
  fi
  log "stopped"
}

cmd_status() {
  BIN="$(find_bindir)" || { log "PostgreSQL not installed"; return 3; }
  resolve_home
  if is_running; then
    local pid; pid="$(head -n1 "$DATA_DIR/postmaster.pid" 2>/dev/null || echo '?')"
    log "running: pid $pid, $HOST:$PORT, data $DATA_DIR, $("$BIN/postgres" --version)"
    return 0
  fi
  log "not running (data $DATA_DIR)"
  return 3
}

cmd_createdb() {
  (( $# > 0 )) || die "usage: $0 createdb NAME..."
  local name
  for name in "$@"; do
    [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_-]{0,62}$ ]] || die "invalid database name '$name' (letters, digits, _ and -)"
  done
  cmd_start >/dev/null
  for name in "$@"; do
    su_psql -d postgres <<EOF
SELECT format('CREATE DATABASE %I OWNER %I', '$name', '$APP_ROLE')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$name')
\\gexec
EOF
    log "database $name ready: $(cmd_url "$name")"
  done
}

cmd_url() {
  (( $# == 1 )) || die "usage: $0 url NAME"
  echo "postgresql+asyncpg://$APP_ROLE:$APP_PASSWORD@$HOST:$PORT/$1"
}

cmd_psql() {
  BIN="$(find_bindir)" || die "PostgreSQL not installed"
  PGPASSWORD="$APP_PASSWORD" exec "$BIN/psql" -h "$HOST" -p "$PORT" -U "$APP_ROLE" -d "${1:-postgres}" "${@:2}"
}

cmd_reset() {
  cmd_stop
  rm -rf "$DATA_DIR" "$LOG_FILE"
  log "deleted $DATA_DIR (next start runs initdb)"
}

case "${1:-}" in
  install)  cmd_install ;;
  start)    cmd_start ;;
  stop)     cmd_stop ;;
  status)   cmd_status ;;
  createdb) shift; cmd_createdb "$@" ;;
  url)      shift; cmd_url "$@" ;;
  psql)     shift; cmd_psql "$@" ;;
  reset)    cmd_reset ;;
  *) echo "usage: $0 {install|start|createdb NAME...|url NAME|psql [NAME]|stop|status|reset}" >&2; exit 2 ;;
esac
