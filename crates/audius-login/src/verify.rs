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
//! # Age and replay
//!
//! Tokens never expire on their own. [`VerifyOptions::max_age`] refuses a token whose `iat` is
//! older (with [`VerifyOptions::clock_skew`] of grace), against an injectable clock. Refusing a
//! second use of the same token is the job of a [`ReplayCache`](crate::replay::ReplayCache).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tracing::Instrument as _;

use crate::cache::TtlCache;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result, TokenPart};
use crate::token::{Claims, DEFAULT_MAX_TOKEN_BYTES, ProfilePicture, Token, UserIdForm};
use crate::{ApiClient, UserId, Wallet};

/// Default grace for clocks that disagree: 30 s.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(30);
/// Default time a user record stays cached: 5 minutes.
pub const DEFAULT_USER_CACHE_TTL: Duration = Duration::from_secs(300);
/// Default number of user records cached: 10,000.
pub const DEFAULT_USER_CACHE_CAPACITY: usize = 10_000;

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
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            max_age: None,
            clock_skew: DEFAULT_CLOCK_SKEW,
            clock: Arc::new(SystemClock),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            profile_source: ProfileSource::UserRecord,
        }
    }
}

impl fmt::Debug for VerifyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("max_age", &self.max_age)
            .field("clock_skew", &self.clock_skew)
            .field("clock", &self.clock)
            .field("max_token_bytes", &self.max_token_bytes)
            .field("profile_source", &self.profile_source)
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

    /// The maximum age enforced, if any.
    pub fn get_max_age(&self) -> Option<Duration> {
        self.max_age
    }

    /// The clock in use.
    pub fn get_clock(&self) -> &Arc<dyn Clock> {
        &self.clock
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

/// Verifies a token and says who the user is.
#[async_trait]
pub trait Verifier: Send + Sync + fmt::Debug {
    /// The verified profile, or why the token is refused.
    async fn verify(&self, token: &str) -> Result<VerifiedProfile>;
}

#[async_trait]
impl<T: Verifier + ?Sized> Verifier for Arc<T> {
    async fn verify(&self, token: &str) -> Result<VerifiedProfile> {
        (**self).verify(token).await
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
        let wallet = text("wallet")
            .or_else(|| text("erc_wallet"))
            .and_then(|w| w.parse().ok());
        Some(Self {
            id: UserId::from_json(obj.get("id")?).ok()?,
            handle: text("handle")?.to_owned(),
            name: text("name").unwrap_or_default().to_owned(),
            is_verified: obj
                .get("is_verified")
                .and_then(Value::as_bool)
                .unwrap_or(false),
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
        })
    }

    /// Approved and not revoked: the grantee may sign for the account.
    pub fn is_active(&self) -> bool {
        self.is_approved && !self.is_revoked
    }
}

/// User lookups with a bounded, expiring cache.
#[derive(Debug)]
pub struct UserDirectory {
    client: ApiClient,
    cache: TtlCache<u64, Arc<ApiUser>>,
    ttl: Duration,
}

impl UserDirectory {
    /// A directory with the default cache (5 minutes, 10,000 users).
    pub fn new(client: ApiClient) -> Self {
        Self::with_cache(client, DEFAULT_USER_CACHE_TTL, DEFAULT_USER_CACHE_CAPACITY)
    }

    /// A directory caching up to `capacity` users for `ttl` each (a zero `ttl` disables it).
    pub fn with_cache(client: ApiClient, ttl: Duration, capacity: usize) -> Self {
        Self {
            client,
            cache: TtlCache::new(capacity),
            ttl,
        }
    }

    /// The API client used.
    pub fn client(&self) -> &ApiClient {
        &self.client
    }

    /// How many users are cached now.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// The most users cached at once.
    pub fn capacity(&self) -> usize {
        self.cache.capacity()
    }

    /// The user, from the cache when fresh; `None` when Audius has no such user.
    pub async fn user(&self, id: UserId) -> Result<Option<Arc<ApiUser>>> {
        if let Some(user) = self.cache.get(&id.get()) {
            return Ok(Some(user));
        }
        self.fetch_user(id).await
    }

    /// The user, from the API (refreshing the cache).
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
                if !self.ttl.is_zero() {
                    self.cache.insert(id.get(), user.clone(), self.ttl);
                }
                Ok(Some(user))
            }
            404 => {
                self.cache.remove(&id.get());
                Ok(None)
            }
            status => Err(unexpected_or_unavailable(status, &answer)),
        }
    }

    /// The account's manager grants (never cached: a revocation takes effect at once).
    pub async fn managers(&self, id: UserId) -> Result<Vec<ManagerGrant>> {
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
                status: 403,
                message: message(),
            }),
            404 => {
                let message = message();
                let lower = message.to_ascii_lowercase();
                if lower.contains("could not be recovered") {
                    Err(Error::BadSignature { message })
                } else if lower.contains("invalid wallet") || lower.contains("does not match") {
                    Err(Error::WalletMismatch {
                        status: 404,
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
    async fn verify(&self, token: &str) -> Result<VerifiedProfile> {
        let span = tracing::info_span!(
            "audius.verify",
            verifier = "api",
            user_id = tracing::field::Empty
        );
        let result = async {
            if token.len() > self.options.max_token_bytes {
                return Err(Error::TooLarge {
                    what: crate::error::Limited::Token,
                    limit: self.options.max_token_bytes,
                });
            }
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("token", token)
                .finish();
            let answer = self
                .directory
                .client()
                .get(&format!("/v1/users/verify_token?{query}"))
                .await?;
            let claims = Self::interpret(&answer)?;
            span.record("user_id", claims.user_id.get());
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
/// cached), accepting an approved, non-revoked manager (spec 4.2).
///
/// With a warm cache, verifying needs no network at all.
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
        let mismatch = |status: u16, message: String| Error::WalletMismatch { status, message };
        let mut user = self.directory.user(id).await?;
        if user.as_ref().is_some_and(|u| u.wallet != Some(signer)) {
            // The cached record may be out of date: read it again before refusing.
            user = self.directory.fetch_user(id).await?;
        }
        let Some(user) = user else {
            return Err(mismatch(
                404,
                format!("The JWT signature is invalid - invalid wallet (no user {id})"),
            ));
        };
        if user.wallet == Some(signer) {
            return Ok(user);
        }
        let managers = self.directory.managers(id).await?;
        if managers
            .iter()
            .any(|grant| grant.grantee == signer && grant.is_active())
        {
            tracing::debug!(%signer, user_id = id.get(), "token signed by an approved manager");
            return Ok(user);
        }
        Err(mismatch(
            403,
            "The JWT signature is invalid - the wallet does not match the user".into(),
        ))
    }
}

#[async_trait]
impl Verifier for LocalVerifier {
    async fn verify(&self, token: &str) -> Result<VerifiedProfile> {
        let span = tracing::info_span!(
            "audius.verify",
            verifier = "local",
            user_id = tracing::field::Empty
        );
        let result = async {
            let (token, signer) = Token::parse_and_recover(token, self.options.max_token_bytes)?;
            let claims = token.claims().clone();
            span.record("user_id", claims.user_id.get());
            if claims.user_id_form == UserIdForm::LegacyNumber && !self.accept_numeric_user_id {
                return Err(Error::malformed(
                    TokenPart::UserId,
                    "JWT payload userId must be a string",
                ));
            }
            let user = self.check_signer(claims.user_id, signer).await?;
            self.options.check_age(&claims)?;
            Ok(profile(
                claims,
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
