//! Verifying a token: through the Audius API, or locally. Both give the same [`VerifiedProfile`].
//!
//! ```no_run
//! use std::time::Duration;
//! use audius_login::{ApiClient, ApiVerifier, LocalVerifier, Verifier, VerifyOptions};
//!
//! # async fn run(token: &str) -> Result<(), audius_login::Error> {
//! let client = ApiClient::builder().build()?;
//! let options = VerifyOptions::default().max_age(Some(Duration::from_secs(300)));
//!
//! // Ask Audius (`GET /v1/users/verify_token`).
//! let api = ApiVerifier::new(client.clone()).options(options.clone());
//! // Or recover the signer here and compare it with the user's wallet (cached lookups).
//! let local = LocalVerifier::new(client).options(options);
//!
//! let profile = local.verify(token).await?;
//! println!("{} (@{}) verified artist: {}", profile.name, profile.handle, profile.verified);
//! # Ok(()) }
//! ```
//!
//! # Whose word is the profile?
//!
//! An Audius token is signed by the user's *own* wallet key, so every claim in it is the user's
//! word, and a user who extracts their key can sign any `verified`, `name` or `email` they like;
//! the `verify_token` endpoint only checks the signature and that the wallet belongs to the user.
//! So by default ([`ProfileSource::UserRecord`]) both verifiers take `handle`, `name`,
//! `verified` and the picture from Audius' user record (`GET /v1/users/{id}`, cached), and only
//! `email` (which exists nowhere else) from the token. [`ProfileSource::TokenClaims`] takes
//! everything from the token, as the Audius SDK does.
//!
//! # Cheap checks first
//!
//! Both verifiers parse the token and recover its signer locally ([`PreparedToken`]), then
//! judge its age and audience ([`VerifyOptions::check_claims`]) *before* any network call: a
//! malformed, stale or foreign token costs no request to Audius. Only then does the local
//! verifier look the user up (cached, unknown users and manager lists too: see
//! [`UserDirectory`]), and the API verifier call `verify_token`.
//!
//! # Age, audience and replay
//!
//! Tokens never expire on their own. [`VerifyOptions::max_age`] refuses a token whose `iat` is
//! older (with [`VerifyOptions::clock_skew`] of grace), against an injectable clock.
//! [`VerifyOptions::api_key`] refuses a token approved for another app (its `apiKey` claim).
//! Refusing a second use of the same token is the job of a
//! [`ReplayCache`](crate::replay::ReplayCache), keyed by [`PreparedToken::replay_key`]: the
//! token's identity, the same for every spelling the parser accepts.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tracing::Instrument as _;

use crate::cache::{Flights, TtlCache, expiry};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result, TokenPart};
use crate::replay::ReplayKey;
use crate::token::{Claims, DEFAULT_MAX_TOKEN_BYTES, ProfilePicture, Token, UserIdForm};
use crate::{ApiClient, UserId, Wallet};

/// Default grace for clocks that disagree: 30 s.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(30);
/// Default time a user record stays cached: 5 minutes.
pub const DEFAULT_USER_CACHE_TTL: Duration = Duration::from_secs(300);
/// Default number of user records cached: 10,000 (and as many manager lists).
pub const DEFAULT_USER_CACHE_CAPACITY: usize = 10_000;
/// Default time an unknown user id is remembered as unknown: 30 s.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// Default time an account's manager list is cached (a revoked grant may still be honoured for
/// this long): 30 s.
pub const DEFAULT_MANAGERS_TTL: Duration = Duration::from_secs(30);
/// Default of [`UserDirectory::refetch_interval`]: a login is judged against a user record read
/// at most 30 s before (and a record is read for logins at most once per 30 s, forged tokens
/// included).
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// Where a verified profile's `handle`, `name`, `verified` and picture come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProfileSource {
    /// Audius' user record (`GET /v1/users/{id}`, cached): what Audius says (default).
    #[default]
    UserRecord,
    /// The token's claims: what the signer says, no extra lookup.
    TokenClaims,
}

/// A user as verified: who they are on Audius.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct VerifiedProfile {
    /// The user's id.
    pub user_id: UserId,
    /// Their handle (empty only with [`ProfileSource::TokenClaims`] and a token without one).
    pub handle: String,
    /// Their display name (may be empty).
    pub name: String,
    /// The email in the token: the only place an app gets it. The user's own word.
    pub email: Option<String>,
    /// The verified-artist check mark.
    pub verified: bool,
    /// Their picture.
    pub profile_picture: Option<ProfilePicture>,
    /// The account's wallet, from the user record (when one was read).
    pub wallet: Option<Wallet>,
    /// The wallet that signed the token, when recovered here (local verification). Differs from
    /// `wallet` when an approved manager signed for the account.
    pub signer: Option<Wallet>,
    /// When the user approved the login (`iat`).
    #[serde(with = "time::serde::rfc3339::option")]
    pub issued_at: Option<OffsetDateTime>,
    /// Where `handle`, `name`, `verified` and the picture came from.
    pub source: ProfileSource,
    /// Every claim, as the token (or, for the API verifier, the API) gave them.
    pub claims: Claims,
}

impl VerifiedProfile {
    /// The profile of a user record, as the authorization-code flow learns it (`GET /v1/me`
    /// with the user's access token): no token was verified, so there is no `email`, no
    /// `signer` and no `issued_at`, and [`claims`](Self::claims) is made from the record
    /// (`userId`, `sub`, `name`, `handle`, `verified`, `profilePicture`).
    pub fn from_api_user(user: &ApiUser) -> Self {
        let mut map = Map::new();
        map.insert("userId".into(), Value::String(user.id.hashid()));
        map.insert("name".into(), Value::String(user.name.clone()));
        map.insert("handle".into(), Value::String(user.handle.clone()));
        map.insert("verified".into(), Value::Bool(user.is_verified));
        map.insert(
            "profilePicture".into(),
            user.raw
                .get("profile_picture")
                .cloned()
                .unwrap_or(Value::Null),
        );
        map.insert("sub".into(), Value::String(user.id.hashid()));
        // A hashid made only of digits reads as a decimal id: then write the decimal id.
        let claims = match Claims::from_map(map.clone()) {
            Ok(claims) if claims.user_id == user.id => claims,
            _ => {
                let decimal = Value::String(user.id.get().to_string());
                map.insert("userId".into(), decimal.clone());
                map.insert("sub".into(), decimal);
                Claims::from_map(map).expect("a decimal userId is always accepted")
            }
        };
        Self {
            user_id: user.id,
            handle: user.handle.clone(),
            name: user.name.clone(),
            email: None,
            verified: user.is_verified,
            profile_picture: user.profile_picture.clone(),
            wallet: user.wallet,
            signer: None,
            issued_at: None,
            source: ProfileSource::UserRecord,
            claims,
        }
    }
}

