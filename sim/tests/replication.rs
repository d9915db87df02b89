//! The replication simulator over many seeds: three raft replicas of a
//! shard under dropped, delayed, duplicated and reordered messages,
//! partitions, and crashes with restarts; after each run the replicas agree
//! byte for byte, every answered deposit, bet and win is applied, none
//! twice, every answer is what the log's order gives, and money is
//! conserved. `REPLICATION_SEEDS=N` runs more seeds; a failure names its
//! seed, and `REPLICATION_SEED=S` replays that one alone.

use sim::replication::{run, Faults};

#[test]
fn a_thousand_seeds_of_faults_leave_the_replicas_identical_and_the_money_right() {
    if let Ok(seed) = std::env::var("REPLICATION_SEED") {
        let seed: u64 = seed.parse().expect("a number");
        let report = run(seed, 400, Faults::default()).unwrap_or_else(|e| panic!("{e}"));
        println!("{report:?}");
        return;
    }
    let seeds: u64 = std::env::var("REPLICATION_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000);
    let mut totals = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut bets = 0u64;
    let mut snapshots = (0u64, 0u64);
    for seed in 0..seeds {
        let report = run(seed, 400, Faults::default()).unwrap_or_else(|e| panic!("{e} (REPLICATION_SEED={seed} replays it)"));
        totals.0 += report.movements_applied;
        bets += report.bets_applied;
        snapshots.0 += report.snapshots_taken;
        snapshots.1 += report.snapshots_sent;
        totals.1 += report.crashes;
        totals.2 += report.partitions;
        totals.3 += report.retries;
        totals.4 = totals.4.max(report.max_term);
    }
    println!(
        "{seeds} seeds: {} movements applied ({bets} bets), {} crashes, {} partitions, {} retries, highest term {}, {} snapshots taken, {} sent",
        totals.0, totals.1, totals.2, totals.3, totals.4, snapshots.0, snapshots.1
    );
    // The faults happened: a run that never crashed or retried proves little.
    assert!(totals.1 > seeds / 2 && totals.2 > seeds && totals.3 > 0 && totals.4 > 2, "{totals:?}");
    assert!(totals.0 > seeds * 10 && bets > seeds * 5, "movements were applied: {totals:?}, {bets} bets");
    assert!(snapshots.0 > seeds && snapshots.1 > seeds / 10, "logs were compacted and snapshots sent: {snapshots:?}");
}

#[test]
fn a_seed_replays_exactly() {
    let first = run(7, 300, Faults::default()).expect("seed 7 passes");
    let second = run(7, 300, Faults::default()).expect("seed 7 passes");
    assert_eq!(format!("{first:?}"), format!("{second:?}"));
}

/// The checks have teeth: a replica that does not sync what it tells raft
/// it persisted loses acknowledged entries in a crash, and some seed shows it.
#[test]
fn a_replica_that_skips_its_syncs_is_caught() {
    let network = sim::network::NetworkFaults { crash_per_mille: 20, ..Default::default() };
    let faults = Faults { network, plant_unsynced_writes: true };
    let caught = (0..500u64).find_map(|seed| run(seed, 400, faults).err());
    let failure = caught.expect("within 500 seeds a run fails");
    assert!(failure.starts_with("seed "), "the failure names its seed: {failure}");
}
