#!/usr/bin/env bash
# Durable check-and-debit: this node (RocksDB, fsync per group commit)
# against PostgreSQL from Debian's packages with synchronous_commit on, on
# the same machine in the same run. PostgreSQL gets its best case: one
# round trip per bet to a PL/pgSQL function that records the idempotency
# key (a primary key per bet, ON CONFLICT replays) and debits the wallet if
# the balance allows, in one transaction that commits (and fsyncs, with
# PostgreSQL's own group commit) before pgbench sends the next from that
# client; prepared statements; run with 32, 64, 128 and 256 clients, and
# its best kept. The node runs with one connection thread (as in
# compare-redis.sh), 1,024 requests in flight per connection (the most a
# connection may have: more in flight means larger group commits), with 8,
# 12 and 16 connections one after the other on the same node (so one of
# them holds the automatic snapshot), and its best kept likewise. (Until
# 2026-11-24 it was 4, 6 and 8: 4 and 6 never won, and fresh nodes gave
# 716-736k bets/s with 8, 736-806k with 12, 775-817k with 16.) A second run does the same as
# most applications write it: a transaction of separate statements (look
# up the key, debit, record the key), one round trip each.
#
# Usage: benches/compare-postgres.sh [bets] [seconds per pgbench run]
# Prints one JSON line at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. ops/lib/setup.sh
ensure_toolchain
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/pgbench" ]; then
    apt_install postgresql postgresql-contrib
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi

requests=${1:-2000000}
seconds=${2:-20}
players=20000
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet -p ops --bin casino
casino="$target/release/casino"
work=$(mktemp -d /tmp/compare-postgres.XXXXXX)
chown -R postgres "$work" 2>/dev/null || true

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -d "$work/pg" ] && as_postgres "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
# PostgreSQL refuses to run as root.
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# --- the node, durable (sync), its data in a fresh folder ---
"$casino" node --data-dir "$work/node" --worker-threads 1 --listen 127.0.0.1:7794 --metrics-listen 127.0.0.1:7795 --no-pam > "$work/node.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "binary protocol on" "$work/node.log" && break; sleep 0.1; done
# The node's best over connection counts, as PostgreSQL's is over client
# counts: each run sends `requests` bets with new players and ids.
node_rate=0 node_connections=0 node_fsyncs=0 node_seconds=1 fsyncs_before=0
for connections in 8 12 16; do
    node_json=$("$casino" load --address 127.0.0.1:7794 --workload bet --connections "$connections" --depth 1024 --players $(( requests / 50 + 1 )) --requests "$requests" --json)
    fsyncs_after=$(curl -s 127.0.0.1:7795/metrics | awk '/^casino_fsyncs_total/ { print $2 }')
    echo "node (durable):  $node_json"
    rate=$(echo "$node_json" | sed -E 's/.*"bets_per_second":([0-9]+).*/\1/')
    if [ "$rate" -gt "$node_rate" ]; then
        node_rate=$rate node_connections=$connections
        node_seconds=$(echo "$node_json" | sed -E 's/.*"seconds":([0-9.]+).*/\1/')
        node_fsyncs=$(( fsyncs_after - fsyncs_before ))
    fi
    fsyncs_before=$fsyncs_after
done
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
echo "node (durable):  best $node_rate bets per second ($node_connections connections x 1,024 in flight)"

# --- PostgreSQL ---
as_postgres "$pg_bin/initdb" -D "$work/pg" -A trust -U postgres > "$work/initdb.log"
cat >> "$work/pg/postgresql.conf" <<CONF
port = 7796
listen_addresses = ''
unix_socket_directories = '$work'
fsync = on
synchronous_commit = on
shared_buffers = 512MB
max_connections = 300
CONF
as_postgres "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w start > /dev/null
psql=(as_postgres psql -h "$work" -p 7796 -U postgres -q -v ON_ERROR_STOP=1)
"${psql[@]}" <<SQL
CREATE TABLE wallets (player bigint PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
CREATE TABLE bets (tx_id bigint PRIMARY KEY, player bigint NOT NULL, amount bigint NOT NULL, balance_after bigint NOT NULL);
INSERT INTO wallets SELECT g, 1000000000000 FROM generate_series(1, $players) g;
CREATE FUNCTION place_bet(p_tx bigint, p_player bigint, p_amount bigint) RETURNS bigint LANGUAGE plpgsql AS \$\$
DECLARE after bigint;
BEGIN
    SELECT balance_after INTO after FROM bets WHERE tx_id = p_tx;
    IF FOUND THEN RETURN after; END IF;
    UPDATE wallets SET balance = balance - p_amount WHERE player = p_player AND balance >= p_amount RETURNING balance INTO after;
    IF NOT FOUND THEN RETURN -1; END IF;
    INSERT INTO bets VALUES (p_tx, p_player, p_amount, after);
    RETURN after;
END \$\$;
SQL
cat > "$work/bet.sql" <<'SQL'
\set player random(1, 20000)
\set tx random(1, 9000000000000000000)
SELECT place_bet(:tx, :player, 100);
SQL
cat > "$work/bet-statements.sql" <<'SQL'
\set player random(1, 20000)
\set tx random(1, 9000000000000000000)
BEGIN;
SELECT balance_after FROM bets WHERE tx_id = :tx;
UPDATE wallets SET balance = balance - 100 WHERE player = :player AND balance >= 100;
INSERT INTO bets SELECT :tx, :player, 100, balance FROM wallets WHERE player = :player;
COMMIT;
SQL
chown postgres "$work/bet.sql" "$work/bet-statements.sql" 2>/dev/null || true
pgbench() { as_postgres "$pg_bin/pgbench" -h "$work" -p 7796 -U postgres -n -M prepared -c "$2" -j 2 -T "$seconds" -f "$1" postgres 2>&1; }
# PostgreSQL's best over client counts, for each way of writing the bet.
best() {
    local best=0 best_clients=0
    for clients in 32 64 128 256; do
        rate=$(pgbench "$1" "$clients" | awk '/^tps = / { printf "%d", $3 }')
        echo "postgresql:      $rate per second with $clients clients ($2)" >&2
        if [ "${rate:-0}" -gt "$best" ]; then best=$rate; best_clients=$clients; fi
    done
    echo "$best $best_clients"
}
read -r pg_rate pg_clients < <(best "$work/bet.sql" "one call to a function per bet")
read -r pg_statements_rate pg_statements_clients < <(best "$work/bet-statements.sql" "a transaction of statements per bet")
echo "postgresql:      best $pg_rate bets per second (function, $pg_clients clients), $pg_statements_rate (statements, $pg_statements_clients clients)"

ratio=$(awk -v a="$node_rate" -v b="$pg_rate" 'BEGIN { printf "%.1f", a / b }')
fsyncs_per_second=$(awk -v f="$node_fsyncs" -v s="$node_seconds" 'BEGIN { printf "%d", f / s }')
ratio_statements=$(awk -v a="$node_rate" -v b="$pg_statements_rate" 'BEGIN { printf "%.1f", a / b }')
echo "{\"node_durable_bets_per_second\":$node_rate,\"node_connections\":$node_connections,\"node_fsyncs\":$node_fsyncs,\"node_fsyncs_per_second\":$fsyncs_per_second,\"postgresql_function_bets_per_second\":$pg_rate,\"postgresql_function_clients\":$pg_clients,\"ratio\":$ratio,\"postgresql_statements_bets_per_second\":$pg_statements_rate,\"ratio_to_statements\":$ratio_statements,\"requests\":$requests}"