/// Settings shared by both verifiers.
#[derive(Clone)]
pub struct VerifyOptions {
    max_age: Option<Duration>,
    clock_skew: Duration,
    clock: Arc<dyn Clock>,
    max_token_bytes: usize,
    profile_source: ProfileSource,
    api_key: Option<String>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            max_age: None,
            clock_skew: DEFAULT_CLOCK_SKEW,
            clock: Arc::new(SystemClock),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            profile_source: ProfileSource::UserRecord,
            api_key: None,
        }
    }
}

/// An API key in the form keys are compared in: no `0x`/`0X`, lower case, trimmed.
fn normalized_key(key: &str) -> String {
    let key = key.trim();
    key.strip_prefix("0x")
        .or_else(|| key.strip_prefix("0X"))
        .unwrap_or(key)
        .to_ascii_lowercase()
}

impl fmt::Debug for VerifyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("max_age", &self.max_age)
            .field("clock_skew", &self.clock_skew)
            .field("clock", &self.clock)
            .field("max_token_bytes", &self.max_token_bytes)
            .field("profile_source", &self.profile_source)
            .field("api_key", &self.api_key)
            .finish()
    }
}

impl VerifyOptions {
    /// Refuse tokens whose `iat` is older than this (or missing). Default: `None` (no limit; the
    /// actix layer sets 5 minutes).
    pub fn max_age(mut self, max_age: Option<Duration>) -> Self {
        self.max_age = max_age;
        self
    }

    /// Grace for clocks that disagree, both ways. Default: 30 s.
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// The clock `iat` is judged against. Default: [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Longest token accepted. Default: 16 KiB.
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// Where the profile's fields come from. Default: [`ProfileSource::UserRecord`].
    pub fn profile_source(mut self, source: ProfileSource) -> Self {
        self.profile_source = source;
        self
    }

    /// The app's API key: a token whose `apiKey` claim is missing or another key is refused
    /// ([`Error::AudienceMismatch`]), before any network call. Keys are compared without `0x`
    /// and case-insensitively. Default: `None`, which accepts a token approved for *any* app:
    /// set it whenever the app has a key.
    ///
    /// The key must be an Audius API key: 40 hex characters once trimmed and stripped of
    /// `0x`/`0X`. Anything else (an empty or blank key, `0x` alone, a prefix) is refused with
    /// [`Error::Config`]: it would otherwise make tokens whose `apiKey` is `""`, `"0x"` or blank
    /// "this app's".
    ///
    /// ```
    /// use audius_login::VerifyOptions;
    ///
    /// let options = VerifyOptions::default().api_key(Some("0XB1D1B1D1B1D1B1D1B1D1B1D1B1D1B1D1B1D1B1D1"))?;
    /// assert_eq!(options.get_api_key(), Some("b1d1b1d1b1d1b1d1b1d1b1d1b1d1b1d1b1d1b1d1"));
    /// for bad in ["", "  ", "0x", "b1d1"] {
    ///     assert!(VerifyOptions::default().api_key(Some(bad)).is_err());
    /// }
    /// # Ok::<(), audius_login::Error>(())
    /// ```
    pub fn api_key(mut self, key: Option<&str>) -> Result<Self> {
        self.api_key = match key {
            Some(key) => {
                let normalized = normalized_key(key);
                if normalized.len() != 40 || !normalized.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Error::Config(
                        "an Audius API key is 40 hex characters (with or without 0x); this one \
                         would match tokens approved for no app, or for another"
                            .into(),
                    ));
                }
                Some(normalized)
            }
            None => None,
        };
        Ok(self)
    }

    /// The maximum age enforced, if any.
    pub fn get_max_age(&self) -> Option<Duration> {
        self.max_age
    }

    /// The grace for clocks that disagree.
    pub fn get_clock_skew(&self) -> Duration {
        self.clock_skew
    }

    /// The clock in use.
    pub fn get_clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The API key tokens must carry (normalised), if any.
    pub fn get_api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    /// Longest token accepted.
    pub fn get_max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }

    /// The checks on claims that need no network: [`check_age`](Self::check_age), then
    /// [`check_audience`](Self::check_audience).
    pub fn check_claims(&self, claims: &Claims) -> Result<()> {
        self.check_age(claims)?;
        self.check_audience(claims)
    }

    /// Refuses claims approved for another app: with an [`api_key`](Self::api_key) set, the
    /// token's `apiKey` must be that key (normalised). Without one, every token passes.
    pub fn check_audience(&self, claims: &Claims) -> Result<()> {
        let Some(expected) = &self.api_key else {
            return Ok(());
        };
        let found = match claims.get("apiKey") {
            Some(Value::String(key)) => Some(normalized_key(key)),
            Some(Value::Null) | None => None,
            Some(other) => Some(other.to_string().chars().take(64).collect()),
        };
        match &found {
            Some(key) if key == expected => Ok(()),
            Some(key) => Err(Error::AudienceMismatch {
                message: format!(
                    "the token was approved for another app (apiKey {key}), not this one"
                ),
                found: Some(key.chars().take(64).collect()),
            }),
            None => Err(Error::AudienceMismatch {
                message: "the token carries no apiKey: it was not approved for this app".into(),
                found: None,
            }),
        }
    }

    /// Refuses claims whose `iat` is too old, in the future, or missing, when an age is enforced.
    pub fn check_age(&self, claims: &Claims) -> Result<()> {
        let Some(max_age) = self.max_age else {
            return Ok(());
        };
        let stale = |issued_at, message: String| Error::Stale {
            issued_at,
            max_age,
            message,
        };
        let Some(issued_at) = claims.issued_at() else {
            return Err(stale(None, "the token carries no usable iat".into()));
        };
        // Cannot overflow: `time` holds dates within ±9999 years, and their difference fits.
        let age = self.clock.now() - issued_at;
        let skew = time::Duration::try_from(self.clock_skew).unwrap_or(time::Duration::MAX);
        let limit = time::Duration::try_from(max_age).unwrap_or(time::Duration::MAX);
        if age > limit.saturating_add(skew) {
            return Err(stale(
                Some(issued_at),
                format!(
                    "issued {}s ago; the limit is {}s",
                    age.whole_seconds(),
                    max_age.as_secs()
                ),
            ));
        }
        if age < -skew {
            return Err(stale(
                Some(issued_at),
                format!("issued {}s in the future", -age.whole_seconds()),
            ));
        }
        Ok(())
    }
}

