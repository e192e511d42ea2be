#!/usr/bin/env bash
# Start and stop the FirstLine services on this machine (no Docker): each service runs under
# uvicorn, supervised by the stack's own supervisord (Debian's supervisor), which restarts a
# service that dies and keeps its log; databases, logs and the supervisor's files live in var/.
#   deploy/stack.sh up | down | status
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# FIRSTLINE_VAR: where state lives (default var/); the end-to-end tests use their own.
VAR="${FIRSTLINE_VAR:-$ROOT/var}"
RUN="$VAR/run"
LOGS="$VAR/log"
ENV_FILE="$VAR/firstline.env"
CONF="$VAR/supervisor/supervisord.conf"
mkdir -p "$RUN" "$LOGS" "$VAR/supervisor"
export FIRSTLINE_ENV_FILE="$ENV_FILE"

declare -A PORTS=([portal]=8000 [checkin]=8001 [supplies]=8002 [dispatch]=8003 [timebank]=8004 [command]=8005 [messaging]=8006)
ORDER=(portal checkin supplies dispatch timebank command messaging)  # the portal first: services fetch its JWKS

services() {  # the services that exist in this checkout
  for svc in "${ORDER[@]}"; do
    [ -f "services/$svc/$svc/main.py" ] && echo "$svc"
  done
}

port_of() {
  local svc="$1" var
  var="$(echo "$svc" | tr '[:lower:]' '[:upper:]')_PORT"
  echo "${!var:-${PORTS[$svc]}}"
}

host_of() {  # where a process listens: only the portal may face the network (PORTAL_HOST=0.0.0.0 for phones on the LAN)
  if [ "$1" = portal ]; then echo "${PORTAL_HOST:-127.0.0.1}"; else echo 127.0.0.1; fi
}

priority_of() {  # supervisor starts lower numbers first: the portal, whose JWKS the services fetch
  if [ "$1" = portal ]; then echo 100; else echo 200; fi
}

database_url_of() {
  local var; var="$(echo "$1" | tr '[:lower:]' '[:upper:]')_DATABASE_URL"
  echo "${!var:-sqlite+aiosqlite:///$VAR/$1.db}"
}

ensure_env_file() {
  # The stack's settings; `firstline token` reads the same file. The portal's signing keys
  # live in $VAR/keys (made by the portal on first start); services get only its JWKS URL.
  if [ ! -f "$ENV_FILE" ] || ! grep -q '^FIRSTLINE_KEYS_DIR=' "$ENV_FILE"; then
    umask 077
    {
      echo "FIRSTLINE_ENV=development"
      echo "FIRSTLINE_KEYS_DIR=$VAR/keys"
      echo "FIRSTLINE_PORTAL_URL=http://127.0.0.1:$(port_of portal)"
    } > "$ENV_FILE"
  fi
  # Messaging's secrets: its gateways' signatures, and Alertmanager's token (an older env file gains them).
  for name in MESSAGING_GATEWAY_SECRET MESSAGING_ALERTS_TOKEN; do
    if ! grep -q "^$name=" "$ENV_FILE"; then
      echo "$name=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')" >> "$ENV_FILE"
    fi
  done
  # The portal calls the services where this stack runs them.
  for svc in checkin supplies dispatch timebank command; do
    local name; name="PORTAL_$(echo "$svc" | tr '[:lower:]' '[:upper:]')_URL"
    export "$name=${!name:-http://127.0.0.1:$(port_of "$svc")}"
  done
  export PORTAL_PUBLIC_URL="${PORTAL_PUBLIC_URL:-http://127.0.0.1:$(port_of portal)}"
}

# A pid is ours only while it lives and its command line names what we started: a pid file
# outlives its process, and the kernel hands the number to someone else (or a zombie answers
# kill -0 with no command line at all).
ours() {
  local pid="$1" marker="$2"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$marker"
}

supervisor_pid() { cat "$RUN/supervisord.pid" 2>/dev/null || true; }
supervisor_running() { ours "$(supervisor_pid)" "$CONF"; }
ctl() { supervisorctl -c "$CONF" "$@"; }

