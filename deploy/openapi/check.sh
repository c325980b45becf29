#!/usr/bin/env bash
# What a client generator makes of the served OpenAPI document. Starts a real server (debug
# build, embedded backends, sample places), fetches GET /api/openapi.json, validates it with
# openapi-spec-validator, generates a Python client from it with openapi-python-client, and runs
# deploy/openapi/client_check.py, which calls the server only through that generated client: a
# listing with query parameters, error responses, paged feeds, a signed-in write.
#
# Part of deploy/test.sh. The tools come from deploy/install.sh (pinned in
# deploy/openapi/requirements.txt, a venv under WAGU_CACHE_DIR); without them this fails.
#   WAGU_OPENAPI_CHECK_PORT   the server's port (default 18097)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
CACHE_DIR="${WAGU_CACHE_DIR:-$HOME/.cache/wagu}"
VENV="$CACHE_DIR/openapi-tools-$(sha256sum "$ROOT/deploy/openapi/requirements.txt" | cut -c1-12)"
if [[ ! -f "$VENV/.complete" ]]; then
    echo "OpenAPI tools missing (no $VENV): run deploy/install.sh" >&2
    exit 1
fi
cargo build -q -p wagu-gateway --bin wagu
TARGET="$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
PORT="${WAGU_OPENAPI_CHECK_PORT:-18097}"
WORK="$(mktemp -d /tmp/wagu-openapi.XXXXXX)"
# Plenty of sign-ups and writes for one client address; everything else as shipped.
WAGU_RATE__LOGINS_PER_MINUTE=1000 WAGU_RATE__WRITES_PER_MINUTE=1000 \
    "$TARGET/debug/wagu" --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/server.log" 2>&1 &
PID=$!
stop() {
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap stop EXIT
for _ in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/api/openapi.json" -o "$WORK/openapi.json"

echo "validating the served document with openapi-spec-validator"
"$VENV/bin/openapi-spec-validator" "$WORK/openapi.json"

echo "generating a Python client with openapi-python-client"
# Warnings mean the generator skipped or degraded part of the document: fail on any. Its
# post-generation formatter (ruff, pinned with it) comes from the same venv.
PATH="$VENV/bin:$PATH" "$VENV/bin/openapi-python-client" generate --path "$WORK/openapi.json" --meta none \
    --config "$ROOT/deploy/openapi/generator.yaml" --output-path "$WORK/gen/wagu_client" >"$WORK/generate.log" 2>&1 || {
    cat "$WORK/generate.log" >&2
    exit 1
}
if grep -qiE 'warning|error|could not|unable' "$WORK/generate.log"; then
    echo "openapi-python-client could not use all of the document:" >&2
    cat "$WORK/generate.log" >&2
    exit 1
fi

echo "calling the server through the generated client"
PYTHONPATH="$WORK/gen" "$VENV/bin/python" "$ROOT/deploy/openapi/client_check.py" \
    "http://127.0.0.1:$PORT"
echo "OpenAPI check passed"