/// A token parsed, its signer recovered and its replay key computed: the part of verification
/// that needs no network, done first (spec 4.1's order: a token that is both unrecoverable and
/// broken is a [`BadSignature`](Error::BadSignature), as Audius answers 404 for it).
///
/// ```
/// use audius_login::verify::PreparedToken;
///
/// # let text = include_str!("../tests/fixtures/basic.token").trim();
/// let prepared = PreparedToken::parse(text, 16 * 1024)?;
/// assert_eq!(prepared.claims().user_id.get(), 44);
/// assert_eq!(prepared.signer().to_string(), "0x5bb302630d6412513edf124f0c3819d5c7fc228a");
/// // The token's identity for the replay cache, whatever its spelling.
/// let _key = prepared.replay_key();
/// # Ok::<(), audius_login::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PreparedToken {
    token: Token,
    signer: Wallet,
    replay_key: ReplayKey,
}

impl PreparedToken {
    /// Parses `text` (at most `max_bytes`), recovers its signer and computes its replay key.
    pub fn parse(text: &str, max_bytes: usize) -> Result<Self> {
        let (token, signer) = Token::parse_and_recover(text, max_bytes)?;
        let replay_key = ReplayKey::for_token(token.signing_input(), &signer);
        Ok(Self {
            token,
            signer,
            replay_key,
        })
    }

    /// The parsed token.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The token's claims.
    pub fn claims(&self) -> &Claims {
        self.token.claims()
    }

    /// The wallet that signed the token (not yet known to own the account).
    pub fn signer(&self) -> Wallet {
        self.signer
    }

    /// The token's identity for a [`ReplayCache`](crate::replay::ReplayCache): the same for
    /// every spelling of the signature the parser accepts.
    pub fn replay_key(&self) -> &ReplayKey {
        &self.replay_key
    }

    /// The token's text, as given.
    pub fn as_str(&self) -> &str {
        self.token.as_str()
    }
}

/// Verifies a token and says who the user is.
#[async_trait]
pub trait Verifier: Send + Sync + fmt::Debug {
    /// The verified profile, or why the token is refused.
    async fn verify(&self, token: &str) -> Result<VerifiedProfile>;

    /// The verified profile of a token already parsed and recovered
    /// ([`PreparedToken::parse`]), so that it is not parsed twice. Default:
    /// [`verify`](Self::verify) of its text. The built-in verifiers use the recovered signer
    /// and check the claims (age, audience) before any network call.
    async fn verify_prepared(&self, token: &PreparedToken) -> Result<VerifiedProfile> {
        self.verify(token.as_str()).await
    }
}

#[async_trait]
impl<T: Verifier + ?Sized> Verifier for Arc<T> {
    async fn verify(&self, token: &str) -> Result<VerifiedProfile> {
        (**self).verify(token).await
    }

    async fn verify_prepared(&self, token: &PreparedToken) -> Result<VerifiedProfile> {
        (**self).verify_prepared(token).await
    }
}

/// A user as the API describes it (spec section 7).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ApiUser {
    /// `id`.
    pub id: UserId,
    /// `handle`.
    pub handle: String,
    /// `name`.
    pub name: String,
    /// `is_verified`.
    pub is_verified: bool,
    /// `is_deactivated`: the account was deactivated (absent reads as `false`). The local
    /// verifier refuses a deactivated account, and a deactivated manager.
    pub is_deactivated: bool,
    /// `profile_picture`.
    pub profile_picture: Option<ProfilePicture>,
    /// `wallet` (or `erc_wallet` when `wallet` is absent): the account's signing wallet.
    pub wallet: Option<Wallet>,
    /// `spl_wallet`: a Solana address, not a signing key.
    pub spl_wallet: Option<String>,
    /// The whole object as the API gave it.
    pub raw: Map<String, Value>,
}

impl ApiUser {
    /// Reads a user object; `None` when `id` or `handle` is missing or invalid.
    pub fn from_json(value: &Value) -> Option<Self> {
        let obj = value.as_object()?;
        let text = |k: &str| obj.get(k).and_then(Value::as_str);
        let flag = |k: &str| obj.get(k).and_then(Value::as_bool).unwrap_or(false);
        let wallet = text("wallet")
            .or_else(|| text("erc_wallet"))
            .and_then(|w| w.parse().ok());
        Some(Self {
            id: UserId::from_json(obj.get("id")?).ok()?,
            handle: text("handle")?.to_owned(),
            name: text("name").unwrap_or_default().to_owned(),
            is_verified: flag("is_verified"),
            is_deactivated: flag("is_deactivated"),
            profile_picture: ProfilePicture::from_json(obj.get("profile_picture")),
            wallet,
            spl_wallet: text("spl_wallet").map(str::to_owned),
            raw: obj.clone(),
        })
    }
}