write_config() {
  # Values are quoted for supervisor, which also expands %(...)s: a literal % is doubled;
  # then escaped for sed's replacement.
  quote() { local v="${1//%/%%}"; echo "\"${v//\"/\\\"}\""; }
  sed_value() { printf '%s' "$1" | sed -e 's/[|&\\]/\\&/g'; }
  sed -e "s|@RUN@|$RUN|g" -e "s|@LOGS@|$LOGS|g" -e "s|@ROOT@|$ROOT|g" deploy/supervisor/supervisord.conf.in > "$CONF.new"
  for svc in $(services); do
    local prefix environment
    prefix="$(echo "$svc" | tr '[:lower:]' '[:upper:]')"
    environment="${prefix}_DATABASE_URL=$(quote "$(database_url_of "$svc")"),FIRSTLINE_ENV_FILE=$(quote "$ENV_FILE")"
    sed -e "s|@SERVICE@|$svc|g" -e "s|@PORT@|$(port_of "$svc")|g" -e "s|@HOST@|$(host_of "$svc")|g" -e "s|@PRIORITY@|$(priority_of "$svc")|g" \
      -e "s|@ROOT@|$ROOT|g" -e "s|@LOGS@|$LOGS|g" \
      -e "s|@ENVIRONMENT@|$(sed_value "$environment")|g" deploy/supervisor/program.conf.in >> "$CONF.new"
  done
  mv "$CONF.new" "$CONF"
}

# Services left running by a supervisord that was killed (its children outlive it): found by
# their command line, the one this configuration starts on this service's port.
stop_orphans() {
  for svc in $(services); do
    local marker="--factory $svc.main:app_from_env --port $(port_of "$svc") "
    for cmdline in /proc/[0-9]*/cmdline; do
      local pid="${cmdline#/proc/}"; pid="${pid%/cmdline}"
      ours "$pid" "$marker" || continue
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 150); do ours "$pid" "$marker" || break; sleep 0.1; done
      ours "$pid" "$marker" && kill -9 "$pid" 2>/dev/null
      echo "stopped $svc left running without its supervisor (pid $pid)"
    done
  done
}

service_pid() { ctl pid "$1" 2>/dev/null | grep -E '^[0-9]+$' | grep -v '^0$' || true; }

up() {
  deploy/supervisor/install.sh
  ensure_env_file  # the services read it themselves (FIRSTLINE_ENV_FILE); the environment wins
  write_config
  if supervisor_running; then
    ctl update >/dev/null  # adds, removes or restarts what the new configuration changed
    ctl start all >/dev/null || true
  else
    rm -f "$RUN/supervisord.pid" "$RUN/supervisor.sock"
    stop_orphans
    # The services inherit this environment (KAFKA_BOOTSTRAP_SERVERS, <SERVICE>_* settings).
    supervisord -c "$CONF"
  fi
  for svc in $(services); do
    local port deadline state; port="$(port_of "$svc")"; deadline=$((SECONDS + 90))
    until curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
      state="$(ctl status "$svc" 2>/dev/null | awk '{print $2}' || true)"
      if [ "$state" = FATAL ]; then echo "$svc cannot start; last lines of $LOGS/$svc.log:" >&2; tail -n 30 "$LOGS/$svc.log" >&2; exit 1; fi
      if [ $SECONDS -gt $deadline ]; then echo "$svc did not answer /healthz in 90 s" >&2; tail -n 30 "$LOGS/$svc.log" >&2; exit 1; fi
      sleep 0.3
    done
    echo "$svc healthy: http://127.0.0.1:$port/docs (pid $(service_pid "$svc"), log $LOGS/$svc.log)"
  done
}

down() {
  if supervisor_running; then
    local pid; pid="$(supervisor_pid)"
    ctl stop all || true  # each service gets SIGTERM, then SIGKILL after stopwaitsecs
    ctl shutdown >/dev/null || true
    for _ in $(seq 1 100); do ours "$pid" "$CONF" || break; sleep 0.1; done
    ours "$pid" "$CONF" && kill -9 "$pid"
    echo "stopped the stack's supervisor"
  fi
  stop_orphans  # also a stack started before it ran under supervision
  rm -f "$RUN"/*.pid "$RUN/supervisor.sock"
}

status() {
  for svc in $(services); do
    local pid=""
    supervisor_running && pid="$(service_pid "$svc")"
    if [ -n "$pid" ]; then echo "$svc: running on :$(port_of "$svc") (pid $pid)"; else echo "$svc: stopped"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
