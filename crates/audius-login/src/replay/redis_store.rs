//! The Redis replay cache (feature `redis`): one cache shared by several app instances.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};

use super::{BeginRefresh, LockOwner, Published, RefreshCoordination, ReplayCache, ReplayKey};
use crate::defaults;
use crate::error::{ConfigError, Error, Limited, Result};

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

/// What a Redis server says about persisting its data (`CONFIG GET appendonly save`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Persistence {
    /// Whether `appendonly` is `yes`, when it could be read.
    pub appendonly: Option<bool>,
    /// The `save` setting (RDB snapshots; empty: none), when it could be read.
    pub save: Option<String>,
}

impl Persistence {
    /// `Some(true)` when Redis persists nothing (`appendonly no` and an empty `save`): a
    /// restart loses every key. `Some(false)` when either is on, `None` when unknown.
    pub fn may_forget(&self) -> Option<bool> {
        match (self.appendonly, self.save.as_deref()) {
            (Some(true), _) => Some(false),
            (_, Some(save)) if !save.trim().is_empty() => Some(false),
            (Some(false), Some(_)) => Some(true),
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
/// It also coordinates the code flow's token refresh between instances
/// ([`RefreshCoordination`], through [`ReplayCache::refresh_coordination`]): a lock per token
/// family taken with `SET NX PX` and a random owner, released by compare-and-delete, the
/// family's newest tokens (a hash, fenced by generation), its dead mark and the holder's
/// in-flight marker (the generation it presents, kept until its answer is published), each under
/// `<prefix>refresh:{<hash of the family id>}:` ([`refresh_keys_for`](Self::refresh_keys_for)),
/// each step one Lua script (atomic; the keys of one family share a Redis Cluster slot).
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

/// The longest bound on a Redis call [`RedisReplayCacheBuilder::build`] accepts: it is part of
/// the refresh lock's time to live and, ten times over, of the in-doubt window.
const MAX_REDIS_TIMEOUT: Duration = Duration::from_secs(60);

impl RedisReplayCacheBuilder {
    /// The prefix of every key. Default: [`defaults::REDIS_KEY_PREFIX`]
    /// (`audius-login:replay:`). Give each app sharing a Redis its own.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The bound on every Redis call, connecting included. Default: 1 s
    /// ([`defaults::REDIS_TIMEOUT`]). Zero and more than 60 s are refused by
    /// [`build`](Self::build) (the bound is part of the refresh lock's time to live).
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
        if self.timeout.is_zero() || self.timeout > MAX_REDIS_TIMEOUT {
            return Err(ConfigError::new(
                "timeout",
                "the Redis replay cache timeout must be above zero and at most 60 s",
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
    /// [`require_noeviction`](Self::require_noeviction): fails with [`Error::Config`]), and
    /// logs a warning when Redis persists nothing ([`RedisReplayCache::check_persistence`]).
    ///
    /// Call it on the runtime that lives as long as the app (in `#[actix_web::main]`, before
    /// `HttpServer::new`): the connection's background task runs there.
    pub async fn connect(self) -> Result<RedisReplayCache> {
        let require = self.require_noeviction;
        let cache = self.build()?;
        cache.ping().await?;
        cache.check_eviction(require).await?;
        cache.check_persistence().await?;
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

    /// Reads `appendonly` and `save` ([`persistence`](Self::persistence)) and logs a warning
    /// when neither is on: a Redis that restarts empty forgets which refresh tokens were used
    /// (and which login tokens were accepted), so after such a restart an instance may present
    /// a used refresh token again (Audius then signs the user out) or accept a replay. Not
    /// refused (a cache without persistence is common); settings that cannot be read (managed
    /// Redis may forbid `CONFIG`) are not warned about. (What
    /// [`RedisReplayCacheBuilder::connect`] does.)
    pub async fn check_persistence(&self) -> Result<Persistence> {
        let persistence = self.persistence().await?;
        if persistence.may_forget() == Some(true) {
            tracing::warn!(
                "Redis persists nothing (appendonly no, save \"\"): a restart loses the replay \
                 cache and the refresh coordination, after which a used token may be presented \
                 again; turn on appendonly (or RDB snapshots)"
            );
        }
        Ok(persistence)
    }

    /// Reads `appendonly` and `save` (`CONFIG GET`). A refused `CONFIG` is not an error (the
    /// fields are then `None`); fails only when Redis cannot be reached.
    pub async fn persistence(&self) -> Result<Persistence> {
        let get = |name: &'static str| {
            let mut cmd = redis::cmd("CONFIG");
            cmd.arg("GET").arg(name);
            async move {
                let answer = match self.run_raw(cmd).await? {
                    Ok(answer) => answer,
                    Err(_) => return Ok(None),
                };
                let value = match answer {
                    redis::Value::Array(items) => items.get(1).and_then(text_of),
                    redis::Value::Map(items) => items.first().and_then(|(_, v)| text_of(v)),
                    _ => None,
                };
                Ok::<_, Error>(value)
            }
        };
        let appendonly = get("appendonly")
            .await?
            .map(|v| v.trim().eq_ignore_ascii_case("yes"));
        let save = get("save").await?;
        Ok(Persistence { appendonly, save })
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

    fn refresh_coordination(&self) -> Option<&dyn RefreshCoordination> {
        Some(self)
    }
}

// ---- The code flow's refresh, coordinated between instances (see `RefreshCoordination`). ----

/// The domain-separation tag of a family's keys (NUL-terminated).
const FAMILY_KEY_TAG: &[u8] = b"audius-login/refresh/family/v1\0";
/// The longest family id taken.
const MAX_FAMILY_BYTES: usize = 256;

/// `begin`: KEYS lock, tokens, dead, in-flight marker; ARGV owner, lock ttl (ms), generation
/// seen, in-doubt window (ms; 0: leave no marker), marker and dead mark ttl (ms).
///
/// The marker is a hash: `g` the generation presented, `at` when (Redis' clock, ms), `w` the
/// holder's in-doubt window (ms), `o` its owner.
const BEGIN: &str = r"
if redis.call('EXISTS', KEYS[3]) == 1 then return {'dead'} end
local g = redis.call('HGET', KEYS[2], 'g')
if g and tonumber(g) > tonumber(ARGV[3]) then
  return {'newer', g, redis.call('HGET', KEYS[2], 't')}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local m = redis.call('HMGET', KEYS[4], 'g', 'at', 'w', 'o')
if m[1] and tonumber(m[1]) >= tonumber(ARGV[3]) and m[4] ~= ARGV[1] then
  if redis.call('EXISTS', KEYS[1]) == 1 then return {'busy'} end
  if now - tonumber(m[2]) < tonumber(m[3]) then return {'in_doubt'} end
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[5])
  redis.call('DEL', KEYS[2], KEYS[4])
  return {'lost'}
end
if redis.call('GET', KEYS[1]) == ARGV[1]
  or redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if tonumber(ARGV[4]) > 0 and m[4] ~= ARGV[1] then
    redis.call('DEL', KEYS[4])
    redis.call('HSET', KEYS[4], 'g', ARGV[3], 'at', now, 'w', ARGV[4], 'o', ARGV[1])
    redis.call('PEXPIRE', KEYS[4], ARGV[5])
  end
  return {'locked'}
end
return {'busy'}
";

/// `release`: KEYS lock; ARGV owner. Compare-and-delete.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// `abandon`: KEYS lock, in-flight marker; ARGV owner. Deletes the owner's marker, then
/// compare-and-delete of the lock.
const ABANDON: &str = r"
if redis.call('HGET', KEYS[2], 'o') == ARGV[1] then redis.call('DEL', KEYS[2]) end
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// `publish`: KEYS tokens, dead, in-flight marker; ARGV generation, tokens, ttl (ms). A marker
/// of an older generation is cleared (its answer is recorded).
const PUBLISH: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return {'dead'} end
local function clear()
  local mg = redis.call('HGET', KEYS[3], 'g')
  if mg and tonumber(mg) < tonumber(ARGV[1]) then redis.call('DEL', KEYS[3]) end
end
local g = redis.call('HGET', KEYS[1], 'g')
if g then
  local have, new = tonumber(g), tonumber(ARGV[1])
  if have > new then return {'superseded', g} end
  if have == new then
    if redis.call('HGET', KEYS[1], 't') == ARGV[2] then clear() return {'stored'} end
    return {'superseded', g}
  end
end
redis.call('HSET', KEYS[1], 'g', ARGV[1], 't', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
clear()
return {'stored'}
";

/// `retire`: KEYS tokens, dead, in-flight marker; ARGV ttl (ms).
const RETIRE: &str = r"
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
redis.call('DEL', KEYS[3])
local g = redis.call('HGET', KEYS[1], 'g')
local t = redis.call('HGET', KEYS[1], 't')
redis.call('DEL', KEYS[1])
if g and t then return {g, t} end
return {}
";

/// A duration as whole milliseconds, rounded up, at least one.
fn millis(ttl: Duration) -> u64 {
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    ms.saturating_add(u64::from(!ttl.subsec_nanos().is_multiple_of(1_000_000)))
        .max(1)
}

/// The words of a script's answer (an array of bulk strings).
fn words(value: redis::Value, script: &str) -> Result<Vec<String>> {
    let items = match value {
        redis::Value::Array(items) => items,
        other => {
            return Err(unavailable(format!(
                "Redis answered the {script} script with {other:?}"
            )));
        }
    };
    items
        .iter()
        .map(|item| {
            text_of(item).ok_or_else(|| {
                unavailable(format!("Redis answered the {script} script with {item:?}"))
            })
        })
        .collect()
}

fn generation(word: &str, script: &str) -> Result<u64> {
    word.parse().map_err(|_| {
        unavailable(format!(
            "Redis answered the {script} script with the generation {word:?}"
        ))
    })
}

/// The keys of one family: the lock, the newest tokens, the dead mark, the in-flight marker.
struct FamilyKeys {
    lock: String,
    tokens: String,
    dead: String,
    in_flight: String,
}

impl RedisReplayCache {
    /// The keys of a family's refresh state, under the cache's prefix:
    /// `<prefix>refresh:{<id>}:lock`, `:tokens` and `:dead` (and `:inflight`, the in-flight
    /// marker, not returned here), where `<id>` is the first 32 hex
    /// digits of SHA-256 of the tag `"audius-login/refresh/family/v1"`, a NUL and the family
    /// id (so any id gives a short key of safe characters, and the braces keep a family's keys
    /// in one Redis Cluster slot). Fails with [`Error::TooLarge`] for an id over 256 bytes.
    pub fn refresh_keys_for(&self, family: &str) -> Result<[String; 3]> {
        let keys = self.family_keys(family)?;
        Ok([keys.lock, keys.tokens, keys.dead])
    }

    fn family_keys(&self, family: &str) -> Result<FamilyKeys> {
        if family.len() > MAX_FAMILY_BYTES {
            return Err(Error::TooLarge {
                what: Limited::Input,
                limit: MAX_FAMILY_BYTES,
            });
        }
        let mut hasher = Sha256::new();
        hasher.update(FAMILY_KEY_TAG);
        hasher.update(family.as_bytes());
        let digest: [u8; 32] = hasher.finalize().into();
        let base = format!("{}refresh:{{{}}}", self.prefix, hex::encode(&digest[..16]));
        Ok(FamilyKeys {
            lock: format!("{base}:lock"),
            tokens: format!("{base}:tokens"),
            dead: format!("{base}:dead"),
            in_flight: format!("{base}:inflight"),
        })
    }

    /// `EVAL script` with `keys` and `args`, within the timeout.
    async fn eval(&self, script: &str, keys: &[&str], args: &[&str]) -> Result<redis::Value> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script).arg(keys.len()).arg(keys).arg(args);
        self.run(cmd).await
    }
}

#[async_trait]
impl RefreshCoordination for RedisReplayCache {
    fn call_timeout(&self) -> Duration {
        self.timeout
    }

    async fn begin_marked(
        &self,
        family: &str,
        seen_generation: u64,
        owner: &LockOwner,
        lock_ttl: Duration,
        in_doubt_window: Duration,
    ) -> Result<BeginRefresh> {
        let keys = self.family_keys(family)?;
        let window = if in_doubt_window.is_zero() {
            0
        } else {
            millis(in_doubt_window)
        };
        let answer = self
            .eval(
                BEGIN,
                &[&keys.lock, &keys.tokens, &keys.dead, &keys.in_flight],
                &[
                    owner.as_str(),
                    &millis(lock_ttl).to_string(),
                    &seen_generation.to_string(),
                    &window.to_string(),
                    &millis(defaults::REFRESH_TOKEN_LIFETIME).to_string(),
                ],
            )
            .await?;
        let words = words(answer, "begin")?;
        match words.as_slice() {
            [w] if w == "locked" => Ok(BeginRefresh::Locked),
            [w] if w == "busy" => Ok(BeginRefresh::Busy),
            [w] if w == "dead" => Ok(BeginRefresh::Dead),
            [w] if w == "in_doubt" => Ok(BeginRefresh::InDoubt),
            [w] if w == "lost" => {
                tracing::warn!(
                    "a refresh token of this family was sent to Audius by a holder that never \
                     published the answer within its window; the family is marked dead"
                );
                Ok(BeginRefresh::Dead)
            }
            [w, g, tokens] if w == "newer" => Ok(BeginRefresh::Newer {
                generation: generation(g, "begin")?,
                tokens: tokens.clone(),
            }),
            other => Err(unavailable(format!(
                "Redis answered the begin script with {} words",
                other.len()
            ))),
        }
    }

    async fn abandon(&self, family: &str, owner: &LockOwner) -> Result<bool> {
        let keys = self.family_keys(family)?;
        match self
            .eval(ABANDON, &[&keys.lock, &keys.in_flight], &[owner.as_str()])
            .await?
        {
            redis::Value::Int(n) => Ok(n > 0),
            other => Err(unavailable(format!(
                "Redis answered the abandon script with {other:?}"
            ))),
        }
    }

    async fn release(&self, family: &str, owner: &LockOwner) -> Result<bool> {
        let keys = self.family_keys(family)?;
        match self.eval(RELEASE, &[&keys.lock], &[owner.as_str()]).await? {
            redis::Value::Int(n) => Ok(n > 0),
            other => Err(unavailable(format!(
                "Redis answered the release script with {other:?}"
            ))),
        }
    }

    async fn publish(
        &self,
        family: &str,
        new_generation: u64,
        tokens: &str,
        ttl: Duration,
    ) -> Result<Published> {
        let keys = self.family_keys(family)?;
        let answer = self
            .eval(
                PUBLISH,
                &[&keys.tokens, &keys.dead, &keys.in_flight],
                &[
                    &new_generation.to_string(),
                    tokens,
                    &millis(ttl).to_string(),
                ],
            )
            .await?;
        let words = words(answer, "publish")?;
        match words.as_slice() {
            [w] if w == "stored" => Ok(Published::Stored),
            [w] if w == "dead" => Ok(Published::Dead),
            [w, g] if w == "superseded" => Ok(Published::Superseded {
                generation: generation(g, "publish")?,
            }),
            other => Err(unavailable(format!(
                "Redis answered the publish script with {} words",
                other.len()
            ))),
        }
    }

    async fn retire(&self, family: &str, ttl: Duration) -> Result<Option<(u64, String)>> {
        let keys = self.family_keys(family)?;
        let answer = self
            .eval(
                RETIRE,
                &[&keys.tokens, &keys.dead, &keys.in_flight],
                &[&millis(ttl).to_string()],
            )
            .await?;
        let words = words(answer, "retire")?;
        match words.as_slice() {
            [] => Ok(None),
            [g, tokens] => Ok(Some((generation(g, "retire")?, tokens.clone()))),
            other => Err(unavailable(format!(
                "Redis answered the retire script with {} words",
                other.len()
            ))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_bounded_both_ways() {
        let with = |t: Duration| {
            RedisReplayCache::builder("redis://127.0.0.1:1/")
                .timeout(t)
                .build()
        };
        assert!(with(Duration::ZERO).is_err());
        assert!(with(defaults::REDIS_TIMEOUT).is_ok());
        assert!(with(MAX_REDIS_TIMEOUT).is_ok());
        // A huge bound would multiply into the refresh lock's time to live and the in-doubt
        // window (and overflow an `Instant`): refused, naming the setting.
        for huge in [MAX_REDIS_TIMEOUT + Duration::from_millis(1), Duration::MAX] {
            let Err(Error::Config(e)) = with(huge) else {
                panic!("{huge:?} accepted");
            };
            assert_eq!(e.setting(), "timeout");
        }
    }

    #[test]
    fn milliseconds_round_up() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_micros(1)), 1);
        assert_eq!(millis(Duration::from_micros(1_001)), 2);
        assert_eq!(millis(Duration::from_secs(2)), 2_000);
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }

    #[test]
    fn family_keys_are_bound_hashed_and_bounded() {
        let cache = RedisReplayCache::builder("redis://127.0.0.1:1/")
            .key_prefix("app:")
            .build()
            .unwrap();
        let [lock, tokens, dead] = cache.refresh_keys_for("fam").unwrap();
        assert!(
            lock.starts_with("app:refresh:{") && lock.ends_with("}:lock"),
            "{lock}"
        );
        assert_eq!(lock.len(), "app:refresh:{}:lock".len() + 32);
        assert_eq!(tokens.replace(":tokens", ":lock"), lock);
        assert_eq!(dead.replace(":dead", ":lock"), lock);
        // Another family, even one differing in one character, has other keys; the id never
        // appears in a key (any text gives safe characters).
        let [other, ..] = cache.refresh_keys_for("fan").unwrap();
        assert_ne!(other, lock);
        let [odd, ..] = cache.refresh_keys_for("a}:lock\r\n{b").unwrap();
        assert!(odd.bytes().all(|b| b.is_ascii_graphic()), "{odd}");
        assert!(!lock.contains("fam"));
        assert!(cache.refresh_keys_for(&"x".repeat(256)).is_ok());
        let err = cache.refresh_keys_for(&"x".repeat(257)).unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    }

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
