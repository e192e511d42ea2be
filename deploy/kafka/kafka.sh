#!/usr/bin/env bash
# Local Apache Kafka for FirstLine development and tests, without Docker.
#
#   deploy/kafka/kafka.sh fetch    copy the broker's jars into var/kafka/libs (idempotent)
#   deploy/kafka/kafka.sh start    fetch if needed, format storage once, start, wait until ready
#   deploy/kafka/kafka.sh stop     SIGTERM, up to 30 s for a clean shutdown, then SIGKILL
#   deploy/kafka/kafka.sh status   exit 0 if running, 3 if not
#   deploy/kafka/kafka.sh provision  apply principals, ACLs and catalog topics to the running broker
#   deploy/kafka/kafka.sh run      start, then stay in the foreground until SIGTERM (a container)
#   deploy/kafka/kafka.sh health   exit 0 if the broker answers an authenticated metadata request
#   deploy/kafka/kafka.sh reset    stop and delete var/kafka/data (topics, offsets, cluster id)
#
# One combined broker+controller (KRaft) on 127.0.0.1:9092 (controller 127.0.0.1:9093), locked:
# clients speak SASL_SSL (SCRAM-SHA-512) with a certificate from a CA this script creates, and
# every action needs an ACL. start provisions the principals of the topic catalog (random
# passwords in var/kafka/credentials/<principal>.json, mode 0600) and their ACLs, every time.
# Everything lives under <repo>/var/kafka/: libs/, data/, tls/, credentials/, secrets/,
# server.properties, kafka.pid, kafka.log.
# The jars come from Maven Central through deploy/kafka/pom.xml (mvn needs to be on PATH the
# first time only). See deploy/kafka/README.md.
#
# If KAFKA_BOOTSTRAP_SERVERS points anywhere else than 127.0.0.1:9092 / localhost:9092, an
# external broker is in use: start and stop say so and do nothing.
#
# Knobs (environment):
#   FIRSTLINE_KAFKA_PORT             client (SASL_SSL) port (default 9092)
#   FIRSTLINE_KAFKA_CONTROLLER_PORT  controller port, loopback only (default 9093)
#   FIRSTLINE_KAFKA_HOST             address the client listener binds (default 127.0.0.1)
#   FIRSTLINE_KAFKA_ADVERTISED_HOST  name clients reach it by (default the bind address)
#   FIRSTLINE_KAFKA_TLS_NAMES        extra certificate names, e.g. "DNS:kafka" (comma-separated)
#   FIRSTLINE_PYTHON                 Python with libs/common installed (default .venv/bin/python)
#   FIRSTLINE_KAFKA_PASSWORD_<PRINCIPAL>  a principal's password instead of a random one
#                                    (e.g. FIRSTLINE_KAFKA_PASSWORD_PARTNER_HEALTH); likewise
#   FIRSTLINE_KAFKA_BROKER_PASSWORD, FIRSTLINE_KAFKA_KEYSTORE_PASSWORD for the broker's own
#   KAFKA_START_TIMEOUT   seconds to wait for the broker to answer (default 90)
#   KAFKA_HEAP_OPTS       JVM heap (default -Xms512m -Xmx1g)
#   JAVA_HOME             Java 17+ to use (default: java on PATH)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# deploy/kafka/ -> repo root, wherever the repo was cloned.
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd -P)"
# FIRSTLINE_KAFKA_NODES=3 (or KAFKA_NODES, as make passes it): a three-node cluster, kept
# apart from the single node (var/kafka-cluster/, its own CA and credentials), so both can run.
NODES="${FIRSTLINE_KAFKA_NODES:-${KAFKA_NODES:-1}}"
[[ "$NODES" =~ ^[1-9]$ ]] || { echo "kafka.sh: ERROR: FIRSTLINE_KAFKA_NODES must be 1..9, not '$NODES'" >&2; exit 2; }
if (( NODES == 1 )); then
  VAR_DIR="${FIRSTLINE_KAFKA_VAR:-$REPO_ROOT/var/kafka}"
