//! The Redis replay cache (feature `redis`): one cache shared by several app instances.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{ReplayCache, ReplayKey};
use crate::defaults;
use crate::error::{ConfigError, Error, Result};

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
    /// The prefix of every key. Default: [`defaults::REDIS_KEY_PREFIX`]
    /// (`audius-login:replay:`). Give each app sharing a Redis its own.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The bound on every Redis call, connecting included. Default: 1 s
    /// ([`defaults::REDIS_TIMEOUT`]). Zero is refused by [`build`](Self::build).
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
            return Err(ConfigError::new(
                "timeout",
                "the Redis replay cache timeout must be above zero",
            )
            .into());
        }
        if self.prefix.len() > 256 {
            return Err(ConfigError::new(
                "prefix",
                "the Redis replay cache key prefix is over 256 bytes",
            )
            .into());
        }
        let client = redis::Client::open(self.url.as_str())
            .map_err(|e| Error::from(ConfigError::new("url", format!("invalid Redis URL: {e}"))))?;
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
            prefix: defaults::REDIS_KEY_PREFIX.to_owned(),
            timeout: defaults::REDIS_TIMEOUT,
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
            return Err(ConfigError::new("require_noeviction", message).into());
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
