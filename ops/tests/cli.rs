//! The `casino` binary, run as a user would.

use std::process::Command;

fn casino(args: &[&str]) -> (bool, Vec<u8>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_casino")).args(args).output().expect("casino runs");
    (output.status.success(), output.stdout, String::from_utf8_lossy(&output.stderr).into_owned())
}

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

#[test]
fn raw_output_has_the_asked_length_and_a_fixed_key_reproduces_it() {
    let (ok, first, _) = casino(&["rng", "raw", "--bytes", "100000", "--key", KEY]);
    assert!(ok);
    assert_eq!(first.len(), 100_000);
    let (_, second, _) = casino(&["rng", "raw", "--bytes", "100000", "--key", KEY]);
    assert_eq!(first, second);
    // With OS entropy two runs differ.
    let (_, a, _) = casino(&["rng", "raw", "--bytes", "64"]);
    let (_, b, _) = casino(&["rng", "raw", "--bytes", "64"]);
    assert_ne!(a, b);
    // Byte frequencies are flat: chi-square over 256 bins at p = 0.001 (critical 330.5).
    let mut counts = [0f64; 256];
    for byte in &first {
        counts[usize::from(*byte)] += 1.0;
    }
    let expected = first.len() as f64 / 256.0;
    let chi: f64 = counts.iter().map(|c| (c - expected).powi(2) / expected).sum();
    assert!(chi < 330.5, "chi-square {chi}");
}

#[test]
fn outcomes_are_in_range_for_every_game() {
    for (game, check) in [
        ("roulette-eu", (|line: &str| line.parse::<u32>().is_ok_and(|p| p <= 36)) as fn(&str) -> bool),
        ("dice", |line| line.parse::<u32>().is_ok_and(|r| r < 10_000)),
        ("crash", |line| line.parse::<f64>().is_ok_and(|x| x >= 1.0)),
        ("lucky-lines", |line| line.split(';').all(|spin| spin.split(' ').count() == 5)),
    ] {
        let (ok, out, err) = casino(&["rng", "outcomes", "--game", game, "--count", "2000", "--key", KEY]);
        assert!(ok, "{game}: {err}");
        let text = String::from_utf8(out).expect("text");
        assert_eq!(text.lines().count(), 2000, "{game}");
        assert!(text.lines().all(check), "{game}: {}", text.lines().find(|l| !check(l)).unwrap_or_default());
    }
    let (ok, _, err) = casino(&["rng", "outcomes", "--game", "poker", "--count", "1"]);
    assert!(!ok && err.contains("unknown game"));
}

#[test]
fn rtp_reports_the_theoretical_value_inside_the_interval() {
    for (game, bet) in [("dice", "over:2500"), ("roulette-eu", "dozen:1"), ("crash", "1.50"), ("lucky-lines", "spin")] {
        let (ok, out, err) = casino(&["rtp", "--game", game, "--bet", bet, "--spins", "200000", "--key", KEY, "--json"]);
        assert!(ok, "{game}: {err}");
        let line = String::from_utf8(out).expect("text");
        assert!(line.contains("\"theoretical_inside_ci\":true"), "{line}");
        assert!(line.contains("\"rounds\":200000"), "{line}");
    }
    let (ok, _, err) = casino(&["rtp", "--game", "roulette-eu", "--bet", "split:3,4"]);
    assert!(!ok && err.contains("not a valid bet"), "{err}");
}

#[test]
fn fair_verify_recomputes_a_round_and_shows_the_seed_hash() {
    let (ok, out, err) = casino(&[
        "fair",
        "verify",
        "--server-seed",
        KEY,
        "--client-seed",
        "alice",
        "--nonce",
        "3",
        "--game",
        "dice",
        "--bet",
        "under:5000",
    ]);
    assert!(ok, "{err}");
    let text = String::from_utf8(out).expect("text");
    // SHA-256 of the bytes 00..1f.
    assert!(text.contains("630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd"), "{text}");
    let (_, again, _) = casino(&[
        "fair",
        "verify",
        "--server-seed",
        KEY,
        "--client-seed",
        "alice",
        "--nonce",
        "3",
        "--game",
        "dice",
        "--bet",
        "under:5000",
    ]);
    assert_eq!(text.as_bytes(), &again[..]);
    let (_, other, _) = casino(&[
        "fair",
        "verify",
        "--server-seed",
        KEY,
        "--client-seed",
        "alice",
        "--nonce",
        "4",
        "--game",
        "dice",
        "--bet",
        "under:5000",
    ]);
    assert_ne!(text.as_bytes(), &other[..]);
    let (ok, _, err) = casino(&["fair", "verify", "--server-seed", "abc", "--client-seed", "a", "--nonce", "0", "--game", "dice"]);
    assert!(!ok && err.contains("server seed"), "{err}");
}

#[test]
fn a_recorded_round_is_shown_again_and_its_win_checked() {
    let (ok, out, err) =
        casino(&["round", "show", "--game", "roulette-eu", "--bet", "red", "--stake", "100", "--outcome", "1", "--win", "200"]);
    assert!(ok, "{err}");
    let text = String::from_utf8(out).expect("text");
    assert!(text.contains("landed on 1") && text.contains("win      200"), "{text}");
    let (ok, _, err) =
        casino(&["round", "show", "--game", "roulette-eu", "--bet", "red", "--stake", "100", "--outcome", "1", "--win", "300"]);
    assert!(!ok && err.contains("the rules give 200"), "{err}");
    // Every outcome the generator draws can be shown again.
    let (_, outcomes, _) = casino(&["rng", "outcomes", "--game", "lucky-lines", "--count", "50", "--key", KEY]);
    for line in String::from_utf8(outcomes).expect("text").lines() {
        let (ok, out, err) = casino(&["round", "show", "--game", "lucky-lines", "--stake", "100", "--outcome", line]);
        assert!(ok, "{line}: {err}");
        assert!(String::from_utf8(out).expect("text").contains("base spin"));
    }
    // A slot record with free spins missing is refused.
    let (ok, _, _) = casino(&["round", "show", "--game", "lucky-lines", "--stake", "100", "--outcome", "0 0 0 0 99"]);
    assert!(!ok);
}

#[test]
fn casino_sim_passes_its_books_and_fails_with_the_seed_when_a_bug_is_planted() {
    let run = |extra: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_casino"))
            .args(["sim", "--scenario", "steady", "--players", "500", "--bets", "5000", "--seed", "42"])
            .args(extra)
            .output()
            .expect("casino runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = run(&[]);
    assert!(ok && stdout.contains("all checks passed"), "{stdout}\n{stderr}");
    let (ok, stdout, stderr) = run(&["--plant-double-apply"]);
    assert!(!ok, "a planted bug must fail the run:\n{stdout}");
    assert!(stdout.contains("transactions applied twice: 1") || stdout.contains("transactions applied twice: 2"), "{stdout}");
    assert!(stderr.contains("--seed 42"), "{stderr}");
}
