//! A small bounded cache with a time to live, shared by the user lookups and the in-memory
//! replay cache.

use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

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
        let expires = Instant::now() + ttl;
        self.lock().put(key, (expires, value));
    }

    /// Inserts `key` unless a live entry exists. Returns `true` when inserted.
    pub(crate) fn insert_if_absent(&self, key: K, value: V, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut map = self.lock();
        if let Some((expires, _)) = map.peek(&key)
            && *expires > now
        {
            return false;
        }
        map.put(key, (now + ttl, value));
        true
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
        assert!(c.insert_if_absent(5, "e", Duration::from_secs(60)));
        assert!(!c.insert_if_absent(5, "e", Duration::from_secs(60)));
        assert_eq!(c.capacity(), 2);
    }
}
