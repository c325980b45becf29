#!/usr/bin/env bash
# The README's test command. On a fresh Debian machine it installs what the test bed needs
# (idempotently; a second run reuses it), starts real Redis, Cassandra (standing in for
# ScyllaDB) and an S3 server, runs every test of the workspace against them plus rustfmt and
# clippy, stops what it started (by pid) and exits non-zero on any failure.
#
#   deploy/test.sh            everything
#   WAGU_TEST_SKIP_SERVICES=1 deploy/test.sh   no real services (their tests say SKIPPED)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export WAGU_CACHE_DIR="${WAGU_CACHE_DIR:-${HOME:-/root}/.cache/wagu}"
export WAGU_TESTBED_DIR="${WAGU_TESTBED_DIR:-/tmp/wagu-testbed-$$}"
# Reuse compiled dependencies across clean clones (CI clones afresh every run).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$WAGU_CACHE_DIR/target}"
export CARGO_TERM_COLOR=never
export RUST_BACKTRACE=1

step() { printf '\n==> %s (%s)\n' "$*" "$(date +%H:%M:%S)"; }
started=$(date +%s)

step "toolchain"
cargo --version
rustup component list --installed 2>/dev/null | grep -E '^(clippy|rustfmt)' || true
command -v cargo-clippy >/dev/null || rustup component add clippy rustfmt

services_started=0
cleanup() {
    local rc=$?
    if [[ $services_started == 1 ]]; then
        step "stopping the test bed"
        bash "$ROOT/deploy/services.sh" stop || true
    fi
    echo "deploy/test.sh finished in $(( $(date +%s) - started ))s with exit code $rc"
    exit $rc
}
trap cleanup EXIT

step "format"
cargo fmt --all -- --check

if [[ "${WAGU_TEST_SKIP_SERVICES:-0}" != 1 ]]; then
    step "installing the test bed"
    bash "$ROOT/deploy/install.sh"
    step "starting Redis, Cassandra and S3"
    services_started=1
    bash "$ROOT/deploy/services.sh" start
    # shellcheck disable=SC1091
    source "$WAGU_TESTBED_DIR/env"
    # llama-server for the review-draft test against a real OpenAI-compatible server: built
    # once per machine from the llama-cpp-python sdist (cached under $WAGU_CACHE_DIR).
    step "llama-server (review drafts)"
    bash "$ROOT/deploy/llama/install.sh" --env "$WAGU_TESTBED_DIR.llama.env"
    # shellcheck disable=SC1091
    source "$WAGU_TESTBED_DIR.llama.env"
    env | grep '^WAGU_TEST_' | grep -v SECRET | sort
fi

step "build (tests)"
cargo test --workspace --all-targets --no-run

step "tests"
cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee "$WAGU_TESTBED_DIR.test.log"
# Every promised service must have been used: no smoke test may have skipped.
if [[ "${WAGU_TEST_SKIP_SERVICES:-0}" != 1 ]] && grep -q '^SKIPPED' "$WAGU_TESTBED_DIR.test.log"; then
    echo "a test skipped although its service was started:" >&2
    grep '^SKIPPED' "$WAGU_TESTBED_DIR.test.log" >&2
    exit 1
fi

step "web client: type check against docs/schema, browser tests (Chromium + playwright-core)"
WAGU_SKIP_REDIS=1 WAGU_SKIP_CASSANDRA=1 WAGU_SKIP_S3=1 WAGU_SKIP_NATS=1 WAGU_SKIP_OIDC=1 bash "$ROOT/deploy/install.sh"
(cd "$ROOT/web" && npm run check)
WAGU_TEST_BIN="$CARGO_TARGET_DIR/debug/wagu" WAGU_TEST_WEB_ARTIFACTS="${WAGU_TEST_WEB_ARTIFACTS:-$ROOT/web/test-artifacts}" \
    node --test "$ROOT/web/test/browser.test.mjs" "$ROOT/web/test/media.test.mjs"
# Social log-in through a real provider's pages: needs the oidc-provider that the test bed
# installs (the env file names it); without the services there is none to promise.
if [[ "${WAGU_TEST_SKIP_SERVICES:-0}" != 1 ]]; then
    WAGU_TEST_BIN="$CARGO_TARGET_DIR/debug/wagu" WAGU_TEST_WEB_ARTIFACTS="${WAGU_TEST_WEB_ARTIFACTS:-$ROOT/web/test-artifacts}" \
        node --test "$ROOT/web/test/social.test.mjs"
fi

step "doc tests"
cargo test --workspace --doc

step "engine state machine builds without the runtime"
cargo check -p wagu-engine --no-default-features

step "clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "load test smoke (a few seconds against a real server)"
bash "$ROOT/deploy/loadtest-smoke.sh"

step "OpenAPI: validate the served document, call the server through a generated client"
# Its tools are needed without the services too (idempotent: a no-op when present).
WAGU_SKIP_REDIS=1 WAGU_SKIP_CASSANDRA=1 WAGU_SKIP_S3=1 WAGU_SKIP_NATS=1 WAGU_SKIP_OIDC=1 bash "$ROOT/deploy/install.sh"
bash "$ROOT/deploy/openapi/check.sh"

step "deployment files: Dockerfile, compose, HAProxy (live, in front of real nodes), k8s, wagu.toml (docs/DEPLOY.md)"
WAGU_BIN="$CARGO_TARGET_DIR/debug/wagu" bash "$ROOT/deploy/cluster/check.sh"
