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

/// A token bucket shared across threads without a lock: the state (tokens
/// in thousandths and the last refill, in microseconds since `origin`) is
/// one atomic word, updated by compare-and-swap. Used per operator, whose
/// connections run on many threads.
#[derive(Debug)]
pub struct SharedBucket {
    rate_per_second: u64,
    burst_milli: u64,
    origin: Instant,
    /// High 40 bits: the last refill, in microseconds since `origin` (12
    /// days before they wrap; a node restarts its buckets with itself). Low
    /// 24 bits: tokens in thousandths, at most 16,777 tokens.
    state: std::sync::atomic::AtomicU64,
}

const TOKEN_BITS: u32 = 24;
const TOKEN_MASK: u64 = (1 << TOKEN_BITS) - 1;

impl SharedBucket {
    /// `burst` is capped at 16,000 tokens by the packed state; the rate is not.
    pub fn new(rate_per_second: u32, burst: u32) -> SharedBucket {
        let burst_milli = (u64::from(burst) * 1_000).min(TOKEN_MASK);
        SharedBucket {
            rate_per_second: u64::from(rate_per_second),
            burst_milli,
            origin: Instant::now(),
            state: std::sync::atomic::AtomicU64::new(burst_milli),
        }
    }

    pub fn try_take(&self, now: Instant) -> bool {
        use std::sync::atomic::Ordering;
        let now_us = now.saturating_duration_since(self.origin).as_micros() as u64;
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            let (last_us, tokens) = (current >> TOKEN_BITS, current & TOKEN_MASK);
            let elapsed_us = now_us.saturating_sub(last_us);
            // rate tokens/s = rate x 1000 milli-tokens per 10^6 us.
            let refill = elapsed_us.saturating_mul(self.rate_per_second) / 1_000;
            let available = tokens.saturating_add(refill).min(self.burst_milli);
            if available < 1_000 {
                return false;
            }
            let next = (now_us.max(last_us) << TOKEN_BITS) | (available - 1_000);
            match self.state.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }
}

#[cfg(test)]
mod shared_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_shared_bucket_allows_its_burst_then_its_rate() {
        let bucket = SharedBucket::new(10, 5);
        let start = bucket.origin;
        assert_eq!((0..8).filter(|_| bucket.try_take(start)).count(), 5);
        assert!(!bucket.try_take(start + Duration::from_millis(50)));
        assert!(bucket.try_take(start + Duration::from_millis(160)));
        assert!(!bucket.try_take(start + Duration::from_millis(170)));
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
