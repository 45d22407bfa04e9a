//! Replay protection: a token is accepted once, and a login state is consumed once.
//!
//! Audius tokens carry no `jti` and never expire, so an app that wants a token used once must
//! remember the tokens it accepted, for as long as it would accept them (the maximum age).
//! [`ReplayCache`] is that memory; [`MemoryReplayCache`] keeps it in the process (bounded, and
//! never forgetting a live entry), and with the `redis` feature `RedisReplayCache` shares it
//! between instances.
//!
//! # What is remembered: [`ReplayKey`]
//!
//! Not the token's text: the parser accepts many texts for one signed token (upper- or
//! lower-case hex, `0x`, `0X` or no prefix, base64url with or without padding, `v` as 0/1 or
//! 27/28, and the high-S twin of the signature), exactly as Audius does. Keyed on the text, each
//! of those spellings would be "new" and sign the victim in again. A [`ReplayKey`] is the
//! token's *identity* instead:
//!
//! ```text
//! SHA-256( "audius-login/replay/token/v1" 0x00 ‖ header.payload ‖ signer )
//! ```
//!
//! where `header.payload` is the signing input exactly as signed (the first two segments and
//! the dot between them) and `signer` the 20 bytes of the wallet recovered from the signature.
//! Every spelling of the signature recovers the same signer over the same signing input, so
//! they all share one key; changing a single byte of the signed text changes the key (and the
//! recovered signer). A consumed login state has keys of its own (tag
//! `"audius-login/replay/state/v1"`), which can never equal a token's.
//!
//! ```
//! use std::time::Duration;
//! use audius_login::Token;
//! use audius_login::replay::{MemoryReplayCache, ReplayCache, ReplayKey};
//!
//! # tokio_test_block_on(async {
//! # let text = include_str!("../tests/fixtures/basic.token").trim();
//! let (token, signer) = Token::parse_and_recover(text, 16 * 1024)?;
//! let key = ReplayKey::for_token(token.signing_input(), &signer);
//! let cache = MemoryReplayCache::new(10_000);
//! let ttl = Duration::from_secs(360);
//! assert!(!cache.seen(&key).await?);
//! assert!(cache.first_use(&key, ttl).await?);
//! assert!(!cache.first_use(&key, ttl).await?); // a replay
//! assert!(cache.seen(&key).await?);
//! # Ok::<(), audius_login::Error>(()) }).unwrap();
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::Wallet;
use crate::clock::Clock;
use crate::error::{Error, Result};

/// Default capacity of [`MemoryReplayCache`]: 100,000 entries (tokens and consumed states).
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// The domain-separation tag of a token's [`ReplayKey`] (NUL-terminated).
pub const TOKEN_KEY_TAG: &[u8] = b"audius-login/replay/token/v1\0";
/// The domain-separation tag of a consumed login state's [`ReplayKey`] (NUL-terminated).
pub const STATE_KEY_TAG: &[u8] = b"audius-login/replay/state/v1\0";

/// What a replay cache records: the identity of a token, or of a consumed login state, as 32
/// bytes of SHA-256 (see the [module docs](self)). Never the token or the state itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplayKey([u8; 32]);

impl ReplayKey {
    /// The key of a token: SHA-256 of [`TOKEN_KEY_TAG`], the signing input exactly as signed
    /// (`header.payload`, see [`Token::signing_input`](crate::Token::signing_input)) and the
    /// recovered signer's 20 bytes. The signer is last and of fixed length, so the encoding is
    /// unambiguous.
    pub fn for_token(signing_input: &str, signer: &Wallet) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(TOKEN_KEY_TAG);
        hasher.update(signing_input.as_bytes());
        hasher.update(signer.as_bytes());
        Self(hasher.finalize().into())
    }

    /// The key of a consumed login state: SHA-256 of [`STATE_KEY_TAG`] and the state's text.
    pub fn for_state(state: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(STATE_KEY_TAG);
        hasher.update(state.as_bytes());
        Self(hasher.finalize().into())
    }

    /// A key from its 32 bytes (for stores that keep the bytes).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lower-case hex digits of the key.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplayKey({})", self.to_hex())
    }
}

/// Remembers accepted tokens and consumed states, by their [`ReplayKey`].
#[async_trait]
pub trait ReplayCache: Send + Sync + fmt::Debug {
    /// Records `key` for `ttl`, atomically. `Ok(true)` the first time, `Ok(false)` when it was
    /// already recorded and has not expired (a replay). Errors when the store cannot be reached
    /// ([`Error::StoreUnavailable`]) or cannot take one more live entry
    /// ([`Error::ReplayCacheFull`]): a refusal, never a silent acceptance.
    async fn first_use(&self, key: &ReplayKey, ttl: Duration) -> Result<bool>;

