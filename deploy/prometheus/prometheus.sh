#!/usr/bin/env bash
# Prometheus for the local stack (`make up`), from Debian's package, without Docker.
#
#   deploy/prometheus/prometheus.sh install  Debian's package (prometheus, promtool) if missing
#   deploy/prometheus/prometheus.sh start    install if missing (apt-get), start on 127.0.0.1:9090,
#                                            and Alertmanager beside it (alertmanager.sh)
#   deploy/prometheus/prometheus.sh stop
#   deploy/prometheus/prometheus.sh status
#   deploy/prometheus/prometheus.sh check    promtool: config, rules and the rules' unit tests
#
# Scrapes the five services at 127.0.0.1:8001-8005 (prometheus-local.yml) with the alert
# rules of rules/; data, pid and log in var/prometheus/. PROMETHEUS_PORT changes the port.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/../.." && pwd -P)"
VAR="${FIRSTLINE_VAR:-$ROOT/var}/prometheus"
PORT="${PROMETHEUS_PORT:-9090}"
PID_FILE="$VAR/prometheus.pid"
LOG_FILE="$VAR/prometheus.log"

log() { echo "prometheus.sh: $*"; }
running() { [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }

install() {
  "$HERE/alertmanager.sh" install
  command -v prometheus >/dev/null && return
  log "installing Debian's prometheus package"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends prometheus >/dev/null \
    || { $sudo apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends prometheus >/dev/null; }
  # The package starts a system service on :9090 where there is an init system; ours replaces it.
  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    $sudo systemctl disable --now prometheus || true
  fi
}

start() {
  install
  mkdir -p "$VAR/data"
  if running; then log "already running (pid $(cat "$PID_FILE")): http://127.0.0.1:$PORT"; return; fi
  nohup prometheus --config.file="$HERE/prometheus-local.yml" --storage.tsdb.path="$VAR/data" \
    --web.listen-address="127.0.0.1:$PORT" --web.enable-lifecycle >"$LOG_FILE" 2>&1 &
  echo $! >"$PID_FILE"
  local deadline=$((SECONDS + 30))
  until curl -fsS "http://127.0.0.1:$PORT/-/ready" >/dev/null 2>&1; do
    if ! running; then log "exited; last lines of $LOG_FILE:" >&2; tail -n 20 "$LOG_FILE" >&2; exit 1; fi
    if [ $SECONDS -gt $deadline ]; then log "not ready in 30 s; see $LOG_FILE" >&2; exit 1; fi
    sleep 0.3
  done
  log "running (pid $(cat "$PID_FILE")): http://127.0.0.1:$PORT (alerts: /alerts, targets: /targets)"
  "$HERE/alertmanager.sh" start
}

stop() {
  "$HERE/alertmanager.sh" stop
  running || { rm -f "$PID_FILE"; log "not running"; return; }
  local pid; pid="$(cat "$PID_FILE")"
  kill "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$PID_FILE"
  log "stopped"
}

status() {
  if running; then log "running (pid $(cat "$PID_FILE")): http://127.0.0.1:$PORT"; else log "stopped"; exit 3; fi
}

check() {
  install
  promtool check config "$HERE/prometheus-local.yml"
  promtool test rules "$HERE"/tests/*.yml
  "$HERE/alertmanager.sh" check
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  check) check ;;
  *) echo "usage: $0 install|start|stop|status|check" >&2; exit 2 ;;
esac