/// A manager grant (`GET /v1/users/{id}/managers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ManagerGrant {
    /// The manager's wallet (`grant.grantee_address`).
    pub grantee: Wallet,
    /// The manager's user id, when given.
    pub manager_id: Option<UserId>,
    /// `grant.is_approved`.
    pub is_approved: bool,
    /// `grant.is_revoked`.
    pub is_revoked: bool,
    /// `manager.is_deactivated`: the manager's own account is deactivated.
    pub manager_deactivated: bool,
}

impl ManagerGrant {
    /// Reads one entry of the managers list: `{"manager": user, "grant": {...}}`.
    pub fn from_json(value: &Value) -> Option<Self> {
        let grant = value.get("grant")?;
        let manager = value.get("manager");
        let grantee = grant
            .get("grantee_address")
            .and_then(Value::as_str)
            .or_else(|| manager?.get("wallet")?.as_str())?
            .parse()
            .ok()?;
        Some(Self {
            grantee,
            manager_id: manager
                .and_then(|m| m.get("id"))
                .and_then(|id| UserId::from_json(id).ok()),
            is_approved: grant.get("is_approved").and_then(Value::as_bool) == Some(true),
            is_revoked: grant.get("is_revoked").and_then(Value::as_bool) != Some(false),
            manager_deactivated: manager
                .and_then(|m| m.get("is_deactivated"))
                .and_then(Value::as_bool)
                == Some(true),
        })
    }

    /// Approved, not revoked, and the manager's account not deactivated: the grantee may sign
    /// for the account.
    pub fn is_active(&self) -> bool {
        self.is_approved && !self.is_revoked && !self.manager_deactivated
    }
}

/// A user record as cached: the record, or `None` for a user Audius does not have (a negative
/// entry), when it was read, and how reading it again has been failing.
#[derive(Debug, Clone)]
struct CachedUser {
    user: Option<Arc<ApiUser>>,
    read_at: Instant,
    /// Re-reads that failed in a row since `read_at`, the last one's error, and when the next
    /// may be tried.
    failing: Option<Failing>,
}

/// Reads of one lookup failing in a row: no new attempt before `retry_at`.
#[derive(Debug, Clone)]
struct Failing {
    count: u32,
    error: Error,
    retry_at: Instant,
}

impl Failing {
    /// One more failure after `previous`, backing off from `base`: `base`, then twice, four and
    /// eight times as long.
    fn after(previous: Option<&Failing>, error: Error, base: Duration) -> Self {
        let count = previous.map_or(0, |f| f.count).saturating_add(1);
        let wait = base.saturating_mul(1 << (count - 1).min(3));
        Self {
            count,
            error,
            retry_at: expiry(Instant::now(), wait),
        }
    }

    fn backing_off(&self) -> bool {
        Instant::now() < self.retry_at
    }
}

/// A user's record as a login is judged against it.
#[derive(Debug, Clone)]
struct LoginRecord {
    user: Option<Arc<ApiUser>>,
    /// Set when the record could not be read again and this is the cached one, older than the
    /// refetch interval: why it could not be read.
    stale_because: Option<Error>,
}

/// User lookups with bounded, expiring caches.
///
/// Three things are cached, each for its own time: user records (default 5 minutes), user ids
/// Audius does not know (negative entries, default 30 s), and manager lists, empty ones
/// included (default 30 s).
///
/// A login ([`user_for_signer`](Self::user_for_signer), what [`LocalVerifier`] asks) is judged
/// against a record read within the [`refetch_interval`](Self::refetch_interval) (default
/// 30 s); an older one is read again first, whatever the token's signer, so that an account
/// deactivated (or a wallet changed) at Audius is refused here within that interval. A record
/// is read again at most once per interval however many tokens arrive, forged ones included;
/// a read that *fails* counts too: the cached record then decides (a token that does not match
/// it stays refused), and the next attempt waits the interval, doubling while reads keep
/// failing (up to eight times). Manager lists that cannot be read are not asked for again
/// within the same back-off. And concurrent lookups of one user share one request and its
/// outcome, failures included. So forged tokens cannot turn into a stream of requests to
/// Audius: for one user id, at most two requests (the record and the manager list) per
/// interval, whether Audius answers or fails.
#[derive(Debug)]
pub struct UserDirectory {
    client: ApiClient,
    user_flights: Flights<u64, Result<LoginRecord>>,
    manager_flights: Flights<u64, Result<Arc<Vec<ManagerGrant>>>>,
    cache: TtlCache<u64, CachedUser>,
    managers: TtlCache<u64, Arc<Vec<ManagerGrant>>>,
    managers_failing: TtlCache<u64, Failing>,
    ttl: Duration,
    negative_ttl: Duration,
    managers_ttl: Duration,
    refetch_interval: Duration,
}

impl UserDirectory {
    /// A directory with the default caches (records 5 minutes, unknown ids and manager lists
    /// 30 s, 10,000 of each; a record read again at most every 30 s).
    pub fn new(client: ApiClient) -> Self {
        Self::with_cache(client, DEFAULT_USER_CACHE_TTL, DEFAULT_USER_CACHE_CAPACITY)
    }

    /// A directory caching up to `capacity` users for `ttl` each (a zero `ttl` disables it),
    /// and as many unknown ids and manager lists for their own (default) times. The caches
    /// allocate as they fill, not up front: any capacity is safe to ask for.
    pub fn with_cache(client: ApiClient, ttl: Duration, capacity: usize) -> Self {
        Self {
            client,
            user_flights: Flights::new(),
            manager_flights: Flights::new(),
            cache: TtlCache::new(capacity),
            managers: TtlCache::new(capacity),
            managers_failing: TtlCache::new(capacity),
            ttl,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            managers_ttl: DEFAULT_MANAGERS_TTL,
            refetch_interval: DEFAULT_REFETCH_INTERVAL,
        }
    }

