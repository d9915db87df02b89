//! `casino node` and `casino load`, run as a user would: the real binary,
//! as a child process, on loopback ports it picks itself.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{start_node, NodeProcess, CASINO};

use casino_client::proto::{self, client_frame::Body as In, server_frame::Body as Out};
use casino_client::{Client, ClientConfig, ClientError};

/// Runs `casino` to completion: (success, stdout, stderr).
fn casino(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(CASINO).args(args).output().expect("casino runs");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// The number after `"key":` in a one-line JSON object.
fn json_number(json: &str, key: &str) -> Option<f64> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &json[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

fn scrape(metrics_address: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(metrics_address).expect("connect to metrics");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
}

fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

fn run_load(node: &NodeProcess, extra: &[&str]) -> String {
    let mut args = vec!["load", "--address", node.address.as_str(), "--requests", "3000", "--players", "50", "--json"];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = casino(&args);
    assert!(ok, "casino load failed:\n{stdout}\n{stderr}");
    let json = stdout.lines().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON line in {stdout:?}")).to_string();
    assert!(json.contains("\"bets\":3000"), "{json}");
    assert!(json.contains("\"refusals\":0"), "{json}");
    json
}

#[test]
fn load_runs_bet_and_win_rounds_against_a_node_without_refusals() {
    let node = start_node(&[]);
    assert!(node.banner.iter().any(|l| l.contains("development keys")), "{:?}", node.banner);
    let json = run_load(&node, &[]);
    // A round is a bet and a win: 3000 bets make 6000 requests.
    assert_eq!(json_number(&json, "requests"), Some(6_000.0), "{json}");
    assert!(json_number(&json, "bets_per_second").is_some_and(|r| r > 0.0), "{json}");
    let p50 = json_number(&json, "latency_us_p50").expect("p50");
    let max = json_number(&json, "latency_us_max").expect("max");
    assert!(p50 >= 1.0 && p50 <= max, "{json}");
    // The node counted them: 3000 bets, and 50 wallets over its two shards.
    let metrics = scrape(&node.metrics_address);
    assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
    assert_eq!(metric(&metrics, "casino_requests_total{op=\"bet\"}"), Some(3_000));
    assert_eq!(metric(&metrics, "casino_requests_total{op=\"win\"}"), Some(3_000));
    let wallets: u64 = (0..2).map(|s| metric(&metrics, &format!("casino_shard_wallets{{shard=\"{s}\"}}")).expect("a shard")).sum();
    assert_eq!(wallets, 50);
    assert!(
        (0..2).all(|s| metric(&metrics, &format!("casino_shard_wallets{{shard=\"{s}\"}}")).is_some_and(|w| w > 0)),
        "both shards hold players"
    );
}

/// Open loop: the bets go out at the rate asked, the connections taking
/// turns, never faster (3,000 bets at 6,000 a second take half a second at
/// least), and every one is answered.
#[test]
fn open_loop_load_sends_at_the_rate_asked() {
    let node = start_node(&[]);
    let json = run_load(&node, &["--rate", "6000", "--connections", "3", "--workload", "bet"]);
    let seconds = json_number(&json, "seconds").expect("seconds");
    assert!(seconds >= 0.5, "3,000 bets at 6,000/s went out faster than paced: {json}");
    assert_eq!(json_number(&json, "requests"), Some(3_000.0), "{json}");
}

#[test]
fn load_plays_slot_spins_against_a_node_without_refusals() {
    let node = start_node(&[]);
    let json = run_load(&node, &["--workload", "slot"]);
    // A spin is one request.
    assert_eq!(json_number(&json, "requests"), Some(3_000.0), "{json}");
    let metrics = scrape(&node.metrics_address);
    assert_eq!(metric(&metrics, "casino_requests_total{op=\"play\"}"), Some(3_000));
    assert_eq!(metric(&metrics, "casino_bets_total"), Some(3_000));
    assert_eq!(metric(&metrics, "casino_rejections_total{code=\"1000\",name=\"RngNotSeeded\"}"), Some(0));
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn key_hash(key: &str) -> String {
    let (ok, stdout, stderr) = casino(&["key-hash", key]);
    assert!(ok, "{stderr}");
    let hash = stdout.trim().to_string();
    assert_eq!(hash.len(), 64, "{hash:?}");
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{hash:?}");
    hash
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_file_switches_tls_on_and_load_connects_with_the_ca() {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_nanos();
    let stem = std::env::temp_dir().join(format!("casino-tls-test-{}-{nanos}", std::process::id()));
    let (cert, key, settings) =
        (TempFile(stem.with_extension("cert.pem")), TempFile(stem.with_extension("key.pem")), TempFile(stem.with_extension("toml")));
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("a certificate");
    std::fs::write(&cert.0, certified.cert.pem()).expect("write the certificate");
    std::fs::write(&key.0, certified.key_pair.serialize_pem()).expect("write the key");
    std::fs::write(&settings.0, format!("[tls]\ncert = {:?}\nkey = {:?}\n", cert.0, key.0)).expect("write the settings");
    let node = start_node(&["--config", settings.0.to_str().expect("a UTF-8 path")]);
    assert!(node.banner.iter().any(|l| l.contains("(TLS)")), "{:?}", node.banner);

    // The load generator, trusting the certificate, runs its bets over TLS.
    run_load(&node, &["--ca", cert.0.to_str().expect("a UTF-8 path"), "--server-name", "localhost"]);
    // And the administrator's tool.
    let (ok, stdout, stderr) = casino(&[
        "admin",
        "--address",
        &node.address,
        "--ca",
        cert.0.to_str().expect("a UTF-8 path"),
        "--server-name",
        "localhost",
        "status",
    ]);
    assert!(ok, "casino admin over TLS failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("2 shards"), "{stdout}");
    // So does the client library; plain TCP gets no HelloOk from the TLS port.
    let mut config = ClientConfig::new(node.address.clone(), "dev-operator-key");
    config.tls = Some(casino_client::tls::connector(&cert.0, "localhost").expect("a TLS connector"));
    let op = Client::connect(config).await.expect("a TLS connection");
    assert!(matches!(op.call(In::Ping(proto::Ping {})).await, Ok(Out::Pong(_))));
    let mut plain = ClientConfig::new(node.address.clone(), "dev-operator-key");
    plain.retries = 0;
    assert!(Client::connect(plain).await.is_err(), "a plain TCP client is not served on the TLS port");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_file_configures_operators_and_keys_and_the_development_keys_are_gone() {
    const OPERATOR_KEY: &str = "operator-nine-secret";
    const ADMIN_KEY: &str = "admin-secret";
    // The hash of a known key: SHA-256("abc").
    assert_eq!(key_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_nanos();
    let settings = TempFile(std::env::temp_dir().join(format!("casino-node-test-{}-{nanos}.toml", std::process::id())));
    std::fs::write(
        &settings.0,
        format!(
            "[[operators]]\nid = 9\napi_key_sha256 = \"{}\"\ncurrencies = [\"EUR:2\"]\n\n[[admins]]\napi_key_sha256 = \"{}\"\n",
            key_hash(OPERATOR_KEY),
            key_hash(ADMIN_KEY)
        ),
    )
    .expect("write the settings");
    let node = start_node(&["--config", settings.0.to_str().expect("a UTF-8 path")]);
    assert!(node.banner.iter().any(|l| l.contains("operators: 9")), "{:?}", node.banner);
    assert!(!node.banner.iter().any(|l| l.contains("development keys")), "{:?}", node.banner);

    // The configured key is operator 9, which deals in EUR.
    let op = Client::connect(ClientConfig::new(node.address.clone(), OPERATOR_KEY)).await.expect("the key is accepted");
    let hello = op.hello().expect("a HelloOk");
    assert_eq!((hello.role.as_str(), hello.operator_id), ("operator", 9));
    assert!(matches!(op.call(In::CreateWallet(proto::CreateWallet { player_id: 90 })).await, Ok(Out::Done(_))));
    let deposit = |tx: &str, currency: &str| {
        In::Deposit(proto::Deposit { player_id: 90, tx_id: tx.into(), currency: currency.into(), amount: 2_500 })
    };
    match op.call(deposit("d-1", "EUR")).await.expect("a reply") {
        Out::Tx(tx) => {
            assert_eq!(tx.balance, Some(proto::Balance { currency: "EUR".into(), cash: 2_500, bonus: 0, promo: 0 }));
            assert!(!tx.replayed);
        }
        other => panic!("expected a TxResult, got {other:?}"),
    }
    match op.call(deposit("d-2", "USD")).await.expect("a reply") {
        Out::Rejected(r) => assert_eq!((r.code, r.name.as_str()), (204, "UnknownCurrency")),
        other => panic!("USD is not operator 9's: {other:?}"),
    }

    // The development keys are refused.
    for key in ["dev-operator-key", "dev-sweeps-key", "dev-admin-key"] {
        match Client::connect(ClientConfig::new(node.address.clone(), key)).await {
            Err(ClientError::Refused { code, .. }) => assert_eq!(code, 2004, "{key}"),
            other => panic!("{key}: expected BadCredentials, got {other:?}"),
        }
    }

    // The admin key sees the cluster.
    let admin = Client::connect(ClientConfig::new(node.address.clone(), ADMIN_KEY)).await.expect("the admin key is accepted");
    assert_eq!(admin.hello().expect("a HelloOk").role, "admin");
    match admin.call(In::ClusterStatus(proto::ClusterStatus {})).await.expect("a reply") {
        Out::ClusterStatus(status) => {
            assert_eq!(status.shard_count, 2);
            assert_eq!(status.shards.iter().map(|s| s.wallets).sum::<u64>(), 1);
        }
        other => panic!("expected ClusterStatus, got {other:?}"),
    }
}

#[test]
fn a_node_keeps_its_data_across_restarts_and_snapshots_on_demand() {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_nanos();
    let dir = std::env::temp_dir().join(format!("casino-node-data-{}-{nanos}", std::process::id()));
    let dir_text = dir.to_str().expect("a UTF-8 path").to_string();
    let node = start_node(&["--data-dir", &dir_text]);
    assert!(node.banner.iter().any(|l| l.contains("data: ") && l.contains("Sync durability")), "{:?}", node.banner);
    run_load(&node, &["--workload", "bet"]);
    let metrics = scrape(&node.metrics_address);
    let fsyncs = metric(&metrics, "casino_fsyncs_total").expect("an fsync counter");
    let submissions = metric(&metrics, "casino_commit_submissions_total").expect("a submission counter");
    assert!(fsyncs > 0 && fsyncs <= submissions, "{fsyncs} fsyncs for {submissions} batches");

    let (ok, stdout, stderr) = casino(&["admin", "snapshot", "--address", &node.address]);
    assert!(ok, "{stdout}\n{stderr}");
    let indexes: Vec<u64> = stdout.lines().skip(1).filter_map(|l| l.split_whitespace().nth(1)?.parse().ok()).collect();
    assert_eq!(indexes.len(), 2, "{stdout}");
    assert!(indexes.iter().all(|i| *i > 0), "{stdout}");
    let (ok, status, _) = casino(&["admin", "status", "--address", &node.address]);
    assert!(ok && status.contains("snapshot"), "{status}");
    drop(node);

    // Killed (the drop) and started again: the wallets are back, the log after the snapshot replayed.
    let node = start_node(&["--data-dir", &dir_text]);
    let data_line = node.banner.iter().find(|l| l.contains("data: ")).cloned().unwrap_or_default();
    assert!(data_line.contains("recovered 50 wallets"), "{data_line}");
    let (ok, status, _) = casino(&["admin", "status", "--address", &node.address]);
    assert!(ok, "{status}");
    let snapshot_column: Vec<u64> = status.lines().skip(2).filter_map(|l| l.split_whitespace().nth(2)?.parse().ok()).collect();
    assert_eq!(snapshot_column, indexes, "{status}");
    // The journal outlives the truncated log: the first batches' events are there, read beside the running node.
    let (ok, journal, stderr) = casino(&["journal", "--data-dir", &dir_text, "--limit", "0"]);
    assert!(ok, "{stderr}");
    assert_eq!(journal.lines().filter(|l| l.contains("WalletCreated")).count(), 50, "{}", &journal[..journal.len().min(2_000)]);
    assert_eq!(journal.lines().filter(|l| l.contains("BetPlaced")).count(), 3_000);
    let (ok, first, _) = casino(&["journal", "--data-dir", &dir_text, "--shard", "1", "--limit", "3"]);
    assert!(ok && first.lines().count() == 3 && first.lines().all(|l| l.starts_with("shard 1 index ")), "{first}");
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_simulator_drives_a_node_over_tcp_and_checks_the_books_from_its_journal() {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_nanos();
    let dir = std::env::temp_dir().join(format!("casino-sim-data-{}-{nanos}", std::process::id()));
    let dir_text = dir.to_str().expect("a UTF-8 path").to_string();
    let node = start_node(&["--data-dir", &dir_text]);
    let args = [
        "sim",
        "--target",
        "tcp",
        "--address",
        &node.address,
        "--data-dir",
        &dir_text,
        "--players",
        "300",
        "--bets",
        "3000",
        "--connections",
        "8",
        "--json",
    ];
    let (ok, stdout, stderr) = casino(&args);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("\"passed\":true"), "{stdout}");
    assert_eq!(json_number(&stdout, "wallets_checked"), Some(300.0), "{stdout}");
    assert_eq!(json_number(&stdout, "bets"), Some(3000.0), "{stdout}");
    assert!(stdout.contains("\"invariants_checked\":true") && stdout.contains("\"invariants_hold\":true"), "{stdout}");
    let (ok, checked, stderr) = casino(&["admin", "--address", &node.address, "check"]);
    assert!(ok && checked.lines().count() == 2 && checked.contains("invariants hold"), "{checked}\n{stderr}");
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}
