//! Replay protection: a token is accepted once.
//!
//! Audius tokens carry no `jti` and never expire, so an app that wants a token used once must
//! remember the tokens it accepted, for as long as it would accept them (the maximum age).
//! [`ReplayCache`] is that memory; [`MemoryReplayCache`] keeps it in the process (bounded), and
//! with the `redis` feature `RedisReplayCache` shares it between instances.
//!
//! ```
//! use std::time::Duration;
//! use audius_login::replay::{MemoryReplayCache, ReplayCache};
//!
//! # tokio_test_block_on(async {
//! let cache = MemoryReplayCache::new(10_000);
//! let ttl = Duration::from_secs(330);
//! assert!(cache.first_use("header.payload.sig", ttl).await?);
//! assert!(!cache.first_use("header.payload.sig", ttl).await?);
//! # Ok::<(), audius_login::Error>(()) }).unwrap();
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::cache::TtlCache;
use crate::error::Result;

/// Default capacity of [`MemoryReplayCache`]: 100,000 tokens.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// The SHA-256 of a token: what replay caches store (never the token itself).
pub fn token_fingerprint(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Remembers accepted tokens.
#[async_trait]
pub trait ReplayCache: Send + Sync + fmt::Debug {
    /// Records `token` for `ttl`. `Ok(true)` the first time, `Ok(false)` when it was already
    /// recorded and has not expired (a replay). Errors when the store cannot be reached.
    async fn first_use(&self, token: &str, ttl: Duration) -> Result<bool>;
}

/// An in-process replay cache, bounded: when full, the oldest entry is forgotten.
///
/// Size it above the number of logins expected within the maximum token age: a forgotten entry
/// is still refused by the age check once it is that old.
#[derive(Debug)]
pub struct MemoryReplayCache {
    seen: TtlCache<[u8; 32], ()>,
}

impl MemoryReplayCache {
    /// A cache remembering at most `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: TtlCache::new(capacity),
        }
    }

    /// How many tokens are remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no token is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most tokens remembered at once.
    pub fn capacity(&self) -> usize {
        self.seen.capacity()
    }
}

impl Default for MemoryReplayCache {
    fn default() -> Self {
        Self::new(DEFAULT_REPLAY_CAPACITY)
    }
}

#[async_trait]
impl ReplayCache for MemoryReplayCache {
    async fn first_use(&self, token: &str, ttl: Duration) -> Result<bool> {
        Ok(self
            .seen
            .insert_if_absent(token_fingerprint(token), (), ttl))
    }
}
