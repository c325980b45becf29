#!/usr/bin/env bash
# Checks the deployment files without a container engine (there is none on this machine):
#
#   Dockerfile, s3s-fs.Dockerfile   hadolint; BuildKit's parser (PyPI `dockerfile`); every COPY
#                                   source is in the build context .dockerignore leaves
#   compose.yaml                    the compose-spec JSON schema (vendored in check-jsonschema);
#                                   pinned images, mounted files, node ids, media ports, grace
#   deploy/k8s/*.yaml               kubernetes-validate --strict (Kubernetes 1.37 schemas); the
#                                   ConfigMaps equal deploy/cluster/wagu.toml and
#                                   deploy/redis/wagu.conf byte for byte; probes, drain, PDB
#   wagu.toml                       loaded by the real `wagu` binary with the environment of a
#                                   compose node, the migrate service, a green node, a k8s pod
#                                   and the k8s Job
#   haproxy.cfg                     `haproxy -c` (Debian's haproxy 2.6), then run on loopback in
#                                   front of two real `wagu` processes and a draining stand-in
#                                   (deploy/cluster/check_haproxy_live.py)
#
# Tools are pinned and cached under WAGU_CACHE_DIR (default ~/.cache/wagu): a venv from
# deploy/cluster/requirements.txt and Debian's haproxy unpacked (not installed as a service).
# A second run reuses them. Exits non-zero on any failure.
#
#   WAGU_BIN=path/to/wagu   use this binary (default: `cargo build -p wagu-gateway --bin wagu`)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/deploy/cluster"
cd "$ROOT"
CACHE_DIR="${WAGU_CACHE_DIR:-${HOME:-/root}/.cache/wagu}"
started=$(date +%s)
failed=0
step() { printf '\n==> %s\n' "$*"; }
bad() { echo "FAIL $*" >&2; failed=1; }

WORK="$(mktemp -d /tmp/wagu-deploy-check.XXXXXX)"
PIDS=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

apt_get() {
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    "${sudo[@]}" apt-get "$@"
}

step "tools (cached under $CACHE_DIR)"
VENV="$CACHE_DIR/deploy-check-$(sha256sum "$HERE/requirements.txt" | cut -c1-12)"
if [[ ! -f "$VENV/.complete" ]]; then
    echo "installing the pinned check tools into $VENV"
    rm -rf "$VENV"
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        apt_get install -y --no-install-recommends python3-venv \
            || { apt_get update -qq && apt_get install -y --no-install-recommends python3-venv; }
    fi
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$HERE/requirements.txt"
    touch "$VENV/.complete"
fi
PY="$VENV/bin/python"
# Debian's haproxy with the libraries it links that a plain machine lacks, unpacked; never run as
# a service. Its version is what the cache directory says; the image pins the same 2.6 branch.
HAPROXY_HOME="$CACHE_DIR/haproxy-2.6"
if [[ ! -f "$HAPROXY_HOME/.complete" ]]; then
    echo "unpacking Debian's haproxy into $HAPROXY_HOME"
    rm -rf "$HAPROXY_HOME" && mkdir -p "$HAPROXY_HOME/debs"
    pkgs=(haproxy liblua5.3-0 libopentracing-c-wrapper0 libopentracing1)
    (cd "$HAPROXY_HOME/debs" && { apt_get download "${pkgs[@]}" 2>/dev/null \
        || { apt_get update -qq && apt_get download "${pkgs[@]}"; }; })
    for deb in "$HAPROXY_HOME"/debs/*.deb; do dpkg -x "$deb" "$HAPROXY_HOME/root"; done
    touch "$HAPROXY_HOME/.complete"
fi
haproxy() {
    LD_LIBRARY_PATH="$HAPROXY_HOME/root/usr/lib/x86_64-linux-gnu" "$HAPROXY_HOME/root/usr/sbin/haproxy" "$@"
}
hv="$(haproxy -v)"
echo "${hv%%$'\n'*}"
case "${hv%%$'\n'*}" in
    *"version 2.6."*) ;;
    *) bad "haproxy is not the 2.6 branch the image (haproxy:2.6.32) runs" ;;
esac

step "Dockerfile, deploy/cluster/s3s-fs.Dockerfile"
if "$VENV/bin/hadolint" Dockerfile deploy/cluster/s3s-fs.Dockerfile; then
    echo "ok   hadolint: no findings"
else
    bad "hadolint"
fi
"$PY" "$HERE/check_deploy.py" dockerfile || bad "Dockerfile structure"

step "deploy/cluster/compose.yaml"
"$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$HERE/compose.yaml" \
    || bad "compose.yaml against the compose-spec schema"
"$PY" "$HERE/check_deploy.py" compose || bad "compose.yaml structure"

step "deploy/k8s"
manifests=()
for f in "$ROOT"/deploy/k8s/*.yaml; do
    [[ $f == */kustomization.yaml ]] || manifests+=("$f")