    /// How long a user id Audius answered 404 for is remembered as unknown. Default: 30 s
    /// ([`DEFAULT_NEGATIVE_TTL`]); zero disables it.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// How long an account's manager list (empty included) is cached: a grant revoked at Audius
    /// may be honoured for this long. Default: 30 s ([`DEFAULT_MANAGERS_TTL`]); zero disables
    /// it.
    pub fn managers_ttl(mut self, ttl: Duration) -> Self {
        self.managers_ttl = ttl;
        self
    }

    /// How old a cached record may be and still decide a login on its own; older, the next
    /// login reads it again (whatever the token's signer), and so a user's record is read for
    /// logins at most once per interval, failed reads included (they back off from this
    /// interval, doubling). An account deactivated, or a wallet changed, at Audius is refused
    /// here within this interval (or, while Audius fails, within the user cache's time to
    /// live). Default: 30 s ([`DEFAULT_REFETCH_INTERVAL`]). Zero reads the record at every
    /// login, forged tokens included: no bound on the requests they cost.
    pub fn refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// The API client used.
    pub fn client(&self) -> &ApiClient {
        &self.client
    }

    /// How many users (and unknown ids) are cached now.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// The most users cached at once.
    pub fn capacity(&self) -> usize {
        self.cache.capacity()
    }

    /// The user, from the cache when fresh (an unknown id too); `None` when Audius has no such
    /// user. Concurrent lookups of one user share one request.
    pub async fn user(&self, id: UserId) -> Result<Option<Arc<ApiUser>>> {
        if let Some(cached) = self.cache.get(&id.get()) {
            return Ok(cached.user);
        }
        let record = self
            .user_flights
            .run(id.get(), || async {
                // A lookup that just landed may have filled the cache.
                if let Some(cached) = self.cache.get(&id.get()) {
                    return Ok(LoginRecord {
                        user: cached.user,
                        stale_because: None,
                    });
                }
                self.read_user(id).await
            })
            .await?;
        Ok(record.user)
    }

    /// The user whose token `_signer` signed, as a login is judged: the cached record when it
    /// was read within the [`refetch_interval`](Self::refetch_interval) (or when reading it
    /// again is backing off after a failure), else read again first, whatever the signer.
    /// When that read fails, the cached record answers (while it lives); without one, the
    /// error does.
    pub async fn user_for_signer(
        &self,
        id: UserId,
        _signer: Wallet,
    ) -> Result<Option<Arc<ApiUser>>> {
        Ok(self.record_for_login(id).await?.user)
    }

    /// The record a login is judged against (see [`user_for_signer`](Self::user_for_signer)).
    async fn record_for_login(&self, id: UserId) -> Result<LoginRecord> {
        if let Some(record) = self.deciding_record(id) {
            return Ok(record);
        }
        self.user_flights
            .run(id.get(), || async {
                // A lookup that just landed may have read it.
                if let Some(record) = self.deciding_record(id) {
                    return Ok(record);
                }
                self.read_user(id).await
            })
            .await
    }

    /// The cached record, when it may decide a login without a request.
    fn deciding_record(&self, id: UserId) -> Option<LoginRecord> {
        let cached = self.cache.get(&id.get())?;
        if cached.read_at.elapsed() < self.refetch_interval {
            return Some(LoginRecord {
                user: cached.user,
                stale_because: None,
            });
        }
        match cached.failing {
            Some(failing) if failing.backing_off() => Some(LoginRecord {
                user: cached.user,
                stale_because: Some(failing.error),
            }),
            _ => None,
        }
    }

    /// Reads the record (filling the cache); when the read fails and a record is cached, that
    /// record, with the failure noted (and the next attempt backed off).
    async fn read_user(&self, id: UserId) -> Result<LoginRecord> {
        match self.fetch_user(id).await {
            Ok(user) => Ok(LoginRecord {
                user,
                stale_because: None,
            }),
            Err(error) => {
                let Some((expires, mut cached)) = self.cache.get_with_expiry(&id.get()) else {
                    return Err(error);
                };
                let failing = Failing::after(
                    cached.failing.as_ref(),
                    error.clone(),
                    self.refetch_interval,
                );
                tracing::warn!(
                    user_id = id.get(),
                    failures = failing.count,
                    retry_in_ms = u64::try_from(
                        failing.retry_at.saturating_duration_since(Instant::now()).as_millis()
                    )
                    .unwrap_or(u64::MAX),
                    error = %error,
                    "reading a user's record again failed; the cached record decides meanwhile"
                );
                cached.failing = Some(failing);
                self.cache.insert_until(id.get(), cached.clone(), expires);
                Ok(LoginRecord {
                    user: cached.user,
                    stale_because: Some(error),
                })
            }
        }
    }

    /// The user, from the API (refreshing the cache, a negative entry for a 404 included).
    pub async fn fetch_user(&self, id: UserId) -> Result<Option<Arc<ApiUser>>> {
        let answer = self
            .client
            .get(&format!("/v1/users/{}", id.hashid()))
            .await?;
        match answer.status.as_u16() {
            200 => {
                let body: Value = answer.json()?;
                let user = body
                    .get("data")
                    .and_then(ApiUser::from_json)
                    .ok_or_else(|| Error::UpstreamUnexpected {
                        status: 200,
                        message: "the user answer has no data.id and data.handle".into(),
                    })?;
                if user.id != id {
                    return Err(Error::UpstreamUnexpected {
                        status: 200,
                        message: format!("asked for user {id}, got user {}", user.id),
                    });
                }
                let user = Arc::new(user);
                self.remember(id, Some(user.clone()), self.ttl);
                Ok(Some(user))
            }
            404 => {
                self.remember(id, None, self.negative_ttl);
                Ok(None)
            }
            status => Err(unexpected_or_unavailable(status, &answer)),
        }
    }

    fn remember(&self, id: UserId, user: Option<Arc<ApiUser>>, ttl: Duration) {
        if ttl.is_zero() {
            self.cache.remove(&id.get());
        } else {
            let cached = CachedUser {
                user,
                read_at: Instant::now(),
                failing: None,
            };
            self.cache.insert(id.get(), cached, ttl);
        }
    }

