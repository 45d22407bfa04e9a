//! A small bounded cache with a time to live, and a way for concurrent misses of one key to make
//! one request and share its outcome: the user lookups' building blocks.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;
use tokio::sync::OnceCell;

/// The expiry of an entry living `ttl` from `now`. A `ttl` too long to add (only reachable with
/// settings the actix layer refuses) is cut to a year, and failing that the entry expires at
/// once: a cache miss, never a panic.
pub(crate) fn expiry(now: Instant, ttl: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    now.checked_add(ttl)
        .or_else(|| now.checked_add(YEAR))
        .unwrap_or(now)
}

/// Bounded LRU map whose entries expire `ttl` after insertion.
///
/// Its memory grows with its entries, not with its capacity (nothing is allocated up front), so
/// any capacity, `usize::MAX` included, is safe to ask for.
#[derive(Debug)]
pub(crate) struct TtlCache<K: Hash + Eq, V> {
    inner: Mutex<LruCache<K, (Instant, V)>>,
    capacity: usize,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    /// A cache holding at most `capacity` entries (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(LruCache::unbounded()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<K, (Instant, V)>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value, unless absent or expired (an expired entry is removed).
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.get_with_expiry(key).map(|(_, value)| value)
    }

    /// The value and when it expires, unless absent or expired (an expired entry is removed).
    pub(crate) fn get_with_expiry(&self, key: &K) -> Option<(Instant, V)> {
        let mut map = self.lock();
        match map.get(key) {
            Some((expires, value)) if *expires > Instant::now() => Some((*expires, value.clone())),
            Some(_) => {
                map.pop(key);
                None
            }
            None => None,
        }
    }

    /// Inserts or replaces a value living `ttl`; the least recently used entry goes when full.
    pub(crate) fn insert(&self, key: K, value: V, ttl: Duration) {
        self.insert_until(key, value, expiry(Instant::now(), ttl));
    }

    /// Inserts or replaces a value living until `expires`; the least recently used entry goes
    /// when full.
    pub(crate) fn insert_until(&self, key: K, value: V, expires: Instant) {
        let mut map = self.lock();
        if map.len() >= self.capacity && !map.contains(&key) {
            map.pop_lru();
        }
        map.put(key, (expires, value));
    }

    /// Removes an entry.
    pub(crate) fn remove(&self, key: &K) {
        self.lock().pop(key);
    }

    /// How many entries are held (expired ones included until touched).
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// The most entries held at once.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Concurrent lookups of one key share one request *and its outcome*, errors included: the
/// first caller runs the lookup, every caller that arrives while it is in flight waits for it
/// and is given a copy of its result. So when the request fails (a timeout), all of them answer
/// within that one request's time, instead of each trying in turn after the previous one
/// failed. If the caller running the lookup is cancelled (its future dropped), a waiting
/// caller runs it instead: nobody waits for a lookup that nobody runs.
#[derive(Debug)]
pub(crate) struct Flights<K: Hash + Eq + Clone, V> {
    slots: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K: Hash + Eq + Clone, V: Clone> Flights<K, V> {
    pub(crate) fn new() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<OnceCell<V>>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The outcome of `lookup` for `key`: run here, or shared with the one in flight.
    pub(crate) async fn run<F, Fut>(&self, key: K, lookup: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let slot = self.map().entry(key.clone()).or_default().clone();
        let outcome = slot.get_or_init(lookup).await.clone();
        // Landed: the next lookup of the key is a new flight.
        let mut map = self.map();
        if map.get(&key).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
            map.remove(&key);
        }
        outcome
    }

    /// How many keys have a lookup in flight (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_expiring() {
        let c = TtlCache::new(2);
        c.insert(1, "a", Duration::from_secs(60));
        c.insert(2, "b", Duration::from_secs(60));
        c.insert(3, "c", Duration::from_secs(60));
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&1), None);
        assert_eq!(c.get(&3), Some("c"));
        c.insert(4, "d", Duration::ZERO);
        assert_eq!(c.get(&4), None);
        // A time to live too long to add to now does not panic; the entry lives.
        c.insert(5, "e", Duration::MAX);
        assert_eq!(c.get(&5), Some("e"));
        assert_eq!(c.capacity(), 2);
    }

    #[test]
    fn a_huge_capacity_allocates_nothing_up_front() {
        let c = TtlCache::new(usize::MAX);
        c.insert(1, "a", Duration::from_secs(60));
        assert_eq!(c.get(&1), Some("a"));
        assert_eq!(c.capacity(), usize::MAX);
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn concurrent_lookups_share_one_run_and_its_outcome_and_forget_it_after() {
        rt().block_on(async {
            let flights = Arc::new(Flights::<u64, Result<u32, String>>::new());
            let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for _ in 0..5 {
                let (flights, runs) = (flights.clone(), runs.clone());
                tasks.push(tokio::spawn(async move {
                    flights
                        .run(7, || async {
                            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Err("timed out".to_owned())
                        })
                        .await
                }));
            }
            for t in tasks {
                assert_eq!(t.await.unwrap(), Err("timed out".to_owned()));
            }
            assert_eq!(
                runs.load(std::sync::atomic::Ordering::SeqCst),
                1,
                "one run, its failure shared"
            );
            assert_eq!(flights.len(), 0, "nothing left behind");
            // The next lookup is a new flight.
            assert_eq!(flights.run(7, || async { Ok(1) }).await, Ok(1));
        });
    }

    #[test]
    fn a_cancelled_run_is_taken_over_by_a_waiter() {
        rt().block_on(async {
            let flights = Arc::new(Flights::<u64, u32>::new());
            let first = {
                let flights = flights.clone();
                tokio::spawn(async move {
                    flights
                        .run(1, || async {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            0
                        })
                        .await
                })
            };
            tokio::time::sleep(Duration::from_millis(10)).await;
            let second = {
                let flights = flights.clone();
                tokio::spawn(async move { flights.run(1, || async { 2 }).await })
            };
            tokio::time::sleep(Duration::from_millis(10)).await;
            first.abort();
            let answer = tokio::time::timeout(Duration::from_secs(5), second)
                .await
                .expect("the waiter does not wait for a cancelled run")
                .unwrap();
            assert_eq!(answer, 2);
        });
    }
}
