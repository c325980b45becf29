#!/usr/bin/env bash
# Capacity at the SLO on one pinned core, side by side: Wagu, Centrifugo and the bare relay
# (docs/PERFORMANCE.md, "Capacity at the SLO"). Each server under test runs pinned to one core
# (BENCH_SERVER_CPU, `taskset`) with one runtime worker — wagu `TOKIO_WORKER_THREADS=1`,
# Centrifugo `GOMAXPROCS=1`, the relay `--threads 1` — and the load generator (wagu-loadtest,
# one worker) is pinned to another (BENCH_GENERATOR_CPU). The harness samples each process's
# CPU and RSS from /proc. Every step is a fresh server process, stopped by its pid.
#
# Suites (BENCH_SUITES, in this order; each runs for every target before the next suite):
#   idle   – BENCH_IDLE_ROOMS x 10 clients open their sessions and sit: memory per idle connection.
#            10,000 by default: at 1,000 the code first paged in by the joins (about 2.8 MB of
#            the binary's file pages for Wagu) added about 2.8 kB to every connection's share.
#   rooms  – capacity at the SLO: rooms of 10 at 10 Hz presence and 6 chats/min each, stepped
#            up (BENCH_ROOM_STEPS) until a step fails the SLO; the last passing step is the
#            server's capacity. SLO per step (judged by the harness, exit 2 when broken):
#              presence end to end p99 <= coalescing window + 50 ms (wagu: 50 + 50; the others
#              forward without a window, so 0 + 50 — which is also their fan-out, as they stamp
#              nothing), wagu's fan-out p99 < 50 ms, chat p99 < 100 ms, >= 99.9 % delivered
#              (presence and chat), 0 errors.
#   stream – the same search for one live stream: viewers stepped up (BENCH_STREAM_STEPS), 10
#            chatters sending 20 chats/s in all; SLO chat p99 < 100 ms, >= 99.9 % delivered, 0
#            errors. (On Centrifugo and the relay a stream is one channel / room.)
#   quiet  – the second standard workload: BENCH_QUIET_ROOMS x 5 at 1 Hz presence, 2 chats/min,
#            joins offered over BENCH_QUIET_RAMP_SECS (2,000 x 5: 10,000 connections over 20 s).
# A step whose generator core was above ~85 % makes the result a lower bound; the table says so.
#
#   deploy/bench.sh                                       everything, all three servers
#   BENCH_SUITES=rooms BENCH_TARGETS="wagu bare" deploy/bench.sh
#   BENCH_ROOM_STEPS="100 150" BENCH_SUITES=rooms BENCH_TARGETS=wagu deploy/bench.sh
#
# Environment (defaults in brackets):
#   BENCH_TARGETS ["wagu centrifugo bare"]  BENCH_SUITES ["idle rooms stream quiet"]
#   BENCH_ROOM_STEPS ["25 50 75 100 125 150 175 200 250 300 400"]
#   BENCH_STREAM_STEPS ["1000 2500 5000 7500 10000 15000"]  BENCH_STREAM_JOINS_PER_SEC [500]
#   BENCH_QUIET_ROOMS [2000]  BENCH_QUIET_RAMP_SECS [20]  BENCH_QUIET_DURATION_SECS [20]
#   BENCH_IDLE_ROOMS [1000]  BENCH_IDLE_SECS [5]
#   BENCH_RAMP_SECS [5]  BENCH_WARMUP_SECS [5]  BENCH_DURATION_SECS [15]   (rooms and stream steps)
#   BENCH_WAGU_WINDOW_MS [50]: wagu's presence coalescing window (engine presence_interval_ms)
#   BENCH_SERVER_CPU [0]  BENCH_GENERATOR_CPU [1]  BENCH_PIN [1]: 0 runs nothing pinned
#   BENCH_NICE [-15 as root, else 0]: the niceness of server and generator. Pinning keeps them on
#     their cores, not other work off them: on a shared machine a compile on the server's core
#     preempts the server and the latency measured is the scheduler's. With the kernel's
#     autogroups (kernel.sched_autogroup_enabled=1) a task's nice only counts inside its session,
#     so the script re-runs itself in a session of its own (setsid) and sets that autogroup's
#     nice (/proc/self/autogroup): the run then outweighs nice-0 work about 30 to 1, the same
#     for every server, so the comparison stays fair.
#   BENCH_OUT [target/bench/<UTC time>]: results (JSON and HTML per step, logs, table.md,
#     capacity.json, capacity.html)
#   BENCH_PORT_BASE [18500]: wagu on it, centrifugo on +1, bare on +2 (loopback only)
#   BENCH_WAGU_EPHEMERAL [the server's default, embedded]: wagu's room store, embedded | memory |
#     redis (then BENCH_WAGU_REDIS_URL, e.g. redis://127.0.0.1:16379/); see docs/PERFORMANCE.md
#   BENCH_SKIP_BUILD=1: use the release binaries already built
#   BENCH_CENTRIFUGO_BIN: a centrifugo binary to use instead of installing the pinned one
set -euo pipefail

