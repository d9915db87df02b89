//! Failover of a real three-node cluster: three `casino node` processes on
//! loopback, every shard a raft group with a replica on each. Under load
//! from clients on the two other nodes, the leader of the shards is killed
//! with SIGKILL. Checked:
//! - bets go on after the kill (the time from the kill to the first bet
//!   acknowledged after it is printed: the failover time);
//! - nothing acknowledged is lost: every acknowledged bet, sent again with
//!   the same ids, is a replay answering the acknowledged balance, and no
//!   balance is above what the acknowledged bets left;
//! - nothing is applied twice: once every bet sent has been retried, each
//!   balance, read on every node (linearizable reads), is the funding less
//!   every stake exactly once;
//! - the killed node restarts on its data, catches up (same applied index
//!   as the others) and answers the same balances; every node's shards
//!   pass their invariant sweep;
//! - logs are compacted all along (a snapshot every `SNAPSHOT_EVERY`
//!   commands, written beside the raft loop; leaders keep only 20 entries
//!   for a follower behind, so the killed node is sent a snapshot, read
//!   beside its leader's loop), and an operator's snapshot
//!   (`TakeSnapshot`) is answered once written, at the applied index.

mod support;

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use casino_client::proto::{self, client_frame::Body as In, server_frame::Body as Out};
use casino_client::{Client, ClientConfig};
use parking_lot::Mutex;
use support::{cash, set_up_players, spawn_node, Bet, NodeProcess};

const PLAYERS: u64 = 2_000;
const FUND: i64 = 1_000_000_000;
const SENDERS: usize = 24;
/// The engine keeps 64 open bets per wallet.
const BETS_PER_PLAYER: usize = 60;
/// Commands between a replica's snapshots: several during the run.
const SNAPSHOT_EVERY: &str = "5000";
/// Entries a leader's compaction keeps for a follower behind: few, so the
/// killed node, behind by more, catches up from a snapshot sent to it.
const LAGGING_ENTRIES_KEPT: &str = "20";

#[derive(Default)]
struct Book {
    sent: Vec<Bet>,
    /// The cash balance each acknowledged bet was answered with.
    acked: HashMap<String, i64>,
    bets_of: HashMap<u64, usize>,
    /// When each acknowledged bet was sent, and when its acknowledgment came.
    timings: Vec<(Instant, Instant)>,
}

