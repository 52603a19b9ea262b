//! Token-bucket rate limits: 100 messages/s per connection and 30 messages/min per user (seeds
//! 000 and 004).
//!
//! The bucket is implemented as GCRA (generic cell rate algorithm): instead of a fractional token
//! count refilled on every call it keeps one instant, the "theoretical arrival time" at which the
//! bucket is full again. That is the same limit as a token bucket, in integer nanoseconds, so
//! retry-after values are exact (30 per 60 s: an empty bucket says "retry in 2 s", not 1.999…).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Longest accepted period; keeps instant arithmetic far from overflow.
const MAX_PERIOD: Duration = Duration::from_secs(365 * 24 * 3600);

/// A rate limit: `capacity` calls per period, refilled continuously, starting full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    capacity: u32,
    /// Time to earn one token back.
    interval: Duration,
    /// Instant at which the bucket is full again; `None` while full since creation.
    full_at: Option<Instant>,
}

impl TokenBucket {
    /// `capacity` calls per `period`, e.g. `per(30, 60 s)`. Capacity 0 means unlimited.
    pub fn per(capacity: u32, period: Duration) -> Self {
        let interval = if capacity == 0 {
            Duration::ZERO
        } else {
            period.min(MAX_PERIOD) / capacity
        };
        Self {
            capacity,
            interval,
            full_at: None,
        }
    }

    pub fn unlimited() -> Self {
        Self::per(0, Duration::ZERO)
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    pub fn is_unlimited(&self) -> bool {
        self.capacity == 0 || self.interval.is_zero()
    }

    /// Tokens earned back per second.
    pub fn refill_per_sec(&self) -> f64 {
        if self.is_unlimited() {
            f64::INFINITY
        } else {
            1.0 / self.interval.as_secs_f64()
        }
    }

    /// Takes one token, or says how long until one is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        if self.is_unlimited() {
            return Ok(());
        }
        let burst = self.burst();
        let start = match self.full_at {
            Some(full_at) if full_at > now => full_at,
            _ => now,
        };
        let next = start + self.interval;
        let debt = next.saturating_duration_since(now);
        if debt > burst {
            Err(debt - burst)
        } else {
            self.full_at = Some(next);
            Ok(())
        }
    }

    /// Tokens available right now.
    pub fn available(&self, now: Instant) -> u32 {
        if self.is_unlimited() {
            return u32::MAX;
        }
        let debt = self.debt(now).as_nanos();
        let interval = self.interval.as_nanos();
        let used = debt.div_ceil(interval);
        let used = u32::try_from(used).unwrap_or(u32::MAX);
        self.capacity.saturating_sub(used)
    }

    /// Whether the bucket is back to full capacity (so forgetting it loses nothing).
    pub fn is_full(&self, now: Instant) -> bool {
        self.debt(now).is_zero()
    }

    fn burst(&self) -> Duration {
        self.interval * self.capacity
    }

    fn debt(&self, now: Instant) -> Duration {
        self.full_at.map_or(Duration::ZERO, |full_at| {
            full_at.saturating_duration_since(now)
        })
    }
}

/// A call was rate limited; retry after the given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rate limited; retry in {} ms", self.0.as_millis())]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    pub fn duration(self) -> Duration {
        self.0
    }

    /// Whole seconds, rounded up (an HTTP `Retry-After` value never says 0 when it means 0.3).
    pub fn secs_ceil(self) -> u64 {
        let secs = self.0.as_secs();
        if self.0.subsec_nanos() > 0 {
            secs + 1
        } else {
            secs
        }
    }
}

/// One token bucket per key (user id), shared by all of that key's connections.
///
/// Memory is bounded: buckets that have refilled completely carry no information and are dropped
/// by a sweep that runs inside [`check`](Self::check) at most once per period. If `max_keys`
/// buckets are still live when a new key arrives, the buckets nearest to full are evicted (a
/// batch of 1/16 of `max_keys`, so the scan is amortised): those lose the least, since an
/// evicted user at worst regains the few tokens it had not yet earned back. Size `max_keys`
/// above the number of users active within one period and eviction never happens. No key's
/// traffic ever touches another key's bucket otherwise.
pub struct KeyedLimiter {
    capacity: u32,
    period: Duration,
    max_keys: usize,
    inner: Mutex<KeyedInner>,
}