else
  VAR_DIR="${FIRSTLINE_KAFKA_VAR:-$REPO_ROOT/var/kafka-cluster}"
fi
# The catalog's topics and Kafka's internal ones: replicated on up to three nodes, and an
# acknowledged write (acks=all) is on min.insync.replicas = replication - 1 of them.
REPLICATION=$(( NODES < 3 ? NODES : 3 ))
MIN_ISR=$(( REPLICATION > 1 ? REPLICATION - 1 : 1 ))
LIBS_DIR="${FIRSTLINE_KAFKA_LIBS:-$REPO_ROOT/var/kafka/libs}"  # one copy of the jars; an image brings its own
CLUSTER_ID_FILE="$VAR_DIR/cluster.id"
TLS_DIR="$VAR_DIR/tls"
SECRETS_DIR="$VAR_DIR/secrets"
CREDENTIALS_DIR="$VAR_DIR/credentials"
ADMIN_PROPS="$SECRETS_DIR/admin.properties"
PROVISION="$SCRIPT_DIR/Provision.java"
PYTHON="${FIRSTLINE_PYTHON:-$REPO_ROOT/.venv/bin/python}"
POM="$SCRIPT_DIR/pom.xml"
TEMPLATE="$SCRIPT_DIR/server.properties.template"
LOG4J2_CONF="$SCRIPT_DIR/log4j2.properties"

HOST="${FIRSTLINE_KAFKA_HOST:-127.0.0.1}"
ADVERTISED_HOST="${FIRSTLINE_KAFKA_ADVERTISED_HOST:-$HOST}"
PORT="${FIRSTLINE_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${FIRSTLINE_KAFKA_CONTROLLER_PORT:-$(( PORT + 1 ))}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT=30
# 512 MiB..1 GiB suits a 2-core/24 GiB machine; much below 256 MiB the log cleaner's 128 MiB
# dedupe buffer can fail to allocate at start-up.
# A cluster's three JVMs share the same machine: 256..768 MiB each.
if (( NODES == 1 )); then DEFAULT_HEAP="-Xms512m -Xmx1g"; else DEFAULT_HEAP="-Xms256m -Xmx768m"; fi
HEAP_OPTS="${KAFKA_HEAP_OPTS:-$DEFAULT_HEAP}"

# Node i (1..NODES) listens on PORT + 2(i-1) (controller CONTROLLER_PORT + 2(i-1)): 9092/9093,
# 9094/9095, 9096/9097 by default. One node keeps its files in VAR_DIR itself (as always);
# a cluster's node i in VAR_DIR/node<i>/. select_node sets the current node's globals.
node_port() { echo $(( PORT + 2 * ($1 - 1) )); }
node_controller_port() { echo $(( CONTROLLER_PORT + 2 * ($1 - 1) )); }
select_node() {
  NODE="$1"
  NODE_PORT="$(node_port "$1")"
  NODE_CONTROLLER_PORT="$(node_controller_port "$1")"
  if (( NODES == 1 )); then NODE_DIR="$VAR_DIR"; else NODE_DIR="$VAR_DIR/node$1"; fi
  DATA_DIR="$NODE_DIR/data"
  PID_FILE="$NODE_DIR/kafka.pid"
  LOG_FILE="$NODE_DIR/kafka.log"
  PROPS_FILE="$NODE_DIR/server.properties"
  SECURED_STAMP="$NODE_DIR/data.secured"
}
select_node 1
BOOTSTRAP="$(for (( i = 1; i <= NODES; i++ )); do printf '%s127.0.0.1:%s' "$([[ $i -gt 1 ]] && echo ,)" "$(node_port "$i")"; done)"
# Static quorum of a cluster: every node is a voter (combined broker+controller).
VOTERS="$(for (( i = 1; i <= NODES; i++ )); do printf '%s%s@127.0.0.1:%s' "$([[ $i -gt 1 ]] && echo ,)" "$i" "$(node_controller_port "$i")"; done)"

