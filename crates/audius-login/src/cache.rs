//! A small bounded cache with a time to live, and a way for concurrent misses of one key to make
//! one request: the user lookups' building blocks.

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;

/// The expiry of an entry living `ttl` from `now`. A `ttl` too long to add (only reachable with
/// settings the actix layer refuses) is cut to a year, and failing that the entry expires at
/// once: a cache miss, never a panic.
fn expiry(now: Instant, ttl: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    now.checked_add(ttl)
        .or_else(|| now.checked_add(YEAR))
        .unwrap_or(now)
}

/// Bounded LRU map whose entries expire `ttl` after insertion.
#[derive(Debug)]
pub(crate) struct TtlCache<K: Hash + Eq, V> {
    inner: Mutex<LruCache<K, (Instant, V)>>,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    /// A cache holding at most `capacity` entries (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            inner: Mutex::new(LruCache::new(capacity)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<K, (Instant, V)>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value, unless absent or expired (an expired entry is removed).
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let mut map = self.lock();
        match map.get(key) {
            Some((expires, value)) if *expires > Instant::now() => Some(value.clone()),
            Some(_) => {
                map.pop(key);
                None
            }
            None => None,
        }
    }

    /// Inserts or replaces a value living `ttl`; the least recently used entry goes when full.
    pub(crate) fn insert(&self, key: K, value: V, ttl: Duration) {
        let expires = expiry(Instant::now(), ttl);
        self.lock().put(key, (expires, value));
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
        self.lock().cap().get()
    }
}

/// One lock per key in flight: concurrent misses of one key wait for the first to finish its
/// request (and then find the cache filled) instead of each making their own.
#[derive(Debug)]
pub(crate) struct Flights<K: Hash + Eq + Clone> {
    locks: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

/// Held while a key's request is in flight; dropping it lets the next waiter in.
pub(crate) struct Flight<'a, K: Hash + Eq + Clone> {
    flights: &'a Flights<K>,
    key: K,
    lock: Arc<tokio::sync::Mutex<()>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<K: Hash + Eq + Clone> Flights<K> {
    pub(crate) fn new() -> Self {
        Self {
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<tokio::sync::Mutex<()>>>> {
        self.locks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for the key's turn.
    pub(crate) async fn enter(&self, key: K) -> Flight<'_, K> {
        let lock = self.map().entry(key.clone()).or_default().clone();
        let guard = lock.clone().lock_owned().await;
        Flight {
            flights: self,
            key,
            lock,
            guard: Some(guard),
        }
    }

    /// How many keys have a request in flight or waiting (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }
}

impl<K: Hash + Eq + Clone> Drop for Flight<'_, K> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.flights.map();
        // Nobody else holds or waits for the lock (the map's copy and ours): forget it.
        if Arc::strong_count(&self.lock) == 2 {
            map.remove(&self.key);
        }
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
    fn flights_serialise_one_key_and_forget_it_after() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let flights = Arc::new(Flights::new());
            let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for _ in 0..5 {
                let (flights, inside, most) = (flights.clone(), inside.clone(), most.clone());
                tasks.push(tokio::spawn(async move {
                    let _flight = flights.enter(7u64).await;
                    let now = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 1);
            assert_eq!(flights.len(), 0, "nothing left behind");
        });
    }
}
