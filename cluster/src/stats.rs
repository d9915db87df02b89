//! Latency histograms a node keeps for its metrics endpoint: fixed
//! buckets of atomic counters, so the thread that observes never waits for
//! a scrape and a scrape never stops it.
//!
//! A replicated node's raft loop records where a bet's time goes, as
//! TiKV's raftstore does (its append-log, commit-log and loop durations):
//! the store writes of each Ready (synced and not), each loop turn, and
//! each proposal from the moment the loop proposes it to the moment this
//! node answers it (on the leader: its own write, the followers' round
//! trip and writes, and the apply; on a follower, the way to the leader
//! and back too). The gateway's request histogram adds the queue to the
//! loop and the reply's way back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket upper bounds, in microseconds: fine between 0.5 and 3 ms, where
/// the latency goals (1 ms through the gateway, 2 ms replicated) lie.
pub const BUCKETS_US: [u64; 17] =
    [25, 50, 100, 250, 500, 750, 1_000, 1_500, 2_000, 2_500, 3_000, 5_000, 10_000, 25_000, 100_000, 1_000_000, 10_000_000];

#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let us = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
        if let Some(at) = BUCKETS_US.iter().position(|&bound| us <= bound) {
            self.buckets[at].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(elapsed.as_nanos().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
    }

    /// Observations in all (those over the last bound count here only).
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// Each bound in seconds with the observations at or under it, as
    /// Prometheus's cumulative buckets.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let mut total = 0;
        BUCKETS_US.iter().zip(&self.buckets).map(move |(&bound, bucket)| {
            total += bucket.load(Ordering::Relaxed);
            (bound as f64 / 1e6, total)
        })
    }
}

/// Where a replicated node's raft loop spends a bet's time.
#[derive(Debug, Default)]
pub struct RaftStats {
    /// A Ready's write of new entries, hard state or a snapshot, synced.
    pub synced_write: Histogram,
    /// A write that needs no sync (commit index, journal records, applied state).
    pub unsynced_write: Histogram,
    /// One turn of the loop: proposing, every group's Ready, sending.
    pub turn: Histogram,
    /// A proposal, from the loop's first proposing it to this node's
    /// answering it once applied, on the node that took it from a client
    /// (a follower's are forwarded to the leader; retries included).
    pub commit: Histogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_fall_in_the_first_bucket_that_holds_them() {
        let histogram = Histogram::default();
        for us in [10, 25, 26, 1_000, 1_001, 2_000, 20_000_000] {
            histogram.observe(Duration::from_micros(us));
        }
        let cumulative: Vec<(f64, u64)> = histogram.cumulative().collect();
        let at = |seconds: f64| cumulative.iter().find(|(bound, _)| *bound == seconds).map(|(_, n)| *n);
        assert_eq!(at(0.000025), Some(2), "10 us and 25 us");
        assert_eq!(at(0.00005), Some(3));
        assert_eq!(at(0.001), Some(4));
        assert_eq!(at(0.0015), Some(5));
        assert_eq!(at(0.002), Some(6));
        assert_eq!(at(10.0), Some(6), "20 s is over the last bound");
        assert_eq!(histogram.count(), 7);
        assert!((histogram.sum_seconds() - 20.004_062).abs() < 1e-9, "{}", histogram.sum_seconds());
    }
}
