#!/usr/bin/env bash
# Start and stop the FirstLine services on this machine (no Docker): each service runs
# under uvicorn in the background, with its SQLite database, log and pid file in var/.
#   deploy/stack.sh up | down | status
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# FIRSTLINE_VAR: where state lives (default var/); the end-to-end tests use their own.
VAR="${FIRSTLINE_VAR:-$ROOT/var}"
RUN="$VAR/run"
LOGS="$VAR/log"
ENV_FILE="$VAR/firstline.env"
mkdir -p "$RUN" "$LOGS"
export FIRSTLINE_ENV_FILE="$ENV_FILE"

declare -A PORTS=([portal]=8000 [checkin]=8001 [supplies]=8002 [dispatch]=8003 [timebank]=8004 [command]=8005)
ORDER=(portal checkin supplies dispatch timebank command)  # the portal first: services fetch its JWKS

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
  # The portal calls the services where this stack runs them.
  for svc in checkin supplies dispatch timebank command; do
    local name; name="PORTAL_$(echo "$svc" | tr '[:lower:]' '[:upper:]')_URL"
    export "$name=${!name:-http://127.0.0.1:$(port_of "$svc")}"
  done
  export PORTAL_PUBLIC_URL="${PORTAL_PUBLIC_URL:-http://127.0.0.1:$(port_of portal)}"
}

running() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

up() {
  ensure_env_file  # the services read it themselves (FIRSTLINE_ENV_FILE); the environment wins
  for svc in $(services); do
    if running "$svc"; then echo "$svc already running (pid $(cat "$RUN/$svc.pid"))"; continue; fi
    local port db; port="$(port_of "$svc")"
    db="$(echo "$svc" | tr '[:lower:]' '[:upper:]')_DATABASE_URL"
    export "$db=${!db:-sqlite+aiosqlite:///$VAR/$svc.db}"
    local host=127.0.0.1  # only the portal may face the network (PORTAL_HOST=0.0.0.0 for phones on the LAN)
    [ "$svc" = portal ] && host="${PORTAL_HOST:-127.0.0.1}"
    nohup "$ROOT/.venv/bin/uvicorn" --factory "$svc.main:app_from_env" --host "$host" --port "$port" \
      --no-access-log >"$LOGS/$svc.log" 2>&1 &
    echo $! > "$RUN/$svc.pid"
    echo "started $svc on :$port (pid $!, log $LOGS/$svc.log)"
  done
  for svc in $(services); do
    local port deadline; port="$(port_of "$svc")"; deadline=$((SECONDS + 90))
    until curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
      if ! running "$svc"; then echo "$svc exited; last lines of $LOGS/$svc.log:" >&2; tail -n 30 "$LOGS/$svc.log" >&2; exit 1; fi
      if [ $SECONDS -gt $deadline ]; then echo "$svc did not answer /healthz in 90 s" >&2; tail -n 30 "$LOGS/$svc.log" >&2; exit 1; fi
      sleep 0.3
    done
    echo "$svc healthy: http://127.0.0.1:$port/docs"
  done
}

down() {
  for svc in "${ORDER[@]}"; do
    running "$svc" || { rm -f "$RUN/$svc.pid"; continue; }
    local pid; pid="$(cat "$RUN/$svc.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$RUN/$svc.pid"
    echo "stopped $svc"
  done
}

status() {
  for svc in $(services); do
    if running "$svc"; then echo "$svc: running on :$(port_of "$svc") (pid $(cat "$RUN/$svc.pid"))"; else echo "$svc: stopped"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
