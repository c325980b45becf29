#!/usr/bin/env bash
# Test bed of real services for Wagu's tests: Redis, Cassandra (CQL, stands in
# for ScyllaDB), s3s-fs (S3) and nats-server (the bus between nodes), each on a
# loopback port of its own.
#
#   deploy/services.sh start   start the services (if not already running),
#                              wait until each answers, write and print the env file
#   deploy/services.sh stop    stop exactly the processes that start started,
#                              wait for them to exit, remove their data
#   deploy/services.sh env     print the env file (source it: eval "$(... env)")
#
# The services outlive this script: the caller runs `stop` when done.
# Install what it needs first with deploy/install.sh.
#
# No OpenID Connect provider runs here: gateway/tests/oidc.rs starts its own
# (deploy/oidc/provider.mjs). When install.sh has installed oidc-provider, the
# env file names its node_modules (WAGU_TEST_OIDC_NODE_MODULES) for that test.
#
# Environment (all optional):
#   WAGU_TESTBED_DIR              run dir: data, logs, pid files, env (/tmp/wagu-testbed)
#   WAGU_CACHE_DIR                where install.sh put jars and binaries (~/.cache/wagu)
#   WAGU_TESTBED_SERVICES         which to start, any of "redis cql s3 nats" (all four)
#   WAGU_TESTBED_REDIS_PORT       16379
#   WAGU_TESTBED_CQL_PORT         19042 (CQL native protocol)
#   WAGU_TESTBED_CQL_STORAGE_PORT 17000 (Cassandra internode, loopback only)
#   WAGU_TESTBED_CQL_HEAP         Cassandra heap, -Xms = -Xmx (1G)
#   WAGU_TESTBED_CQL_TIMEOUT      seconds to wait for Cassandra (180)
#   WAGU_TESTBED_S3_PORT          19000
#   WAGU_TESTBED_NATS_PORT        14222 (NATS client protocol; no monitoring port, no JetStream)
set -euo pipefail

CASSANDRA_VERSION="5.0.6"
OIDC_PROVIDER_VERSION="9.13.3"
# Must match deploy/nats/install.sh.
NATS_SERVER_VERSION="2.15.3"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONF_DIR="$SCRIPT_DIR/testbed"
CACHE_DIR="${WAGU_CACHE_DIR:-$HOME/.cache/wagu}"
RUN_DIR="${WAGU_TESTBED_DIR:-/tmp/wagu-testbed}"
LOG_DIR="$RUN_DIR/logs"
PID_DIR="$RUN_DIR/pids"
ENV_FILE="$RUN_DIR/env"

SERVICES="${WAGU_TESTBED_SERVICES:-redis cql s3 nats}"
REDIS_PORT="${WAGU_TESTBED_REDIS_PORT:-16379}"
CQL_PORT="${WAGU_TESTBED_CQL_PORT:-19042}"
CQL_STORAGE_PORT="${WAGU_TESTBED_CQL_STORAGE_PORT:-17000}"
CQL_HEAP="${WAGU_TESTBED_CQL_HEAP:-1G}"
CQL_TIMEOUT="${WAGU_TESTBED_CQL_TIMEOUT:-180}"
S3_PORT="${WAGU_TESTBED_S3_PORT:-19000}"
NATS_PORT="${WAGU_TESTBED_NATS_PORT:-14222}"
S3_ACCESS_KEY="wagutest"
S3_SECRET_KEY="wagutestsecret"
S3_REGION="us-east-1"
S3_BUCKET="wagu-test"

CASSANDRA_LIB="$CACHE_DIR/cassandra-$CASSANDRA_VERSION/lib"
OIDC_HOME="$CACHE_DIR/oidc-provider-$OIDC_PROVIDER_VERSION"
NATS_BIN="$CACHE_DIR/nats-server-$NATS_SERVER_VERSION/bin/nats-server"
# Must match deploy/install.sh.
AIORTC_HOME="$CACHE_DIR/aiortc-venv-1.16.0"

log() { printf '[testbed] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

wants() { case " $SERVICES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# What a service's command line must contain, so that a reused pid is never
# taken for ours.
signature() {
  case "$1" in
    redis) echo "redis-server" ;;
    cql) echo "org.apache.cassandra.service.CassandraDaemon" ;;
    s3) echo "s3s-fs" ;;
    nats) echo "nats-server" ;;
  esac
}

