//! [`UpstreamBudget`]: an app-wide bound on the requests to Audius that logins cause.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::defaults;
use crate::error::{Error, Result};

/// A token bucket for the requests to Audius that logins trigger (user records and manager
/// lists read by the [`UserDirectory`](super::UserDirectory), `verify_token` calls of the
/// [`ApiVerifier`](super::ApiVerifier)): at most [`burst`](Self::burst) at once, then one more
/// per [`refill_every`](Self::refill_every).
///
/// The directory bounds the requests forged tokens cost *per user id*, but the user id is the
/// forger's to choose: without an app-wide bound, forged tokens for ever new ids would turn
/// into a stream of requests, spending the app's Audius rate limit (and so refusing every real
/// login whose record is not cached). With this budget spent, a login that needs a request is
/// refused with [`Error::UpstreamUnavailable`] (503, retryable) and no request is made; a login
/// answerable from a cached record is unaffected.
///
/// Default ([`UpstreamBudget::default`]): a burst of 50 and one more every 100 ms (10 per
/// second): well above the uncached logins of a typical app (a login of a user seen in the
/// last 5 minutes costs none), well below the rate limits Audius' API nodes put on one app.
#[derive(Debug)]
pub struct UpstreamBudget {
    burst: u32,
    refill_every: Duration,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    available: u32,
    /// When the last refill was counted.
    counted_at: Instant,
}

impl Default for UpstreamBudget {
    fn default() -> Self {
        Self::new(
            defaults::UPSTREAM_BUDGET_BURST,
            defaults::UPSTREAM_BUDGET_REFILL,
        )
    }
}

impl UpstreamBudget {
    /// At most `burst` requests at once (at least one), then one more per `refill_every` (a
    /// zero `refill_every` refills at once: no bound).
    pub fn new(burst: u32, refill_every: Duration) -> Self {
        let burst = burst.max(1);
        Self {
            burst,
            refill_every,
            bucket: Mutex::new(Bucket {
                available: burst,
                counted_at: Instant::now(),
            }),
        }
    }

    /// The most requests at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The time after which one more request is allowed.
    pub fn refill_every(&self) -> Duration {
        self.refill_every
    }

    /// Takes one request from the budget, or says it is spent (no request may be made).
    pub fn try_take(&self) -> Result<()> {
        if self.take_at(Instant::now()) {
            return Ok(());
        }
        tracing::warn!(
            burst = self.burst,
            refill_every_ms = u64::try_from(self.refill_every.as_millis()).unwrap_or(u64::MAX),
            "the app's budget of requests to Audius for logins is spent: a login that needs one \
             is refused until it refills (forged tokens for many user ids?)"
        );
        Err(Error::unavailable(
            "this app's budget of requests to Audius for logins is spent for a moment; please \
             try again in a few seconds",
            None,
        ))
    }

    fn take_at(&self, now: Instant) -> bool {
        if self.refill_every.is_zero() {
            return true;
        }
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(bucket.counted_at);
        let gained = elapsed.as_nanos() / self.refill_every.as_nanos();
        if gained > 0 {
            let gained_u32 = u32::try_from(gained).unwrap_or(u32::MAX);
            bucket.available = bucket.available.saturating_add(gained_u32).min(self.burst);
            bucket.counted_at = if bucket.available == self.burst {
                now
            } else {
                // Keep the part of a refill period already elapsed.
                let counted = u32::try_from(gained).map_or(now, |g| {
                    self.refill_every
                        .checked_mul(g)
                        .and_then(|d| bucket.counted_at.checked_add(d))
                        .unwrap_or(now)
                });
                counted.min(now)
            };
        }
        if bucket.available == 0 {
            return false;
        }
        bucket.available -= 1;
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_period() {
        let budget = UpstreamBudget::new(3, Duration::from_secs(1));
        let t0 = Instant::now();
        assert!((0..3).all(|_| budget.take_at(t0)), "the burst");
        assert!(!budget.take_at(t0), "spent");
        assert!(!budget.take_at(t0 + Duration::from_millis(999)));
        assert!(budget.take_at(t0 + Duration::from_millis(1000)), "one more");
        assert!(!budget.take_at(t0 + Duration::from_millis(1500)));
        assert!(budget.take_at(t0 + Duration::from_millis(2000)));
        // A long pause refills up to the burst, no more.
        let later = t0 + Duration::from_secs(3600);
        assert!((0..3).all(|_| budget.take_at(later)));
        assert!(!budget.take_at(later));
        assert!(budget.try_take().is_err());
        assert_eq!(budget.try_take().unwrap_err().suggested_status(), 503);
    }

    #[test]
    fn the_default_is_a_burst_of_50_and_10_per_second() {
        let budget = UpstreamBudget::default();
        assert_eq!(budget.burst(), 50);
        assert_eq!(budget.refill_every(), Duration::from_millis(100));
        let t0 = Instant::now();
        assert_eq!((0..200).filter(|_| budget.take_at(t0)).count(), 50);
        let second = t0 + Duration::from_secs(1);
        assert_eq!((0..200).filter(|_| budget.take_at(second)).count(), 10);
    }

    #[test]
    fn a_zero_period_is_no_bound() {
        let budget = UpstreamBudget::new(1, Duration::ZERO);
        assert!((0..1000).all(|_| budget.try_take().is_ok()));
    }
}
