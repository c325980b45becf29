#!/usr/bin/env bash
# The cluster's figures with the `rooms` workload of wagu-loadtest (docs/PERFORMANCE.md, "Cluster:
# failover and the bus"). Starts its own Redis and NATS, then for each scenario fresh `wagu`
# nodes (cluster enabled, sharing them), runs the workload, and records every process's CPU from
# /proc over the measured window:
#
#   one     1 node (cluster enabled: the lease, fenced writes and the bus are all in the path)
#   three   3 nodes; rooms created round-robin, placed by the cluster, clients round-robin over
#           all gateways (--spread-clients): about 2 clients in 3 sit on a gateway that does not
#           own their room
#   local   3 nodes, every room owned by node a (b and c take no rooms: limits.max_rooms = 1 and
#           each already holds one), every client on a: the same-node reference
#   remote  the same 3 nodes, every room owned by a, every client on b or c (rooms created
#           through b and c): every frame crosses the bus
#
# On a 2-core machine this shows overhead and correctness, not scaling: the nodes share the
# cores with Redis, NATS and the load generator. Nothing is pinned by default: pinned to one
# core (CB_SERVER_CPUS=1 CB_CLIENT_CPUS=0), the three nodes with Redis and NATS saturate it at
# the default load once clients are remote (docs/PERFORMANCE.md).
#
#   CARGO_TARGET_DIR=/root/.cache/wagu/target-fail deploy/cluster-bench.sh
#   CB_SCENARIOS="local remote" CB_ROOMS=50 deploy/cluster-bench.sh
#
# Environment (defaults in brackets):
#   CB_ROOMS [100]  CB_PARTICIPANTS [10]  CB_PRESENCE_HZ [10]  CB_CHAT_PER_MIN [6]
#   CB_RAMP_SECS [5]  CB_WARMUP_SECS [5]  CB_DURATION_SECS [20]
#   CB_SCENARIOS ["one three local remote"]
#   CB_SERVER_CPUS [""]  CB_CLIENT_CPUS [""]: taskset -c lists for the servers (nodes, Redis, NATS)
#     and for the load generator ("" = no pinning)
#   CB_REDIS_PORT [26391]  CB_NATS_PORT [24391]  CB_PORT_BASE [18600] (nodes on +0, +1, +2)
#   CB_WAGU_BIN, CB_LOADTEST_BIN [$CARGO_TARGET_DIR/release/…]  CB_NATS_BIN [~/.cache/wagu/nats-server-2.15.3/bin/nats-server]
#   CB_LEASE_MS [3000]  CB_OUT [target/cluster-bench/<UTC time>]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CACHE="${WAGU_CACHE_DIR:-${HOME:-/root}/.cache/wagu}"
WAGU="${CB_WAGU_BIN:-$TARGET_DIR/release/wagu}"
LOADTEST="${CB_LOADTEST_BIN:-$TARGET_DIR/release/wagu-loadtest}"
NATS="${CB_NATS_BIN:-$CACHE/nats-server-2.15.3/bin/nats-server}"
ROOMS="${CB_ROOMS:-100}"
PARTICIPANTS="${CB_PARTICIPANTS:-10}"
HZ="${CB_PRESENCE_HZ:-10}"
CHAT="${CB_CHAT_PER_MIN:-6}"
RAMP="${CB_RAMP_SECS:-5}"
WARMUP="${CB_WARMUP_SECS:-5}"
DURATION="${CB_DURATION_SECS:-20}"
SCENARIOS="${CB_SCENARIOS:-one three local remote}"
SERVER_CPUS="${CB_SERVER_CPUS:-}"
CLIENT_CPUS="${CB_CLIENT_CPUS:-}"
REDIS_PORT="${CB_REDIS_PORT:-26391}"
NATS_PORT="${CB_NATS_PORT:-24391}"
PORT_BASE="${CB_PORT_BASE:-18600}"
LEASE_MS="${CB_LEASE_MS:-3000}"
OUT="${CB_OUT:-$ROOT/target/cluster-bench/$(date -u +%Y%m%dT%H%M%SZ)}"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"
NATS_URL="nats://127.0.0.1:$NATS_PORT"
CLK_TCK="$(getconf CLK_TCK)"

# shellcheck source=deploy/bench-lib.sh
source "$ROOT/deploy/bench-lib.sh"
for b in "$WAGU" "$LOADTEST" "$NATS"; do [[ -x "$b" ]] || die "$b: not found (build it first)"; done
for s in $SCENARIOS; do
    case "$s" in one | three | local | remote) ;; *) die "unknown scenario $s" ;; esac
done
mkdir -p "$OUT"

# taskset prefixes for the CPU lists (nothing when empty).
PIN_SERVER=()
PIN_CLIENT=()
[[ -n "$SERVER_CPUS" ]] && PIN_SERVER=(taskset -c "$SERVER_CPUS")
[[ -n "$CLIENT_CPUS" ]] && PIN_CLIENT=(taskset -c "$CLIENT_CPUS")

