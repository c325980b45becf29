#!/usr/bin/env bash
# Side by side on this machine: Wagu, Centrifugo and the bare relay, one after another, under
# the same `rooms` workload from wagu-loadtest, then one table (delivered messages/s, p99
# latency, server CPU, memory per active and per idle connection, ratios to the first server).
#
# For each server it starts a fresh process twice:
#   idle   – the clients open their sessions and sit (--presence-hz 0): memory per idle connection;
#   active – presence at BENCH_PRESENCE_HZ (and chat): throughput, latency, CPU, memory.
# Each server is stopped (by its pid) before the next starts, so they never share the cores;
# the load generator does share them with the server (2 cores here): see docs/PERFORMANCE.md.
#
#   deploy/bench.sh                                   100 rooms x 10 at 10 Hz, 20 s, all three
#   BENCH_ROOMS=200 BENCH_TARGETS="wagu bare" deploy/bench.sh
#
# Environment (defaults in brackets):
#   BENCH_ROOMS [100]  BENCH_PARTICIPANTS [10]  BENCH_PRESENCE_HZ [10]  BENCH_CHAT_PER_MIN [6]
#   BENCH_RAMP_SECS [5]  BENCH_WARMUP_SECS [5]  BENCH_DURATION_SECS [20]
#   BENCH_IDLE_ROOMS [= BENCH_ROOMS]  BENCH_IDLE_SECS [5]
#   BENCH_TARGETS ["wagu centrifugo bare"]; the first is the reference of the ratios
#   BENCH_OUT [target/bench/<UTC time>]: results (JSON, HTML reports, logs, table.md, bench.json)
#   BENCH_PORT_BASE [18500]: wagu on it, centrifugo on +1, bare on +2 (loopback only)
#   BENCH_WAGU_EPHEMERAL [the server's default, embedded]: wagu's room store, embedded | memory |
#     redis (then BENCH_WAGU_REDIS_URL, e.g. redis://127.0.0.1:16379/); see docs/PERFORMANCE.md
#   BENCH_SKIP_BUILD=1: use the release binaries already built
#   BENCH_CENTRIFUGO_BIN: a centrifugo binary to use instead of installing the pinned one
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CACHE="${WAGU_CACHE_DIR:-${HOME:-/root}/.cache/wagu}"
CENTRIFUGO_VERSION="6.9.1"
CENTRIFUGO="${BENCH_CENTRIFUGO_BIN:-$CACHE/centrifugo-$CENTRIFUGO_VERSION/bin/centrifugo}"

ROOMS="${BENCH_ROOMS:-100}"
PARTICIPANTS="${BENCH_PARTICIPANTS:-10}"
HZ="${BENCH_PRESENCE_HZ:-10}"
CHAT="${BENCH_CHAT_PER_MIN:-6}"
RAMP="${BENCH_RAMP_SECS:-5}"
WARMUP="${BENCH_WARMUP_SECS:-5}"
DURATION="${BENCH_DURATION_SECS:-20}"
IDLE_ROOMS="${BENCH_IDLE_ROOMS:-$ROOMS}"
IDLE_SECS="${BENCH_IDLE_SECS:-5}"
TARGETS="${BENCH_TARGETS:-wagu centrifugo bare}"
OUT="${BENCH_OUT:-$ROOT/target/bench/$(date -u +%Y%m%dT%H%M%SZ)}"
PORT_BASE="${BENCH_PORT_BASE:-18500}"

say() { printf '\n==> %s (%s)\n' "$*" "$(date +%H:%M:%S)"; }
die() { echo "bench: $*" >&2; exit 1; }

for t in $TARGETS; do
    case "$t" in wagu | centrifugo | bare) ;; *) die "unknown target $t (wagu, centrifugo, bare)" ;; esac
done
mkdir -p "$OUT"

if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
    say "building release binaries"
    cargo build --release -q -p wagu-gateway -p wagu-loadtest
fi
LOADTEST="$TARGET_DIR/release/wagu-loadtest"
WAGU="$TARGET_DIR/release/wagu"
[[ -x "$LOADTEST" && -x "$WAGU" ]] || die "release binaries missing under $TARGET_DIR/release"

if [[ " $TARGETS " == *" centrifugo "* && ! -x "$CENTRIFUGO" ]]; then
    say "installing Centrifugo v$CENTRIFUGO_VERSION from the Go module proxy"
    command -v go >/dev/null || die "Centrifugo needs the go toolchain to install (or set BENCH_CENTRIFUGO_BIN)"
    GOBIN="$(dirname "$CENTRIFUGO")" GOFLAGS=-mod=mod \
        go install "github.com/centrifugal/centrifugo/v6@v$CENTRIFUGO_VERSION"
