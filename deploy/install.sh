#!/usr/bin/env bash
# Installs what the Wagu test bed (deploy/services.sh) needs: Redis (Debian
# package), Apache Cassandra jars (Maven Central), s3s-fs (crates.io) and the
# OpenID Connect provider of the social login test (oidc-provider, npm), nats-server (the bus
# between nodes; Go module proxy, through deploy/nats/install.sh), and the web
# client's npm packages with Debian's headless Chromium for its browser tests, aiortc for the
# SFU tests and the OpenAPI validator and client generator of deploy/openapi/check.sh (PyPI).
# Idempotent: whatever is already present is skipped, so a second run is fast.
#
# Environment:
#   WAGU_CACHE_DIR   where Cassandra jars, s3s-fs and oidc-provider go (default ~/.cache/wagu)
#   WAGU_SKIP_REDIS=1 / WAGU_SKIP_CASSANDRA=1 / WAGU_SKIP_S3=1 / WAGU_SKIP_OIDC=1 /
#   WAGU_SKIP_AIORTC=1 / WAGU_SKIP_NATS=1   skip one part
#   WAGU_SKIP_WEB=1  skip the web client's npm packages and Chromium
#   WAGU_SKIP_OPENAPI=1   skip the OpenAPI validator and client generator (deploy/openapi)
set -euo pipefail

CASSANDRA_VERSION="5.0.6"
S3S_FS_VERSION="0.14.1"
MAVEN_DEPENDENCY_PLUGIN_VERSION="3.6.1"
# Must match deploy/oidc/package.json (and its lock file).
OIDC_PROVIDER_VERSION="9.13.3"
# Must match deploy/media/requirements.txt (and AIORTC_HOME in deploy/services.sh).
AIORTC_VERSION="1.16.0"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

CACHE_DIR="${WAGU_CACHE_DIR:-$HOME/.cache/wagu}"

log() { printf '[install] %s\n' "$*" >&2; }

install_redis() {
  if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
    log "redis-server present: $(command -v redis-server)"
    return 0
  fi
  log "installing Debian package redis-server"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  # apt-get install fails on a machine whose package lists were never fetched.
  if ! "${sudo[@]}" apt-get install -y --no-install-recommends redis-server redis-tools; then
    "${sudo[@]}" apt-get update
    "${sudo[@]}" apt-get install -y --no-install-recommends redis-server redis-tools
  fi
  # The Debian package starts a system instance on 6379; the test bed runs
  # its own, so leave the system one alone (it does not clash with our ports).
}

install_cassandra() {
  local home="$CACHE_DIR/cassandra-$CASSANDRA_VERSION"
  local lib="$home/lib"
  local marker="$home/.complete"
  if [ -f "$marker" ]; then
    log "cassandra $CASSANDRA_VERSION jars present in $lib"
    return 0
  fi
  if ! command -v mvn >/dev/null 2>&1 || ! command -v java >/dev/null 2>&1; then
    log "installing Debian packages maven and openjdk-17-jre-headless"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update
    "${sudo[@]}" apt-get install -y --no-install-recommends maven openjdk-17-jre-headless
  fi
  log "resolving org.apache.cassandra:cassandra-all:$CASSANDRA_VERSION into $lib"
  rm -rf "$lib"
  mkdir -p "$home"
  cat >"$home/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>wagu.testbed</groupId>
  <artifactId>cassandra-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>$CASSANDRA_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
  mvn -B -q -Dstyle.color=never -f "$home/pom.xml" -DskipTests \
    "org.apache.maven.plugins:maven-dependency-plugin:$MAVEN_DEPENDENCY_PLUGIN_VERSION:copy-dependencies" \
    -DincludeScope=runtime -DoutputDirectory="$lib"
  if ! ls "$lib"/jamm-*.jar >/dev/null 2>&1; then
    log "no jamm jar in $lib after resolving cassandra-all"
    return 1
  fi
  touch "$marker"
  log "cassandra jars: $(find "$lib" -name '*.jar' | wc -l) files"
}