done
"$VENV/bin/kubernetes-validate" --strict --kubernetes-version 1.37.0 "${manifests[@]}" \
    || bad "k8s manifests against the Kubernetes 1.37 schemas"
"$PY" "$HERE/check_deploy.py" k8s || bad "k8s structure"

step "deploy/cluster/wagu.toml through the real configuration loader"
if [[ -n "${WAGU_BIN:-}" ]]; then
    src_bin="$WAGU_BIN"
else
    cargo build -q -p wagu-gateway --bin wagu
    src_bin="$(cargo metadata --format-version 1 --no-deps \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug/wagu"
fi
# A private copy: a concurrent cargo build cannot swap it in the middle of the check.
cp "$src_bin" "$WORK/wagu"
BIN="$WORK/wagu"
has_cluster=0
if "$BIN" --help | grep -qE '^\s+drain\b'; then has_cluster=1; fi
# The server has no "check the configuration" command; `places import` of a missing file loads
# the whole configuration (every section validated), then fails on the file before it opens any
# backend: exit 1 with "reading …" means the configuration was accepted, exit 2 that it was not.
load_config() { # $1: environment name for check_deploy.py env; $2: config file
    local envs out rc
    mapfile -t envs < <("$PY" "$HERE/check_deploy.py" env "$1")
    if [[ $has_cluster == 0 ]]; then
        mapfile -t envs < <(printf '%s\n' "${envs[@]}" | grep -v '^WAGU_CLUSTER__')
    fi
    set +e
    out="$(env -i PATH="$PATH" HOME="$WORK" "${envs[@]}" \
        "$BIN" --config "$2" places import /nonexistent/wagu-config-check.csv 2>&1)"
    rc=$?
    set -e
    if [[ $rc == 1 && "$out" == *"reading /nonexistent/wagu-config-check.csv"* \
        && "$out" != *"names no setting"* ]]; then
        echo "ok   $1: the configuration loads (${#envs[@]} WAGU_* variables over the file)"
    else
        bad "$1: exit $rc: $out"
    fi
}
config="$HERE/wagu.toml"
if [[ $has_cluster == 0 ]]; then
    # This server predates the [cluster] section (the cluster branch adds it with exactly these
    # keys): check every other setting, and that the file's only unknown is [cluster].
    echo "NOTE this wagu has no [cluster] section yet: checking the file without it"
    python3 - "$config" "$WORK/wagu-pre-cluster.toml" <<'EOF'
import re, sys, tomllib
text = open(sys.argv[1]).read()
cluster = tomllib.loads(text)["cluster"]
want = {"enabled", "lease_ttl_ms", "drain_batch", "drain_timeout_s"}
assert set(cluster) <= want | {"node_id", "bus_url"}, f"unexpected [cluster] keys {set(cluster) - want}"
out = re.sub(r"(?ms)^\[cluster\]\n.*?(?=^\[)", "", text)
assert "[cluster]" not in out
open(sys.argv[2], "w").write(out)
EOF
    mapfile -t envs < <("$PY" "$HERE/check_deploy.py" env compose:wagu-1 | grep -v '^WAGU_CLUSTER__')
    set +e
    out="$(env -i PATH="$PATH" HOME="$WORK" "${envs[@]}" \
        "$BIN" --config "$config" places import /nonexistent/x.csv 2>&1)"
    set -e
    [[ "$out" == *"unknown field: found \`cluster\`"* ]] \
        || bad "expected only [cluster] to be unknown to this wagu, got: $out"
    config="$WORK/wagu-pre-cluster.toml"
