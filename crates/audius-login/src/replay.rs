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

#[cfg(feature = "redis")]
pub use self::redis_store::{
    DEFAULT_REDIS_KEY_PREFIX, DEFAULT_REDIS_TIMEOUT, RedisReplayCache, RedisReplayCacheBuilder,
};

#[cfg(feature = "redis")]
mod redis_store {
    use std::fmt;
    use std::time::Duration;

    use async_trait::async_trait;
    use redis::aio::{ConnectionManager, ConnectionManagerConfig};

    use super::{ReplayCache, token_fingerprint};
    use crate::error::{Error, Result};

    /// Default prefix of the replay cache's Redis keys: `audius-login:replay:`.
    pub const DEFAULT_REDIS_KEY_PREFIX: &str = "audius-login:replay:";
    /// Default bound on every Redis call (connecting included): 1 s.
    pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(1);

    const STORE: &str = "replay cache";

    fn unavailable(message: impl Into<String>) -> Error {
        Error::StoreUnavailable {
            store: STORE,
            message: message.into(),
        }
    }

    /// A replay cache shared by every instance of an app, on Redis (feature `redis`).
    ///
    /// A token is recorded with one atomic command,
    /// `SET <prefix><sha256 of the token, hex> 1 NX EX <ttl seconds>`: the first instance to
    /// record it wins, every other instance (and every later attempt) is refused until the entry
    /// expires. The token itself is never sent to Redis.
    ///
    /// Every call (connecting included) is bounded by [`RedisReplayCacheBuilder::timeout`]; an
    /// unreachable, failing or slow Redis is [`Error::StoreUnavailable`] (suggested status 503),
    /// never a panic or a hang. The connection is a [`ConnectionManager`] configured to fail at
    /// once instead of backing off, and to reconnect on the next call: when Redis comes back, the
    /// cache works again without a restart (a command that finds its connection dropped is sent
    /// once more, on the new connection). Cheap to clone (shared connection).
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use audius_login::replay::{RedisReplayCache, ReplayCache};
    ///
    /// # async fn run() -> Result<(), audius_login::Error> {
    /// let cache = RedisReplayCache::builder("redis://127.0.0.1:6379")
    ///     .key_prefix("my-app:replay:")
    ///     .timeout(Duration::from_millis(500))
    ///     .connect()
    ///     .await?; // fails now, with StoreUnavailable, if Redis cannot be reached
    /// let shared: Arc<dyn ReplayCache> = Arc::new(cache);
    /// assert!(shared.first_use("header.payload.sig", Duration::from_secs(360)).await?);
    /// # Ok(()) }
    /// ```
    #[derive(Clone)]
    pub struct RedisReplayCache {
        client: redis::Client,
        prefix: String,
        timeout: Duration,
        conn: std::sync::Arc<tokio::sync::OnceCell<ConnectionManager>>,
    }

    /// Builder of a [`RedisReplayCache`]. Every setter states its default.
    #[derive(Debug, Clone)]
    pub struct RedisReplayCacheBuilder {
        url: String,
        prefix: String,
        timeout: Duration,
    }

    impl RedisReplayCacheBuilder {
        /// The prefix of every key. Default: [`DEFAULT_REDIS_KEY_PREFIX`]
        /// (`audius-login:replay:`). Give each app sharing a Redis its own.
        pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
            self.prefix = prefix.into();
            self
        }

        /// The bound on every Redis call, connecting included. Default: 1 s
        /// ([`DEFAULT_REDIS_TIMEOUT`]). Zero is refused by [`build`](Self::build).
        pub fn timeout(mut self, timeout: Duration) -> Self {
            self.timeout = timeout;
            self
        }

        /// Checks the settings and builds the cache without connecting: the first call connects
        /// (so an app can start while Redis is down). Fails with [`Error::Config`] on a URL the
        /// `redis` crate does not accept, a zero timeout, or a prefix over 256 bytes.
        pub fn build(self) -> Result<RedisReplayCache> {
            if self.timeout.is_zero() {
                return Err(Error::Config(
                    "the Redis replay cache timeout must be above zero".into(),
                ));
            }
            if self.prefix.len() > 256 {
                return Err(Error::Config(
                    "the Redis replay cache key prefix is over 256 bytes".into(),
                ));
            }
            let client = redis::Client::open(self.url.as_str())
                .map_err(|e| Error::Config(format!("invalid Redis URL: {e}")))?;
            Ok(RedisReplayCache {
                client,
                prefix: self.prefix,
                timeout: self.timeout,
                conn: std::sync::Arc::new(tokio::sync::OnceCell::new()),
            })
        }

