//! The PAM HTTP API of the real `casino node` binary, checked against the
//! spec (specs/pam_api.yml) by an independent tool: Schemathesis, from PyPI
//! (`ops/test` installs it and names it in `SCHEMATHESIS`). Every check
//! runs (`--checks all`); the one setting beside the spec is in
//! `SETTINGS` below, with the deviation of the spec it answers.

mod support;

use std::path::PathBuf;
use std::process::Command;

use gateway::pam::client::PamClient;
use serde_json::json;
use support::start_node;

const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../specs/pam_api.yml");

/// Schemathesis's settings: the operator's key on every request, and for
/// the runs with a real session the player and its token in place of
/// generated ones (the API's other parameters and bodies are generated).
const SETTINGS: &str = r#"
headers = { Authorization = "Bearer dev-operator-key" }

# The spec requires one of providerTransactionId and providerBetRef ("At least
# one lookup parameter ... is required") and documents the 400 answering their
# absence, but its schema marks both optional, so Schemathesis counts a request
# with neither as valid. Answering it 400 is what the spec says: accepted here.
[[operations]]
include-operation-id = "getTransactions"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
"#;

fn schemathesis() -> String {
    std::env::var("SCHEMATHESIS").unwrap_or_else(|_| {
        let on_path = Command::new("schemathesis").arg("--version").output().is_ok_and(|o| o.status.success());
        assert!(on_path, "Schemathesis is not installed: run the suite with ./ops/test, which installs it and sets SCHEMATHESIS");
        "schemathesis".to_string()
    })
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One Schemathesis run; panics with its report unless it passes.
fn run(dir: &TempDir, url: &str, settings: &str, token: Option<&str>, operations: &[&str]) {
    std::fs::write(dir.0.join("schemathesis.toml"), settings).expect("settings written");
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261124".to_string());
    let examples = std::env::var("SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "40".to_string());
    let mut command = Command::new(schemathesis());
    command
        .current_dir(&dir.0)
        .args(["run", SPEC, "--url", url, "--checks", "all", "--max-examples", &examples, "--seed", &seed, "--workers", "2"])
        .env("NO_COLOR", "1")
        .env("PAM_TOKEN", token.unwrap_or(""));
    for operation in operations {
        command.args(["--include-operation-id", operation]);
    }
    let output = command.output().expect("schemathesis runs");
    let report = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "Schemathesis found failures (seed {seed}; SCHEMATHESIS_SEED reruns it):\n{report}");
    assert!(report.contains("passed"), "no test case ran:\n{report}");
}

async fn session(address: &str) -> String {
    let mut admin = PamClient::connect(address.parse().expect("an address"), "dev-admin-key").await.expect("connects");
    let created =
        admin.send("POST", "/admin/players", &[], Some(&json!({"operatorId": 1, "playerId": "42"}).to_string())).await.expect("answered");
    assert_eq!(created.body["status"], "OK", "{}", created.body);
    let funded = admin
        .send("POST", "/admin/players/42/deposits", &[], Some(r#"{"operatorId":1,"currency":"EUR","amount":5000,"transactionId":"fund"}"#))
        .await
        .expect("answered");
    assert_eq!(funded.body["status"], "OK", "{}", funded.body);
    // The spec's example game id, so that its example withdraws find their game.
    let request = json!({"operatorId": 1, "gameId": "ecf559b11f0", "currency": "EUR", "country": "MT", "language": "EN", "durationMs": 86_400_000u64});
    let opened = admin.send("POST", "/admin/players/42/sessions", &[], Some(&request.to_string())).await.expect("answered");
    opened.body["token"].as_str().expect("a token").to_string()
}

#[test]
fn schemathesis_finds_the_running_node_true_to_the_pam_spec() {
    let node = start_node(&[]);
    let url = format!("http://{}", node.pam_address);
    let dir = TempDir(std::env::temp_dir().join(format!("casino-schemathesis-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("a temporary folder");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");

    // Generated credentials: every operation's answers to strangers.
    run(&dir, &url, SETTINGS, None, &[]);

    // A real player and session: the operations past authentication. The
    // refresh invalidates its token, so it runs alone, with a session of its own.
    let with_session = format!("{SETTINGS}\n[parameters]\n\"path.playerId\" = \"42\"\n\"header.X-Player-Token\" = \"${{PAM_TOKEN}}\"\n");
    let token = runtime.block_on(session(&node.pam_address));
    run(&dir, &url, &with_session, Some(&token), &["getSession", "getBalance", "getTransactions", "addTransaction", "getGameRound"]);
    let token = runtime.block_on(async {
        let mut admin = PamClient::connect(node.pam_address.parse().expect("an address"), "dev-admin-key").await.expect("connects");
        let request = json!({"operatorId": 1, "gameId": "ecf559b11f0", "currency": "EUR", "durationMs": 86_400_000u64});
        let opened = admin.send("POST", "/admin/players/42/sessions", &[], Some(&request.to_string())).await.expect("answered");
        opened.body["token"].as_str().expect("a token").to_string()
    });
    run(&dir, &url, &with_session, Some(&token), &["refreshSession"]);
}

#[test]
fn pam_load_plays_pairs_and_checks_every_balance_with_and_without_pipelining() {
    let dir = TempDir(std::env::temp_dir().join(format!("casino-pam-load-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let node = start_node(&["--data-dir", &dir.0.to_string_lossy()]);
    for (pipeline, base) in [("0", "100000"), ("4", "200000")] {
        let output = Command::new(support::CASINO)
            .args(["pam-load", "--address", &node.pam_address, "--players", "20", "--pairs", "2000", "--connections", "4"])
            .args(["--pipeline", pipeline, "--player-base", base, "--json"])
            .output()
            .expect("casino pam-load runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "pam-load failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("one JSON line");
        assert_eq!((report["pairs"].as_u64(), report["balances_checked"].as_u64()), (Some(2000), Some(20)), "{report}");
        assert!(report["pairs_per_second"].as_f64().is_some_and(|r| r > 0.0), "{report}");
    }
    // A player id already taken is refused, not silently reused.
    let output = Command::new(support::CASINO)
        .args([
            "pam-load",
            "--address",
            &node.pam_address,
            "--players",
            "4",
            "--pairs",
            "10",
            "--connections",
            "2",
            "--player-base",
            "100000",
        ])
        .output()
        .expect("casino pam-load runs");
    assert!(!output.status.success());
}