    /// Whether a live entry exists for `key`: a read that records nothing, used to refuse a
    /// replay before any network call. [`first_use`](Self::first_use) stays the authority
    /// (two concurrent uses may both read `false`; only one records).
    async fn seen(&self, key: &ReplayKey) -> Result<bool>;
}

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
        Self::new(DEFAULT_REPLAY_CAPACITY)
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

#[cfg(feature = "redis")]
pub use self::redis_store::{
    DEFAULT_REDIS_KEY_PREFIX, DEFAULT_REDIS_TIMEOUT, EvictionPolicy, RedisReplayCache,
    RedisReplayCacheBuilder,
};

#[cfg(feature = "redis")]
mod redis_store {
    use std::fmt;
    use std::time::Duration;

    use async_trait::async_trait;
    use redis::aio::{ConnectionManager, ConnectionManagerConfig};

    use super::{ReplayCache, ReplayKey};
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

    /// What a Redis server says about evicting keys under memory pressure
    /// (`CONFIG GET maxmemory maxmemory-policy`).
    ///
    /// Every key of the replay cache carries a time to live, so every policy but `noeviction`
    /// may evict them once `maxmemory` is reached: the `allkeys-*` policies evict any key, and
    /// the `volatile-*` ones evict precisely the keys with a time to live. An evicted entry is a
    /// token (or state) that can be used again.
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[non_exhaustive]
    pub struct EvictionPolicy {
        /// `maxmemory` in bytes (0: no limit), when it could be read.
        pub maxmemory: Option<u64>,
        /// `maxmemory-policy` (`noeviction`, `volatile-lru`, ...), when it could be read.
        pub policy: Option<String>,
        /// Why the settings could not be read (for example `CONFIG` disabled or renamed, as
        /// managed Redis services do), if they could not.
        pub unreadable: Option<String>,
    }

    impl EvictionPolicy {
        /// `Some(true)` when Redis may evict the cache's keys (a memory limit and a policy other
        /// than `noeviction`), `Some(false)` when it will not, `None` when unknown.
        pub fn may_evict(&self) -> Option<bool> {
            match (self.policy.as_deref(), self.maxmemory) {
                (Some(policy), _) if policy.eq_ignore_ascii_case("noeviction") => Some(false),
                (Some(_), Some(0)) => Some(false),
                (Some(_), Some(_)) => Some(true),
                _ => None,
            }
        }
    }

    /// A replay cache shared by every instance of an app, on Redis (feature `redis`).
    ///
    /// A key is recorded with one atomic command,
    /// `SET <prefix><replay key, hex> 1 NX EX <ttl seconds>`: the first instance to record it
    /// wins, every other instance (and every later attempt) is refused until the entry expires.
    /// [`seen`](ReplayCache::seen) is `EXISTS`. Neither the token nor the state is ever sent to
    /// Redis: only its [`ReplayKey`].
    ///
    /// Redis must not evict these keys: run it with `maxmemory-policy noeviction` (or without a
    /// memory limit). [`RedisReplayCacheBuilder::connect`] reads the policy and warns (or, with
    /// [`RedisReplayCacheBuilder::require_noeviction`], refuses) when it may evict them.
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
    /// use audius_login::replay::{RedisReplayCache, ReplayCache, ReplayKey};
    ///
    /// # async fn run() -> Result<(), audius_login::Error> {
    /// let cache = RedisReplayCache::builder("redis://127.0.0.1:6379")
    ///     .key_prefix("my-app:replay:")
    ///     .timeout(Duration::from_millis(500))
    ///     .connect()
    ///     .await?; // fails now, with StoreUnavailable, if Redis cannot be reached
    /// let shared: Arc<dyn ReplayCache> = Arc::new(cache);
    /// let key = ReplayKey::for_state("a login state");
    /// assert!(shared.first_use(&key, Duration::from_secs(360)).await?);
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
        require_noeviction: bool,
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

        /// Make [`connect`](Self::connect) fail with [`Error::Config`] unless Redis is known not
        /// to evict the cache's keys ([`EvictionPolicy::may_evict`] is `Some(false)`): a policy
        /// that may evict them, or settings that cannot be read (`CONFIG` disabled), are then
        /// refused instead of logged as a warning. Default: `false` (warn).
        pub fn require_noeviction(mut self, require: bool) -> Self {
            self.require_noeviction = require;
            self
        }