    /// The account's manager grants, cached for [`managers_ttl`](Self::managers_ttl) (an empty
    /// list too). A list that could not be read is not asked for again while the read backs
    /// off (the [`refetch_interval`](Self::refetch_interval), doubling while reads keep
    /// failing): the failure answers meanwhile. Concurrent lookups share one request.
    pub async fn managers(&self, id: UserId) -> Result<Arc<Vec<ManagerGrant>>> {
        if let Some(list) = self.managers.get(&id.get()) {
            return Ok(list);
        }
        self.manager_flights
            .run(id.get(), || async {
                if let Some(list) = self.managers.get(&id.get()) {
                    return Ok(list);
                }
                let failing = self.managers_failing.get(&id.get());
                if let Some(failing) = failing.as_ref().filter(|f| f.backing_off()) {
                    return Err(failing.error.clone());
                }
                match self.fetch_managers(id).await {
                    Ok(list) => {
                        let list = Arc::new(list);
                        self.managers_failing.remove(&id.get());
                        if !self.managers_ttl.is_zero() {
                            self.managers
                                .insert(id.get(), list.clone(), self.managers_ttl);
                        }
                        Ok(list)
                    }
                    Err(error) => {
                        let failing =
                            Failing::after(failing.as_ref(), error.clone(), self.refetch_interval);
                        // Kept a while after its back-off, to count failures in a row.
                        let keep =
                            expiry(failing.retry_at, self.refetch_interval.saturating_mul(8));
                        self.managers_failing.insert_until(id.get(), failing, keep);
                        Err(error)
                    }
                }
            })
            .await
    }

    /// The account's manager grants when cached (no request).
    fn cached_managers(&self, id: UserId) -> Option<Arc<Vec<ManagerGrant>>> {
        self.managers.get(&id.get())
    }

    /// The account's manager grants, from the API (the cache is not consulted nor filled).
    pub async fn fetch_managers(&self, id: UserId) -> Result<Vec<ManagerGrant>> {
        let answer = self
            .client
            .get(&format!("/v1/users/{}/managers", id.hashid()))
            .await?;
        match answer.status.as_u16() {
            200 => {
                let body: Value = answer.json()?;
                let list = body.get("data").and_then(Value::as_array).ok_or_else(|| {
                    Error::UpstreamUnexpected {
                        status: 200,
                        message: "the managers answer has no data list".into(),
                    }
                })?;
                Ok(list.iter().filter_map(ManagerGrant::from_json).collect())
            }
            404 => Ok(Vec::new()),
            status => Err(unexpected_or_unavailable(status, &answer)),
        }
    }
}

pub(crate) fn unexpected_or_unavailable(status: u16, answer: &crate::ApiResponse) -> Error {
    match status {
        429 => Error::unavailable(
            format!(
                "Audius is rate limiting requests: {}",
                answer.error_message()
            ),
            Some(429),
        ),
        // The client fails over on these and reports them as unavailable; an answer read
        // directly (`ApiVerifier::interpret`) means the same.
        500..=599 => Error::unavailable(
            format!("Audius answered HTTP {status}: {}", answer.error_message()),
            Some(status),
        ),
        300..=399 => Error::UpstreamUnexpected {
            status,
            message: format!(
                "redirect to {} not followed",
                answer.location.as_deref().unwrap_or("(no location)")
            ),
        },
        _ => Error::UpstreamUnexpected {
            status,
            message: answer.error_message(),
        },
    }
}

/// Builds the profile from verified claims and, per the source, the user record.
fn profile(
    claims: Claims,
    record: Option<&ApiUser>,
    source: ProfileSource,
    signer: Option<Wallet>,
) -> VerifiedProfile {
    let (handle, name, verified, profile_picture) = match (source, record) {
        (ProfileSource::UserRecord, Some(user)) => (
            user.handle.clone(),
            user.name.clone(),
            user.is_verified,
            user.profile_picture.clone(),
        ),
        _ => (
            claims.handle.clone().unwrap_or_default(),
            claims.name.clone().unwrap_or_default(),
            claims.verified,
            claims.profile_picture.clone(),
        ),
    };
    VerifiedProfile {
        user_id: claims.user_id,
        handle,
        name,
        email: claims.email.clone(),
        verified,
        profile_picture,
        wallet: record.and_then(|u| u.wallet),
        signer,
        issued_at: claims.issued_at(),
        source,
        claims,
    }
}

/// Verifies through `GET {api}/v1/users/verify_token`, mapping each answer of spec 4.1.
#[derive(Debug)]
pub struct ApiVerifier {
    directory: Arc<UserDirectory>,
    options: VerifyOptions,
}

impl ApiVerifier {
    /// A verifier on this client, with a default [`UserDirectory`] and default options.
    pub fn new(client: ApiClient) -> Self {
        Self::with_directory(Arc::new(UserDirectory::new(client)))
    }

    /// A verifier sharing a user directory (and its cache).
    pub fn with_directory(directory: Arc<UserDirectory>) -> Self {
        Self {
            directory,
            options: VerifyOptions::default(),
        }
    }

    /// Sets the options. Default: [`VerifyOptions::default`].
    pub fn options(mut self, options: VerifyOptions) -> Self {
        self.options = options;
        self
    }

    /// The user directory.
    pub fn directory(&self) -> &Arc<UserDirectory> {
        &self.directory
    }