/// A port that is free now, below Linux's ephemeral range (32768 and up) so
/// that no client connection takes it as its own port before the node binds
/// it, and above the ports `casino_dev_starts_a_three_node_cluster_in_one_command`
/// uses.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 11_000) as u16;
    loop {
        let port = 21_000 + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % 11_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

struct Cluster {
    dir: std::path::PathBuf,
    settings: String,
    peers: String,
    nodes: Vec<Option<NodeProcess>>,
}

impl Cluster {
    fn args(&self, id: usize) -> Vec<String> {
        let data = self.dir.join(format!("node-{id}"));
        let data = data.to_str().expect("UTF-8");
        [
            "--config",
            &self.settings,
            "--data-dir",
            data,
            "--id",
            &id.to_string(),
            "--peers",
            &self.peers,
            "--snapshot-every",
            SNAPSHOT_EVERY,
            "--lagging-entries-kept",
            LAGGING_ENTRIES_KEPT,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn start(&mut self, ids: &[usize]) {
        let spawned: Vec<_> = ids
            .iter()
            .map(|&id| {
                let args = self.args(id);
                spawn_node(&args.iter().map(String::as_str).collect::<Vec<_>>())
            })
            .collect();
        for (&id, spawned) in ids.iter().zip(spawned) {
            self.nodes[id - 1] = Some(spawned.ready());
        }
    }

    fn address(&self, id: usize) -> String {
        self.nodes[id - 1].as_ref().expect("running").address.clone()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn admin(address: &str) -> Client {
    Client::connect(ClientConfig::new(address.to_string(), "dev-admin-key")).await.expect("admin connects")
}

async fn status(address: &str) -> proto::ClusterStatusReply {
    match admin(address).await.call(In::ClusterStatus(proto::ClusterStatus {})).await.expect("a reply") {
        Out::ClusterStatus(status) => status,
        other => panic!("cluster status: {other:?}"),
    }
}

async fn balances(client: &Client) -> Vec<i64> {
    let mut balances = Vec::new();
    for player in 0..PLAYERS {
        match client.call_retrying(In::GetBalance(proto::GetBalance { player_id: player, currency: "EUR".into() })).await.expect("a reply")
        {
            Out::Balance(balance) => balances.push(balance.cash),
            other => panic!("balance of {player}: {other:?}"),
        }
    }
    balances
}

/// Sends bets until `until`; every reply must be an acknowledgment (the
/// client sends again, same ids, what the cluster could not confirm).
async fn send_bets(client: Arc<Client>, tokens: Arc<Vec<Vec<u8>>>, book: Arc<Mutex<Book>>, sender: usize, until: Instant) {
    let mut n = 0u64;
    while Instant::now() < until {
        let bet = {
            let mut book = book.lock();
            let mut player = (sender as u64 * 7919 + n * 104_729) % PLAYERS;
            let mut tries = 0;
            while book.bets_of.get(&player).copied().unwrap_or(0) >= BETS_PER_PLAYER {
                player = (player + 1) % PLAYERS;
                tries += 1;
                if tries > PLAYERS {
                    return;
                }
            }
            *book.bets_of.entry(player).or_default() += 1;
            let tx = format!("s{sender}-{n}");
            let bet = Bet { player, round: format!("r-{tx}"), tx, stake: 1 + ((n * 7 + sender as u64) % 5_000) as i64 };
            book.sent.push(bet.clone());
            bet
        };
        n += 1;
        let sent_at = Instant::now();
        // Not confirmed after the client's retries: it stays unacknowledged
        // and the checks below find it wholly applied or wholly absent.
        if let Ok(reply) = client.call_retrying(bet.request(&tokens)).await {
            // A retry the cluster had applied already answers as a replay:
            // an acknowledgment all the same.
            let (balance, _replayed) = cash(&reply).unwrap_or_else(|| panic!("bet {}: {reply:?}", bet.tx));
            let mut book = book.lock();
            book.acked.insert(bet.tx, balance);
            book.timings.push((sent_at, Instant::now()));
        }
    }
}

#[test]
fn a_killed_leader_is_replaced_and_nothing_acknowledged_is_lost() {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_nanos();
    let dir = std::env::temp_dir().join(format!("casino-cluster-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("data folder");
    let settings = dir.join("cluster.toml");
    std::fs::write(&settings, format!("token_secret = \"{}\"\n", "cd".repeat(32))).expect("settings");
    let peers = (1..=3).map(|id| format!("{id}=127.0.0.1:{}", free_port())).collect::<Vec<_>>().join(",");
    let mut cluster =
        Cluster { settings: settings.to_str().expect("UTF-8").to_string(), dir, peers, nodes: (0..3).map(|_| None).collect() };
    cluster.start(&[1, 2, 3]);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");

    // Who leads? Every node knows every shard's leader.
    let before = runtime.block_on(status(&cluster.address(1)));
    assert_eq!(before.node_id, 1);
    assert!(before.map_version >= 1, "the metadata group bootstrapped the shard map: {before:?}");
    let victim = before.shards[0].leader as usize;
    assert!((1..=3).contains(&victim), "shard 0 has a leader: {before:?}");
    let led: Vec<u32> = before.shards.iter().filter(|s| s.leader as usize == victim).map(|s| s.shard_id).collect();
    let survivors: Vec<usize> = (1..=3).filter(|&id| id != victim).collect();
    println!("node {victim} leads shards {led:?}; clients on nodes {survivors:?}");

    let clients: Vec<Arc<Client>> = survivors
        .iter()
        .map(|&id| {
            let mut config = ClientConfig::new(cluster.address(id), "dev-operator-key");
            config.retries = 20;
            config.retry_backoff = Duration::from_millis(20);
            Arc::new(runtime.block_on(Client::connect(config)).expect("connects"))
        })
        .collect();
    let tokens = Arc::new(runtime.block_on(set_up_players(clients[0].clone(), PLAYERS, FUND, SENDERS as u64)));
    // A client on the node about to be killed, which knows the others.
    let mut config = ClientConfig::new(cluster.address(victim), "dev-operator-key");
    config.fallbacks = survivors.iter().map(|&id| cluster.address(id)).collect();
    config.retry_backoff = Duration::from_millis(20);
    let moving = runtime.block_on(Client::connect(config)).expect("connects");

    let book = Arc::new(Mutex::new(Book::default()));
    let until = Instant::now() + Duration::from_secs(4);
    let tasks: Vec<_> = (0..SENDERS)
        .map(|sender| runtime.spawn(send_bets(clients[sender % 2].clone(), tokens.clone(), book.clone(), sender, until)))
        .collect();
    std::thread::sleep(Duration::from_millis(1_500));
    let acked_before_kill = book.lock().acked.len();
    let killed_at = Instant::now();
    {
        let node = cluster.nodes[victim - 1].as_mut().expect("running");
        node.child.kill().expect("SIGKILL");
        let _ = node.child.wait();
    }
    for task in tasks {
        runtime.block_on(task).expect("sender task");
    }
    cluster.nodes[victim - 1] = None;
    let book = Arc::try_unwrap(book).ok().expect("senders are done").into_inner();
    // A bet sent after the kill can only be committed by a new leader.
    let first_after = book.timings.iter().filter(|(sent, _)| *sent > killed_at).map(|(_, acked)| *acked).min();
    let acked_after_kill = book.timings.iter().filter(|(_, acked)| *acked > killed_at).count();
    let failover = first_after.map(|at| at.duration_since(killed_at));
    let slowest = book.timings.iter().map(|(sent, acked)| acked.duration_since(*sent)).max();
    println!(
        "acknowledged: {acked_before_kill} before the kill, {acked_after_kill} after; failover (kill to the first acknowledgment of a bet sent after it): {failover:?}; slowest bet {slowest:?}; {} sent",
        book.sent.len()
    );
    assert!(acked_before_kill > 100, "the cluster was busy before the kill");
    assert!(failover.is_some(), "no bet was acknowledged after the kill");
    let after = runtime.block_on(status(&cluster.address(survivors[0])));
    assert!(after.shards.iter().all(|s| s.leader as usize != victim && s.leader != 0), "new leaders: {after:?}");
    // The map survives the loss of a node, and the new leaders recorded
    // themselves in it (each record a new version).
    let recorded = |version: u64| {
        let now = runtime.block_on(status(&cluster.address(survivors[0])));
        (now.map_version >= version).then_some(now.map_version)
    };
    let mut version = recorded(before.map_version + 1);
    for _ in 0..100 {
        if version.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        version = recorded(before.map_version + 1);
    }
    assert!(version.is_some(), "the new leaders were recorded in the shard map (version {} before the kill)", before.map_version);
    let mut recorded_leaders = runtime.block_on(status(&cluster.address(survivors[0])));
    for _ in 0..100 {
        if recorded_leaders.shards.iter().all(|s| (s.map_leader, s.map_term) == (s.leader, s.term)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        recorded_leaders = runtime.block_on(status(&cluster.address(survivors[0])));
    }
    assert!(
        recorded_leaders.shards.iter().all(|s| s.map_leader != victim as u64 && (s.map_leader, s.map_term) == (s.leader, s.term)),
        "the map names the new leaders: {recorded_leaders:?}"
    );
    // The client whose node died goes on through another.
    match runtime.block_on(moving.call_retrying(In::GetBalance(proto::GetBalance { player_id: 0, currency: "EUR".into() }))) {
        Ok(Out::Balance(_)) => {}
        other => panic!("the client on the killed node did not move on: {other:?}"),
    }

    // Nothing acknowledged was lost: no balance above what acknowledged bets left.
    let mut acked_stakes: HashMap<u64, i64> = HashMap::new();
    for bet in book.sent.iter().filter(|b| book.acked.contains_key(&b.tx)) {
        *acked_stakes.entry(bet.player).or_default() += bet.stake;
    }
    let seen = runtime.block_on(balances(&clients[0]));
    for player in 0..PLAYERS {
        let most = FUND - acked_stakes.get(&player).copied().unwrap_or(0);
        assert!(seen[player as usize] <= most, "player {player} lost an acknowledged bet: {} > {most}", seen[player as usize]);
    }

    // The killed node comes back on its data and catches up.
    cluster.start(&[victim]);
    let caught_up = Instant::now();
    loop {
        let ours = runtime.block_on(status(&cluster.address(victim)));
        let theirs = runtime.block_on(status(&cluster.address(survivors[0])));
        let behind = ours.shards.iter().zip(&theirs.shards).any(|(a, b)| a.applied_index < b.applied_index);
        if !behind {
            break;
        }
        assert!(caught_up.elapsed() < Duration::from_secs(60), "node {victim} did not catch up: {ours:?} vs {theirs:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("node {victim} restarted and caught up in {:?}", caught_up.elapsed());

    // Every bet again, same ids, through the restarted node: acknowledged
    // ones are replays answering what was acknowledged; the rest apply now
    // if they had not.
    let mut config = ClientConfig::new(cluster.address(victim), "dev-operator-key");
    config.retries = 20;
    let rejoined = Arc::new(runtime.block_on(Client::connect(config)).expect("connects"));
    let book = Arc::new(book);
    let retries: Vec<_> = (0..SENDERS)
        .map(|task| {
            let (book, rejoined, tokens) = (book.clone(), rejoined.clone(), tokens.clone());
            runtime.spawn(async move {
                let mut replays = 0;
                for bet in book.sent.iter().skip(task).step_by(SENDERS) {
                    let reply = rejoined.call_retrying(bet.request(&tokens)).await.expect("a reply");
                    let (balance, replayed) = cash(&reply).unwrap_or_else(|| panic!("retry of {}: {reply:?}", bet.tx));
                    if let Some(acked) = book.acked.get(&bet.tx) {
                        assert!(replayed, "acknowledged bet {} was not there", bet.tx);
                        assert_eq!(balance, *acked, "acknowledged bet {} answers another balance", bet.tx);
                        replays += 1;
                    }
                }
                replays
            })
        })
        .collect();
    let replays: usize = retries.into_iter().map(|task| runtime.block_on(task).expect("retry task")).sum();
    assert_eq!(replays, book.acked.len());

    // Each bet applied exactly once, as every node reads it.
    let mut stakes: HashMap<u64, i64> = HashMap::new();
    for bet in &book.sent {
        *stakes.entry(bet.player).or_default() += bet.stake;
    }
    let expected: Vec<i64> = (0..PLAYERS).map(|p| FUND - stakes.get(&p).copied().unwrap_or(0)).collect();
    for id in 1..=3 {
        let client = runtime.block_on(Client::connect(ClientConfig::new(cluster.address(id), "dev-operator-key"))).expect("connects");
        assert_eq!(runtime.block_on(balances(&client)), expected, "node {id}: a bet was applied twice or lost");
        let admin = runtime.block_on(admin(&cluster.address(id)));
        match runtime.block_on(admin.call(In::CheckInvariants(proto::CheckInvariants {}))).expect("a reply") {
            Out::InvariantsChecked(_) => {}
            other => panic!("node {id}: invariants: {other:?}"),
        }
        // The logs were compacted along the way.
        let compacted = runtime.block_on(status(&cluster.address(id)));
        assert!(compacted.shards.iter().all(|s| s.snapshot_index > 0), "node {id} never compacted a log: {compacted:?}");
    }

    // An operator's snapshot: answered once written, each shard's at the
    // index it had applied (only a periodic reseed may apply after it),
    // which status then shows.
    let survivor = cluster.address(survivors[0]);
    let taken = match runtime.block_on(runtime.block_on(admin(&survivor)).call(In::TakeSnapshot(proto::TakeSnapshot {}))).expect("a reply")
    {
        Out::SnapshotTaken(taken) => taken,
        other => panic!("take snapshot: {other:?}"),
    };
    let now = runtime.block_on(status(&survivor));
    assert_eq!(taken.shards.len(), now.shards.len());
    for (snapshot, shard) in taken.shards.iter().zip(&now.shards) {
        assert_eq!(snapshot.shard_id, shard.shard_id);
        assert!(snapshot.bytes > 0 && snapshot.pause_micros <= snapshot.micros, "{snapshot:?}");
        assert!(snapshot.index > 0 && snapshot.index <= shard.applied_index, "{taken:?} {now:?}");
        assert!(shard.snapshot_index >= snapshot.index, "{taken:?} {now:?}");
    }
}

/// `casino dev --nodes 3`: one command starts a cluster whose members
/// agree on the shard map and leaders; a deposit through one node is read
/// back (linearizably) through another.
/// `casino dev` with `nodes` nodes from port `base`, in a process group of
/// its own (its id is the group's), so that a test can stop it all.
fn spawn_dev(nodes: u16, dir: &std::path::Path, base: u16) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    std::process::Command::new(support::CASINO)
        .args(["dev", "--nodes", &nodes.to_string(), "--data-dir", dir.to_str().expect("UTF-8"), "--base-port", &base.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .expect("casino dev starts")
}

#[test]
fn casino_dev_starts_a_three_node_cluster_in_one_command() {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_nanos();
    let dir = std::env::temp_dir().join(format!("casino-dev-{}-{nanos}", std::process::id()));
    // Ports base to base + 23: away from the defaults, and below Linux's
    // ephemeral range (32768 and up), where the other test's free ports and
    // every client connection's own port come from (a base inside it once
    // collided with one, and node 3 could not listen), and below the other
    // test's ports (`free_port`).
    let base = 10_000 + (std::process::id() % 450) as u16 * 24;
    let mut dev = spawn_dev(3, &dir, base);
    let group = dev.id();
    let stop = move || {
        let _ = std::process::Command::new("kill").args(["-TERM", "--", &format!("-{group}")]).status();
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let address = |node: u16| format!("127.0.0.1:{}", base + 10 * (node - 1));
    let started = Instant::now();
    let status_of = |node: u16| {
        runtime.block_on(async {
            match Client::connect(ClientConfig::new(address(node), "dev-admin-key")).await {
                Ok(client) => match client.call(In::ClusterStatus(proto::ClusterStatus {})).await {
                    Ok(Out::ClusterStatus(status)) => Some(status),
                    _ => None,
                },
                Err(_) => None,
            }
        })
    };
    // Ready when every node serves a shard map with a leader for each
    // shard: two nodes are a quorum, so node 3 can see leaders while
    // node 2 is still recovering and has not opened its port (CI once
    // failed so).
    let ready = loop {
        let statuses: Vec<_> = (1..=3).map(status_of).collect();
        if statuses.iter().all(|s| s.as_ref().is_some_and(|s| s.map_version >= 1 && s.shards.iter().all(|shard| shard.leader != 0))) {
            break statuses.into_iter().nth(2).flatten();
        }
        if started.elapsed() > Duration::from_secs(60) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let outcome = std::panic::catch_unwind(|| {
        let status = ready.expect("every node of `casino dev` serves, with a shard map and leaders, within 60 s");
        assert_eq!((status.node_id, status.shard_count), (3, 2));
        runtime.block_on(async {
            let two = Client::connect(ClientConfig::new(address(2), "dev-operator-key")).await.expect("node 2 connects");
            let three = Client::connect(ClientConfig::new(address(3), "dev-operator-key")).await.expect("node 3 connects");
            assert!(matches!(two.call_retrying(In::CreateWallet(proto::CreateWallet { player_id: 7 })).await, Ok(Out::Done(_))));
            let deposit = In::Deposit(proto::Deposit { player_id: 7, tx_id: "d1".into(), currency: "EUR".into(), amount: 1_234 });
            assert!(matches!(two.call_retrying(deposit).await, Ok(Out::Tx(_))));
            match three.call_retrying(In::GetBalance(proto::GetBalance { player_id: 7, currency: "EUR".into() })).await {
                Ok(Out::Balance(balance)) => assert_eq!(balance.cash, 1_234, "node 3 reads what node 2 acknowledged"),
                other => panic!("balance on node 3: {other:?}"),
            }
        });
        // The raft state is in the metrics too.
        let scrape = |node: u16| {
            use std::io::{Read, Write};
            let mut metrics = std::net::TcpStream::connect(format!("127.0.0.1:{}", base + 1 + 10 * (node - 1))).expect("metrics");
            metrics.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("request");
            let mut text = String::new();
            metrics.read_to_string(&mut text).expect("answer");
            text
        };
        let text = scrape(3);
        let map_version = text.lines().find_map(|l| l.strip_prefix("casino_shard_map_version ")).and_then(|v| v.trim().parse::<u64>().ok());
        assert!(map_version.is_some_and(|v| v >= 1), "{text}");
        assert!(text.contains("casino_shard_leader{shard=\"0\"} ") && !text.contains("casino_shard_leader{shard=\"0\"} 0\n"), "{text}");
        // And where the raft loop's time goes: every member syncs the entries it replicates.
        let count = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse::<u64>().ok());
        assert!(count("casino_raft_write_duration_seconds_count{sync=\"true\"}").is_some_and(|n| n > 0), "{text}");
        assert!(count("casino_raft_loop_turn_duration_seconds_count").is_some_and(|n| n > 0), "{text}");
        // Node 2 took the wallet and the deposit: it timed their commits.
        let text = scrape(2);
        let commits =
            text.lines().find_map(|l| l.strip_prefix("casino_raft_commit_duration_seconds_count")).map(|v| v.trim().parse::<u64>());
        assert!(matches!(commits, Some(Ok(n)) if n >= 2), "{text}");
    });
    // SIGTERM to `casino dev` alone (as a supervisor or `kill` sends it)
    // stops its nodes too: none is left serving.
    let _ = std::process::Command::new("kill").args(["-TERM", &group.to_string()]).status();
    let exited = dev.wait().expect("casino dev exits");
    let orphans: Vec<u16> = (1..=3).filter(|&node| std::net::TcpStream::connect(address(node)).is_ok()).collect();
    stop();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert!(exited.success(), "casino dev exits cleanly on SIGTERM: {exited}");
    assert!(orphans.is_empty(), "nodes {orphans:?} still serve after casino dev was stopped");
}

#[test]
fn the_nodes_of_casino_dev_stop_when_it_is_killed() {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_nanos();
    let dir = std::env::temp_dir().join(format!("casino-dev-killed-{}-{nanos}", std::process::id()));
    // Ports base + 4 to base + 7 of the other `casino dev` test's range,
    // which its three nodes leave unused (they take 0-3, 10-13, 20-23).
    let base = 10_000 + (std::process::id() % 450) as u16 * 24 + 4;
    let mut dev = spawn_dev(1, &dir, base);
    let group = dev.id();
    let address = format!("127.0.0.1:{base}");
    let serving = (0..600).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        std::net::TcpStream::connect(&address).is_ok()
    });
    // SIGKILL: no handler runs, so only the pipe can tell the node.
    let _ = dev.kill();
    let _ = dev.wait();
    // A bound, not a measurement: the node notices at once, but a loaded
    // CI machine may take a while to schedule it.
    let stopped = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        std::net::TcpStream::connect(&address).is_err()
    });
    // Whatever happened, leave nothing running.
    let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{group}")]).status();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(serving, "the node of `casino dev --nodes 1` serves on {address} within 60 s");
    assert!(stopped, "the node still serves 30 s after `casino dev` was killed with SIGKILL");
}