# pid of a running service of ours, from its pid file; fails if none.
running_pid() {
  local name="$1" pidfile="$PID_DIR/$1.pid" pid
  [ -f "$pidfile" ] || return 1
  pid="$(cat "$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$(signature "$name")" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# require_free_port SERVICE PORT VARIABLE
require_free_port() {
  if port_open "$2"; then
    die "$1: port 127.0.0.1:$2 is already in use by another process; free it or set $3 to another port"
  fi
}

# Checks every port before anything starts, so a clash fails fast.
check_ports() {
  if wants redis && ! running_pid redis >/dev/null; then
    require_free_port redis "$REDIS_PORT" WAGU_TESTBED_REDIS_PORT
  fi
  if wants cql && ! running_pid cql >/dev/null; then
    require_free_port cassandra "$CQL_PORT" WAGU_TESTBED_CQL_PORT
    require_free_port "cassandra (storage)" "$CQL_STORAGE_PORT" WAGU_TESTBED_CQL_STORAGE_PORT
  fi
  if wants s3 && ! running_pid s3 >/dev/null; then
    require_free_port s3s-fs "$S3_PORT" WAGU_TESTBED_S3_PORT
  fi
  if wants nats && ! running_pid nats >/dev/null; then
    require_free_port nats-server "$NATS_PORT" WAGU_TESTBED_NATS_PORT
  fi
}

# Starts "$@" detached (own session, no stdin), output to a log file; the
# process keeps the pid that is recorded (setsid does not fork here because a
# background job of a non-interactive shell is not a process-group leader).
spawn() {
  local name="$1"
  shift
  setsid "$@" </dev/null >"$LOG_DIR/$name.out" 2>&1 &
  echo "$!" >"$PID_DIR/$name.pid"
}

# One CQL round trip with no client library: native protocol v4 STARTUP, then
# QUERY "SELECT release_version FROM system.local"; succeeds on a RESULT frame.
# Runs as `services.sh __cql_ping PORT` so that `timeout` can bound it.
be32() {
  local fmt
  fmt="$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)))"
  # shellcheck disable=SC2059 # the format is the escaped bytes
  printf "$fmt"
}
read_opcode() { dd bs=9 count=1 <&3 2>/dev/null | od -An -tx1 | tr -s ' \n' ' ' | cut -d' ' -f6; }
cql_ping_once() {
  local q="SELECT release_version FROM system.local"
  exec 3<>"/dev/tcp/127.0.0.1/$1"
  printf '\x04\x00\x00\x01\x01\x00\x00\x00\x16\x00\x01\x00\x0bCQL_VERSION\x00\x053.0.0' >&3
  [ "$(read_opcode)" = 02 ] || return 1
  {
    printf '\x04\x00\x00\x02\x07'
    be32 $((4 + ${#q} + 3))
    be32 ${#q}
    printf '%s\x00\x01\x00' "$q"
  } >&3
  [ "$(read_opcode)" = 08 ]
}
cql_ping() { timeout 10 "$SCRIPT_DIR/services.sh" __cql_ping "$1" >/dev/null 2>&1; }

s3_request() {
  curl -sf -o /dev/null --max-time 10 --aws-sigv4 "aws:amz:$S3_REGION:s3" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" "$@"
}

# ---------------------------------------------------------------- start --

start_redis() {
  if running_pid redis >/dev/null; then log "redis already running"; return 0; fi
  command -v redis-server >/dev/null 2>&1 || die "redis-server not found: run deploy/install.sh"
  require_free_port redis "$REDIS_PORT" WAGU_TESTBED_REDIS_PORT
  rm -rf "$RUN_DIR/redis" && mkdir -p "$RUN_DIR/redis"
  # The same file ops run (AOF on, appendfsync everysec: see its head).
  spawn redis redis-server "$SCRIPT_DIR/redis/wagu.conf" --port "$REDIS_PORT" --bind 127.0.0.1 \
    --daemonize no --dir "$RUN_DIR/redis" --logfile ""
}

wait_redis() {
  local i
  for ((i = 0; i < 150; i++)); do
    if [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; then
      log "redis ready on 127.0.0.1:$REDIS_PORT"
      return 0
    fi
    running_pid redis >/dev/null || break
    sleep 0.2
  done
  tail -n 30 "$LOG_DIR/redis.out" >&2 || true
  die "redis did not answer PING on 127.0.0.1:$REDIS_PORT"
}

start_cql() {
  if running_pid cql >/dev/null; then log "cassandra already running"; return 0; fi
  [ -f "$CASSANDRA_LIB/../.complete" ] || die "cassandra $CASSANDRA_VERSION jars not in $CASSANDRA_LIB: run deploy/install.sh"
  command -v java >/dev/null 2>&1 || die "java not found (Java 17 needed)"
  local jamm
  jamm="$(find "$CASSANDRA_LIB" -maxdepth 1 -name 'jamm-*.jar' | head -n 1)"
  [ -n "$jamm" ] || die "no jamm jar in $CASSANDRA_LIB"
  require_free_port cassandra "$CQL_PORT" WAGU_TESTBED_CQL_PORT
  require_free_port "cassandra (storage)" "$CQL_STORAGE_PORT" WAGU_TESTBED_CQL_STORAGE_PORT

  local dir="$RUN_DIR/cassandra"
  rm -rf "$dir" && mkdir -p "$dir/conf" "$dir/data"
  sed -e "s/@CQL_PORT@/$CQL_PORT/g" -e "s/@STORAGE_PORT@/$CQL_STORAGE_PORT/g" \
    "$CONF_DIR/cassandra.yaml.in" >"$dir/conf/cassandra.yaml"
  : >"$LOG_DIR/system.log"

  local -a opts=()
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in '' | '#'*) continue ;; esac
    opts+=("$line")
  done <"$CONF_DIR/jvm17.options"

  spawn cql java "-Xms$CQL_HEAP" "-Xmx$CQL_HEAP" "${opts[@]}" \
    "-javaagent:$jamm" \
    "-Dcassandra.config=file://$dir/conf/cassandra.yaml" \
    "-Dcassandra.storagedir=$dir/data" \
    "-Dcassandra.logdir=$LOG_DIR" \
    "-Dlogback.configurationFile=file://$CONF_DIR/logback.xml" \
    -cp "$CASSANDRA_LIB/*" \
    org.apache.cassandra.service.CassandraDaemon
}

wait_cql() {
  local deadline=$((SECONDS + CQL_TIMEOUT))
  while ((SECONDS < deadline)); do
    if running_pid cql >/dev/null; then
      if grep -q "Starting listening for CQL clients" "$LOG_DIR/system.log" 2>/dev/null \
        && port_open "$CQL_PORT" && cql_ping "$CQL_PORT"; then
        log "cassandra ready on 127.0.0.1:$CQL_PORT"
        return 0
      fi
    else
      log "cassandra exited during startup"
      break
    fi
    sleep 1
  done
  log "--- tail of $LOG_DIR/system.log"
  tail -n 40 "$LOG_DIR/system.log" >&2 || true
  log "--- tail of $LOG_DIR/cql.out"
  tail -n 20 "$LOG_DIR/cql.out" >&2 || true
  die "cassandra not ready on 127.0.0.1:$CQL_PORT within ${CQL_TIMEOUT}s"
}

s3s_fs_bin() {
  if [ -x "$CACHE_DIR/s3s-fs/bin/s3s-fs" ]; then
    echo "$CACHE_DIR/s3s-fs/bin/s3s-fs"
  else
    command -v s3s-fs || die "s3s-fs not found: run deploy/install.sh"
  fi
}

start_s3() {
  if running_pid s3 >/dev/null; then log "s3s-fs already running"; return 0; fi
  local bin
  bin="$(s3s_fs_bin)"
  require_free_port s3s-fs "$S3_PORT" WAGU_TESTBED_S3_PORT
  # s3s-fs serves each directory under its root as a bucket.
  rm -rf "$RUN_DIR/s3" && mkdir -p "$RUN_DIR/s3/$S3_BUCKET"
  spawn s3 "$bin" --host 127.0.0.1 --port "$S3_PORT" \
    --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" "$RUN_DIR/s3"
}

wait_s3() {
  local i
  for ((i = 0; i < 150; i++)); do
    if port_open "$S3_PORT"; then
      if ! command -v curl >/dev/null 2>&1 \
        || s3_request -I "http://127.0.0.1:$S3_PORT/$S3_BUCKET"; then
        log "s3s-fs ready on 127.0.0.1:$S3_PORT, bucket $S3_BUCKET"
        return 0
      fi
    fi
    running_pid s3 >/dev/null || break
    sleep 0.2
  done
  tail -n 30 "$LOG_DIR/s3.out" >&2 || true
  die "s3s-fs not ready on 127.0.0.1:$S3_PORT (or bucket $S3_BUCKET not served)"
}

start_nats() {
  if running_pid nats >/dev/null; then log "nats-server already running"; return 0; fi
  [ -x "$NATS_BIN" ] || die "nats-server $NATS_SERVER_VERSION not in $NATS_BIN: run deploy/install.sh"
  require_free_port nats-server "$NATS_PORT" WAGU_TESTBED_NATS_PORT
  # Core NATS only: no JetStream, so no data directory.
  spawn nats "$NATS_BIN" -a 127.0.0.1 -p "$NATS_PORT" -n "wagu-testbed"
}

# Ready when a client connection gets the server's INFO line (the first thing NATS sends).
nats_info() {
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  local line
  IFS= read -r -t 2 line <&3 || return 1
  [[ $line == INFO* ]]
}

wait_nats() {
  local i
  for ((i = 0; i < 150; i++)); do
    if (nats_info "$NATS_PORT") 2>/dev/null; then
      log "nats-server ready on 127.0.0.1:$NATS_PORT"
      return 0
    fi
    running_pid nats >/dev/null || break
    sleep 0.2
  done
  tail -n 30 "$LOG_DIR/nats.out" >&2 || true
  die "nats-server did not answer on 127.0.0.1:$NATS_PORT"
}

write_env() {
  local tmp="$ENV_FILE.tmp"
  {
    echo "# Wagu test bed, written by deploy/services.sh start"
    if wants redis; then
      echo "export WAGU_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/"
    fi
    if wants cql; then
      echo "export WAGU_TEST_CQL_NODES=127.0.0.1:$CQL_PORT"
    fi
    if wants s3; then
      echo "export WAGU_TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT"
      echo "export WAGU_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY"
      echo "export WAGU_TEST_S3_SECRET_KEY=$S3_SECRET_KEY"
      echo "export WAGU_TEST_S3_REGION=$S3_REGION"
      echo "export WAGU_TEST_S3_BUCKET=$S3_BUCKET"
    fi
    if wants nats; then
      echo "export WAGU_TEST_NATS_URL=nats://127.0.0.1:$NATS_PORT"
      # storage/tests/bus_nats.rs also starts, kills and restarts a server of its own.
      printf 'export WAGU_TEST_NATS_SERVER=%q\n' "$NATS_BIN"
    fi
    # Not a service: the SFU tests run WebRTC peers (aiortc) with this Python.
    if [ -f "$AIORTC_HOME/.complete" ]; then
      printf 'export WAGU_TEST_AIORTC_PYTHON=%q\n' "$AIORTC_HOME/bin/python"
    fi
    # Not a service: the OIDC test starts its provider from these node_modules.
    if [ -f "$OIDC_HOME/.complete" ]; then
      printf 'export WAGU_TEST_OIDC_NODE_MODULES=%q\n' "$OIDC_HOME/node_modules"
    fi
  } >"$tmp"
  mv "$tmp" "$ENV_FILE"
}

cmd_start() {
  local s
  for s in $SERVICES; do
    case "$s" in redis | cql | s3 | nats) ;; *) die "unknown service '$s' in WAGU_TESTBED_SERVICES" ;; esac
  done
  mkdir -p "$RUN_DIR" "$LOG_DIR" "$PID_DIR"
  rm -f "$ENV_FILE"
  check_ports
  local started=$SECONDS
  # Start everything first (Cassandra is the slow one), then wait for each.
  # On failure, stop what is running so nothing is left behind.
  if ! (
    if wants cql; then start_cql; fi
    if wants redis; then start_redis; fi
    if wants s3; then start_s3; fi
    if wants nats; then start_nats; fi
    if wants redis; then wait_redis; fi
    if wants s3; then wait_s3; fi
    if wants nats; then wait_nats; fi
    if wants cql; then wait_cql; fi
  ); then
    log "start failed; stopping the test bed (logs kept in $LOG_DIR)"
    cmd_stop
    exit 1
  fi
  write_env
  log "all up in $((SECONDS - started))s; env file: $ENV_FILE"
  cat "$ENV_FILE"
}

# ----------------------------------------------------------------- stop --

# Sends SIGTERM to every service of ours at once (Cassandra drains, the
# others exit), waits up to 30 s for all to exit, then SIGKILLs what is left.
cmd_stop() {
  local s pid i
  local -a pids=()
  for s in redis s3 nats cql; do
    if pid="$(running_pid "$s")"; then
      log "stopping $s (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for ((i = 0; i < 300; i++)); do
    local alive=0
    for pid in "${pids[@]}"; do
      if [ -e "/proc/$pid" ]; then alive=1; fi
    done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if [ -e "/proc/$pid" ]; then
      log "pid $pid still running after 30s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      while [ -e "/proc/$pid" ]; do sleep 0.1; done
    fi
  done
  # Remove everything but the logs, which stay for a look after a failure.
  rm -rf "$RUN_DIR/redis" "$RUN_DIR/cassandra" "$RUN_DIR/s3" "$PID_DIR" "$ENV_FILE" "$ENV_FILE.tmp"
  log "stopped"
}

cmd_env() {
  [ -f "$ENV_FILE" ] || die "no env file at $ENV_FILE: run '$0 start' first"
  cat "$ENV_FILE"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  env) cmd_env ;;
  __cql_ping) cql_ping_once "$2" ;;
  *)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
