//! The cluster simulator over many seeds: three nodes, each hosting a
//! replica of both shards (`cluster::host::Host`, what `casino node --id N`
//! runs), under dropped, delayed, duplicated and reordered messages,
//! partitions, and crashes that lose unsynced writes (some in the middle of
//! a Ready, after the messages that leave before its write), with clients sending
//! to any node and retrying. After each run: replicas byte-identical, each
//! movement applied exactly once, retries answered as the first answer,
//! (snapshots taken to compact a log are written at later steps, as a
//! node's writer thread writes them, and lost in a crash before),
//! each wallet's history linearizable, invariants hold. `CLUSTER_SEEDS=N` runs more
//! seeds; a failure names its seed, and `CLUSTER_SEED=S` replays it alone.

use sim::cluster::{run, Faults};

const STEPS: u64 = 400;

#[test]
fn a_thousand_seeds_of_faults_leave_every_node_identical_and_the_money_right() {
    if let Ok(seed) = std::env::var("CLUSTER_SEED") {
        let seed: u64 = seed.parse().expect("a number");
        let report = run(seed, STEPS, Faults::default()).unwrap_or_else(|e| panic!("{e}"));
        println!("{report:?}");
        return;
    }
    let seeds: u64 = std::env::var("CLUSTER_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000);
    let (mut movements, mut reads, mut retried, mut unavailable, mut crashes, mut partitions, mut term) = (0, 0, 0, 0, 0, 0, 0);
    let (mut snapshots, mut in_ready) = (0, 0);
    let (mut compactions, mut superseded, mut lost) = (0, 0, 0);
    for seed in 0..seeds {
        let report = run(seed, STEPS, Faults::default()).unwrap_or_else(|e| panic!("{e} (CLUSTER_SEED={seed} replays it)"));
        movements += report.movements;
        reads += report.reads;
        retried += report.retried;
        unavailable += report.unavailable;
        crashes += report.crashes;
        in_ready += report.crashes_in_ready;
        partitions += report.partitions;
        term = term.max(report.max_term);
        snapshots += report.snapshots_sent;
        compactions += report.compactions_written;
        superseded += report.compactions_superseded;
        lost += report.compactions_lost;
    }
    println!(
        "{seeds} seeds: {movements} movements, {reads} reads, {retried} requests sent again, {unavailable} answered unavailable, {crashes} crashes ({in_ready} during a Ready, after its early messages), {partitions} partitions, highest term {term}, {snapshots} snapshots sent, {compactions} compactions written at a later step ({superseded} found a newer snapshot installed, {lost} lost in a crash)"
    );
    // The faults happened: a run that never crashed or retried proves little.
    assert!(crashes > seeds && partitions > seeds && retried > seeds && term > 2, "faults: {crashes} {partitions} {retried} {term}");
    assert!(in_ready > seeds / 2, "crashes during a Ready: {in_ready}");
    assert!(snapshots > seeds / 10, "lagging replicas were sent snapshots: {snapshots}");
    // Logs compacted in the background, some overtaken by an install or a crash.
    assert!(compactions > seeds && lost > 0, "compactions written later: {compactions}, lost: {lost}");
    assert!(movements > seeds * 20 && reads > seeds * 10, "work was done: {movements} movements, {reads} reads");
}

#[test]
fn a_seed_replays_exactly() {
    let first = run(11, 300, Faults::default()).expect("seed 11 passes");
    let second = run(11, 300, Faults::default()).expect("seed 11 passes");
    assert_eq!(format!("{first:?}"), format!("{second:?}"));
}

/// The read check has teeth: followers answering balances from their own
/// state, without a read index, serve stale reads, and some seed shows it.
#[test]
fn reads_without_a_read_index_are_caught() {
    let faults = Faults { plant_stale_reads: true, ..Faults::default() };
    let caught = (0..300u64).find_map(|seed| run(seed, STEPS, faults).err());
    let failure = caught.expect("within 300 seeds a run fails");
    assert!(failure.starts_with("seed ") && failure.contains("not linearizable"), "the failure names its seed and the read: {failure}");
}