if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=java; fi

log() { echo "kafka.sh: $*"; }
die() { echo "kafka.sh: ERROR: $*" >&2; exit 1; }

# The pinned version is the <kafka.version> property of pom.xml: one place to change it.
kafka_version() {
  sed -n 's:.*<kafka.version>\([^<]*\)</kafka.version>.*:\1:p' "$POM" | head -n1
}

# Stamp of what var/kafka/libs was built from: the whole POM, so a changed version or
# dependency list triggers a new fetch.
pom_stamp() {
  echo "$(kafka_version) $(sha256sum "$POM" | cut -d' ' -f1)"
}

external_broker() {
  local bs="${KAFKA_BOOTSTRAP_SERVERS:-}"
  [[ -n "$bs" && "$bs" != "127.0.0.1:$PORT" && "$bs" != "localhost:$PORT" && "$bs" != "$BOOTSTRAP" ]]
}

classpath() { echo "$LIBS_DIR/*"; }

# ---------------------------------------------------------------- fetch
cmd_fetch() {
  local stamp; stamp="$(pom_stamp)"
  if [[ -f "$LIBS_DIR/.stamp" && "$(cat "$LIBS_DIR/.stamp")" == "$stamp" ]]; then
    log "jars for Kafka $(kafka_version) already in $LIBS_DIR"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH (needed once to fetch the Kafka jars)"
  mkdir -p "$(dirname "$LIBS_DIR")"
  local tmp="$LIBS_DIR.tmp.$$"
  rm -rf "$tmp"
  log "fetching Kafka $(kafka_version) jars from Maven Central into $LIBS_DIR ..."
  # -B/-Dstyle.color=never: no progress bars or colour codes in CI logs. Output is kept and
  # shown only on failure (quiet mvn still emits terminal escape codes). copy-dependencies
  # into a temp dir, then an atomic swap: an interrupted fetch never leaves a half-filled
  # libs/ that looks complete.
  if ! mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
      -DoutputDirectory="$tmp" -DincludeScope=runtime > "$LIBS_DIR.fetch.log" 2>&1; then
    cat "$LIBS_DIR.fetch.log" >&2
    rm -rf "$tmp"
    die "mvn could not resolve the Kafka dependencies (output above, also in $LIBS_DIR.fetch.log)"
  fi
  ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "no kafka_2.13 jar after fetch"; }
  echo "$stamp" > "$tmp/.stamp"
  rm -rf "$LIBS_DIR"
  mv "$tmp" "$LIBS_DIR"
  log "fetched $(ls "$LIBS_DIR"/*.jar | wc -l) jars ($(du -sh "$LIBS_DIR" | cut -f1))"
}

# ---------------------------------------------------------------- process helpers
# Prints the pid if our broker is running. A pid file whose process is gone, or belongs to
# something that is not a kafka.Kafka JVM (pid reused after a reboot), is stale.
running_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid; pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep 'kafka\.Kafka' >/dev/null || return 1
  echo "$pid"
}

