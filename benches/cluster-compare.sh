#!/usr/bin/env bash
# A three-node replicated cluster on loopback (every bet committed by raft on
# a majority, fsynced) beside a three-member etcd cluster doing one
# compare-and-swap transaction per bet, in the same run on this machine.
#
#   bash benches/cluster-compare.sh [bets] [connections] [depth]
#
# 1. latency at fixed rates, on the new cluster: bets only (check, debit,
#    record), `casino load` against node 1 (usually the leader of every
#    shard: the lowest id times out first), paced at 1,000, 2,000, 5,000,
#    10,000 and 30,000 bets/s for 5 s each, p50 and p99 after a warm-up
#    tenth; then node 1's raft histograms (commit, loop turn, writes);
# 2. peak: the same bets with `connections` x `depth` in flight;
# 3. half load: paced at half the peak, p99 after a warm-up tenth;
# 4. failover: paced at half the peak against a follower (its proposals are
#    forwarded), the leader of shard 0 killed with SIGKILL after 2 s; the
#    run's max latency is the failover stall a bet saw;
# 5. etcd (benches/etcd-compare.sh): 100,000 bets, 64 connections.
# Prints one JSON line per measurement and a summary line. Nodes use ports
# 7800 to 7823 and a temporary data folder, removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. ops/lib/setup.sh
ensure_toolchain

bets=${1:-600000}
connections=${2:-16}
depth=${3:-128}
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet -p ops --bin casino
casino="$target/release/casino"
dir=$(mktemp -d "${TMPDIR:-/tmp}/cluster-compare.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
printf 'token_secret = "%s"\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$dir/cluster.toml"
peers="1=127.0.0.1:7803,2=127.0.0.1:7813,3=127.0.0.1:7823"

start_cluster() {
    rm -rf "$dir"/node-*
    pids=()
    for id in 1 2 3; do
        base=$((7800 + 10 * (id - 1)))
        "$casino" node --config "$dir/cluster.toml" --id "$id" --peers "$peers" --shards 2 --data-dir "$dir/node-$id" \
            --listen "127.0.0.1:$base" --metrics-listen "127.0.0.1:$((base + 1))" --no-pam --worker-threads 1 \
            > "$dir/node-$id.log" 2>&1 &
        pids+=($!)
    done
    for id in 1 2 3; do
        for _ in $(seq 300); do grep -q "binary protocol on" "$dir/node-$id.log" && break; sleep 0.1; done
        grep -q "binary protocol on" "$dir/node-$id.log" || { echo "node $id did not start" >&2; cat "$dir/node-$id.log" >&2; exit 1; }
    done
}
stop_cluster() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
field() { echo "$1" | sed -E "s/.*\"$2\":([0-9]+).*/\1/"; }

start_cluster
ladder=""
for fixed in 1000 2000 5000 10000 30000; do
    n=$(( fixed * 5 ))
    fixed_json=$("$casino" load --address 127.0.0.1:7800 --workload bet --connections 8 --players 20000 --requests "$n" --rate "$fixed" --warmup-requests $(( n / 10 )) --json)
    echo "cluster at $fixed/s: $fixed_json"
    ladder="$ladder\"p50_us_at_$fixed\":$(field "$fixed_json" latency_us_p50),\"p99_us_at_$fixed\":$(field "$fixed_json" latency_us_p99),"
done
# Where the ladder's time went, by node 1's raft histograms (all rates
# together): the bucket bound under which half and 99% of observations fell.
metrics() { exec 3<>"/dev/tcp/127.0.0.1/$1"; printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3; cat <&3; exec 3<&-; }
stages=$(metrics 7801 | awk '
    /^casino_raft_(commit|loop_turn|write)_duration_seconds_bucket/ {
        split($1, parts, "_bucket"); name = parts[1]; labels = parts[2]
        sub(/le="[^"]*"/, "", labels); gsub(/[{},]/, "", labels); key = name (labels == "" ? "" : "{" labels "}")
        match($1, /le="[^"]*"/); le = substr($1, RSTART + 4, RLENGTH - 5)
        n[key]++; bound[key, n[key]] = le; count[key, n[key]] = $2
    }
    END {
        for (key in n) {
            total = count[key, n[key]]; p50 = ""; p99 = ""
            for (i = 1; i <= n[key]; i++) {
                if (p50 == "" && count[key, i] >= 0.5 * total) p50 = bound[key, i]
                if (p99 == "" && count[key, i] >= 0.99 * total) p99 = bound[key, i]
            }
            sub(/^casino_raft_/, "", key); sub(/_duration_seconds/, "", key)
            printf "%s: n=%d p50<=%ss p99<=%ss; ", key, total, p50, p99
        }
    }')
echo "node 1 raft stages: $stages"
peak=$("$casino" load --address 127.0.0.1:7800 --workload bet --connections "$connections" --depth "$depth" --players 20000 --requests "$bets" --json)
echo "cluster peak:      $peak"
rate=$(field "$peak" bets_per_second)
half=$(( rate / 2 ))
paced=$(( half * 8 ))
half_json=$("$casino" load --address 127.0.0.1:7800 --workload bet --connections 8 --players 20000 --requests "$paced" --rate "$half" --warmup-requests $(( paced / 10 )) --json)
echo "cluster half load: $half_json"
# The disk's stalls in these runs, as the nodes logged them (a synced write
# of the raft log slower than cluster::host's SLOW_WRITE): they explain
# many a tail.
slow_fsyncs=$(cat "$dir"/node-*.log | grep -c "slow synced write" || true)
echo "slow synced writes logged by the nodes: $slow_fsyncs"
stop_cluster

start_cluster
# Wait until shard 0 has a leader and read which node it is.
leader=0
for _ in $(seq 100); do
    leader=$("$casino" admin --address 127.0.0.1:7800 status | awk '$1 == "0" { print $6 }')
    [ "${leader:-0}" != 0 ] && break
    sleep 0.1
done
[ "${leader:-0}" != 0 ] || { echo "no leader for shard 0" >&2; exit 1; }
other=$(( leader % 3 + 1 ))
( sleep 2; kill -9 "${pids[$((leader - 1))]}" ) &
killer=$!
failover_json=$("$casino" load --address "127.0.0.1:$((7800 + 10 * (other - 1)))" --workload bet --connections 8 --players 20000 --requests "$paced" --rate "$half" --json)
wait "$killer"
echo "cluster failover:  $failover_json (node $leader, the leader of shard 0, killed with SIGKILL 2 s in; clients on node $other)"
stop_cluster

etcd_line=$(bash benches/etcd-compare.sh 100000 64 | tail -1)
echo "etcd:              $etcd_line"
etcd_rate=$(echo "$etcd_line" | sed -E 's/.*bets_per_s=([0-9]+).*/\1/')
ratio=$(awk -v a="$rate" -v b="$etcd_rate" 'BEGIN { printf "%.1f", a / b }')
echo "{\"cluster_bets_per_second\":$rate,$ladder\"cluster_half_load_p99_us\":$(field "$half_json" latency_us_p99),\"failover_max_latency_us\":$(field "$failover_json" latency_us_max),\"slow_synced_writes\":$slow_fsyncs,\"etcd_cas_bets_per_second\":$etcd_rate,\"ratio\":$ratio,\"connections\":$connections,\"depth\":$depth,\"bets\":$bets}"