        /// Checks the settings and builds the cache without connecting: the first call connects
        /// (so an app can start while Redis is down), and the eviction policy is not checked.
        /// Fails with [`Error::Config`] on a URL the `redis` crate does not accept, a zero
        /// timeout, or a prefix over 256 bytes.
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
        /// the timeout: [`Error::StoreUnavailable`] when it does not. Then reads the eviction
        /// policy ([`RedisReplayCache::eviction_policy`]) and logs a warning when Redis may
        /// evict the cache's keys or the policy cannot be read (with
        /// [`require_noeviction`](Self::require_noeviction): fails with [`Error::Config`]).
        ///
        /// Call it on the runtime that lives as long as the app (in `#[actix_web::main]`, before
        /// `HttpServer::new`): the connection's background task runs there.
        pub async fn connect(self) -> Result<RedisReplayCache> {
            let require = self.require_noeviction;
            let cache = self.build()?;
            cache.ping().await?;
            cache.check_eviction(require).await?;
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
                require_noeviction: false,
            }
        }

        /// Connects to `url` with the default settings; see [`RedisReplayCacheBuilder::connect`].
        pub async fn connect(url: impl Into<String>) -> Result<Self> {
            Self::builder(url).connect().await
        }

        /// The Redis key a replay key is recorded under: the prefix and the key's hex.
        pub fn key_for(&self, key: &ReplayKey) -> String {
            format!("{}{}", self.prefix, key.to_hex())
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

        /// Reads the eviction policy ([`eviction_policy`](Self::eviction_policy)) and logs a
        /// warning when Redis may evict the cache's keys or the policy cannot be read; with
        /// `require_noeviction`, fails with [`Error::Config`] instead. (What
        /// [`RedisReplayCacheBuilder::connect`] does; an app that builds the cache without
        /// connecting can call it once Redis is up.)
        pub async fn check_eviction(&self, require_noeviction: bool) -> Result<EvictionPolicy> {
            let policy = self.eviction_policy().await?;
            let message = match policy.may_evict() {
                Some(false) => return Ok(policy),
                Some(true) => format!(
                    "Redis may evict the replay cache's keys (maxmemory {}, maxmemory-policy \
                     {}): an evicted token could be used twice; set maxmemory-policy \
                     noeviction, or give the cache a Redis of its own",
                    policy.maxmemory.unwrap_or_default(),
                    policy.policy.as_deref().unwrap_or("?"),
                ),
                None => format!(
                    "cannot tell whether Redis may evict the replay cache's keys ({}): make sure \
                     its maxmemory-policy is noeviction",
                    policy
                        .unreadable
                        .as_deref()
                        .unwrap_or("settings not readable"),
                ),
            };
            if require_noeviction {
                return Err(Error::Config(message));
            }
            tracing::warn!("{message}");
            Ok(policy)
        }

        /// Reads `maxmemory` and `maxmemory-policy` (`CONFIG GET`). A refused `CONFIG` (disabled
        /// or renamed) is not an error: the answer then says why it is unknown. Fails only when
        /// Redis cannot be reached ([`Error::StoreUnavailable`]).
        pub async fn eviction_policy(&self) -> Result<EvictionPolicy> {
            let mut cmd = redis::cmd("CONFIG");
            cmd.arg("GET").arg("maxmemory").arg("maxmemory-policy");
            let answer = match self.run_raw(cmd).await? {
                Ok(answer) => answer,
                Err(refused) => {
                    return Ok(EvictionPolicy {
                        maxmemory: None,
                        policy: None,
                        unreadable: Some(format!("CONFIG GET refused: {refused}")),
                    });
                }
            };
            let pairs: Vec<(String, String)> = match answer {
                // RESP2: [name, value, name, value].
                redis::Value::Array(items) => items
                    .chunks(2)
                    .filter_map(|pair| match pair {
                        [k, v] => Some((text_of(k)?, text_of(v)?)),
                        _ => None,
                    })
                    .collect(),
                // RESP3: a map.
                redis::Value::Map(items) => items
                    .iter()
                    .filter_map(|(k, v)| Some((text_of(k)?, text_of(v)?)))
                    .collect(),
                other => {
                    return Ok(EvictionPolicy {
                        maxmemory: None,
                        policy: None,
                        unreadable: Some(format!("CONFIG GET answered {other:?}")),
                    });
                }
            };
            let get = |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            let maxmemory = get("maxmemory").and_then(|v| v.trim().parse().ok());
            let policy = get("maxmemory-policy");
            let unreadable = (maxmemory.is_none() || policy.is_none())
                .then(|| "CONFIG GET did not give maxmemory and maxmemory-policy".to_owned());
            Ok(EvictionPolicy {
                maxmemory,
                policy,
                unreadable,
            })
        }

        /// Connects when needed and runs one command, all within the timeout.
        async fn run(&self, cmd: redis::Cmd) -> Result<redis::Value> {
            self.run_raw(cmd)
                .await?
                .map_err(|e| unavailable(format!("Redis failed: {e}")))
        }

        /// Like [`run`](Self::run), but an error answered by Redis itself (a refused command)
        /// comes back as the inner `Err`; only a failure to talk to Redis is the outer error.
        async fn run_raw(
            &self,
            cmd: redis::Cmd,
        ) -> Result<std::result::Result<redis::Value, redis::RedisError>> {
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
                let answer = match cmd.query_async::<redis::Value>(&mut conn).await {
                    // The connection died (Redis restarted): the manager reconnects at once;
                    // try once more on the new connection. (Were a `SET NX` applied before the
                    // connection broke, the retry reads as a replay: a refusal, never an
                    // accepted replay.)
                    Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                        tracing::debug!(error = %e, "Redis connection dropped; retrying once");
                        cmd.query_async::<redis::Value>(&mut conn).await
                    }
                    other => other,
                };
                match answer {
                    Ok(value) => Ok(Ok(value)),
                    Err(e) if e.kind() == redis::ErrorKind::ResponseError => Ok(Err(e)),
                    Err(e)
                        if e.is_connection_dropped()
                            || e.is_io_error()
                            || e.is_timeout()
                            || e.is_connection_refusal() =>
                    {
                        Err(unavailable(format!("Redis failed: {e}")))
                    }
                    Err(e) => Ok(Err(e)),
                }
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

    fn text_of(value: &redis::Value) -> Option<String> {
        match value {
            redis::Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            redis::Value::SimpleString(s) => Some(s.clone()),
            redis::Value::VerbatimString { text, .. } => Some(text.clone()),
            redis::Value::Int(n) => Some(n.to_string()),
            _ => None,
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
        async fn first_use(&self, key: &ReplayKey, ttl: Duration) -> Result<bool> {
            // Whole seconds, rounded up, at least one.
            let seconds = ttl
                .as_secs()
                .saturating_add(u64::from(ttl.subsec_nanos() > 0))
                .max(1);
            let mut cmd = redis::cmd("SET");
            cmd.arg(self.key_for(key))
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

        async fn seen(&self, key: &ReplayKey) -> Result<bool> {
            let mut cmd = redis::cmd("EXISTS");
            cmd.arg(self.key_for(key));
            match self.run(cmd).await? {
                redis::Value::Int(n) => Ok(n > 0),
                other => Err(unavailable(format!("Redis answered EXISTS with {other:?}"))),
            }
        }
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
    fn token_and_state_keys_live_apart() {
        let signer = Wallet::from_bytes([7; 20]);
        let token = ReplayKey::for_token("a.b", &signer);
        assert_ne!(token, ReplayKey::for_token("a.c", &signer));
        assert_ne!(
            token,
            ReplayKey::for_token("a.b", &Wallet::from_bytes([8; 20]))
        );
        // The same text under the other tag gives another key.
        assert_ne!(ReplayKey::for_state("a.b"), token);
        assert_eq!(ReplayKey::for_state("s"), ReplayKey::for_state("s"));
        assert_eq!(token.to_hex().len(), 64);
        assert!(format!("{token:?}").starts_with("ReplayKey("));
        // The definition, written out.
        let mut h = Sha256::new();
        h.update(b"audius-login/replay/token/v1\0a.b");
        h.update([7u8; 20]);
        let want: [u8; 32] = h.finalize().into();
        assert_eq!(token.as_bytes(), &want);
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

    #[cfg(feature = "redis")]
    #[test]
    fn eviction_policies() {
        let p = |maxmemory: Option<u64>, policy: Option<&str>| EvictionPolicy {
            maxmemory,
            policy: policy.map(str::to_owned),
            unreadable: None,
        };
        assert_eq!(
            p(Some(1 << 20), Some("noeviction")).may_evict(),
            Some(false)
        );
        assert_eq!(p(None, Some("noeviction")).may_evict(), Some(false));
        assert_eq!(p(Some(0), Some("allkeys-lru")).may_evict(), Some(false));
        for policy in [
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
        ] {
            assert_eq!(p(Some(1 << 20), Some(policy)).may_evict(), Some(true));
        }
        assert_eq!(p(None, None).may_evict(), None);
        assert_eq!(p(None, Some("volatile-lru")).may_evict(), None);
    }
}
