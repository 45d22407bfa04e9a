//! Every default and every fixed limit of the crate, in one place.
//!
//! A setter's documentation names the constant it defaults to; the limits below it are not
//! settings (they bound what is read from the network or the browser).

use std::time::Duration;

// ---- Defaults: each is what a setter leaves when it is not called. ----

/// [`ApiClientBuilder::connect_timeout`](crate::ApiClientBuilder::connect_timeout): 3 s.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// [`ApiClientBuilder::timeout`](crate::ApiClientBuilder::timeout), the total timeout of one
/// attempt (connect, answer and body): 10 s.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// [`ApiClientBuilder::health_timeout`](crate::ApiClientBuilder::health_timeout), the timeout
/// of a health check: 2 s.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// [`ApiClientBuilder::max_body_bytes`](crate::ApiClientBuilder::max_body_bytes), the cap on a
/// response body: 1 MiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// [`ApiClientBuilder::probe_count`](crate::ApiClientBuilder::probe_count), how many hosts are
/// health-checked in parallel when selecting: 3.
pub const PROBE_COUNT: usize = 3;
/// [`ApiClientBuilder::max_attempts`](crate::ApiClientBuilder::max_attempts), how many hosts one
/// request may try: 3.
pub const MAX_ATTEMPTS: usize = 3;
/// [`ApiClientBuilder::reselect_after`](crate::ApiClientBuilder::reselect_after), the
/// consecutive failed attempts after which a host is selected again: 3.
pub const RESELECT_AFTER: u32 = 3;

/// Capacity of [`MemoryReplayCache::default`](crate::replay::MemoryReplayCache): 100,000
/// entries (tokens and consumed states).
pub const REPLAY_CAPACITY: usize = 100_000;
/// Prefix of the Redis replay cache's keys (feature `redis`): `audius-login:replay:`.
pub const REDIS_KEY_PREFIX: &str = "audius-login:replay:";
/// Bound on every call of the Redis replay cache (feature `redis`), connecting included: 1 s.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest token accepted by [`Token::parse`](crate::Token::parse) and
/// [`VerifyOptions::max_token_bytes`](crate::VerifyOptions::max_token_bytes): 16 KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// [`VerifyOptions::clock_skew`](crate::VerifyOptions::clock_skew), the grace for clocks that
/// disagree: 30 s.
pub const CLOCK_SKEW: Duration = Duration::from_secs(30);
/// Time a user record stays cached ([`UserDirectory::new`](crate::UserDirectory::new)): 5 minutes.
pub const USER_CACHE_TTL: Duration = Duration::from_secs(300);
/// Number of user records cached ([`UserDirectory::new`](crate::UserDirectory::new)): 10,000 (and
/// as many manager lists).
pub const USER_CACHE_CAPACITY: usize = 10_000;
/// [`UserDirectory::negative_ttl`](crate::UserDirectory::negative_ttl), the time an unknown user
/// id is remembered as unknown: 30 s.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// [`UserDirectory::managers_ttl`](crate::UserDirectory::managers_ttl), the time an account's
/// manager list is cached (a revoked grant may still be honoured for this long): 30 s.
pub const MANAGERS_TTL: Duration = Duration::from_secs(30);
/// [`UserDirectory::refetch_interval`](crate::UserDirectory::refetch_interval): a login is judged
/// against a user record read at most 30 s before (and a record is read for logins at most once
/// per 30 s, forged tokens included).
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// [`UpstreamBudget::default`](crate::verify::UpstreamBudget), the app-wide budget of requests to
/// Audius that logins trigger: a burst of 50...
pub const UPSTREAM_BUDGET_BURST: u32 = 50;
/// ...then one more every 100 ms (10 per second).
pub const UPSTREAM_BUDGET_REFILL: Duration = Duration::from_millis(100);
/// [`UserDirectory`](crate::UserDirectory): a user id Audius answered 404 for is read again
/// for a token whose signer it has not refused yet (the account may exist by now) at most once
/// per 5 s; between such reads, those tokens are answered "try again" (503), not refused.
pub const NEGATIVE_RECHECK_INTERVAL: Duration = Duration::from_secs(5);

// ---- Fixed limits. ----

/// Most hosts kept from a discovery list.
pub const MAX_DISCOVERED_HOSTS: usize = 64;
/// Longest redirect URI accepted, in bytes (the limit Audius puts on registered redirect URIs).
pub const MAX_REDIRECT_URI_LEN: usize = 2000;
/// Longest return-to accepted by [`sanitize_return_to`](crate::return_to::sanitize_return_to),
/// in bytes.
pub const MAX_RETURN_TO_LEN: usize = 2048;
/// Longest authorization code accepted from a callback: 512 bytes.
pub const MAX_CODE_LEN: usize = 512;
/// Longest access or refresh token accepted in an answer: 4 KiB.
pub const MAX_OAUTH_TOKEN_LEN: usize = 4096;
/// Longest `expires_in` believed: one year (a longer one is read as one year).
pub const MAX_EXPIRES_IN: Duration = Duration::from_secs(365 * 24 * 3600);
/// How long a refresh token lives, from its issue (PKCE spec section 2): 30 days. Tokens kept
/// for a refresh's coordination ([`RefreshCoordination`](crate::replay::RefreshCoordination))
/// are kept no longer.
pub const REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
