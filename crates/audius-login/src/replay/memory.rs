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

/// When an entry expires: on real time, and (on a clock) once the clock has passed its time too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expiries {
    /// On real time ([`Instant`], since the cache's creation): wall-clock steps do not move it.
    real: Expiry,
    /// On the clock, when the cache has one: the entry lives until both have passed.
    clock: Option<Expiry>,
}

#[derive(Debug, Default)]
struct Entries {
    expiry_of: HashMap<ReplayKey, Expiries>,
    /// Every entry whose real-time expiry has not been seen to pass, by that expiry.
    by_real: BTreeSet<(Expiry, ReplayKey)>,
    /// Entries past their real-time expiry, waiting for the clock, by their clock expiry.
    by_clock: BTreeSet<(Expiry, ReplayKey)>,
    last_full_log: Option<Instant>,
    refused_since_log: u64,
}

impl Entries {
    /// Forgets every entry expired on real time and (when it has one) on the clock.
    fn purge(&mut self, now: Now) {
        while let Some(&(expiry, key)) = self.by_real.first() {
            if expiry.is_live(now.real) {
                break;
            }
            self.by_real.pop_first();
            match self.expiry_of.get(&key).and_then(|e| e.clock) {
                Some(on_clock) if now.clock.is_some_and(|c| on_clock.is_live(c)) => {
                    self.by_clock.insert((on_clock, key));
                }
                _ => {
                    self.expiry_of.remove(&key);
                }
            }
        }
        let Some(clock_now) = now.clock else {
            return;
        };
        while let Some(&(expiry, key)) = self.by_clock.first() {
            if expiry.is_live(clock_now) {
                break;
            }
            self.by_clock.pop_first();
            self.expiry_of.remove(&key);
        }
    }
}

/// Now, on real time and on the clock (when the cache has one).
#[derive(Debug, Clone, Copy)]
struct Now {
    real: Tick,
    clock: Option<Tick>,
}

impl Expiries {
    fn is_live(self, now: Now) -> bool {
        self.real.is_live(now.real)
            || matches!((self.clock, now.clock), (Some(e), Some(c)) if e.is_live(c))
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
/// Entries expire on real time ([`Instant`]), which wall-clock steps do not affect; given the
/// clock token ages are judged on ([`with_clock`](Self::with_clock)), an entry also lives for
/// as long as that clock has not passed its time to live: it is forgotten only once *both* have
/// passed, so a wall clock stepped back (NTP, a VM restored from a snapshot) cannot make a token
/// young again after its entry was forgotten, and a step forward cannot purge it early.
#[derive(Debug)]
pub struct MemoryReplayCache {
    entries: Mutex<Entries>,
    capacity: usize,
    /// Real time's origin: the cache's creation.
    origin: Instant,
    /// The clock entries also live on, from the Unix epoch (a time before it reads as the
    /// epoch).
    clock: Option<Arc<dyn Clock>>,
}

impl MemoryReplayCache {
    fn now(&self) -> Now {
        Now {
            real: self.origin.elapsed(),
            clock: self.clock.as_ref().map(|clock| {
                let since_epoch = clock.now() - time::OffsetDateTime::UNIX_EPOCH;
                Duration::try_from(since_epoch).unwrap_or(Duration::ZERO)
            }),
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
            origin: Instant::now(),
            clock: None,
        }
    }

    /// A cache remembering at most `capacity` live entries (at least one), forgetting one only
    /// when its time to live has passed both on real time and on `clock`: give it the clock
    /// token ages are judged on (the actix layer gives its own), and a token's entry outlives
    /// its acceptance whatever that clock does. A clock stepped back keeps entries longer
    /// (they count against the capacity until it catches up); a clock stepped forward does not
    /// shorten them (real time still counts).
    pub fn with_clock(capacity: usize, clock: Arc<dyn Clock>) -> Self {
        Self {
            clock: Some(clock),
            ..Self::new(capacity)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many live entries are remembered now.
    pub fn len(&self) -> usize {
        let now = self.now();
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
        let now = self.now();
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
        let expiries = Expiries {
            real: Expiry::after(now.real, ttl),
            clock: now.clock.map(|c| Expiry::after(c, ttl)),
        };
        entries.expiry_of.insert(*key, expiries);
        entries.by_real.insert((expiries.real, *key));
        metrics::replay_cache_entries(entries.expiry_of.len());
        Ok(true)
    }

    async fn seen(&self, key: &ReplayKey) -> Result<bool> {
        let now = self.now();
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
    fn on_a_clock_entries_expire_once_both_real_time_and_the_clock_passed() {
        rt().block_on(async {
            let clock = Arc::new(crate::clock::ManualClock::at_unix(1_764_288_000));
            let cache = MemoryReplayCache::with_clock(4, clock.clone());
            let ttl = Duration::from_millis(50);
            let key = ReplayKey::for_state("x");
            assert!(cache.first_use(&key, ttl).await.unwrap());
            // Stepped forward an hour: real time has not passed, remembered.
            clock.advance(Duration::from_secs(3600));
            assert!(cache.seen(&key).await.unwrap());
            assert_eq!(cache.len(), 1, "a forward step does not purge it");
            // Back (corrected), and real time passes: the clock has not, remembered.
            clock.set(time::OffsetDateTime::from_unix_timestamp(1_764_288_000).unwrap());
            std::thread::sleep(Duration::from_millis(80));
            assert!(cache.seen(&key).await.unwrap());
            assert!(!cache.first_use(&key, ttl).await.unwrap());
            assert_eq!(cache.len(), 1);
            // Stepped back further: remembered all the longer.
            clock.set(time::OffsetDateTime::from_unix_timestamp(1_764_287_000).unwrap());
            assert!(cache.seen(&key).await.unwrap());
            // Both have passed: forgotten.
            clock.set(time::OffsetDateTime::from_unix_timestamp(1_764_288_001).unwrap());
            assert!(!cache.seen(&key).await.unwrap(), "expired on both");
            assert_eq!(cache.len(), 0);
            assert!(cache.first_use(&key, ttl).await.unwrap());
        });
    }
}