struct KeyedInner {
    buckets: HashMap<Box<str>, TokenBucket>,
    next_sweep: Option<Instant>,
    evicted: u64,
}

impl fmt::Debug for KeyedLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("capacity", &self.capacity)
            .field("period", &self.period)
            .field("max_keys", &self.max_keys)
            .field("keys", &self.len())
            .finish()
    }
}

impl KeyedLimiter {
    /// `capacity` calls per `period` for each key (0 = unlimited), tracking at most `max_keys`
    /// keys (at least 1).
    pub fn new(capacity: u32, period: Duration, max_keys: usize) -> Self {
        Self {
            capacity,
            period: period.min(MAX_PERIOD),
            max_keys: max_keys.max(1),
            inner: Mutex::new(KeyedInner {
                buckets: HashMap::new(),
                next_sweep: None,
                evicted: 0,
            }),
        }
    }

    pub fn check(&self, key: &str) -> Result<(), RetryAfter> {
        self.check_at(key, Instant::now())
    }

    pub fn check_at(&self, key: &str, now: Instant) -> Result<(), RetryAfter> {
        if self.capacity == 0 {
            return Ok(());
        }
        let mut inner = self.inner.lock();
        let sweep_every = self.period.max(Duration::from_secs(1));
        match inner.next_sweep {
            Some(at) if now < at => {}
            _ => {
                inner.buckets.retain(|_, bucket| !bucket.is_full(now));
                inner.next_sweep = Some(now + sweep_every);
            }
        }
        if let Some(bucket) = inner.buckets.get_mut(key) {
            return bucket.try_take(now).map_err(RetryAfter);
        }
        if inner.buckets.len() >= self.max_keys {
            self.make_room(&mut inner, now);
        }
        let mut bucket = TokenBucket::per(self.capacity, self.period);
        let result = bucket.try_take(now).map_err(RetryAfter);
        inner.buckets.insert(key.into(), bucket);
        result
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.inner.lock().buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys evicted so far because `max_keys` was reached with no full bucket to drop.
    pub fn evicted(&self) -> u64 {
        self.inner.lock().evicted
    }

    fn make_room(&self, inner: &mut KeyedInner, now: Instant) {
        inner.buckets.retain(|_, bucket| !bucket.is_full(now));
        if inner.buckets.len() < self.max_keys {
            return;
        }
        let excess = inner.buckets.len() + 1 - self.max_keys;
        let batch = (self.max_keys / 16).max(excess).min(inner.buckets.len());
        let mut by_debt: Vec<(Duration, Box<str>)> = inner
            .buckets
            .iter()
            .map(|(key, bucket)| (bucket.debt(now), key.clone()))
            .collect();
        if batch < by_debt.len() {
            by_debt.select_nth_unstable_by_key(batch, |(debt, _)| *debt);
        }
        for (_, key) in by_debt.into_iter().take(batch) {
            inner.buckets.remove(&key);
        }
        inner.evicted += batch as u64;
        metrics::counter!("rate_limit_evictions_total").increment(batch as u64);
        tracing::warn!(
            evicted = batch,
            max_keys = self.max_keys,
            "rate limiter full, evicted the buckets nearest to full"
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn per_user_limit_gives_exact_retry_after() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per(30, Duration::from_secs(60));
        assert_eq!(b.refill_per_sec(), 0.5);
        for _ in 0..30 {
            b.try_take(t0).unwrap();
        }
        assert_eq!(b.available(t0), 0);
        assert_eq!(b.try_take(t0), Err(Duration::from_secs(2)));
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(b.try_take(t1), Err(Duration::from_millis(1500)));
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(b.available(t2), 1);
        b.try_take(t2).unwrap();
        assert_eq!(b.try_take(t2), Err(Duration::from_secs(2)));
        // Refills to capacity, never beyond.
        let t3 = t0 + Duration::from_secs(600);
        assert!(b.is_full(t3));
        assert_eq!(b.available(t3), 30);
    }

    #[test]
    fn per_connection_limit_is_a_burst_of_100_then_one_per_10_ms() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per(100, Duration::from_secs(1));
        for _ in 0..100 {
            b.try_take(t0).unwrap();
        }
        assert_eq!(b.try_take(t0), Err(Duration::from_millis(10)));
        assert_eq!(
            b.try_take(t0 + Duration::from_millis(3)),
            Err(Duration::from_millis(7))
        );
        b.try_take(t0 + Duration::from_millis(10)).unwrap();
        assert!(b.try_take(t0 + Duration::from_millis(10)).is_err());
    }

    #[test]
    fn rejected_takes_do_not_consume() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per(1, Duration::from_secs(1));
        b.try_take(t0).unwrap();
        for _ in 0..1000 {
            assert!(b.try_take(t0).is_err());
        }
        b.try_take(t0 + Duration::from_secs(1)).unwrap();
    }