NICE="${BENCH_NICE:-$([[ "$(id -u)" == 0 ]] && echo -15 || echo 0)}"
if [[ "$NICE" != 0 && -z "${BENCH_OWN_SESSION:-}" ]] && command -v setsid >/dev/null; then
    # A session (and autogroup) of its own; -w: wait for it and pass its exit status on.
    BENCH_OWN_SESSION=1 exec setsid -w "$0" "$@"
fi
AUTOGROUP="no autogroup"
if [[ "$NICE" != 0 && -w /proc/self/autogroup ]] && echo "$NICE" 2>/dev/null >/proc/self/autogroup; then
    AUTOGROUP="$(cat /proc/self/autogroup)"
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CACHE="${WAGU_CACHE_DIR:-${HOME:-/root}/.cache/wagu}"
CENTRIFUGO_VERSION="6.9.1"
CENTRIFUGO="${BENCH_CENTRIFUGO_BIN:-$CACHE/centrifugo-$CENTRIFUGO_VERSION/bin/centrifugo}"

TARGETS="${BENCH_TARGETS:-wagu centrifugo bare}"
SUITES="${BENCH_SUITES:-idle rooms stream quiet}"
ROOM_STEPS="${BENCH_ROOM_STEPS:-25 50 75 100 125 150 175 200 250 300 400}"
STREAM_STEPS="${BENCH_STREAM_STEPS:-1000 2500 5000 7500 10000 15000}"
STREAM_JOINS="${BENCH_STREAM_JOINS_PER_SEC:-500}"
QUIET_ROOMS="${BENCH_QUIET_ROOMS:-2000}"
QUIET_RAMP="${BENCH_QUIET_RAMP_SECS:-20}"
QUIET_DURATION="${BENCH_QUIET_DURATION_SECS:-20}"
IDLE_ROOMS="${BENCH_IDLE_ROOMS:-1000}"
IDLE_SECS="${BENCH_IDLE_SECS:-5}"
RAMP="${BENCH_RAMP_SECS:-5}"
WARMUP="${BENCH_WARMUP_SECS:-5}"
DURATION="${BENCH_DURATION_SECS:-15}"
WINDOW_MS="${BENCH_WAGU_WINDOW_MS:-50}"
SERVER_CPU="${BENCH_SERVER_CPU:-0}"
GEN_CPU="${BENCH_GENERATOR_CPU:-1}"
OUT="${BENCH_OUT:-$ROOT/target/bench/$(date -u +%Y%m%dT%H%M%SZ)}"
PORT_BASE="${BENCH_PORT_BASE:-18500}"

# shellcheck source=deploy/bench-lib.sh
source "$ROOT/deploy/bench-lib.sh"

for t in $TARGETS; do
    case "$t" in wagu | centrifugo | bare) ;; *) die "unknown target $t (wagu, centrifugo, bare)" ;; esac
done
for s in $SUITES; do
    case "$s" in idle | rooms | stream | quiet) ;; *) die "unknown suite $s (idle, rooms, stream, quiet)" ;; esac
done
mkdir -p "$OUT"

SERVER_PIN=()
GEN_PIN=()
if [[ "$NICE" != 0 ]]; then
    SERVER_PIN=(nice -n "$NICE")
    GEN_PIN=(nice -n "$NICE")
