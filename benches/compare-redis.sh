#!/usr/bin/env bash
# Throughput of bets through the gateway beside Redis running a Lua
# check-and-debit script, with the same connections and pipelining, on
# this machine. Then the node's latency, open loop, at half its measured
# throughput and at 150,000 bets/s (half the goal), and of full rounds at
# 150,000 rounds/s.
#
#   bash benches/compare-redis.sh [requests] [connections] [depth]
#
# Starts (and stops) its own `casino node` on 127.0.0.1:7790 and a Debian
# `redis-server` on 127.0.0.1:7792 (installed when missing), in memory, no
# persistence, like today's node. Prints one JSON line per measurement and
# a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
. ops/lib/setup.sh
ensure_toolchain
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null || apt_install redis-server redis-tools

requests=${1:-1000000}
connections=${2:-4}
depth=${3:-64}
players=$(( requests / 50 + 1 ))
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet -p ops --bin casino
casino="$target/release/casino"

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

start_node() {
    "$casino" node --in-memory --listen 127.0.0.1:7790 --metrics-listen 127.0.0.1:7791 --no-pam --worker-threads 1 > /tmp/compare-node.log 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do grep -q "binary protocol on" /tmp/compare-node.log && return; sleep 0.1; done
    echo "the node did not start" >&2; exit 1
}
stop_node() { kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'; }

# 1. The node, as fast as replies allow: bets only (check, debit, record),
#    the same work as the Redis script below.
start_node
node_json=$("$casino" load --address 127.0.0.1:7790 --workload bet --connections "$connections" --depth "$depth" --players "$players" --requests "$requests" --json)
stop_node
echo "node bets:       $node_json"
node_rate=$(echo "$node_json" | sed -E 's/.*"bets_per_second":([0-9]+).*/\1/')

# 2. The node with full rounds (bet, then a win that closes the round).
start_node
round_json=$("$casino" load --address 127.0.0.1:7790 --workload round --connections "$connections" --depth "$depth" --players 20000 --requests "$requests" --json)
stop_node
echo "node rounds:     $round_json"
round_rate=$(echo "$round_json" | sed -E 's/.*"bets_per_second":([0-9]+).*/\1/')

# 3. Latency, open loop, of the same bets whose throughput step 1 measured
#    and the goal counts: at half the measured rate and at 150,000 bets/s
#    (half of the issue's 300,000 goal). Then full rounds at 150,000
#    rounds/s, a stricter load than the goal names (a bet and a win each:
#    300,000 requests/s). The first tenth of the requests warms the new
#    connections and is left out of the histogram (steady state); the cold
#    start is reported by step 1's max.
paced() {
    start_node
    paced_json=$("$casino" load --address 127.0.0.1:7790 --workload "$1" --connections "$connections" --players "$players" --requests "$requests" --rate "$2" --warmup-requests $(( requests / 10 )) --json)
    stop_node
}
paced bet $(( node_rate / 2 ))
echo "node half load:  $paced_json"
half_p99=$(echo "$paced_json" | sed -E 's/.*"latency_us_p99":([0-9]+).*/\1/')
paced bet 150000
echo "node at 150,000: $paced_json"
goal_p99=$(echo "$paced_json" | sed -E 's/.*"latency_us_p99":([0-9]+).*/\1/')
paced round 150000
echo "rounds at 150,000/s: $paced_json"
rounds_p99=$(echo "$paced_json" | sed -E 's/.*"latency_us_p99":([0-9]+).*/\1/')

# 4. Redis: EVALSHA of a check-and-debit with an idempotency key per bet.
redis-server --port 7792 --bind 127.0.0.1 --save "" --appendonly no --daemonize no > /tmp/compare-redis.log 2>&1 &
pids+=($!)
for _ in $(seq 50); do redis-cli -p 7792 ping >/dev/null 2>&1 && break; sleep 0.1; done
script='if redis.call("EXISTS", KEYS[2]) == 1 then return redis.call("GET", KEYS[1]) end
local balance = tonumber(redis.call("GET", KEYS[1]) or "1000000000")
local amount = tonumber(ARGV[1])
if balance < amount then return -1 end
redis.call("SET", KEYS[1], balance - amount)
redis.call("SET", KEYS[2], 1, "EX", 604800)
return balance - amount'
sha=$(redis-cli -p 7792 SCRIPT LOAD "$script")
redis_csv=$(redis-benchmark -p 7792 -c "$connections" -P "$depth" -n "$requests" -r 100000000 --csv \
    EVALSHA "$sha" 2 "balance:__rand_int__" "tx:__rand_int__" 100 | tail -1)
echo "redis:           $redis_csv"
redis_rate=$(echo "$redis_csv" | cut -d, -f2 | tr -d '"' | cut -d. -f1)

ratio=$(awk -v a="$node_rate" -v b="$redis_rate" 'BEGIN { printf "%.2f", a / b }')
echo "{\"node_bets_per_second\":$node_rate,\"node_rounds_per_second\":$round_rate,\"redis_check_and_debit_per_second\":$redis_rate,\"ratio\":$ratio,\"p99_us_at_half\":$half_p99,\"p99_us_at_150000\":$goal_p99,\"round_p99_us_at_150000\":$rounds_p99,\"connections\":$connections,\"depth\":$depth,\"requests\":$requests}"