install_s3s_fs() {
  local root="$CACHE_DIR/s3s-fs"
  local bin="$root/bin/s3s-fs"
  if [ -x "$bin" ]; then
    log "s3s-fs present: $bin"
    return 0
  fi
  command -v cargo >/dev/null 2>&1 || { log "cargo not found"; return 1; }
  log "building s3s-fs $S3S_FS_VERSION (takes a few minutes)"
  # Build outside any workspace so no project Cargo config applies.
  (cd / && env -u CARGO_TARGET_DIR cargo install s3s-fs --version "$S3S_FS_VERSION" --features binary --locked --root "$root")
}

# npm ci of deploy/oidc (oidc-provider and its locked dependencies) into
# $CACHE_DIR/oidc-provider-<version>; gateway/tests/oidc.rs and web/test/social.test.mjs run
# deploy/oidc/provider.mjs against its node_modules. The marker holds the
# lock file's checksum, so a changed lock file reinstalls.
install_oidc() {
  local src="$SCRIPT_DIR/oidc"
  local home="$CACHE_DIR/oidc-provider-$OIDC_PROVIDER_VERSION"
  local marker="$home/.complete"
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "installing Debian packages nodejs and npm"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update
    "${sudo[@]}" apt-get install -y --no-install-recommends nodejs npm
  fi
  local sum
  sum="$(sha256sum "$src/package-lock.json" | cut -d' ' -f1)"
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$sum" ] \
    && [ -f "$home/node_modules/oidc-provider/package.json" ]; then
    log "oidc-provider $OIDC_PROVIDER_VERSION present in $home/node_modules"
    return 0
  fi
  log "installing oidc-provider $OIDC_PROVIDER_VERSION (npm ci) into $home"
  rm -rf "$home"
  mkdir -p "$home"
  cp "$src/package.json" "$src/package-lock.json" "$home/"
  (cd "$home" && npm ci --no-audit --no-fund)
  if ! grep -q "\"version\": \"$OIDC_PROVIDER_VERSION\"" "$home/node_modules/oidc-provider/package.json"; then
    log "npm ci did not install oidc-provider $OIDC_PROVIDER_VERSION in $home"
    return 1
  fi
  echo "$sum" >"$marker"
  log "oidc-provider $OIDC_PROVIDER_VERSION installed (node $(node --version))"
}

# A Python venv with aiortc (WebRTC peers nobody here wrote) for the SFU tests, from the
# pinned deploy/media/requirements.txt, binary wheels only. The marker holds the file's
# checksum, so a changed pin reinstalls.
install_aiortc() {
  local req="$SCRIPT_DIR/media/requirements.txt"
  local home="$CACHE_DIR/aiortc-venv-$AIORTC_VERSION"
  local marker="$home/.complete"
  local sum
  sum="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$sum" ]; then
    log "aiortc $AIORTC_VERSION present in $home"
    return 0
  fi
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    log "installing Debian packages python3-venv"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update
    "${sudo[@]}" apt-get install -y --no-install-recommends python3-venv
  fi
  log "installing aiortc $AIORTC_VERSION into $home"
  rm -rf "$home"
  python3 -m venv "$home"
  "$home/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: -r "$req"
  "$home/bin/python" -c "import aiortc, numpy, websockets; assert aiortc.__version__ == '$AIORTC_VERSION'"
  echo "$sum" >"$marker"
  log "aiortc $AIORTC_VERSION installed"
}