SERVICE_PIDS=()
declare -A NODE_PID=() NODE_PORT=() NODE_ID=()
stop_pid() {
    local pid="$1"
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}
stop_nodes() {
    for n in "${!NODE_PID[@]}"; do stop_pid "${NODE_PID[$n]}"; done
    NODE_PID=() NODE_PORT=() NODE_ID=()
}
cleanup() {
    stop_nodes
    for p in "${SERVICE_PIDS[@]}"; do stop_pid "$p"; done
}
trap cleanup EXIT

say "Redis on $REDIS_PORT, NATS on $NATS_PORT (pinned: ${SERVER_CPUS:-no})"
mkdir -p "$OUT/redis"
"${PIN_SERVER[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$OUT/redis" >"$OUT/redis.log" 2>&1 &
SERVICE_PIDS+=("$!")
REDIS_PID=$!
"${PIN_SERVER[@]}" "$NATS" -a 127.0.0.1 -p "$NATS_PORT" >"$OUT/nats.log" 2>&1 &
SERVICE_PIDS+=("$!")
NATS_PID=$!
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$REDIS_PORT" ping >/dev/null || die "redis did not start: $(cat "$OUT/redis.log")"

# start_node NAME INDEX SCENARIO [ENV=VALUE…]
start_node() {
    local name="$1" idx="$2" scn="$3"
    shift 3
    local port=$((PORT_BASE + idx)) id="$name-$scn-$$"
    mkdir -p "$OUT/$scn/$name"
    env -i PATH="$PATH" \
        WAGU_LOG=warn WAGU_DATABASE__SEED_SAMPLE_PLACES=false \
        WAGU_EPHEMERAL__BACKEND=redis WAGU_EPHEMERAL__REDIS_URL="$REDIS_URL" \
        WAGU_CLUSTER__ENABLED=true WAGU_CLUSTER__NODE_ID="$id" \
        WAGU_CLUSTER__LEASE_TTL_MS="$LEASE_MS" WAGU_CLUSTER__BUS_URL="$NATS_URL" \
        WAGU_RATE__CREATES_PER_MINUTE=1000000 "$@" \
        "${PIN_SERVER[@]}" "$WAGU" --listen "127.0.0.1:$port" --data-dir "$OUT/$scn/$name/data" \
        >"$OUT/$scn/$name/server.log" 2>&1 &
    NODE_PID[$name]=$!
    NODE_PORT[$name]=$port
    NODE_ID[$name]=$id
    for _ in $(seq 600); do
        curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
        kill -0 "${NODE_PID[$name]}" 2>/dev/null || die "node $name exited: $(tail -5 "$OUT/$scn/$name/server.log")"
        sleep 0.1
    done
    die "node $name not ready in 60 s"
}

url() { printf 'http://127.0.0.1:%s' "${NODE_PORT[$1]}"; }

ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# Makes nodes b and c take no more rooms: each holds one (limits.max_rooms = 1), which closes
# it in its lease; every room placed afterwards goes to a.
fill_b_and_c() {
    local scn="$1"
    for try in $(seq 40); do
        local open_b open_c
        open_b="$(redis-cli -p "$REDIS_PORT" HGET "wagu:{nodes}:lease:${NODE_ID[b]}" open)"
        open_c="$(redis-cli -p "$REDIS_PORT" HGET "wagu:{nodes}:lease:${NODE_ID[c]}" open)"
        [[ "$open_b" == 0 && "$open_c" == 0 ]] && { echo "b and c closed after $((try - 1)) creates"; return 0; }
        curl -fs -X POST -H 'content-type: application/json' -d '{"title":"filler"}' \
            "$(url b)/api/rooms" >>"$OUT/$scn/fill.log" 2>&1 || true
        echo >>"$OUT/$scn/fill.log"
        # the leases carry the new load within a second or two
        sleep 1.5
    done
    die "b and c did not close (see $OUT/$scn/fill.log)"
}

# The owner of every room in Redis, counted per node.
owners() {
    redis-cli -p "$REDIS_PORT" --scan --pattern 'wagu:{room:*}:owner' |
        while read -r k; do redis-cli -p "$REDIS_PORT" HGET "$k" node; done | sort | uniq -c
}

