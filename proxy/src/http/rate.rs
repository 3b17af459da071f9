//! Per-caller rate limits (`quota.requests_per_second`): a token bucket per
//! caller that refills at the limit and holds one second's worth, so a
//! caller may burst to its limit but not sustain more. Unlike the minute
//! and day quotas it is local to each danxia instance and not persisted:
//! it smooths load, it does not account.

use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;

/// Most callers tracked; beyond it the bucket map is cleared (a caller's
/// bucket then starts full again, which errs on the side of admitting).
const MAX_BUCKETS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Default)]
pub struct RateLimiter {
    buckets: DashMap<Arc<str>, Bucket>,
}

impl RateLimiter {
    /// Takes one token for `caller` at `per_second`; `Err(wait_secs)` when
    /// none is left (rounded up, at least 1, for `Retry-After`).
    pub fn take(&self, caller: &Arc<str>, per_second: u64, now: Instant) -> Result<(), u64> {
        let rate = per_second.max(1) as f64;
        if self.buckets.len() >= MAX_BUCKETS && !self.buckets.contains_key(caller) {
            self.buckets.clear();
        }
        let mut b = self.buckets.entry(caller.clone()).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - b.tokens) / rate).ceil() as u64).max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_to_the_limit_then_refills() {
        let r = RateLimiter::default();
        let c: Arc<str> = Arc::from("dept-health");
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(r.take(&c, 5, t0), Ok(()));
        }
        assert_eq!(r.take(&c, 5, t0), Err(1));
        // 200 ms later one token is back.
        let t1 = t0 + Duration::from_millis(200);
        assert_eq!(r.take(&c, 5, t1), Ok(()));
        assert!(r.take(&c, 5, t1).is_err());
        // Another caller has its own bucket.
        let d: Arc<str> = Arc::from("dept-stats");
        assert_eq!(r.take(&d, 5, t1), Ok(()));
        // A long pause refills to one second's worth, not more.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..5 {
            assert_eq!(r.take(&c, 5, t2), Ok(()));
        }
        assert!(r.take(&c, 5, t2).is_err());
    }
}
