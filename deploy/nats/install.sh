#!/usr/bin/env bash
# Installs nats-server (the bus between Wagu nodes) pinned to one version, built with Go from
# the Go module proxy into $WAGU_CACHE_DIR/nats-server-<version>/bin/nats-server. Debian's
# package (nats-server 2.9.10) is older than the version the tests and docs measured.
# Idempotent: a present binary of the pinned version is reused, so a second run is instant.
#
#   deploy/nats/install.sh            install (or find) it
#   deploy/nats/install.sh --print    print the binary's path (nothing else on stdout)
#
# Environment:
#   WAGU_CACHE_DIR   cache root (default ~/.cache/wagu); Go's module and build caches go under
#                    $WAGU_CACHE_DIR/go so a re-install downloads nothing
#   GO               the go command (default: go on PATH, else /usr/local/go/bin/go)
set -euo pipefail

# Must match NATS_SERVER_VERSION in deploy/services.sh.
NATS_SERVER_VERSION="2.15.3"

CACHE_DIR="${WAGU_CACHE_DIR:-$HOME/.cache/wagu}"
HOME_DIR="$CACHE_DIR/nats-server-$NATS_SERVER_VERSION"
BIN="$HOME_DIR/bin/nats-server"

log() { printf '[install nats] %s\n' "$*" >&2; }

if [ "${1:-}" = --print ]; then
  echo "$BIN"
  exit 0
fi

if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -qF "v$NATS_SERVER_VERSION"; then
  log "nats-server $NATS_SERVER_VERSION present: $BIN"
  exit 0
fi

go="${GO:-}"
if [ -z "$go" ]; then
  if command -v go >/dev/null 2>&1; then
    go="$(command -v go)"
  elif [ -x /usr/local/go/bin/go ]; then
    go=/usr/local/go/bin/go
  else
    log "no Go toolchain found (set GO, or install Go from https://go.dev/dl/)"
    exit 1
  fi
fi

log "building nats-server $NATS_SERVER_VERSION with $("$go" version) into $HOME_DIR/bin"
mkdir -p "$HOME_DIR/bin" "$CACHE_DIR/go"
# -modcacherw: the module cache stays deletable with rm -rf; CGO off: a static binary.
GOBIN="$HOME_DIR/bin" GOPATH="$CACHE_DIR/go" GOMODCACHE="$CACHE_DIR/go/mod" \
  GOCACHE="$CACHE_DIR/go/build" GOFLAGS=-modcacherw CGO_ENABLED=0 \
  "$go" install "github.com/nats-io/nats-server/v2@v$NATS_SERVER_VERSION"
if ! "$BIN" --version | grep -qF "v$NATS_SERVER_VERSION"; then
  log "$BIN is not version $NATS_SERVER_VERSION after go install"
  exit 1
fi
log "nats-server $NATS_SERVER_VERSION installed: $BIN"