    #[test]
    fn zero_capacity_is_unlimited() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per(0, Duration::from_secs(1));
        assert!(b.is_unlimited());
        for _ in 0..10_000 {
            b.try_take(t0).unwrap();
        }
        let limiter = KeyedLimiter::new(0, Duration::from_secs(60), 10);
        for _ in 0..1000 {
            limiter.check_at("u", t0).unwrap();
        }
        assert!(limiter.is_empty());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(RetryAfter(Duration::from_millis(300)).secs_ceil(), 1);
        assert_eq!(RetryAfter(Duration::from_secs(2)).secs_ceil(), 2);
        assert_eq!(
            RetryAfter(Duration::from_millis(1500)).to_string(),
            "rate limited; retry in 1500 ms"
        );
    }

    #[test]
    fn keys_are_independent() {
        let t0 = Instant::now();
        let limiter = KeyedLimiter::new(3, Duration::from_secs(60), 100);
        for _ in 0..3 {
            limiter.check_at("alice", t0).unwrap();
        }
        assert_eq!(
            limiter.check_at("alice", t0),
            Err(RetryAfter(Duration::from_secs(20)))
        );
        for _ in 0..3 {
            limiter.check_at("bob", t0).unwrap();
        }
        assert!(limiter.check_at("bob", t0).is_err());
        assert!(limiter.check_at("alice", t0).is_err());
    }

    #[test]
    fn sweep_drops_only_refilled_buckets() {
        let t0 = Instant::now();
        let limiter = KeyedLimiter::new(2, Duration::from_secs(10), 100);
        limiter.check_at("idle", t0).unwrap();
        let t1 = t0 + Duration::from_secs(9);
        limiter.check_at("busy", t1).unwrap();
        limiter.check_at("busy", t1).unwrap();
        assert_eq!(limiter.len(), 2);
        // At t0+10 s the sweep runs: "idle" refilled at t0+5 s, "busy" is still in debt.
        let t2 = t0 + Duration::from_secs(10);
        assert!(limiter.check_at("busy", t2).is_err());
        assert_eq!(limiter.len(), 1);
        assert_eq!(limiter.evicted(), 0);
    }

    #[test]
    fn at_max_keys_the_bucket_nearest_to_full_is_evicted_not_the_busy_one() {
        let t0 = Instant::now();
        let limiter = KeyedLimiter::new(2, Duration::from_secs(60), 2);
        // "heavy" used both tokens, "light" used one.
        limiter.check_at("heavy", t0).unwrap();
        limiter.check_at("heavy", t0).unwrap();
        limiter.check_at("light", t0).unwrap();
        limiter.check_at("new", t0).unwrap();
        assert_eq!(limiter.len(), 2);
        assert_eq!(limiter.evicted(), 1);
        // "heavy" kept its empty bucket.
        assert_eq!(
            limiter.check_at("heavy", t0),
            Err(RetryAfter(Duration::from_secs(30)))
        );
    }
}