fi
for which in compose:wagu-1 compose:migrate compose:wagu-4 k8s job; do
    load_config "$which" "$config"
done

step "deploy/cluster/haproxy.cfg: haproxy -c"
# As compose runs it: the nodes' names do not resolve here (nor before their containers
# exist); init-addr none starts those servers without an address, and the resolvers fill it in.
set +e
out="$(haproxy -c -f "$HERE/haproxy.cfg" 2>&1)"
rc=$?
set -e
others="$(grep -E 'WARNING|ALERT' <<<"$out" | grep -vE "could not resolve address 'wagu-[1-6]', disabling server" || true)"
if [[ $rc == 0 && -z "$others" ]]; then
    echo "ok   haproxy -c with compose's names (only the expected unresolved-name warnings)"
else
    bad "haproxy -c: $out"
fi
free_ports() {
    python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}
read -r P1 P2 P3 P4 P5 P6 PLB PSTATS PADMIN PDNS < <(free_ports 10)
lb_env=(WAGU_1_ADDR="127.0.0.1:$P1" WAGU_2_ADDR="127.0.0.1:$P2" WAGU_3_ADDR="127.0.0.1:$P3"
    WAGU_4_ADDR="127.0.0.1:$P4" WAGU_5_ADDR="127.0.0.1:$P5" WAGU_6_ADDR="127.0.0.1:$P6"
    WAGU_LB_BIND="127.0.0.1:$PLB" WAGU_LB_STATS_BIND="127.0.0.1:$PSTATS"
    WAGU_LB_ADMIN="127.0.0.1:$PADMIN" WAGU_LB_DNS="127.0.0.1:$PDNS")
if env "${lb_env[@]}" LD_LIBRARY_PATH="$HAPROXY_HOME/root/usr/lib/x86_64-linux-gnu" \
    "$HAPROXY_HOME/root/usr/sbin/haproxy" -c -dW -f "$HERE/haproxy.cfg"; then
    echo "ok   haproxy -c -dW (no warning at all) with loopback addresses"
else
    bad "haproxy -c -dW with loopback addresses"
fi

step "deploy/cluster/haproxy.cfg: live on loopback, two real wagu nodes, one draining"
for n in 1 2; do
    port_var="P$n"
    env -i PATH="$PATH" HOME="$WORK" WAGU_LOG=warn \
        WAGU_EPHEMERAL__BACKEND=memory WAGU_MEDIA__UDP_LISTEN="" \
        "$BIN" --listen "127.0.0.1:${!port_var}" --data-dir "$WORK/node$n" >"$WORK/node$n.log" 2>&1 &
    PIDS+=($!)
done
"$PY" "$HERE/check_haproxy_live.py" stub "$P3" &
PIDS+=($!)
for n in 1 2; do
    port_var="P$n"
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:${!port_var}/readyz" >/dev/null && break
        sleep 0.1
    done
    curl -sf "http://127.0.0.1:${!port_var}/readyz" >/dev/null || { cat "$WORK/node$n.log" >&2; bad "wagu node $n not ready"; }
done
env "${lb_env[@]}" LD_LIBRARY_PATH="$HAPROXY_HOME/root/usr/lib/x86_64-linux-gnu" \
    "$HAPROXY_HOME/root/usr/sbin/haproxy" -db -f "$HERE/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)
LB="127.0.0.1:$PLB" ADMIN="127.0.0.1:$PADMIN" LOG="$WORK/haproxy.log" \
    "$PY" "$HERE/check_haproxy_live.py" \
    || { tail -n 20 "$WORK/haproxy.log" "$WORK/node1.log" "$WORK/node2.log" >&2; bad "haproxy live check"; }

echo
echo "deploy/cluster/check.sh finished in $(( $(date +%s) - started ))s: $([[ $failed == 0 ]] && echo passed || echo FAILED)"
exit $failed