fi

# A fresh HMAC secret per run: Centrifugo reads it from the environment (overriding the file's),
# the harness signs its connection tokens with it.
SECRET="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"

PID=""
stop_server() {
    if [[ -n "$PID" ]]; then
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
        PID=""
    fi
}
trap stop_server EXIT

port_of() {
    case "$1" in wagu) echo "$PORT_BASE" ;; centrifugo) echo $((PORT_BASE + 1)) ;; bare) echo $((PORT_BASE + 2)) ;; esac
}

# start_server TARGET MODE: starts it in the background (the server itself, not a subshell, so
# that $! is the pid the harness samples) and waits until its port accepts connections.
start_server() {
    local t="$1" mode="$2" port
    port="$(port_of "$t")"
    local log="$OUT/$t-$mode.server.log"
    case "$t" in
        wagu)
            rm -rf "$OUT/$t-$mode.data"
            local store=()
            [[ -n "${BENCH_WAGU_EPHEMERAL:-}" ]] && store+=("WAGU_EPHEMERAL__BACKEND=$BENCH_WAGU_EPHEMERAL")
            [[ -n "${BENCH_WAGU_REDIS_URL:-}" ]] && store+=("WAGU_EPHEMERAL__REDIS_URL=$BENCH_WAGU_REDIS_URL")
            env "${store[@]}" WAGU_LOG=warn WAGU_RATE__CREATES_PER_MINUTE=1000000 "$WAGU" --listen "127.0.0.1:$port" --data-dir "$OUT/$t-$mode.data" >"$log" 2>&1 &
            ;;
        centrifugo)
            CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY="$SECRET" "$CENTRIFUGO" \
                --config "$ROOT/deploy/baseline/centrifugo.json" \
                --http_server.address 127.0.0.1 --http_server.port "$port" >"$log" 2>&1 &
            ;;
        bare)
            WAGU_LOADTEST_LOG=warn "$LOADTEST" bare-server --listen "127.0.0.1:$port" >"$log" 2>&1 &
            ;;
    esac
    PID=$!
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        kill -0 "$PID" 2>/dev/null || die "$t exited at start; see $log"
        sleep 0.1
    done
    die "$t did not open port $port within 10 s; see $log"
}

# load TARGET MODE: one harness run against the running server.
load() {
    local t="$1" mode="$2" port
    port="$(port_of "$t")"
    local args=(rooms --target "$t" --url "http://127.0.0.1:$port" --participants "$PARTICIPANTS"
        --ramp-secs "$RAMP" --server-pid "$PID" --out "$OUT/$t-$mode.json")
    if [[ "$mode" == idle ]]; then
        args+=(--rooms "$IDLE_ROOMS" --presence-hz 0 --chat-per-min 0 --warmup-secs 2
            --duration-secs "$IDLE_SECS")
    else
        args+=(--rooms "$ROOMS" --presence-hz "$HZ" --chat-per-min "$CHAT"
            --warmup-secs "$WARMUP" --duration-secs "$DURATION" --report "$OUT/$t.html")
    fi
    WAGU_LOADTEST_CENTRIFUGO_SECRET="$SECRET" "$LOADTEST" "${args[@]}" >"$OUT/$t-$mode.txt"
    grep -E '^(presence|  end-to-end|delivered|server|          RSS|errors)' "$OUT/$t-$mode.txt" || true
}

for t in $TARGETS; do
    for mode in idle active; do
        say "$t, $mode"
        start_server "$t" "$mode"
        load "$t" "$mode"
        stop_server
    done
    # The active run's JSON is what `compare` reads as the main result.
    mv "$OUT/$t-active.json" "$OUT/$t.json"
done

say "side by side"
runs=()
for t in $TARGETS; do
    runs+=(--run "$t=$OUT/$t.json,$OUT/$t-idle.json")
done
{
    echo "$(date -u +%Y-%m-%d) · $(nproc) cores · $(uname -r) · wagu $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') · centrifugo v$CENTRIFUGO_VERSION"
    echo "wagu room store: ${BENCH_WAGU_EPHEMERAL:-embedded (default)}"
    echo "rooms: $ROOMS x $PARTICIPANTS at $HZ Hz presence, $CHAT chat/min; ramp $RAMP s, warmup $WARMUP s, measured $DURATION s; idle: $IDLE_ROOMS x $PARTICIPANTS for $IDLE_SECS s"
    echo
    "$LOADTEST" compare "${runs[@]}" --out "$OUT/bench.json"
} | tee "$OUT/table.md"
echo
echo "results: $OUT (table.md, bench.json, <target>.json, <target>-idle.json, <target>.html)"