port_open() {
  # bash's /dev/tcp: no nc/ss needed. The subshell keeps the fd from leaking.
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The broker's own "Kafka Server started" line, logged after this start began (from byte $1
# of the log). Cheap, so it gates the real check below: client JVMs launched while the broker
# is still starting would only compete with it for the 2 cores.
started_in_log() {
  # grep without -q reads to the end: an early exit would SIGPIPE tail and, under pipefail,
  # turn a match into a failure.
  tail -c "+$1" "$LOG_FILE" | grep 'Kafka Server started' >/dev/null
}

# A real request, not just an open socket: list topics through the admin API (needs the
# broker to be unfenced and serving metadata). TopicCommand lives in kafka-tools on 4.x and
# in the core jar on 3.x; with neither (a version pinned without kafka-tools) the log line
# has to do. $1: seconds the request may take.
metadata_ok() {
  local main
  if ls "$LIBS_DIR"/kafka-tools-[0-9]*.jar >/dev/null 2>&1; then
    main=org.apache.kafka.tools.TopicCommand
  elif [[ "$(kafka_version)" == 3.* ]]; then
    main=kafka.admin.TopicCommand
  else
    return 0
  fi
  # -XX:TieredStopAtLevel=1: a short-lived client JVM starts faster with C1 only.
  timeout "$1" "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$LOG4J2_CONF" \
    -cp "$(classpath)" "$main" --bootstrap-server "${2:-$BOOTSTRAP}" --command-config "$ADMIN_PROPS" \
    --list >/dev/null 2>&1
}

# ---------------------------------------------------------------- secrets and TLS
# A random secret kept in a 0600 file, created once.
secret() {
  local file="$SECRETS_DIR/$1" given
  given="$(secret_from_env "$1")"
  if [[ -n "$given" && "$(cat "$file" 2>/dev/null)" != "$given" ]]; then
    mkdir -p "$SECRETS_DIR"; chmod 700 "$SECRETS_DIR"
    (umask 077; printf '%s' "$given" > "$file")
  elif [[ ! -s "$file" ]]; then
    mkdir -p "$SECRETS_DIR"; chmod 700 "$SECRETS_DIR"
    (umask 077; openssl rand -base64 33 | tr -d '/+=\n' > "$file")
  fi
  cat "$file"
}

secret_from_env() {
  case "$1" in
    broker.password) echo "${FIRSTLINE_KAFKA_BROKER_PASSWORD:-}" ;;
    keystore.password) echo "${FIRSTLINE_KAFKA_KEYSTORE_PASSWORD:-}" ;;
  esac
}

# A CA of our own and the broker's certificate signed by it, as a PKCS12 keystore. Clients
# trust tls/ca.crt (KAFKA_SSL_CAFILE); the keys in tls/ are mode 0600.
ensure_tls() {
  [[ -s "$TLS_DIR/broker.p12" && -s "$TLS_DIR/ca.crt" ]] && return 0
  command -v openssl >/dev/null 2>&1 || die "openssl not found (needed once to create the broker's TLS certificate)"
  mkdir -p "$TLS_DIR"; chmod 755 "$TLS_DIR"
  local names="DNS:localhost,IP:127.0.0.1,DNS:kafka"
  [[ "$ADVERTISED_HOST" =~ ^[0-9.]+$ ]] && names="$names,IP:$ADVERTISED_HOST" || names="$names,DNS:$ADVERTISED_HOST"
  [[ -n "${FIRSTLINE_KAFKA_TLS_NAMES:-}" ]] && names="$names,$FIRSTLINE_KAFKA_TLS_NAMES"
  log "creating a CA and the broker's certificate in $TLS_DIR ($names)"
  (
    umask 077; cd "$TLS_DIR"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -sha256 \
      -subj "/CN=FirstLine Kafka CA" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr -subj "/CN=kafka" 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n' \
      "$names" > broker.ext
    openssl x509 -req -in broker.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out broker.crt -days 3650 \
      -sha256 -extfile broker.ext 2>/dev/null
    openssl pkcs12 -export -in broker.crt -inkey broker.key -certfile ca.crt -name broker \
      -out broker.p12.tmp -passout "pass:$(secret keystore.password)"
    mv broker.p12.tmp broker.p12
    rm -f broker.csr broker.ext
    chmod 644 ca.crt
  ) || die "could not create the TLS files in $TLS_DIR"
}

