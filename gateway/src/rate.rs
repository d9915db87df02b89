//! Token buckets: `rate` tokens a second, up to `burst`, one per request.

use std::time::Instant;

#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate_per_second: u32, burst: u32) -> TokenBucket {
        TokenBucket { rate_per_second: f64::from(rate_per_second), burst: f64::from(burst), tokens: f64::from(burst), last: Instant::now() }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate_per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 5);
        assert_eq!((0..8).filter(|_| bucket.try_take(start)).count(), 5);
        assert!(!bucket.try_take(start + Duration::from_millis(50)));
        assert!(bucket.try_take(start + Duration::from_millis(160)));
    }
}

/// A token bucket shared across threads without a lock, as the generic cell
/// rate algorithm (GCRA) keeps it: one atomic word, the theoretical arrival
/// time of the next request in nanoseconds since `origin`, advanced by one
/// emission interval (1 s / rate) per request taken, by compare-and-swap.
/// A request is allowed while that time is less than `burst` intervals
/// ahead of now. The same limit as [`TokenBucket`], with no cap on the
/// burst and no wrap for 584 years. Used per operator, whose connections
/// run on many threads.
#[derive(Debug)]
pub struct SharedBucket {
    /// Nanoseconds between requests at the sustained rate (at least 1);
    /// None for a rate of 0, where `arrival_ns` counts the burst taken.
    interval_ns: Option<u64>,
    burst: u64,
    origin: Instant,
    arrival_ns: std::sync::atomic::AtomicU64,
}

impl SharedBucket {
    pub fn new(rate_per_second: u32, burst: u32) -> SharedBucket {
        let interval_ns = (rate_per_second > 0).then(|| (1_000_000_000 / u64::from(rate_per_second)).max(1));
        SharedBucket { interval_ns, burst: u64::from(burst), origin: Instant::now(), arrival_ns: std::sync::atomic::AtomicU64::new(0) }
    }

    pub fn try_take(&self, now: Instant) -> bool {
        use std::sync::atomic::Ordering;
        let Some(interval_ns) = self.interval_ns else {
            // A rate of 0 never refills: the burst, once.
            return self
                .arrival_ns
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |taken| (taken < self.burst).then_some(taken + 1))
                .is_ok();
        };
        // How far ahead of now the arrival time may be: (burst - 1)
        // intervals; with a burst of 0 nothing is allowed.
        let Some(extra) = self.burst.checked_sub(1) else { return false };
        let tolerance_ns = interval_ns.saturating_mul(extra);
        let now_ns = u64::try_from(now.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX);
        let mut arrival = self.arrival_ns.load(Ordering::Relaxed);
        loop {
            if arrival.saturating_sub(now_ns) > tolerance_ns {
                return false;
            }
            // Past u64's range (centuries ahead at any rate): refused.
            let Some(next) = arrival.max(now_ns).checked_add(interval_ns) else { return false };
            match self.arrival_ns.compare_exchange_weak(arrival, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(actual) => arrival = actual,
            }
        }
    }
}

#[cfg(test)]
mod shared_tests {
    use super::*;
    use std::time::Duration;

    /// A bucket of 10 a second and a burst of 5, first used at `start`.
    fn burst_then_rate(bucket: &SharedBucket, start: Instant) {
        assert_eq!((0..8).filter(|_| bucket.try_take(start)).count(), 5);
        assert!(!bucket.try_take(start + Duration::from_millis(50)));
        assert!(bucket.try_take(start + Duration::from_millis(160)));
        assert!(!bucket.try_take(start + Duration::from_millis(170)));
    }

    #[test]
    fn a_shared_bucket_allows_its_burst_then_its_rate() {
        let bucket = SharedBucket::new(10, 5);
        burst_then_rate(&bucket, bucket.origin);
    }

    #[test]
    fn a_large_burst_is_honoured_and_a_zero_burst_allows_nothing() {
        let bucket = SharedBucket::new(2_000_000, 2_000_000);
        let start = bucket.origin;
        assert_eq!((0..2_100_000).filter(|_| bucket.try_take(start)).count(), 2_000_000);
        let none = SharedBucket::new(1_000, 0);
        assert!(!none.try_take(none.origin + Duration::from_secs(5)));
    }

    #[test]
    fn the_limit_holds_after_a_long_uptime() {
        // The packed 40-bit clock this replaced wrapped after 12.7 days and
        // then refilled the bucket on every call.
        let bucket = SharedBucket::new(10, 5);
        burst_then_rate(&bucket, bucket.origin + Duration::from_secs(400 * 24 * 3600));
    }

    #[test]
    fn a_rate_of_zero_allows_the_burst_only() {
        for burst in [1, 3, 5, 1_000] {
            let bucket = SharedBucket::new(0, burst);
            let start = bucket.origin;
            assert_eq!((0..burst + 10).filter(|_| bucket.try_take(start)).count(), burst as usize);
            assert!(!bucket.try_take(start + Duration::from_secs(3600)));
        }
    }

    #[test]
    fn a_slow_rate_with_a_huge_burst_stays_a_limit() {
        let bucket = SharedBucket::new(1, u32::MAX);
        let start = bucket.origin;
        assert_eq!((0..3_000_000).filter(|_| bucket.try_take(start)).count(), 3_000_000);
        let bucket = SharedBucket::new(1, 2);
        let start = bucket.origin;
        assert_eq!((0..10).filter(|_| bucket.try_take(start)).count(), 2);
        assert!(bucket.try_take(start + Duration::from_millis(1_001)));
        assert!(!bucket.try_take(start + Duration::from_millis(1_002)));
    }

    #[test]
    fn threads_share_one_budget() {
        let bucket = std::sync::Arc::new(SharedBucket::new(1, 1_000));
        let start = bucket.origin;
        let taken: usize = (0..4)
            .map(|_| {
                let bucket = bucket.clone();
                std::thread::spawn(move || (0..1_000).filter(|_| bucket.try_take(start)).count())
            })
            .map(|t| t.join().expect("no panic"))
            .sum();
        assert_eq!(taken, 1_000);
    }
}