    /// Maps a `verify_token` answer to the verified claims or the typed error.
    pub fn interpret(answer: &crate::ApiResponse) -> Result<Claims> {
        let message = || answer.error_message();
        match answer.status.as_u16() {
            200 => {
                let body: Value = answer.json()?;
                let data = match body.get("data") {
                    Some(Value::Object(data)) => data.clone(),
                    _ => {
                        return Err(Error::UpstreamUnexpected {
                            status: 200,
                            message: "verify_token answered without a data object".into(),
                        });
                    }
                };
                Claims::from_map(data).map_err(|e| Error::UpstreamUnexpected {
                    status: 200,
                    message: format!("verify_token answered claims that cannot be read: {e}"),
                })
            }
            400 => {
                let message = message();
                Err(Error::Malformed {
                    part: part_of(&message),
                    message,
                })
            }
            403 => Err(Error::WalletMismatch {
                status: Some(403),
                message: message(),
            }),
            404 => {
                let message = message();
                let lower = message.to_ascii_lowercase();
                if lower.contains("could not be recovered") {
                    Err(Error::BadSignature { message })
                } else if lower.contains("invalid wallet") || lower.contains("does not match") {
                    Err(Error::WalletMismatch {
                        status: Some(404),
                        message,
                    })
                } else {
                    Err(Error::UpstreamUnexpected {
                        status: 404,
                        message,
                    })
                }
            }
            status => Err(unexpected_or_unavailable(status, answer)),
        }
    }
}

/// Which part of the token a 400 message of spec 4.1 is about.
fn part_of(message: &str) -> TokenPart {
    let m = message.to_ascii_lowercase();
    if m.contains("userid") {
        TokenPart::UserId
    } else if m.contains("payload") {
        TokenPart::Payload
    } else if m.contains("signature") || m.contains("signed") {
        TokenPart::Signature
    } else if m.contains("format") {
        TokenPart::Structure
    } else {
        TokenPart::Unknown
    }
}

#[async_trait]
impl Verifier for ApiVerifier {
    /// Parses the token and recovers its signer locally (a malformed or unrecoverable token
    /// costs no request), then [`verify_prepared`](Verifier::verify_prepared).
    async fn verify(&self, token: &str) -> Result<VerifiedProfile> {
        let prepared = match PreparedToken::parse(token, self.options.max_token_bytes) {
            Ok(prepared) => prepared,
            Err(e) => {
                tracing::info!(verifier = "api", kind = %e.kind(), error = %e, "token refused");
                return Err(e);
            }
        };
        self.verify_prepared(&prepared).await
    }

    /// Checks age and audience on the token's claims, then asks Audius (`verify_token`).
    async fn verify_prepared(&self, prepared: &PreparedToken) -> Result<VerifiedProfile> {
        let span = tracing::info_span!(
            "audius.verify",
            verifier = "api",
            user_id = tracing::field::Empty
        );
        let result = async {
            let token = prepared.as_str();
            if token.len() > self.options.max_token_bytes {
                return Err(Error::TooLarge {
                    what: crate::error::Limited::Token,
                    limit: self.options.max_token_bytes,
                });
            }
            span.record("user_id", prepared.claims().user_id.get());
            // Cheap checks first: no request for a stale or foreign token.
            self.options.check_claims(prepared.claims())?;
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("token", token)
                .finish();
            let answer = self
                .directory
                .client()
                .get(&format!("/v1/users/verify_token?{query}"))
                .await?;
            let claims = Self::interpret(&answer)?;
            if claims.user_id != prepared.claims().user_id {
                return Err(Error::UpstreamUnexpected {
                    status: answer.status.as_u16(),
                    message: format!(
                        "verify_token answered user {} for a token of user {}",
                        claims.user_id,
                        prepared.claims().user_id
                    ),
                });
            }
            // The answer's claims are the payload again (iat as a string): judged the same.
            self.options.check_age(&claims)?;
            let record = match self.options.profile_source {
                ProfileSource::UserRecord => Some(
                    self.directory
                        .user(claims.user_id)
                        .await?
                        .ok_or_else(|| Error::UpstreamUnexpected {
                            status: 404,
                            message: format!(
                                "verify_token accepted user {} but the user lookup found no such user",
                                claims.user_id
                            ),
                        })?,
                ),
                ProfileSource::TokenClaims => None,
            };
            Ok(profile(claims, record.as_deref(), self.options.profile_source, None))
        }
        .instrument(span.clone())
        .await;
        log_outcome(&span, &result);
        result
    }
}

fn log_outcome(span: &tracing::Span, result: &Result<VerifiedProfile>) {
    let _entered = span.enter();
    match result {
        Ok(p) => tracing::debug!(user_id = p.user_id.get(), "token verified"),
        Err(e) => tracing::info!(kind = %e.kind(), error = %e, "token refused"),
    }
}

/// Verifies locally: recovers the signer and compares it with the user's wallet (user records
/// cached), accepting an approved, non-revoked manager (spec 4.2); refuses a deactivated account
/// or manager.
///
/// With a warm cache (the user's record read within the directory's
/// [`refetch_interval`](UserDirectory::refetch_interval), 30 s by default), verifying needs no
/// network at all. Its refusals carry no Audius status
/// ([`Error::WalletMismatch`] with `status: None`): for a signer that is not the user, Audius
/// answers 404 when no account owns the signer and 403 when another account does, and telling
/// the two apart would take a lookup by wallet that the spec advises against (it also matches
/// connected wallets). The local verifier does not guess.
#[derive(Debug)]
pub struct LocalVerifier {
    directory: Arc<UserDirectory>,
    options: VerifyOptions,
    accept_numeric_user_id: bool,
}

impl LocalVerifier {
    /// A verifier on this client, with a default [`UserDirectory`] and default options.
    pub fn new(client: ApiClient) -> Self {
        Self::with_directory(Arc::new(UserDirectory::new(client)))
    }

    /// A verifier sharing a user directory (and its cache).
    pub fn with_directory(directory: Arc<UserDirectory>) -> Self {
        Self {
            directory,
            options: VerifyOptions::default(),
            accept_numeric_user_id: false,
        }
    }

    /// Sets the options. Default: [`VerifyOptions::default`].
    pub fn options(mut self, options: VerifyOptions) -> Self {
        self.options = options;
        self
    }

    /// Accept tokens whose `userId` is a JSON number (tokens before mid-2022), which the
    /// current Audius API refuses. Default: `false`, agreeing with the API.
    pub fn accept_numeric_user_id(mut self, accept: bool) -> Self {
        self.accept_numeric_user_id = accept;
        self
    }

    /// The user directory.
    pub fn directory(&self) -> &Arc<UserDirectory> {
        &self.directory
    }

