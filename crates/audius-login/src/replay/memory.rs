//! [`MemoryReplayCache`]: the in-process replay cache.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{ReplayCache, ReplayKey};
use crate::clock::Clock;
use crate::defaults;
use crate::error::{Error, Result};
use crate::metrics;

/// A point on the cache's time line: the time since its origin (its creation on `Instant`, or
/// the Unix epoch on a [`Clock`]).
type Tick = Duration;

/// When an entry expires: at a tick, or never (a time to live so long that adding it to now
/// overflows; never reached by settings the actix layer accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Expiry {
    At(Tick),
    Never,
}

impl Expiry {
    fn after(now: Tick, ttl: Duration) -> Self {
        now.checked_add(ttl).map_or(Self::Never, Self::At)
    }

    fn is_live(self, now: Tick) -> bool {
        match self {
            Self::At(at) => at > now,
            Self::Never => true,
        }
    }
}

/// How often a full cache says so in the log, at most.
const FULL_LOG_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Entries {
    expiry_of: HashMap<ReplayKey, Expiry>,
    by_expiry: BTreeSet<(Expiry, ReplayKey)>,
    last_full_log: Option<Instant>,
    refused_since_log: u64,
}

impl Entries {
    /// Forgets every expired entry (the oldest expiry first).
    fn purge(&mut self, now: Tick) {
        while let Some(&(expiry, key)) = self.by_expiry.first() {
            if expiry.is_live(now) {
                break;
            }
            self.by_expiry.pop_first();
            self.expiry_of.remove(&key);
        }
    }
}

/// An in-process replay cache, bounded, that never forgets a live entry.
///
/// Expired entries are dropped as new ones arrive. When the cache holds `capacity` live
/// entries, [`first_use`](ReplayCache::first_use) refuses with [`Error::ReplayCacheFull`]
/// (suggested status 503) and logs it (at most every 10 s): forgetting a live entry would let
/// that token (or state) be used again. Size it above the logins expected within the longest
/// time to live (the maximum token age plus twice the clock skew, or a login attempt's
/// lifetime): each login takes two entries, its token and its consumed state.
///
/// Entries expire on real time ([`Instant`]) by default, or on the app's clock
/// ([`with_clock`](Self::with_clock)): the clock token ages are judged on, so that a token is
/// remembered for as long as that clock finds it young enough, even when it is stepped back.
#[derive(Debug)]
pub struct MemoryReplayCache {
    entries: Mutex<Entries>,
    capacity: usize,
    time: TimeLine,
}

/// What the cache's entries expire on.
#[derive(Debug)]
enum TimeLine {
    /// Real time, from the cache's creation.
    Real(Instant),
    /// A clock, from the Unix epoch (a time before it reads as the epoch).
    Clock(Arc<dyn Clock>),
}

impl TimeLine {
    fn now(&self) -> Tick {
        match self {
            Self::Real(origin) => origin.elapsed(),
            Self::Clock(clock) => {
                let since_epoch = clock.now() - time::OffsetDateTime::UNIX_EPOCH;
                Duration::try_from(since_epoch).unwrap_or(Duration::ZERO)
            }
        }
    }
}

