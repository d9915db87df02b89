//! Every shipped scenario, small, passes its books; a seed reproduces a run.

use sim::{inprocess, Progress, Scenario};

fn small(name: &str) -> Scenario {
    let mut scenario = Scenario::load(name).expect("a shipped scenario");
    scenario.players = 2_000;
    scenario.bets = 40_000;
    scenario
}

#[test]
fn every_shipped_scenario_passes_its_books() {
    for name in Scenario::built_in_names() {
        let report = inprocess::run(&small(name), 2, &Progress::default());
        assert!(report.passed, "{name}:\n{}", report.to_text());
        assert!(report.checks.invariants_checked, "{name}");
        assert_eq!(report.bets, 40_000, "{name}");
        assert!(report.checks.wallets_checked >= 2_000, "{name}");
        assert!(!report.games.is_empty(), "{name}");
    }
}

#[test]
fn the_faults_happen_and_are_answered_as_expected() {
    let report = inprocess::run(&small("steady"), 2, &Progress::default());
    let count = |name: &str| report.outcomes.iter().find(|(n, _)| n == name).map_or(0, |(_, c)| *c);
    assert!(count("replayed") > 100, "retries and duplicate wins are answered from the index: {:?}", report.outcomes);
    assert!(count("BetRolledBackInAdvance") > 0, "{:?}", report.outcomes);
    assert!(count("SessionExpired") > 0, "{:?}", report.outcomes);
    assert_eq!(report.checks.unexpected_outcomes, 0);
}

#[test]
fn a_seed_reproduces_the_run() {
    let first = inprocess::run(&small("promotion-spike"), 2, &Progress::default());
    let second = inprocess::run(&small("promotion-spike"), 2, &Progress::default());
    assert_eq!(first.outcomes, second.outcomes);
    assert_eq!(first.commands, second.commands);
    let games = |r: &sim::Report| r.games.iter().map(|g| (g.game.clone(), g.rounds, g.stakes, g.wins)).collect::<Vec<_>>();
    assert_eq!(games(&first), games(&second));
    let mut other = small("promotion-spike");
    other.seed += 1;
    let third = inprocess::run(&other, 2, &Progress::default());
    assert_ne!(games(&first), games(&third), "another seed, another run");
}

#[test]
fn a_planted_double_apply_fails_the_books() {
    let scenario = small("steady");
    let report = inprocess::run_planted(&scenario, 2, &Progress::default(), true);
    assert!(!report.passed, "{}", report.to_text());
    // The retried play's bet (and its win, if it won) appear twice in the events.
    assert!((1..=2).contains(&report.checks.applied_twice), "{:?}", report.checks);
    assert!(report.checks.unexpected_outcomes >= 1, "the retry was not answered as a replay");
    assert!(report.to_text().contains(&format!("reproduce with --seed {}", scenario.seed)));
    // The same run without the planted bug passes.
    assert!(inprocess::run(&scenario, 2, &Progress::default()).passed);
}

#[test]
fn the_latency_plot_is_a_png() {
    let report = inprocess::run(&small("jackpot-night"), 2, &Progress::default());
    let path = std::env::temp_dir().join(format!("sim-latency-{}.png", std::process::id()));
    sim::plot::latency_png(&report, &path).expect("plotted");
    let bytes = std::fs::read(&path).expect("written");
    let _ = std::fs::remove_file(&path);
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(bytes.len() > 10_000, "{} bytes", bytes.len());
}
