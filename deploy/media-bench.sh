#!/usr/bin/env bash
# The SFU under load: a release `wagu` pinned to one core, the `wagu-loadtest media` generator
# (real str0m WebRTC peers: ICE, DTLS, SRTP) pinned to the other. Two workloads, each stepped
# up until a step loses more than 1 % of the frames or the server's core passes 90 %:
#   rooms   – voice rooms of BENCH_MEDIA_PER_ROOM talkers, each publishing Opus at 50 frames/s
#             and hearing the others (forwarded audio streams = rooms × n × (n − 1));
#   streams – one streamer (Opus + VP8 at BENCH_MEDIA_VIDEO_KBPS) and BENCH_MEDIA_VIEWERS
#             viewers per stream (forwarded streams = streams × viewers × 2).
# Results (JSON per workload, the server log, table.md) go to BENCH_OUT.
#
#   deploy/media-bench.sh
#   BENCH_MEDIA_ROOM_STEPS=10,20,40 BENCH_MEDIA_STREAM_STEPS=1,2,4 deploy/media-bench.sh
#
# Environment (defaults in brackets):
#   BENCH_MEDIA_PER_ROOM [5]  BENCH_MEDIA_ROOM_STEPS [10,20,40,60,80]
#   BENCH_MEDIA_VIEWERS [50]  BENCH_MEDIA_STREAM_STEPS [1,2,4,8]  BENCH_MEDIA_VIDEO_KBPS [1000]
#   BENCH_DURATION_SECS [10]  BENCH_WARMUP_SECS [3]
#   BENCH_SERVER_CPU [0]  BENCH_GENERATOR_CPU [1]: the cores to pin to (taskset)
#   BENCH_OUT [target/bench/media-<UTC time>]  BENCH_PORT [18600]  BENCH_SKIP_BUILD=1
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PER_ROOM="${BENCH_MEDIA_PER_ROOM:-5}"
ROOM_STEPS="${BENCH_MEDIA_ROOM_STEPS:-10,20,40,60,80}"
VIEWERS="${BENCH_MEDIA_VIEWERS:-50}"
STREAM_STEPS="${BENCH_MEDIA_STREAM_STEPS:-1,2,4,8}"
KBPS="${BENCH_MEDIA_VIDEO_KBPS:-1000}"
DURATION="${BENCH_DURATION_SECS:-10}"
WARMUP="${BENCH_WARMUP_SECS:-3}"
SERVER_CPU="${BENCH_SERVER_CPU:-0}"
GEN_CPU="${BENCH_GENERATOR_CPU:-1}"
PORT="${BENCH_PORT:-18600}"
OUT="${BENCH_OUT:-$ROOT/target/bench/media-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"

# shellcheck source=deploy/bench-lib.sh
source "$ROOT/deploy/bench-lib.sh"

if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
    say "building release binaries"
    cargo build --release -q -p wagu-gateway -p wagu-loadtest
fi
WAGU="$TARGET_DIR/release/wagu"
LOADTEST="$TARGET_DIR/release/wagu-loadtest"
[[ -x "$WAGU" && -x "$LOADTEST" ]] || { echo "release binaries missing under $TARGET_DIR/release" >&2; exit 1; }

server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid"
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
trap stop_server EXIT

run() { # kind steps per_session
    local kind="$1" steps="$2" per="$3"
    say "$kind: steps $steps, $per per session"
    rm -rf "$OUT/data-$kind"
    # One runtime worker on one core; creations and offers are not what is measured here.
    WAGU_RATE__CREATES_PER_MINUTE=100000 WAGU_LIMITS__MAX_VIEWERS=100000 \
    TOKIO_WORKER_THREADS=1 taskset -c "$SERVER_CPU" "$WAGU" \
        --listen "127.0.0.1:$PORT" --data-dir "$OUT/data-$kind" >"$OUT/wagu-$kind.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
        sleep 0.1
    done
    set +e
    taskset -c "$GEN_CPU" "$LOADTEST" media --url "http://127.0.0.1:$PORT" --kind "$kind" \
        --per-session "$per" --steps "$steps" --video-kbps "$KBPS" \
        --duration-secs "$DURATION" --warmup-secs "$WARMUP" --threads 1 \
        --server-pid "$server_pid" --out "$OUT/media-$kind.json" | tee -a "$OUT/table.md"
    set -e
    stop_server
}

{
    echo "# Media benchmark $(date -u +%FT%TZ)"
    echo "server: wagu (release, 1 runtime worker) on core $SERVER_CPU; generator on core $GEN_CPU"
    echo
} >"$OUT/table.md"
run rooms "$ROOM_STEPS" "$PER_ROOM"
run streams "$STREAM_STEPS" "$VIEWERS"
say "results in $OUT"