# The web client (web/): its pinned npm packages (npm ci from web/package-lock.json, into
# web/node_modules, with npm's download cache under $CACHE_DIR/npm so a fresh clone installs
# offline from it), Debian's chromium-headless-shell for the browser tests (driven by
# playwright-core through executablePath: browser downloads are impossible here) and CJK and
# emoji fonts so Korean and emoji render in screenshots. gateway/build.rs bundles the client into wagu.
install_web() {
  local web="$SCRIPT_DIR/../web"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  if ! command -v chromium-headless-shell >/dev/null 2>&1 && ! command -v chromium >/dev/null 2>&1 \
    || [ ! -d /usr/share/fonts/opentype/noto ] || [ ! -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]; then
    local pkgs=(chromium-headless-shell fonts-noto-cjk fonts-noto-color-emoji)
    log "installing Debian packages ${pkgs[*]}"
    if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${pkgs[@]}"; then
      "${sudo[@]}" apt-get update
      "${sudo[@]}" apt-get install -y --no-install-recommends "${pkgs[@]}"
    fi
  else
    log "chromium present: $(command -v chromium-headless-shell || command -v chromium)"
  fi
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "installing Debian packages nodejs and npm"
    "${sudo[@]}" apt-get install -y --no-install-recommends nodejs npm
  fi
  local sum
  sum="$(sha256sum "$web/package-lock.json" | cut -d' ' -f1)"
  if [ -f "$web/node_modules/.wagu-lock-sum" ] && [ "$(cat "$web/node_modules/.wagu-lock-sum")" = "$sum" ]; then
    log "web client npm packages present in $web/node_modules"
    return 0
  fi
  log "installing the web client's npm packages (npm ci) into $web/node_modules"
  (cd "$web" && npm_config_cache="$CACHE_DIR/npm" npm ci --no-audit --no-fund)
  echo "$sum" >"$web/node_modules/.wagu-lock-sum"
}

# The OpenAPI check's tools (openapi-spec-validator, openapi-python-client and every package
# they pull in, pinned in deploy/openapi/requirements.txt) in a venv under
# $CACHE_DIR/openapi-tools-<checksum of that file>: a changed pin installs a new venv, and
# deploy/openapi/check.sh finds it by the same checksum.
install_openapi_tools() {
  local req="$SCRIPT_DIR/openapi/requirements.txt"
  local sum
  sum="$(sha256sum "$req" | cut -c1-12)"
  local venv="$CACHE_DIR/openapi-tools-$sum"
  if [ -f "$venv/.complete" ]; then
    log "OpenAPI tools present in $venv"
    return 0
  fi
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    log "installing Debian packages python3 and python3-venv"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update
    "${sudo[@]}" apt-get install -y --no-install-recommends python3 python3-venv
  fi
  log "installing the OpenAPI tools (pip, pinned by $req) into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$req"
  "$venv/bin/openapi-spec-validator" --help >/dev/null
  "$venv/bin/openapi-python-client" --version
  touch "$venv/.complete"
}

# nats-server, pinned, built with Go into $CACHE_DIR/nats-server-<version> (its own script, so
# deploy/services.sh and a developer can call it alone).
install_nats() {
  WAGU_CACHE_DIR="$CACHE_DIR" bash "$SCRIPT_DIR/nats/install.sh"
}

main() {
  mkdir -p "$CACHE_DIR"
  if [ "${WAGU_SKIP_REDIS:-0}" != 1 ]; then install_redis; fi
  if [ "${WAGU_SKIP_CASSANDRA:-0}" != 1 ]; then install_cassandra; fi
  if [ "${WAGU_SKIP_S3:-0}" != 1 ]; then install_s3s_fs; fi
  if [ "${WAGU_SKIP_NATS:-0}" != 1 ]; then install_nats; fi
  if [ "${WAGU_SKIP_OIDC:-0}" != 1 ]; then install_oidc; fi
  if [ "${WAGU_SKIP_AIORTC:-0}" != 1 ]; then install_aiortc; fi
  if [ "${WAGU_SKIP_WEB:-0}" != 1 ]; then install_web; fi
  if [ "${WAGU_SKIP_OPENAPI:-0}" != 1 ]; then install_openapi_tools; fi
  log "done"
}

main "$@"