        /// [`build`](Self::build), then connects and checks that Redis answers (`PING`), within
        /// the timeout: [`Error::StoreUnavailable`] when it does not.
        ///
        /// Call it on the runtime that lives as long as the app (in `#[actix_web::main]`, before
        /// `HttpServer::new`): the connection's background task runs there.
        pub async fn connect(self) -> Result<RedisReplayCache> {
            let cache = self.build()?;
            cache.ping().await?;
            Ok(cache)
        }
    }

    impl RedisReplayCache {
        /// A builder for the Redis at `url` (`redis://[:password@]host[:port][/db]`,
        /// `rediss://` needs a TLS feature of the `redis` crate). See its setters for defaults.
        pub fn builder(url: impl Into<String>) -> RedisReplayCacheBuilder {
            RedisReplayCacheBuilder {
                url: url.into(),
                prefix: DEFAULT_REDIS_KEY_PREFIX.to_owned(),
                timeout: DEFAULT_REDIS_TIMEOUT,
            }
        }

        /// Connects to `url` with the default settings; see [`RedisReplayCacheBuilder::connect`].
        pub async fn connect(url: impl Into<String>) -> Result<Self> {
            Self::builder(url).connect().await
        }

        /// The Redis key a token is recorded under: the prefix and the hex SHA-256 of the token.
        pub fn key_for(&self, token: &str) -> String {
            format!("{}{}", self.prefix, hex::encode(token_fingerprint(token)))
        }

        /// The bound on every call.
        pub fn timeout(&self) -> Duration {
            self.timeout
        }

        /// Checks that Redis answers (`PING`), within the timeout.
        pub async fn ping(&self) -> Result<()> {
            let answer: redis::Value = self.run(redis::cmd("PING")).await?;
            match answer {
                redis::Value::SimpleString(s) if s == "PONG" => Ok(()),
                redis::Value::Okay => Ok(()),
                other => Err(unavailable(format!("Redis answered PING with {other:?}"))),
            }
        }

        /// Connects when needed and runs one command, all within the timeout.
        async fn run(&self, cmd: redis::Cmd) -> Result<redis::Value> {
            let call = async {
                let conn = self
                    .conn
                    .get_or_try_init(|| async {
                        let config = ConnectionManagerConfig::new()
                            // Fail at once rather than back off (the caller answers 503 and
                            // the next call tries again), and bound each step.
                            .set_number_of_retries(0)
                            .set_connection_timeout(self.timeout)
                            .set_response_timeout(self.timeout);
                        ConnectionManager::new_with_config(self.client.clone(), config).await
                    })
                    .await
                    .map_err(|e| unavailable(format!("cannot connect to Redis: {e}")))?;
                let mut conn = conn.clone();
                match cmd.query_async::<redis::Value>(&mut conn).await {
                    // The connection died (Redis restarted): the manager reconnects at once;
                    // try once more on the new connection. (Were a `SET NX` applied before the
                    // connection broke, the retry reads as a replay: a refusal, never an
                    // accepted replay.)
                    Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                        tracing::debug!(error = %e, "Redis connection dropped; retrying once");
                        cmd.query_async::<redis::Value>(&mut conn).await
                    }
                    other => other,
                }
                .map_err(|e| unavailable(format!("Redis failed: {e}")))
            };
            match tokio::time::timeout(self.timeout, call).await {
                Ok(result) => result,
                Err(_) => Err(unavailable(format!(
                    "Redis did not answer within {:?}",
                    self.timeout
                ))),
            }
        }
    }

    impl fmt::Debug for RedisReplayCache {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let info = self.client.get_connection_info();
            f.debug_struct("RedisReplayCache")
                .field("addr", &info.addr.to_string())
                .field("db", &info.redis.db)
                .field("prefix", &self.prefix)
                .field("timeout", &self.timeout)
                .field("connected", &self.conn.initialized())
                .finish_non_exhaustive()
        }
    }

    #[async_trait]
    impl ReplayCache for RedisReplayCache {
        async fn first_use(&self, token: &str, ttl: Duration) -> Result<bool> {
            // Whole seconds, rounded up, at least one.
            let seconds = ttl
                .as_secs()
                .saturating_add(u64::from(ttl.subsec_nanos() > 0))
                .max(1);
            let mut cmd = redis::cmd("SET");
            cmd.arg(self.key_for(token))
                .arg(1)
                .arg("NX")
                .arg("EX")
                .arg(seconds);
            match self.run(cmd).await? {
                redis::Value::Okay => Ok(true),
                redis::Value::SimpleString(s) if s == "OK" => Ok(true),
                redis::Value::Nil => Ok(false),
                other => Err(unavailable(format!("Redis answered SET NX with {other:?}"))),
            }
        }
    }
}
