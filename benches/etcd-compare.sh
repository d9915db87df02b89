#!/usr/bin/env bash
# Replicated throughput of a three-member etcd cluster doing one
# compare-and-swap transaction per bet, for comparison with the engine's
# replicated node. By default closed loop: each connection has one bet in
# flight.
#
#   bash benches/etcd-compare.sh [bets] [connections] [rate]
#
# bets defaults to 200000, connections to 64. With rate (bets per second
# overall) the bets are paced instead, for latency at a given load (e.g.
# half the closed-loop rate); latency then counts from each bet's scheduled
# time. ETCD_CAS_PLAYERS sets the number of players (10000).
#
# Installs Debian's etcd-server and etcd-client when `etcd` is missing,
# builds benches/etcd-cas (its own workspace, into ETCD_CAS_TARGET, by
# default /var/cache/casino-engine/etcd-target) when its binary is missing
# or older than its sources, starts three members on loopback (clients on
# 127.0.0.1:23791-23793, peers on 23801-23803) in a new temporary folder,
# with etcd's default durability (fsync on every commit) and snapshot count,
# runs etcd-cas against all three members and prints its summary: the last
# line, `etcd-cas bets=... bets_per_s=... p50_us=... verified=ok`.
# Stops the members and removes the folder on exit, however it exits.
set -euo pipefail
cd "$(dirname "$0")/.."
. ops/lib/setup.sh

bets=${1:-200000}
connections=${2:-64}
rate=${3:-}
players=${ETCD_CAS_PLAYERS:-10000}
target=${ETCD_CAS_TARGET:-/var/cache/casino-engine/etcd-target}
tool="$target/release/etcd-cas"

command -v etcd >/dev/null && command -v etcdctl >/dev/null || apt_install etcd-server etcd-client
# (Not `| head -1`: under pipefail, etcd's SIGPIPE would end the script.)
version=$(etcd --version)
echo "${version%%$'\n'*}"

if [ ! -x "$tool" ] || [ -n "$(find benches/etcd-cas/Cargo.toml benches/etcd-cas/Cargo.lock benches/etcd-cas/src -newer "$tool" 2>/dev/null)" ]; then
    command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
    CARGO_TARGET_DIR="$target" nice -n 10 cargo build --release --locked --quiet -j 1 --manifest-path benches/etcd-cas/Cargo.toml
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/etcd-compare.XXXXXX")
pids=()
cleanup() {
    local pid alive
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    # The last member to get SIGTERM can wait many seconds for peers that
    # are already gone; its data is thrown away, so SIGKILL it after 2 s.
    for _ in $(seq 20); do
        alive=
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ -n "$alive" ] || break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

members=(m1 m2 m3)
cluster="m1=http://127.0.0.1:23801,m2=http://127.0.0.1:23802,m3=http://127.0.0.1:23803"
endpoints="http://127.0.0.1:23791,http://127.0.0.1:23792,http://127.0.0.1:23793"
for i in 1 2 3; do
    name=${members[i - 1]}
    # 8 GiB is the largest backend quota etcd supports; the run's history
    # (no compaction) stays far below it.
    etcd --name "$name" --data-dir "$dir/$name" \
        --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
        --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
        --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "etcd-compare-$$" \
        --quota-backend-bytes $((8 * 1024 * 1024 * 1024)) \
        --logger zap --log-level warn --log-outputs "$dir/$name.log" \
        > "$dir/$name.out" 2>&1 &
    pids+=($!)
done

healthy=
for _ in $(seq 150); do
    if etcdctl --endpoints "$endpoints" --dial-timeout 1s --command-timeout 2s endpoint health > "$dir/health.out" 2>&1; then
        healthy=1
        break
    fi
    sleep 0.2
done
if [ -z "$healthy" ]; then
    echo "the etcd cluster did not become healthy within 30 s:" >&2
    cat "$dir/health.out" >&2
    for name in "${members[@]}"; do echo "--- $name" >&2; tail -5 "$dir/$name.log" "$dir/$name.out" >&2 || true; done
    exit 1
fi

# In the background and waited for, so that a signal to this script runs
# the cleanup at once; the tool stops with its connections.
"$tool" --endpoints "$endpoints" --players "$players" --bets "$bets" --connections "$connections" ${rate:+--rate "$rate"} &
pids+=($!)
status=0
wait "${pids[-1]}" || status=$?
exit "$status"