# The CA certificate alone, where clients (another container) may read it without the keys.
publish_ca() {
  mkdir -p "$VAR_DIR/ca"
  cp "$TLS_DIR/ca.crt" "$VAR_DIR/ca/ca.crt.tmp" && mv "$VAR_DIR/ca/ca.crt.tmp" "$VAR_DIR/ca/ca.crt"
  chmod 755 "$VAR_DIR/ca"; chmod 644 "$VAR_DIR/ca/ca.crt"
}

# The admin client's settings: the broker's own (super) user, for readiness and provisioning.
write_admin_props() {
  mkdir -p "$SECRETS_DIR"
  (umask 077; cat > "$ADMIN_PROPS" <<PROPS
bootstrap.servers=$BOOTSTRAP
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="$(secret broker.password)";
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.crt
PROPS
  )
}

# ---------------------------------------------------------------- provision
# Users, ACLs and topics from the topic catalog (libs/common/common/principals.py), applied
# by one JVM as the broker's user. Idempotent: run after every start.
cmd_provision() {
  [[ -x "$PYTHON" ]] || die "$PYTHON not found: run \`make install\` first (the catalog of principals is Python)"
  any_running || die "the broker is not running"
  write_admin_props
  local plan="$SECRETS_DIR/plan.tsv"
  (umask 077; "$PYTHON" -m common.principals plan --credentials-dir "$CREDENTIALS_DIR" \
    --replication-factor "$REPLICATION" > "$plan") \
    || die "could not compute the access plan"
  local out rc=0
  out="$("$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$LOG4J2_CONF" \
    -cp "$(classpath)" "$PROVISION" "$ADMIN_PROPS" "$plan" 2>&1)" || rc=$?
  rm -f "$plan"
  echo "$out" >> "$LOG_FILE"
  grep '^provision:' <<< "$out" | sed 's/^/kafka.sh: /' || true
  (( rc == 0 )) || { echo "$out" | tail -n 20 >&2; die "provisioning failed (see $LOG_FILE)"; }
  log "provisioned: credentials in $CREDENTIALS_DIR, CA $TLS_DIR/ca.crt"
}

# ---------------------------------------------------------------- start
any_running() {
  local i
  for (( i = 1; i <= NODES; i++ )); do select_node "$i"; running_pid >/dev/null && return 0; done
  return 1
}