# measure SCENARIO URLS [loadtest flags…]: the workload, with every process's CPU over the window.
measure() {
    local scn="$1" urls="$2"
    shift 2
    say "$scn: rooms $ROOMS x $PARTICIPANTS @ $HZ Hz, chat $CHAT/min, through $urls"
    "${PIN_CLIENT[@]}" "$LOADTEST" rooms --url "$urls" --rooms "$ROOMS" --participants "$PARTICIPANTS" \
        --presence-hz "$HZ" --chat-per-min "$CHAT" --ramp-secs "$RAMP" --warmup-secs "$WARMUP" \
        --duration-secs "$DURATION" --no-progress --progress-secs 5 --server-pid "${NODE_PID[a]}" \
        --out "$OUT/$scn.json" "$@" >"$OUT/$scn.log" 2>&1 &
    local lt=$!
    # the window starts when the harness says so
    for _ in $(seq 1200); do
        grep -q 'measuring for' "$OUT/$scn.log" 2>/dev/null && break
        kill -0 "$lt" 2>/dev/null || break
        sleep 0.1
    done
    local -A t0=()
    local procs=("redis:$REDIS_PID" "nats:$NATS_PID" "loadtest:$lt")
    for n in "${!NODE_PID[@]}"; do procs+=("$n:${NODE_PID[$n]}"); done
    for p in "${procs[@]}"; do t0[$p]="$(ticks "${p#*:}" 2>/dev/null || echo 0)"; done
    local s0 s1
    s0="$(date +%s.%N)"
    # a second short of the window: the harness exits at its end
    sleep "$(awk -v d="$DURATION" 'BEGIN { print (d > 2 ? d - 1 : d / 2) }')"
    s1="$(date +%s.%N)"
    {
        echo "# process cpu% (of one core) over the window, $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
        for p in "${procs[@]}"; do
            local t1
            t1="$(ticks "${p#*:}" 2>/dev/null || echo 0)"
            awk -v n="${p%%:*}" -v a="${t0[$p]}" -v b="$t1" -v s0="$s0" -v s1="$s1" -v hz="$CLK_TCK" \
                'BEGIN { printf "%s %.1f\n", n, (b - a) / hz / (s1 - s0) * 100 }'
        done | sort
    } >"$OUT/$scn.cpu"
    local rc=0
    wait "$lt" || rc=$?
    [[ $rc == 0 || $rc == 2 ]] || die "$scn: loadtest failed ($rc): $(tail -20 "$OUT/$scn.log")"
    echo "owners: $(owners | tr '\n' ' ')" >>"$OUT/$scn.cpu"
    uptime >>"$OUT/$scn.cpu"
    cat "$OUT/$scn.cpu"
    tail -25 "$OUT/$scn.log"
}

fresh() { stop_nodes; redis-cli -p "$REDIS_PORT" FLUSHALL >/dev/null; }

SMALL=(WAGU_LIMITS__MAX_ROOMS=1 WAGU_LIMITS__MAX_STREAMS=0 WAGU_LIMITS__ROOM_EMPTY_TTL_SECS=86400)
for scn in $SCENARIOS; do
    fresh
    case "$scn" in
    one)
        start_node a 0 "$scn"
        measure one "$(url a)"
        ;;
    three)
        start_node a 0 "$scn"
        start_node b 1 "$scn"
        start_node c 2 "$scn"
        measure three "$(url a),$(url b),$(url c)" --spread-clients
        ;;
    local | remote)
        start_node a 0 "$scn"
        start_node b 1 "$scn" "${SMALL[@]}"
        start_node c 2 "$scn" "${SMALL[@]}"
        fill_b_and_c "$scn"
        if [[ "$scn" == local ]]; then
            measure local "$(url a)"
        else
            measure remote "$(url b),$(url c)"
        fi
        ;;
    esac
done
stop_nodes

say "summary ($OUT/table.md)"
# shellcheck disable=SC2086 # one argument per scenario
python3 - "$OUT" $SCENARIOS >"$OUT/table.md" <<'EOF'
import json, sys
out, scns = sys.argv[1], sys.argv[2:]
print("| scenario | clients joined | presence sent/s | delivered msgs/s | presence e2e p50 / p99 | fan-out p50 / p99 | chat e2e p50 / p99 | errors | CPU % a / b / c (of one core) | nats | redis | loadtest |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for s in scns:
    r = json.load(open(f"{out}/{s}.json"))
    cpu = {}
    for line in open(f"{out}/{s}.cpu"):
        p = line.split()
        if len(p) == 2 and not line.startswith("#"):
            cpu[p[0]] = p[1]
    pr, fo = r["presence"], r["presence_fanout_ms"]
    ch = r.get("chat") or {"latency_ms": {"p50": 0, "p99": 0}}
    print(f"| {s} | {r['connections_joined']} | {pr['sent_per_sec']:,.0f} | {r['delivered_per_sec']:,.0f} | "
          f"{pr['latency_ms']['p50']:.1f} / {pr['latency_ms']['p99']:.1f} ms | {fo['p50']:.1f} / {fo['p99']:.1f} ms | "
          f"{ch['latency_ms']['p50']:.1f} / {ch['latency_ms']['p99']:.1f} ms | {r['errors']['total']} | "
          f"{cpu.get('a','-')} / {cpu.get('b','-')} / {cpu.get('c','-')} | {cpu.get('nats','-')} | {cpu.get('redis','-')} | {cpu.get('loadtest','-')} |")
EOF
cat "$OUT/table.md"