    async fn check_signer(&self, id: UserId, signer: Wallet) -> Result<Arc<ApiUser>> {
        let mismatch = |message: String| Error::WalletMismatch {
            status: None,
            message,
        };
        let record = self.directory.record_for_login(id).await?;
        let Some(user) = record.user else {
            return Err(mismatch(format!(
                "The JWT signature is invalid - Audius has no user {id}"
            )));
        };
        if user.is_deactivated {
            return Err(mismatch(format!(
                "The JWT signature is invalid - the account of user {id} is deactivated"
            )));
        }
        if user.wallet == Some(signer) {
            return Ok(user);
        }
        let managers = match record.stale_because {
            None => self.directory.managers(id).await?,
            // The record could not be read again: only a cached manager list may vouch for this
            // signer; without one, say that Audius could not be asked (no request: the read
            // just failed, and forged tokens must not turn a failing Audius into a stream of
            // requests).
            Some(error) => self.directory.cached_managers(id).ok_or(error)?,
        };
        let grants = || managers.iter().filter(|grant| grant.grantee == signer);
        if grants().any(ManagerGrant::is_active) {
            tracing::debug!(%signer, user_id = id.get(), "token signed by an approved manager");
            return Ok(user);
        }
        if grants().any(|g| g.is_approved && !g.is_revoked && g.manager_deactivated) {
            return Err(mismatch(
                "The JWT signature is invalid - the signing manager's account is deactivated"
                    .into(),
            ));
        }
        Err(mismatch(
            "The JWT signature is invalid - the signing wallet is neither the user's nor an \
             approved manager's"
                .into(),
        ))
    }
}

#[async_trait]
impl Verifier for LocalVerifier {
    async fn verify(&self, token: &str) -> Result<VerifiedProfile> {
        let prepared = match PreparedToken::parse(token, self.options.max_token_bytes) {
            Ok(prepared) => prepared,
            Err(e) => {
                tracing::info!(verifier = "local", kind = %e.kind(), error = %e, "token refused");
                return Err(e);
            }
        };
        self.verify_prepared(&prepared).await
    }

    async fn verify_prepared(&self, prepared: &PreparedToken) -> Result<VerifiedProfile> {
        let span = tracing::info_span!(
            "audius.verify",
            verifier = "local",
            user_id = tracing::field::Empty
        );
        let result = async {
            let claims = prepared.claims();
            span.record("user_id", claims.user_id.get());
            if claims.user_id_form == UserIdForm::LegacyNumber && !self.accept_numeric_user_id {
                return Err(Error::malformed(
                    TokenPart::UserId,
                    "JWT payload userId must be a string",
                ));
            }
            // Cheap checks first: no request for a stale or foreign token.
            self.options.check_claims(claims)?;
            let signer = prepared.signer();
            let user = self.check_signer(claims.user_id, signer).await?;
            Ok(profile(
                claims.clone(),
                Some(&user),
                self.options.profile_source,
                Some(signer),
            ))
        }
        .instrument(span.clone())
        .await;
        log_outcome(&span, &result);
        result
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use serde_json::json;

    fn claims(v: Value) -> Claims {
        Claims::from_map(v.as_object().unwrap().clone()).unwrap()
    }

    #[test]
    fn age_rules() {
        let clock = Arc::new(ManualClock::at_unix(1_000_000));
        let opts = VerifyOptions::default()
            .max_age(Some(Duration::from_secs(300)))
            .clock(clock.clone());
        let at = |iat: i64| claims(json!({"userId": "eYorL", "iat": iat}));
        assert!(opts.check_age(&at(1_000_000)).is_ok());
        assert!(opts.check_age(&at(1_000_000 - 300 - 30)).is_ok());
        assert_eq!(
            opts.check_age(&at(1_000_000 - 331)).unwrap_err().kind(),
            crate::ErrorKind::Stale
        );
        assert!(opts.check_age(&at(1_000_000 + 30)).is_ok());
        assert_eq!(
            opts.check_age(&at(1_000_000 + 31)).unwrap_err().kind(),
            crate::ErrorKind::Stale
        );
        assert_eq!(
            opts.check_age(&claims(json!({"userId": "eYorL"})))
                .unwrap_err()
                .kind(),
            crate::ErrorKind::Stale
        );
        let string_iat = claims(json!({"userId": "eYorL", "iat": "1000000"}));
        assert!(opts.check_age(&string_iat).is_ok());
        assert!(
            VerifyOptions::default().check_age(&at(0)).is_ok(),
            "no limit by default"
        );
    }

    #[test]
    fn grants() {
        let g = ManagerGrant::from_json(&json!({
            "manager": {"id": "eYorL", "wallet": "0x5bb302630d6412513edf124f0c3819d5c7fc228a"},
            "grant": {"grantee_address": "0x5bb302630d6412513edf124f0c3819d5c7fc228a", "is_approved": true, "is_revoked": false}
        }))
        .unwrap();
        assert!(g.is_active());
        assert_eq!(g.manager_id, Some(UserId::new(44)));
        let pending = ManagerGrant::from_json(&json!({
            "grant": {"grantee_address": "0x5bb302630d6412513edf124f0c3819d5c7fc228a", "is_approved": null, "is_revoked": false}
        }))
        .unwrap();
        assert!(!pending.is_active());
    }

    #[test]
    fn messages_to_parts() {
        assert_eq!(part_of("Invalid JWT token format"), TokenPart::Structure);
        assert_eq!(
            part_of("The JWT signature could not be decoded"),
            TokenPart::Signature
        );
        assert_eq!(
            part_of("The JWT signature was incorrectly signed."),
            TokenPart::Signature
        );
        assert_eq!(
            part_of("JWT payload could not be unmarshalled"),
            TokenPart::Payload
        );
        assert_eq!(
            part_of("JWT payload missing userId field"),
            TokenPart::UserId
        );
        assert_eq!(part_of("Invalid JWT payload userId"), TokenPart::UserId);
        assert_eq!(part_of("huh"), TokenPart::Unknown);
    }
}