fi
if [[ "${BENCH_PIN:-1}" == 1 ]]; then
    command -v taskset >/dev/null || die "taskset (util-linux) is needed to pin the processes (or BENCH_PIN=0)"
    SERVER_PIN+=(taskset -c "$SERVER_CPU")
    GEN_PIN+=(taskset -c "$GEN_CPU")
fi

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

# start_server TARGET NAME: starts it pinned in the background (exec'd by taskset, so $! is the
# server's own pid, the one the harness samples) and waits until its port accepts connections.
start_server() {
    local t="$1" name="$2" port
    port="$(port_of "$t")"
    local log="$OUT/$name.server.log"
    case "$t" in
        wagu)
            rm -rf "$OUT/$name.data"
            local store=()
            [[ -n "${BENCH_WAGU_EPHEMERAL:-}" ]] && store+=("WAGU_EPHEMERAL__BACKEND=$BENCH_WAGU_EPHEMERAL")
            [[ -n "${BENCH_WAGU_REDIS_URL:-}" ]] && store+=("WAGU_EPHEMERAL__REDIS_URL=$BENCH_WAGU_REDIS_URL")
            env "${store[@]}" WAGU_LOG=warn WAGU_RATE__CREATES_PER_MINUTE=1000000 \
                WAGU_LIMITS__MAX_VIEWERS=100000 TOKIO_WORKER_THREADS=1 \
                "${SERVER_PIN[@]}" "$WAGU" --listen "127.0.0.1:$port" --data-dir "$OUT/$name.data" >"$log" 2>&1 &
            ;;
        centrifugo)
            CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY="$SECRET" GOMAXPROCS=1 "${SERVER_PIN[@]}" "$CENTRIFUGO" \
                --config "$ROOT/deploy/baseline/centrifugo.json" \
                --http_server.address 127.0.0.1 --http_server.port "$port" >"$log" 2>&1 &
            ;;
        bare)
            WAGU_LOADTEST_LOG=warn "${SERVER_PIN[@]}" "$LOADTEST" bare-server --threads 1 \
                --listen "127.0.0.1:$port" >"$log" 2>&1 &
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

# The SLO gates of a rooms run on target $1 (see the head of this file).
rooms_slo() {
    local window=0
    [[ "$1" == wagu ]] && window="$WINDOW_MS"
    echo --slo-p99-ms 100 --slo-presence-p99-ms $((window + 50)) --slo-fanout-p99-ms 50 \
        --slo-min-delivery 0.999 --slo-max-errors 0
}

# generate NAME SCENARIO ARGS...: one pinned harness run against the running server; writes
# NAME.json, NAME.html, NAME.txt (summary) and NAME.exit (0 ok, 2 SLO broken, 1 harness failed).
generate() {
    local name="$1"
    shift
    local code=0
    echo "$(date -u +%FT%TZ) $name start load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/loadavg.log"
    # The command first, so a step can be rerun by hand.
    echo "+ ${GEN_PIN[*]} $LOADTEST $* --threads 1 --server-pid $PID" >"$OUT/$name.log"
    WAGU_LOADTEST_CENTRIFUGO_SECRET="$SECRET" "${GEN_PIN[@]}" "$LOADTEST" "$@" --threads 1 \
        --server-pid "$PID" --no-progress --progress-secs 5 \
        --out "$OUT/$name.json" --report "$OUT/$name.html" >"$OUT/$name.txt" 2>>"$OUT/$name.log" || code=$?
    echo "$(date -u +%FT%TZ) $name end   load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/loadavg.log"
    echo "$code" >"$OUT/$name.exit"
    grep -E '^(presence|chat|  end-to-end|delivered|server|          RSS|harness|errors|SLO)' "$OUT/$name.txt" || true
    return "$code"
}

