//! The durability test: the real `casino node` on a data folder, driven
//! with bets and killed with SIGKILL at random moments, restarted on the
//! same folder each time. After every restart:
//! - every acknowledged bet is there, with the balance it was acknowledged with;
//! - every unacknowledged bet is wholly there or wholly absent: each
//!   player's balance is the funding less the acknowledged stakes less the
//!   stakes of exactly those unacknowledged bets that a retry reports as
//!   already applied;
//! - retries with the same transaction ids do not spend twice: once every
//!   bet has been retried, each balance is the funding less every stake once.
//!
//! The seed is printed; `CRASH_SEED=N` replays the same kill schedule and bets.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use casino_client::proto::{self, client_frame::Body as In, server_frame::Body as Out};
use casino_client::{Client, ClientConfig};
use parking_lot::Mutex;
use support::{cash, set_up_players, start_node, Bet};

const KILLS: u32 = 20;
const PLAYERS: u64 = 2_000;
const FUND: i64 = 1_000_000_000;
/// Bets per player at most (the engine keeps 64 open bets per wallet).
const BETS_PER_PLAYER: usize = 60;
const SENDERS: usize = 16;

#[derive(Default)]
struct Book {
    /// Every bet sent, in order.
    sent: Vec<Bet>,
    /// Cash balance each acknowledged bet was answered with.
    acked: HashMap<String, i64>,
    bets_of: HashMap<u64, usize>,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// After a restart: checks the books against the node, then retries every
/// unacknowledged bet and a sample of acknowledged ones.
async fn verify(client: &Client, tokens: &[Vec<u8>], book: &mut Book, rng: &mut Rng, kill: u32) -> (usize, usize) {
    let mut acked_stakes: HashMap<u64, i64> = HashMap::new();
    for bet in &book.sent {
        if book.acked.contains_key(&bet.tx) {
            *acked_stakes.entry(bet.player).or_default() += bet.stake;
        }
    }
    let mut before = HashMap::new();
    for player in 0..PLAYERS {
        match client.call(In::GetBalance(proto::GetBalance { player_id: player, currency: "EUR".into() })).await.expect("a reply") {
            Out::Balance(balance) => {
                assert!(
                    balance.cash <= FUND - acked_stakes.get(&player).copied().unwrap_or(0),
                    "kill {kill}: player {player} lost an acknowledged bet"
                );
                before.insert(player, balance.cash);
            }
            other => panic!("balance of {player}: {other:?}"),
        }
    }
    // Retry the unacknowledged bets: "replayed" means it was applied before the kill.
    let unacked: Vec<Bet> = book.sent.iter().filter(|b| !book.acked.contains_key(&b.tx)).cloned().collect();
    let mut found_stakes: HashMap<u64, i64> = HashMap::new();
    let mut found = 0;
    for bet in &unacked {
        let reply = client.call(bet.request(tokens)).await.expect("a reply");
        let (balance, replayed) = cash(&reply).unwrap_or_else(|| panic!("retry of {}: {reply:?}", bet.tx));
        if replayed {
            *found_stakes.entry(bet.player).or_default() += bet.stake;
            found += 1;
        }
        book.acked.insert(bet.tx.clone(), balance);
    }
    for player in 0..PLAYERS {
        let expected = FUND - acked_stakes.get(&player).copied().unwrap_or(0) - found_stakes.get(&player).copied().unwrap_or(0);
        assert_eq!(before[&player], expected, "kill {kill}: player {player}: a bet is neither wholly there nor wholly absent");
    }
    // A sample of acknowledged bets: each retry returns the acknowledged result.
    let acked: Vec<Bet> = book.sent.iter().filter(|b| !unacked.iter().any(|u| u.tx == b.tx)).cloned().collect();
    for _ in 0..acked.len().min(200) {
        let bet = &acked[rng.below(acked.len() as u64) as usize];
        let reply = client.call(bet.request(tokens)).await.expect("a reply");
        assert_eq!(cash(&reply), Some((book.acked[&bet.tx], true)), "kill {kill}: retry of acknowledged {}", bet.tx);
    }
    // Every bet is now applied exactly once.
    let mut stakes: HashMap<u64, i64> = HashMap::new();
    for bet in &book.sent {
        *stakes.entry(bet.player).or_default() += bet.stake;
    }
    for player in 0..PLAYERS {
        match client.call(In::GetBalance(proto::GetBalance { player_id: player, currency: "EUR".into() })).await.expect("a reply") {
            Out::Balance(balance) => {
                assert_eq!(
                    balance.cash,
                    FUND - stakes.get(&player).copied().unwrap_or(0),
                    "kill {kill}: player {player} spent twice or lost a bet"
                );
            }
            other => panic!("balance of {player}: {other:?}"),
        }
    }
    (found, unacked.len() - found)
}

/// Sends bets until the connection dies (the kill) or the players are full.
async fn send_bets(client: Arc<Client>, tokens: Arc<Vec<Vec<u8>>>, book: Arc<Mutex<Book>>, mut rng: Rng, cycle: u32, sender: usize) {
    for n in 0.. {
        let bet = {
            let mut book = book.lock();
            let mut player = rng.below(PLAYERS);
            let mut tries = 0;
            while book.bets_of.get(&player).copied().unwrap_or(0) >= BETS_PER_PLAYER {
                player = (player + 1) % PLAYERS;
                tries += 1;
                if tries > PLAYERS {
                    return;
                }
            }
            *book.bets_of.entry(player).or_default() += 1;
            let tx = format!("k{cycle}-s{sender}-{n}");
            let bet = Bet { player, round: format!("r-{tx}"), tx, stake: 1 + rng.below(5_000) as i64 };
            book.sent.push(bet.clone());
            bet
        };
        match client.call(bet.request(&tokens)).await {
            Ok(reply) => {
                let (balance, replayed) = cash(&reply).unwrap_or_else(|| panic!("bet {}: {reply:?}", bet.tx));
                assert!(!replayed, "a new bet is never a replay");
                book.lock().acked.insert(bet.tx, balance);
            }
            Err(_) => return,
        }
    }
}

#[test]
fn acknowledged_bets_survive_sigkill_and_retries_do_not_spend_twice() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_nanos() as u64);
    println!("CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_nanos();
    let dir = std::env::temp_dir().join(format!("casino-crash-{}-{nanos}", std::process::id()));
    let dir_text = dir.to_str().expect("a UTF-8 path").to_string();
    std::fs::create_dir_all(&dir).expect("data folder");
    let settings = dir.join("casino.toml");
    std::fs::write(&settings, format!("token_secret = \"{}\"\n", "ab".repeat(32))).expect("settings");
    let settings = settings.to_str().expect("a UTF-8 path").to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut book = Book::default();
    let mut kill_points = 0;
    let mut tokens = Arc::new(Vec::new());
    for cycle in 0..=KILLS {
        // Small snapshot intervals, so kills land during snapshots and recoveries replay snapshot + log.
        let mut node = start_node(&["--config", &settings, "--data-dir", &dir_text, "--snapshot-every", "1500"]);
        let recovered = node.banner.iter().find(|l| l.contains("data: ")).cloned().unwrap_or_default();
        let client =
            Arc::new(runtime.block_on(Client::connect(ClientConfig::new(node.address.clone(), "dev-operator-key"))).expect("connects"));
        if cycle == 0 {
            tokens = Arc::new(runtime.block_on(set_up_players(client.clone(), PLAYERS, FUND, SENDERS as u64)));
        } else {
            let (found, absent) = runtime.block_on(verify(&client, &tokens, &mut book, &mut rng, cycle));
            println!("  restart {cycle}: of the unacknowledged bets {found} were applied before the kill, {absent} were not");
        }
        if cycle == KILLS {
            break;
        }
        let shared = Arc::new(Mutex::new(std::mem::take(&mut book)));
        let tasks: Vec<_> = (0..SENDERS)
            .map(|sender| {
                let task_rng = Rng(rng.next());
                runtime.spawn(send_bets(client.clone(), tokens.clone(), shared.clone(), task_rng, cycle, sender))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(10 + rng.below(200)));
        // SIGKILL: no shutdown path runs.
        node.child.kill().expect("SIGKILL");
        let _ = node.child.wait();
        kill_points += 1;
        for task in tasks {
            runtime.block_on(task).expect("sender task");
        }
        drop(node);
        book = Arc::try_unwrap(shared).ok().expect("senders are done").into_inner();
        let unacked = book.sent.iter().filter(|b| !book.acked.contains_key(&b.tx)).count();
        println!("kill {}: {} bets sent, {unacked} unacknowledged at the kill; {recovered}", cycle + 1, book.sent.len());
    }
    assert_eq!(kill_points, KILLS);
    assert!(book.sent.len() > 1_000, "enough bets to mean something: {}", book.sent.len());
    let _ = std::fs::remove_dir_all(&dir);
}
