#!/usr/bin/env bash
# A few seconds of the load-test harness against a real server, so both keep working:
# 10 rooms x 4 participants at 10 Hz presence with chat, gated on zero errors and a loose p99.
# Part of deploy/test.sh. Uses debug builds (the test run has compiled everything already).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build -q -p wagu-gateway -p wagu-loadtest
PORT="${WAGU_SMOKE_PORT:-18099}"
DATA="$(mktemp -d /tmp/wagu-smoke.XXXXXX)"
WAGU_RATE__CREATES_PER_MINUTE=100000 "$TARGET/debug/wagu" --listen "127.0.0.1:$PORT" --data-dir "$DATA" >"$DATA/server.log" 2>&1 &
PID=$!
stop() {
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    rm -rf "$DATA"
}
trap stop EXIT
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
    sleep 0.1
done
"$TARGET/debug/wagu-loadtest" rooms --url "http://127.0.0.1:$PORT" --rooms 10 --participants 4 \
    --presence-hz 10 --chat-per-min 12 --ramp-secs 1 --warmup-secs 1 --duration-secs 4 \
    --server-pid "$PID" --slo-p99-ms 500 --slo-max-errors 0 --progress-secs 2 \
    --out "$DATA/result.json"
echo "load test smoke passed"