impl MemoryReplayCache {
    /// A cache remembering at most `capacity` live entries (at least one), expiring them on
    /// real time.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(Entries::default()),
            capacity: capacity.max(1),
            time: TimeLine::Real(Instant::now()),
        }
    }

    /// A cache remembering at most `capacity` live entries (at least one), expiring them on
    /// `clock`: give it the clock token ages are judged on (the actix layer gives its own, a
    /// [`MonotonicClock`](crate::clock::MonotonicClock)), and a token's entry outlives its
    /// acceptance whatever that clock does. A clock stepped back keeps entries longer (they
    /// count against the capacity until it catches up); one that never goes backwards is
    /// advised, so that a step forward then back cannot purge entries too early.
    pub fn with_clock(capacity: usize, clock: Arc<dyn Clock>) -> Self {
        Self {
            time: TimeLine::Clock(clock),
            ..Self::new(capacity)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many live entries are remembered now.
    pub fn len(&self) -> usize {
        let now = self.time.now();
        let mut entries = self.lock();
        entries.purge(now);
        entries.expiry_of.len()
    }

    /// Whether no live entry is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most live entries remembered at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl Default for MemoryReplayCache {
    fn default() -> Self {
        Self::new(defaults::REPLAY_CAPACITY)
    }
}

#[async_trait]
impl ReplayCache for MemoryReplayCache {
    async fn first_use(&self, key: &ReplayKey, ttl: Duration) -> Result<bool> {
        let now = self.time.now();
        let real_now = Instant::now();
        let mut entries = self.lock();
        entries.purge(now);
        if entries.expiry_of.contains_key(key) {
            return Ok(false);
        }
        if entries.expiry_of.len() >= self.capacity {
            entries.refused_since_log += 1;
            if entries
                .last_full_log
                .is_none_or(|at| real_now.saturating_duration_since(at) >= FULL_LOG_INTERVAL)
            {
                tracing::error!(
                    capacity = self.capacity,
                    refused = entries.refused_since_log,
                    "the in-memory replay cache is full of live entries: logins are refused \
                     until entries expire (raise its capacity, or use a shared Redis cache)"
                );
                entries.last_full_log = Some(real_now);
                entries.refused_since_log = 0;
            }
            return Err(Error::ReplayCacheFull {
                capacity: self.capacity,
            });
        }
        let expiry = Expiry::after(now, ttl);
        entries.expiry_of.insert(*key, expiry);
        entries.by_expiry.insert((expiry, *key));
        metrics::replay_cache_entries(entries.expiry_of.len());
        Ok(true)
    }

    async fn seen(&self, key: &ReplayKey) -> Result<bool> {
        let now = self.time.now();
        let entries = self.lock();
        Ok(entries
            .expiry_of
            .get(key)
            .is_some_and(|expiry| expiry.is_live(now)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn a_full_cache_refuses_and_never_forgets_a_live_entry() {
        rt().block_on(async {
            let cache = MemoryReplayCache::new(2);
            let ttl = Duration::from_secs(60);
            let (a, b, c) = (
                ReplayKey::for_state("a"),
                ReplayKey::for_state("b"),
                ReplayKey::for_state("c"),
            );
            assert!(cache.first_use(&a, ttl).await.unwrap());
            assert!(cache.first_use(&b, ttl).await.unwrap());
            // Full of live entries: a third is refused, typed...
            let refused = cache.first_use(&c, ttl).await.unwrap_err();
            assert!(matches!(refused, Error::ReplayCacheFull { capacity: 2 }));
            assert_eq!(refused.suggested_status(), 503);
            // ...and the first two are still remembered (an LRU would have forgotten `a`).
            assert!(!cache.first_use(&a, ttl).await.unwrap());
            assert!(!cache.first_use(&b, ttl).await.unwrap());
            assert!(cache.seen(&a).await.unwrap());
            assert!(!cache.seen(&c).await.unwrap());
            assert_eq!(cache.len(), 2);
        });
    }

    #[test]
    fn expired_entries_make_room() {
        rt().block_on(async {
            let cache = MemoryReplayCache::new(2);
            let short = Duration::from_millis(30);
            let long = Duration::from_secs(60);
            let (a, b, c) = (
                ReplayKey::for_state("a"),
                ReplayKey::for_state("b"),
                ReplayKey::for_state("c"),
            );
            assert!(cache.first_use(&a, short).await.unwrap());
            assert!(cache.first_use(&b, long).await.unwrap());
            std::thread::sleep(Duration::from_millis(60));
            assert!(!cache.seen(&a).await.unwrap(), "expired");
            assert!(cache.first_use(&c, long).await.unwrap(), "room was made");
            assert!(cache.first_use(&a, long).await.is_err(), "full again");
            assert!(!cache.first_use(&b, long).await.unwrap());
        });
    }

    #[test]
    fn an_overflowing_ttl_never_expires_and_never_panics() {
        rt().block_on(async {
            let cache = MemoryReplayCache::new(4);
            let key = ReplayKey::for_state("x");
            assert!(cache.first_use(&key, Duration::MAX).await.unwrap());
            assert!(!cache.first_use(&key, Duration::MAX).await.unwrap());
            assert!(cache.seen(&key).await.unwrap());
            assert!(Expiry::Never > Expiry::At(Duration::MAX));
        });
    }

    #[test]
    fn on_a_clock_entries_expire_on_that_clock_only() {
        rt().block_on(async {
            let clock = Arc::new(crate::clock::ManualClock::at_unix(1_764_288_000));
            let cache = MemoryReplayCache::with_clock(4, clock.clone());
            let key = ReplayKey::for_state("x");
            assert!(
                cache
                    .first_use(&key, Duration::from_secs(10))
                    .await
                    .unwrap()
            );
            // Real time passes, the clock does not: remembered.
            std::thread::sleep(Duration::from_millis(30));
            assert!(cache.seen(&key).await.unwrap());
            clock.advance(Duration::from_secs(9));
            assert!(cache.seen(&key).await.unwrap());
            // Stepped back: remembered all the longer.
            clock.set(time::OffsetDateTime::from_unix_timestamp(1_764_287_000).unwrap());
            assert!(
                !cache
                    .first_use(&key, Duration::from_secs(10))
                    .await
                    .unwrap()
            );
            clock.set(time::OffsetDateTime::from_unix_timestamp(1_764_288_011).unwrap());
            assert!(!cache.seen(&key).await.unwrap(), "expired on the clock");
            assert_eq!(cache.len(), 0);
        });
    }
}