cmd_start() {
  if external_broker; then
    log "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS: using an external broker, not starting a local one"
    return 0
  fi
  local i pid launched=() from=() t0
  t0=$(date +%s.%N)
  for (( i = 1; i <= NODES; i++ )); do
    select_node "$i"
    if pid="$(running_pid)"; then
      if grep -q '^listeners=SASL_SSL' "$PROPS_FILE" 2>/dev/null; then
        log "node $i already running (pid $pid) on $HOST:$NODE_PORT"
        continue
      fi
      # A broker started before the listener was locked: restart it locked.
      log "running (pid $pid) without authentication: restarting it with SASL_SSL and ACLs"
      stop_local
    fi
    launch_node
    launched+=("$i")
    from+=("$LOG_FROM")
  done
  # All nodes launched first: a cluster's node only starts once a quorum of voters is up.
  local k
  for (( k = 0; k < ${#launched[@]}; k++ )); do
    select_node "${launched[$k]}"
    wait_node "${from[$k]}"
  done
  if (( ${#launched[@]} )); then
    # A real request over the whole bootstrap list (cheap gates first, see started_in_log).
    local deadline=$(( $(date +%s) + START_TIMEOUT ))
    until metadata_ok 30; do
      (( $(date +%s) < deadline )) || die "Kafka ($BOOTSTRAP) started but answers no metadata request"
      sleep 0.5
    done
    log "ready on $BOOTSTRAP ($NODES node$( (( NODES > 1 )) && echo s), replication $REPLICATION, min.insync.replicas $MIN_ISR) after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
  fi
  cmd_provision
}

# Writes the current node's configuration, formats its storage once, and launches it (the
# caller waits); sets LOG_FROM to the byte offset of this start in its log.
launch_node() {
  rm -f "$PID_FILE"
  local p
  for p in "$NODE_PORT" "$NODE_CONTROLLER_PORT"; do
    port_open "$p" && die "port $HOST:$p is already in use by another process (not our broker); stop it, choose FIRSTLINE_KAFKA_PORT, or set KAFKA_BOOTSTRAP_SERVERS to use it"
  done

  cmd_fetch >/dev/null
  "$JAVA" -version >/dev/null 2>&1 || die "java not found (set JAVA_HOME or put Java 17+ on PATH)"

  mkdir -p "$VAR_DIR" "$NODE_DIR" "$DATA_DIR"
  # Each start appends ~0.4 MB (the broker logs its whole config); keep one old log around.
  if [[ -f "$LOG_FILE" ]] && (( $(stat -c %s "$LOG_FILE") > 20 * 1024 * 1024 )); then
    mv -f "$LOG_FILE" "$LOG_FILE.old"
  fi
  touch "$LOG_FILE"
  ensure_tls
  publish_ca
  write_admin_props
  # One node: a dynamic quorum of itself (format --standalone). A cluster: a static quorum
  # of every node (controller.quorum.voters), formatted with the same cluster id.
  local quorum
  if (( NODES == 1 )); then
    quorum="controller.quorum.bootstrap.servers=127.0.0.1:$NODE_CONTROLLER_PORT"
  else
    quorum="controller.quorum.voters=$VOTERS"
  fi
  # Every value below is base64url, a number or a path from this script: sed-safe but for
  # the path, escaped here.
  local esc="${DATA_DIR//\\/\\\\}"; esc="${esc//&/\\&}"; esc="${esc//|/\\|}"
  local tls="${TLS_DIR//\\/\\\\}"; tls="${tls//&/\\&}"; tls="${tls//|/\\|}"
  (umask 077; sed -e "s|@DATA_DIR@|$esc|g" -e "s|@TLS_DIR@|$tls|g" -e "s|@HOST@|$HOST|g" \
    -e "s|@ADVERTISED_HOST@|$ADVERTISED_HOST|g" -e "s|@PORT@|$NODE_PORT|g" -e "s|@CONTROLLER_PORT@|$NODE_CONTROLLER_PORT|g" \
    -e "s|@NODE_ID@|$NODE|g" -e "s|@QUORUM@|$quorum|g" -e "s|@REPLICATION@|$REPLICATION|g" -e "s|@MIN_ISR@|$MIN_ISR|g" \
    -e "s|@BROKER_PASSWORD@|$(secret broker.password)|g" -e "s|@KEYSTORE_PASSWORD@|$(secret keystore.password)|g" \
    "$TEMPLATE" > "$PROPS_FILE")

  # Storage formatted before the broker was locked has no SCRAM user for the broker itself.
  if [[ -f "$DATA_DIR/meta.properties" && ! -f "$SECURED_STAMP" ]]; then
    log "storage in $DATA_DIR predates SASL/ACLs: formatting it afresh (topics are recreated)"
    rm -rf "$DATA_DIR"; mkdir -p "$DATA_DIR"
  fi

  # Format the KRaft storage once. meta.properties marks a formatted dir; the cluster id is
  # kept next to it so that re-formatting after a reset is the only way to get a new one.
  if [[ ! -f "$DATA_DIR/meta.properties" ]]; then
    if [[ ! -s "$CLUSTER_ID_FILE" ]]; then
      "$JAVA" -cp "$(classpath)" -Dlog4j2.configurationFile="$LOG4J2_CONF" \
        kafka.tools.StorageTool random-uuid > "$CLUSTER_ID_FILE.tmp"
      # The tool may print log lines on stdout too: keep the id only (22 chars, base64url).
      grep -E '^[A-Za-z0-9_-]{22}$' "$CLUSTER_ID_FILE.tmp" | tail -n1 > "$CLUSTER_ID_FILE"
      rm -f "$CLUSTER_ID_FILE.tmp"
      [[ -s "$CLUSTER_ID_FILE" ]] || die "StorageTool random-uuid gave no cluster id"
    fi
    log "formatting KRaft storage in $DATA_DIR (node $NODE, cluster id $(cat "$CLUSTER_ID_FILE"))"
    local standalone=()
    (( NODES == 1 )) && standalone=(--standalone)
    "$JAVA" -cp "$(classpath)" -Dlog4j2.configurationFile="$LOG4J2_CONF" \
      kafka.tools.StorageTool format "${standalone[@]}" -t "$(cat "$CLUSTER_ID_FILE")" -c "$PROPS_FILE" \
      --add-scram "SCRAM-SHA-512=[name=broker,password=$(secret broker.password)]" \
      >> "$LOG_FILE" 2>&1 || { tail -n 30 "$LOG_FILE" >&2; die "storage format failed"; }
    touch "$SECURED_STAMP"
  fi

  log "starting Kafka $(kafka_version) node $NODE on $HOST:$NODE_PORT (log: $LOG_FILE)"
  echo "===== $(date -u +%FT%TZ) kafka.sh start (Kafka $(kafka_version))" >> "$LOG_FILE"
  LOG_FROM=$(( $(stat -c %s "$LOG_FILE") + 1 ))   # byte offset of this start
  # JVM flags, as bin/kafka-run-class.sh uses them: G1 with short pauses, and explicit GCs
  # (from NIO buffer cleanup) done concurrently. -Djava.awt.headless: no X on servers.
  # nohup + </dev/null: the broker outlives the shell (and CI step) that started it.
  # shellcheck disable=SC2086
  nohup "$JAVA" $HEAP_OPTS \
    -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J2_CONF" \
    -cp "$(classpath)" kafka.Kafka "$PROPS_FILE" \
    >> "$LOG_FILE" 2>&1 < /dev/null &
  echo "$!" > "$PID_FILE"
}

# Waits until the current node logs its start and answers on its port ($1: LOG_FROM).
wait_node() {
  local pid; pid="$(cat "$PID_FILE")"
  local deadline=$(( $(date +%s) + START_TIMEOUT ))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      echo "----- last lines of $LOG_FILE:" >&2; tail -n 40 "$LOG_FILE" >&2
      die "Kafka node $NODE exited during start-up"
    fi
    if started_in_log "$1" && port_open "$NODE_PORT"; then
      (( NODES > 1 )) || metadata_ok 30 "127.0.0.1:$NODE_PORT" && break
    fi
    if (( $(date +%s) >= deadline )); then
      echo "----- last lines of $LOG_FILE:" >&2; tail -n 40 "$LOG_FILE" >&2
      # Leave nothing half-started behind: a failed start means not running.
      cmd_stop_all >&2
      die "Kafka node $NODE did not answer on $HOST:$NODE_PORT within ${START_TIMEOUT}s (stopped again; raise KAFKA_START_TIMEOUT if the machine is just slow)"
    fi
    sleep 0.5
  done
  log "node $NODE up on $HOST:$NODE_PORT (pid $pid)"
}

# ---------------------------------------------------------------- stop
cmd_stop() {
  if external_broker; then
    log "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS: using an external broker, nothing to stop"
    return 0
  fi
  cmd_stop_all
}

# Every node gets SIGTERM at once (one by one, the last would wait for a controller quorum
# that is already gone), then up to 30 s each before SIGKILL.
cmd_stop_all() {
  local i pids=() pid
  for (( i = 1; i <= NODES; i++ )); do
    select_node "$i"
    if pid="$(running_pid)"; then
      log "stopping node $i (pid $pid) ..."
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$i:$pid")
    else
      rm -f "$PID_FILE"
    fi
  done
  (( ${#pids[@]} )) || { log "not running"; return 0; }
  local entry n
  for entry in "${pids[@]}"; do
    select_node "${entry%%:*}"; pid="${entry#*:}"
    for (( n = 0; n < STOP_TIMEOUT * 5; n++ )); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "node $NODE still running after ${STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for (( n = 0; n < 50; n++ )); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$PID_FILE"
  done
  log "stopped"
}

stop_local() {
  local pid n
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for (( n = 0; n < STOP_TIMEOUT * 5; n++ )); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$PID_FILE"
}

# ---------------------------------------------------------------- status
cmd_status() {
  if external_broker; then
    log "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS: external broker (the local one is not managed)"
  fi
  local i pid up=0
  for (( i = 1; i <= NODES; i++ )); do
    select_node "$i"
    if pid="$(running_pid)"; then
      local rss; rss=$(awk '/^VmRSS/{printf "%d MiB", $2/1024}' "/proc/$pid/status" 2>/dev/null || echo "?")
      log "node $i running: pid $pid, $HOST:$NODE_PORT (controller $HOST:$NODE_CONTROLLER_PORT), RSS $rss, Kafka $(kafka_version), data $DATA_DIR"
      up=$(( up + 1 ))
    else
      log "node $i not running ($HOST:$NODE_PORT)"
    fi
  done
  (( up == NODES )) && return 0
  return 3
}

# `kafka.sh bootstrap`: the bootstrap list clients use (all nodes); `kafka.sh pid N`: node N's pid.
cmd_bootstrap() { echo "$BOOTSTRAP"; }
# `eval "$(kafka.sh env)"`: what a service started here needs to reach this broker or cluster
# (its bootstrap list, CA, credentials, replication); nothing when an external one is in use.
cmd_env() {
  external_broker && return 0
  printf 'export KAFKA_BOOTSTRAP_SERVERS=%q KAFKA_SSL_CAFILE=%q KAFKA_CREDENTIALS_DIR=%q FIRSTLINE_KAFKA_REPLICATION=%q\n' \
    "$BOOTSTRAP" "$TLS_DIR/ca.crt" "$CREDENTIALS_DIR" "$REPLICATION"
}
cmd_pid() { select_node "${1:-1}"; running_pid; }

# ---------------------------------------------------------------- reset
cmd_reset() {
  # Always stop our own broker first, external KAFKA_BOOTSTRAP_SERVERS or not: its data is
  # about to be deleted.
  cmd_stop_all
  local i
  for (( i = 1; i <= NODES; i++ )); do
    select_node "$i"
    rm -rf "$DATA_DIR" "$SECURED_STAMP"
    log "deleted $DATA_DIR"
  done
  rm -f "$CLUSTER_ID_FILE"
  log "next start formats fresh storage"
}

# ---------------------------------------------------------------- run (foreground)
cmd_run() {
  cmd_start
  trap 'cmd_stop_all; exit 0' TERM INT
  # The brokers' logs go to stdout too, as a container's should.
  local i logs=()
  for (( i = 1; i <= NODES; i++ )); do select_node "$i"; logs+=("$LOG_FILE"); done
  tail -n 0 -F "${logs[@]}" &
  while any_running; do sleep 1 & wait $!; done
  die "the broker exited (see above)"
}

cmd_health() {
  any_running && metadata_ok 10
}

case "${1:-}" in
  fetch)  cmd_fetch ;;
  start)  cmd_start ;;
  stop)   cmd_stop ;;
  status) cmd_status ;;
  reset)  cmd_reset ;;
  provision) cmd_provision ;;
  run)    cmd_run ;;
  health) cmd_health ;;
  bootstrap) cmd_bootstrap ;;
  env)    cmd_env ;;
  pid)    cmd_pid "${2:-1}" ;;
  *) echo "usage: $0 {fetch|start|stop|status|provision|run|health|reset|bootstrap|env|pid N}" >&2; exit 2 ;;
esac
