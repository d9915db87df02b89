//! Shared by the tests that run the real `casino` binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use casino_client::proto::{self, client_frame::Body as In, server_frame::Body as Out};
use casino_client::Client;

pub const CASINO: &str = env!("CARGO_BIN_EXE_casino");

/// A running `casino node`, killed when dropped (also when a test panics).
pub struct NodeProcess {
    pub child: Child,
    pub address: String,
    pub metrics_address: String,
    /// The PAM HTTP API's address.
    pub pam_address: String,
    /// What the node printed before it was ready.
    pub banner: Vec<String>,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `casino node` on port 0 with two shards and `extra` arguments, and
/// reads the bound addresses from its banner. In memory unless `extra`
/// names a `--data-dir`.
pub fn start_node(extra: &[&str]) -> NodeProcess {
    spawn_node(extra).ready()
}

/// A `casino node` started but not yet known to be ready (members of a
/// cluster wait for each other before they print their banner).
pub struct Spawned(NodeProcess);

impl Spawned {
    /// Waits for the banner and reads the bound addresses from it.
    pub fn ready(self) -> NodeProcess {
        read_banner(self.0)
    }
}

/// Starts `casino node` as [`start_node`] does, without waiting.
pub fn spawn_node(extra: &[&str]) -> Spawned {
    let child = Command::new(CASINO)
        .args(["node", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--pam-listen", "127.0.0.1:0", "--shards", "2"])
        .args(extra)
        .args(if extra.contains(&"--data-dir") { &[][..] } else { &["--in-memory"][..] })
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("casino node starts");
    Spawned(NodeProcess { child, address: String::new(), metrics_address: String::new(), pam_address: String::new(), banner: Vec::new() })
}

fn read_banner(mut node: NodeProcess) -> NodeProcess {
    let stdout = node.child.stdout.take().expect("piped stdout");
    let (lines_out, lines) = mpsc::channel();
    // Hands over every line, so the node never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_out.send(line).is_err() {
                // The test stopped listening: keep draining.
                continue;
            }
        }
    });
    // The banner: up to the address line (the node is ready then), and what
    // follows it at once (keys, operators), until the last line or a quiet second.
    loop {
        let line = lines.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("no address line within 30 s: {:?}", node.banner));
        let ready = line.starts_with("casino node: binary protocol on ");
        node.banner.push(line);
        if ready {
            break;
        }
    }
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) {
        let last = line.starts_with("  protocol:");
        node.banner.push(line);
        if last {
            break;
        }
    }
    let line = node
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("casino node: binary protocol on "))
        .unwrap_or_else(|| panic!("no address line in {:?}", node.banner))
        .to_string();
    let (address, rest) = line.split_once(", metrics on http://").unwrap_or_else(|| panic!("unexpected line {line:?}"));
    node.address = address.strip_suffix(" (TLS)").unwrap_or(address).to_string();
    node.metrics_address = rest.strip_suffix("/metrics").unwrap_or_else(|| panic!("unexpected line {line:?}")).to_string();
    node.pam_address = node
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("  PAM seamless-wallet API (docs/pam.md) on http://"))
        .and_then(|rest| rest.strip_suffix("/players/..."))
        .unwrap_or_else(|| panic!("no PAM address line in {:?}", node.banner))
        .to_string();
    assert!(node.address.starts_with("127.0.0.1:") && !node.address.ends_with(":0"), "{}", node.address);
    assert!(node.pam_address.starts_with("127.0.0.1:") && !node.pam_address.ends_with(":0"), "{}", node.pam_address);
    assert!(node.metrics_address.starts_with("127.0.0.1:") && !node.metrics_address.ends_with(":0"), "{}", node.metrics_address);
    node
}

/// A bet the tests send, as the books remember it.
#[derive(Clone, Debug)]
pub struct Bet {
    pub player: u64,
    pub tx: String,
    pub round: String,
    pub stake: i64,
}

impl Bet {
    /// The request: a provider-round bet on the player's session (`tokens`
    /// by player).
    pub fn request(&self, tokens: &[Vec<u8>]) -> In {
        In::Bet(proto::Bet {
            session_token: tokens[self.player as usize].clone(),
            tx_id: self.tx.clone(),
            round_id: self.round.clone(),
            game_id: "provider-game".into(),
            currency: "EUR".into(),
            stake: Some(proto::Stake { kind: Some(proto::stake::Kind::Amount(self.stake)) }),
        })
    }
}

/// A movement's cash balance and whether it was a replay.
pub fn cash(reply: &Out) -> Option<(i64, bool)> {
    match reply {
        Out::Tx(tx) => tx.balance.as_ref().map(|b| (b.cash, tx.replayed)),
        _ => None,
    }
}

/// Players 0 to `players`, each with a wallet, `fund` EUR cents and a day's
/// session on "provider-game", from `tasks` tasks at once (retrying what a
/// node could not confirm): their session tokens, by player.
pub async fn set_up_players(client: Arc<Client>, players: u64, fund: i64, tasks: u64) -> Vec<Vec<u8>> {
    let handles: Vec<_> = (0..tasks)
        .map(|first| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut tokens = Vec::new();
                for player in (first..players).step_by(tasks as usize) {
                    let created = client.call_retrying(In::CreateWallet(proto::CreateWallet { player_id: player })).await;
                    assert!(matches!(created, Ok(Out::Done(_))), "create {player}: {created:?}");
                    let deposit =
                        In::Deposit(proto::Deposit { player_id: player, tx_id: "fund".into(), currency: "EUR".into(), amount: fund });
                    assert!(matches!(client.call_retrying(deposit).await, Ok(Out::Tx(_))));
                    let open = In::OpenSession(proto::OpenSession {
                        player_id: player,
                        game_id: "provider-game".into(),
                        currency: "EUR".into(),
                        duration_ms: 24 * 3_600_000,
                        ..Default::default()
                    });
                    match client.call_retrying(open).await.expect("a reply") {
                        Out::SessionOpened(opened) => tokens.push((player, opened.token)),
                        other => panic!("open session for {player}: {other:?}"),
                    }
                }
                tokens
            })
        })
        .collect();
    let mut tokens = vec![Vec::new(); players as usize];
    for handle in handles {
        for (player, token) in handle.await.expect("setup task") {
            tokens[player as usize] = token;
        }
    }
    tokens
}
