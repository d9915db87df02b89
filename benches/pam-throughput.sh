#!/usr/bin/env bash
# Bet+win pairs per second over the PAM seamless-wallet HTTP API on
# loopback, against the durable default node (RocksDB in a fresh temporary
# folder, fsync per group commit, 1 shard), load generator beside it on the
# same cores. Two runs: without pipelining (each connection waits for every
# answer, as aggregators' clients do) and with HTTP/1.1 pipelining.
#
#   bash benches/pam-throughput.sh [pairs] [connections] [pipeline]
#
# Starts (and stops) its own `casino node` with the PAM API on
# 127.0.0.1:7798. Prints one JSON line per run (`casino pam-load --json`):
# every answer checked, every balance read back against the answers.
set -euo pipefail
cd "$(dirname "$0")/.."
. ops/lib/setup.sh
ensure_toolchain

pairs=${1:-300000}
connections=${2:-256}
pipeline=${3:-8}
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet -p ops --bin casino
casino="$target/release/casino"
data=$(mktemp -d)
node=""
cleanup() { [ -n "$node" ] && kill "$node" 2>/dev/null; wait 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT

"$casino" node --data-dir "$data" --listen 127.0.0.1:7796 --metrics-listen 127.0.0.1:7797 --pam-listen 127.0.0.1:7798 > "$data/node.log" 2>&1 &
node=$!
for _ in $(seq 100); do grep -q "PAM seamless-wallet API" "$data/node.log" && break; sleep 0.1; done
grep -q "PAM seamless-wallet API" "$data/node.log" || { echo "the node did not start" >&2; cat "$data/node.log" >&2; exit 1; }

players=$(( connections * 16 ))
echo "# no pipelining, 128 connections" >&2
"$casino" pam-load --address 127.0.0.1:7798 --players "$players" --pairs "$pairs" --connections 128 --pipeline 0 --player-base 1000000 --json
echo "# pipelining $pipeline pairs, $connections connections" >&2
"$casino" pam-load --address 127.0.0.1:7798 --players "$players" --pairs "$pairs" --connections "$connections" --pipeline "$pipeline" --player-base 2000000 --json