# step_search SUITE TARGET: steps the load up until a step fails (or the steps run out).
step_search() {
    local suite="$1" t="$2" n code
    local steps="$ROOM_STEPS"
    [[ "$suite" == stream ]] && steps="$STREAM_STEPS"
    for n in $steps; do
        say "$t, $suite, step $n"
        start_server "$t" "$suite-$t-$n"
        code=0
        if [[ "$suite" == rooms ]]; then
            # shellcheck disable=SC2046 # the SLO flags are words
            generate "$suite-$t-$n" rooms --target "$t" --url "http://127.0.0.1:$(port_of "$t")" \
                --rooms "$n" --participants 10 --presence-hz 10 --chat-per-min 6 \
                --ramp-secs "$RAMP" --warmup-secs "$WARMUP" --duration-secs "$DURATION" \
                $(rooms_slo "$t") || code=$?
        else
            local ramp=$(((n + STREAM_JOINS - 1) / STREAM_JOINS))
            ((ramp < RAMP)) && ramp="$RAMP"
            generate "$suite-$t-$n" streams --target "$t" --url "http://127.0.0.1:$(port_of "$t")" \
                --streams 1 --viewers "$n" --chat-per-sec 20 --chatters 10 \
                --ramp-secs "$ramp" --warmup-secs "$WARMUP" --duration-secs "$DURATION" \
                --slo-p99-ms 100 --slo-min-delivery 0.999 --slo-max-errors 0 || code=$?
        fi
        stop_server
        rm -rf "$OUT/$suite-$t-$n.data"
        if ((code != 0)); then
            echo "    step $n failed (exit $code): the last passing step is the capacity"
            return 0
        fi
    done
}

{
    echo "# deploy/bench.sh $(date -u +%FT%TZ)"
    echo "$(nproc) cores · $(uname -r) · wagu $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') · centrifugo v$CENTRIFUGO_VERSION"
    echo "niceness of server and generator: $NICE ($AUTOGROUP)"
    if [[ "${BENCH_PIN:-1}" == 1 ]]; then
        echo "server pinned to core $SERVER_CPU (wagu TOKIO_WORKER_THREADS=1, centrifugo GOMAXPROCS=1, relay --threads 1); generator pinned to core $GEN_CPU (--threads 1)"
    else
        echo "nothing pinned (BENCH_PIN=0)"
    fi
    echo "wagu room store: ${BENCH_WAGU_EPHEMERAL:-embedded (default)}"
    echo "steps: ramp $RAMP s, warmup $WARMUP s, measured $DURATION s; rooms $ROOM_STEPS; stream viewers $STREAM_STEPS (joins at $STREAM_JOINS/s)"
    echo "quiet: $QUIET_ROOMS x 5 at 1 Hz, 2 chats/min, joins over $QUIET_RAMP s, measured $QUIET_DURATION s; idle: $IDLE_ROOMS x 10 for $IDLE_SECS s"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/header.md"

for suite in $SUITES; do
    for t in $TARGETS; do
        case "$suite" in
            idle)
                say "$t, idle"
                start_server "$t" "idle-$t"
                generate "idle-$t" rooms --target "$t" --url "http://127.0.0.1:$(port_of "$t")" \
                    --rooms "$IDLE_ROOMS" --participants 10 --presence-hz 0 --chat-per-min 0 \
                    --ramp-secs "$RAMP" --warmup-secs 2 --duration-secs "$IDLE_SECS" || true
                stop_server
                ;;
            rooms | stream) step_search "$suite" "$t" ;;
            quiet)
                say "$t, quiet: $QUIET_ROOMS rooms x 5"
                start_server "$t" "quiet-$t"
                # shellcheck disable=SC2046
                generate "quiet-$t" rooms --target "$t" --url "http://127.0.0.1:$(port_of "$t")" \
                    --rooms "$QUIET_ROOMS" --participants 5 --presence-hz 1 --chat-per-min 2 \
                    --ramp-secs "$QUIET_RAMP" --warmup-secs "$WARMUP" --duration-secs "$QUIET_DURATION" \
                    $(rooms_slo "$t") || true
                stop_server
                ;;
        esac
        rm -rf "$OUT"/*.data
    done
done

say "capacity"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/header.md"
{
    cat "$OUT/header.md"
    echo
    "$LOADTEST" capacity --dir "$OUT" --targets "$(echo $TARGETS | tr ' ' ',')"
} | tee "$OUT/table.md"
echo
echo "results: $OUT (table.md, capacity.html, capacity.json; per step <suite>-<target>-<n>.json/.html/.txt)"
