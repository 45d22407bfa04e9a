//! The authorization-code flow's server side: the tokens kept in the session, their refresh,
//! and [`AudiusClient`], the extractor that calls the Audius API as the signed-in user.
//!
//! # Where the tokens live
//!
//! In the session, under the crate's own key (`audius.tokens`), never in anything the page's
//! JavaScript can read: the callback answers only `{redirect, user}`. With actix-session's
//! `CookieSessionStore` the whole session is the cookie, so keep the session middleware's
//! default `CookieContentSecurity::Private` (the cookie is **encrypted** with the app's key;
//! `Signed` would let anyone holding the cookie read the tokens) and `HttpOnly`. With a
//! server-side store (`RedisSessionStore`) the cookie holds only the session id.
//!
//! # One refresh per session, and the newest tokens win
//!
//! A refresh token can be used once: Audius answers a second use with "Token reuse detected"
//! and revokes the whole family, which signs the user out. So a session must never refresh
//! twice with the same refresh token, even when a page fires ten API calls at once and every
//! one of them finds the access token expired. This process keeps, per session (keyed by a
//! random family id stored with the tokens at login, so the key is bound to the session and
//! survives session renewal), a lock and the newest tokens it knows (a bounded LRU map,
//! [`AudiusLoginBuilder::tracked_sessions`](crate::AudiusLoginBuilder::tracked_sessions)):
//!
//! 1. a request that needs a refresh takes the session's lock; the first one refreshes, records
//!    the new tokens (generation + 1) and writes them to its session;
//! 2. the others wait on the lock, then find tokens newer than their own and use those, and
//!    write them to their sessions too: one `POST /v1/oauth/token` in all;
//! 3. every request whose session changes (whatever the handler did) and carries tokens older
//!    than the newest known has them replaced on the way out (in the middleware), and a request
//!    that arrives with a stale cookie adopts the newest tokens before using them. So every
//!    `Set-Cookie` the browser receives after the refresh carries the newest tokens, whichever
//!    of the concurrent answers it processes last, and a stale cookie is never used to refresh.
//!
//! The coordination is per process. Several app instances behind a load balancer should route
//! a session to one instance (sticky sessions); otherwise two instances may refresh the same
//! token and Audius' reuse detection will sign the user out (safe, but a new login).
//! Likewise, a refresh whose answer is lost (a timeout after Audius received it) uses the
//! refresh token up: the next refresh is refused and the user logs in again.

use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_session::{Session, SessionExt as _, SessionStatus};
use actix_web::dev::Payload;
use actix_web::http::{Method, StatusCode};
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest};
use audius_login::oauth::{AccessToken, RefreshToken, TokenSet};
use audius_login::{ApiResponse, ErrorKind, Scope, VerifiedProfile};
use base64::Engine as _;
use futures_util::future::LocalBoxFuture;
use lru::LruCache;
use rand::RngCore as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use url::Url;

use crate::config::{AudiusLogin, Config, Flow};
use crate::error::{AudiusLoginError, LoginErrorKind};
use crate::extract::{current_user, not_signed_in};
use crate::session::{TOKENS_KEY, USER_KEY};
use crate::user::AudiusUser;

/// Default margin before expiry at which an access token is refreshed: 60 s.
pub(crate) const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Default number of sessions tracked for refresh coordination: 10,000.
pub(crate) const DEFAULT_TRACKED_SESSIONS: usize = 10_000;

/// The code flow's tokens, as kept in the session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredTokens {
    /// A random id chosen at login: the key of this session's lock and newest tokens.
    #[serde(rename = "f")]
    pub(crate) family: String,
    /// The user the tokens act for.
    #[serde(rename = "u")]
    pub(crate) user_id: u64,
    #[serde(rename = "a")]
    pub(crate) access: AccessToken,
    #[serde(rename = "r")]
    pub(crate) refresh: RefreshToken,
    /// When the access token expires (Unix seconds, the app's clock).
    #[serde(rename = "e")]
    pub(crate) expires_at: i64,
    #[serde(rename = "s")]
    pub(crate) scope: Scope,
    /// 0 at login, + 1 at each refresh.
    #[serde(rename = "g")]
    pub(crate) generation: u64,
}

impl StoredTokens {
    /// The tokens of a fresh login, with a new family id.
    pub(crate) fn new(set: TokenSet, user_id: u64, now: OffsetDateTime) -> Self {
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        Self {
            family: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id),
            user_id,
            expires_at: set.expires_at(now).unix_timestamp(),
            access: set.access_token,
            refresh: set.refresh_token,
            scope: set.scope,
            generation: 0,
        }
    }

    /// The tokens after a refresh.
    fn rotated(&self, set: TokenSet, now: OffsetDateTime) -> Self {
        Self {
            family: self.family.clone(),
            user_id: self.user_id,
            expires_at: set.expires_at(now).unix_timestamp(),
            access: set.access_token,
            refresh: set.refresh_token,
            scope: set.scope,
            generation: self.generation + 1,
        }
    }

    fn expiring(&self, now: OffsetDateTime, margin: Duration) -> bool {
        let margin = i64::try_from(margin.as_secs()).unwrap_or(i64::MAX);
        now.unix_timestamp().saturating_add(margin) >= self.expires_at
    }
}

/// What this process knows of one session's tokens.
#[derive(Debug, Default)]
struct Latest {
    tokens: Option<StoredTokens>,
    /// Revoked (logout) or refused by Audius: never refresh again.
    dead: bool,
}

/// One session's refresh lock and newest tokens.
#[derive(Debug, Default)]
pub(crate) struct FamilyState {
    refresh_lock: tokio::sync::Mutex<()>,
    latest: Mutex<Latest>,
}

impl FamilyState {
    fn latest(&self) -> std::sync::MutexGuard<'_, Latest> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sessions this process tracks: a bounded LRU map from family id to [`FamilyState`],
/// allocated as it fills (not up front).
pub(crate) struct Families {
    map: Mutex<LruCache<String, Arc<FamilyState>>>,
    capacity: usize,
}

impl fmt::Debug for Families {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Families")
            .field("tracked", &self.lock().len())
            .finish()
    }
}

/// What a newer-tokens check found.
enum Known {
    /// Nothing newer than what the session holds.
    Same,
    /// Newer tokens.
    Newer(StoredTokens),
    /// The family is revoked.
    Dead,
}

impl Families {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(LruCache::unbounded()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, Arc<FamilyState>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn entry(&self, family: &str) -> Arc<FamilyState> {
        let mut map = self.lock();
        if let Some(state) = map.get(family) {
            return state.clone();
        }
        let state = Arc::new(FamilyState::default());
        if map.len() >= self.capacity {
            map.pop_lru();
        }
        map.put(family.to_owned(), state.clone());
        state
    }

    fn peek(&self, family: &str) -> Option<Arc<FamilyState>> {
        self.lock().get(family).cloned()
    }

    fn known(&self, tokens: &StoredTokens) -> Known {
        let Some(state) = self.peek(&tokens.family) else {
            return Known::Same;
        };
        let latest = state.latest();
        if latest.dead {
            return Known::Dead;
        }
        match &latest.tokens {
            Some(t) if t.generation > tokens.generation => Known::Newer(t.clone()),
            _ => Known::Same,
        }
    }

    /// Marks a family revoked: no refresh will be tried with it again.
    pub(crate) fn mark_dead(&self, family: &str) {
        let state = self.entry(family);
        let mut latest = state.latest();
        latest.dead = true;
        latest.tokens = None;
    }

    /// The newest refresh token known for these tokens (theirs, or a newer one).
    fn newest(&self, tokens: &StoredTokens) -> StoredTokens {
        match self.known(tokens) {
            Known::Newer(t) => t,
            _ => tokens.clone(),
        }
    }

    /// How many sessions are tracked.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The code-flow configuration of a request, put there by the middleware of an
/// [`AudiusLogin`] with [`Flow::AuthorizationCode`].
#[derive(Clone)]
pub(crate) struct CodeFlow(pub(crate) AudiusLogin);

/// The tokens in the session, if any; an unreadable entry is removed.
pub(crate) fn read_tokens(session: &Session) -> Option<StoredTokens> {
    match session.get::<StoredTokens>(TOKENS_KEY) {
        Ok(tokens) => tokens,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable Audius tokens in the session; dropping them");
            session.remove(TOKENS_KEY);
            None
        }
    }
}

pub(crate) fn write_tokens(
    session: &Session,
    tokens: &StoredTokens,
) -> Result<(), AudiusLoginError> {
    session.insert(TOKENS_KEY, tokens).map_err(|e| {
        AudiusLoginError::new(
            LoginErrorKind::SessionUnavailable,
            format!("The session could not be updated: {e}"),
        )
    })
}

/// The middleware's last step: when the session changed during the request and carries tokens
/// older than the newest this process knows, the newest replace them, so that the cookie (or
/// server-side state) written last always holds the newest tokens.
pub(crate) fn upgrade_session_tokens(req: &HttpRequest, config: &Config) {
    let session = req.get_session();
    if !matches!(
        session.status(),
        SessionStatus::Changed | SessionStatus::Renewed
    ) {
        return;
    }
    let Some(tokens) = read_tokens(&session) else {
        return;
    };
    if let Known::Newer(newer) = config.families.known(&tokens) {
        tracing::debug!(
            generation = newer.generation,
            "replacing stale Audius tokens in the session"
        );
        if let Err(e) = write_tokens(&session, &newer) {
            tracing::warn!(error = %e, "could not write the newest Audius tokens");
        }
    }
}

/// Revokes the session's tokens at Audius (best effort: a failure is logged) and forgets them
/// here. Bounded by the API client's timeouts.
pub(crate) async fn revoke(config: &Config, tokens: &StoredTokens) {
    let newest = retire(&config.families, tokens);
    send_revocation(config, &newest).await;
}

/// As [`revoke`], without waiting: spawned on the current tokio runtime, if there is one. The
/// family is retired at once (no refresh after this call).
pub(crate) fn revoke_in_background(config: &AudiusLogin, tokens: StoredTokens) {
    let newest = retire(&config.inner.families, &tokens);
    let config = config.clone();
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(async move { send_revocation(&config.inner, &newest).await });
        }
        Err(_) => tracing::warn!("no runtime to revoke the Audius tokens on; not revoked"),
    }
}

/// Marks the family dead here and gives the newest tokens known for it (the ones to revoke:
/// the session may hold an older, already rotated refresh token). The newest must be read
/// before the family is marked dead, which forgets them.
fn retire(families: &Families, tokens: &StoredTokens) -> StoredTokens {
    let newest = families.newest(tokens);
    families.mark_dead(&tokens.family);
    newest
}

async fn send_revocation(config: &Config, tokens: &StoredTokens) {
    match config.oauth.revoke(tokens.refresh.secret()).await {
        Ok(()) => tracing::debug!("revoked the Audius tokens"),
        Err(e) => tracing::warn!(error = %e, "could not revoke the Audius tokens (ignored)"),
    }
}

/// Why a refresh did not give tokens.
enum RefreshFailure {
    /// The family is revoked (or the token refused): the user must log in again.
    Revoked(String),
    /// Audius could not be reached or answered oddly: try again later.
    Failed(audius_login::Error),
}

/// Refreshes `seen` (the session's tokens), at most once per session at a time: see the
/// [module docs](self).
async fn refresh(config: &Config, seen: &StoredTokens) -> Result<StoredTokens, RefreshFailure> {
    let family = config.families.entry(&seen.family);
    let _one_at_a_time = family.refresh_lock.lock().await;
    {
        let latest = family.latest();
        if latest.dead {
            return Err(RefreshFailure::Revoked(
                "the Audius tokens of this session were revoked".into(),
            ));
        }
        if let Some(t) = &latest.tokens
            && t.generation > seen.generation
        {
            // Another request of this session refreshed while this one waited.
            return Ok(t.clone());
        }
    }
    tracing::debug!(
        generation = seen.generation,
        "refreshing the Audius access token"
    );
    match config.oauth.refresh(&seen.refresh).await {
        Ok(set) => {
            let fresh = seen.rotated(set, config.clock.now());
            family.latest().tokens = Some(fresh.clone());
            Ok(fresh)
        }
        Err(e) if e.kind() == ErrorKind::InvalidGrant => {
            tracing::info!(error = %e, "Audius refused the refresh token; the user must log in again");
            let mut latest = family.latest();
            latest.dead = true;
            latest.tokens = None;
            Err(RefreshFailure::Revoked(e.to_string()))
        }
        Err(e) => Err(RefreshFailure::Failed(e)),
    }
}

/// An Audius API client acting as the signed-in user (code flow): a handler argument.
///
/// It sends `Authorization: Bearer <access token>`, refreshes the access token shortly before
/// it expires (and once on a `401`, retrying the call once), with exactly one refresh in flight
/// per session however many requests run at once, and writes refreshed tokens back to the
/// session. When Audius refuses the refresh (the user revoked the app, logged out elsewhere,
/// or reuse was detected), the user is signed out and the request gets the usual "not signed
/// in" answer (a redirect to this flow's login route for browsers, `401` JSON for others).
///
/// Needs the middleware of an [`AudiusLogin`] built with [`Flow::AuthorizationCode`].
///
/// ```
/// use actix_audius_login::AudiusClient;
/// use actix_web::{HttpResponse, web};
///
/// async fn my_profile(audius: AudiusClient) -> Result<HttpResponse, actix_web::Error> {
///     let profile = audius.me().await?;
///     Ok(HttpResponse::Ok().body(format!("@{} on Audius", profile.handle)))
/// }
///
/// // A write call (needs the `write` scope; a `read` token gets Audius' 403 back), its answer
/// // passed on as it is: the status is actix-web's own `StatusCode`.
/// async fn favorite(audius: AudiusClient, track: web::Path<String>) -> Result<HttpResponse, actix_web::Error> {
///     let answer = audius
///         .post_json(&format!("/v1/tracks/{track}/favorites"), &serde_json::json!({}))
///         .await?;
///     Ok(HttpResponse::build(answer.status()).body(answer.into_body()))
/// }
/// ```
pub struct AudiusClient {
    req: HttpRequest,
    config: AudiusLogin,
    user: AudiusUser,
    tokens: RefCell<StoredTokens>,
}

impl fmt::Debug for AudiusClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tokens = self.tokens.borrow();
        f.debug_struct("AudiusClient")
            .field("user", &self.user.handle)
            .field("scope", &tokens.scope)
            .field("expires_at", &tokens.expires_at)
            .finish_non_exhaustive()
    }
}

/// The code-flow configuration of the request.
fn code_flow_config(req: &HttpRequest) -> Result<AudiusLogin, AudiusLoginError> {
    if let Some(CodeFlow(config)) = req.extensions().get::<CodeFlow>() {
        return Ok(config.clone());
    }
    Err(AudiusLoginError::new(
        LoginErrorKind::Misconfigured,
        "AudiusClient needs the middleware of an AudiusLogin built with \
         .flow(Flow::AuthorizationCode): add .wrap(audius.middleware()) to the App.",
    ))
}

/// Signs the user out of the session (keeping the rest of it) and gives the "not signed in"
/// answer of the code-flow configuration.
fn signed_out(req: &HttpRequest, config: &AudiusLogin, why: &str) -> AudiusLoginError {
    tracing::info!(
        reason = why,
        "signing the user out: the Audius tokens are no longer valid"
    );
    let session = req.get_session();
    session.remove(USER_KEY);
    session.remove(TOKENS_KEY);
    session.renew();
    not_signed_in(req, config)
}

impl FromRequest for AudiusClient {
    type Error = AudiusLoginError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let config = code_flow_config(&req)?;
            let Some(user) = current_user(&req) else {
                return Err(not_signed_in(&req, &config));
            };
            let session = req.get_session();
            let tokens = match read_tokens(&session) {
                Some(t) if t.user_id == user.id => t,
                _ => return Err(not_signed_in(&req, &config)),
            };
            let client = Self {
                req,
                config,
                user,
                tokens: RefCell::new(tokens),
            };
            client.adopt_known()?;
            let c = &client.config.inner;
            let current = client.tokens.borrow().clone();
            if current.expiring(c.clock.now(), c.refresh_margin) {
                client.refresh_from(&current).await?;
            }
            Ok(client)
        })
    }
}

impl AudiusClient {
    /// The signed-in user.
    pub fn user(&self) -> &AudiusUser {
        &self.user
    }

    /// What the tokens allow: [`Scope::Write`] lets the app act for the user.
    pub fn scope(&self) -> Scope {
        self.tokens.borrow().scope
    }

    /// When the current access token expires (the app's clock).
    pub fn access_token_expires_at(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.tokens.borrow().expires_at)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Uses the newest tokens this process knows for the session, if newer than the session's
    /// (a stale cookie), writing them to the session; signs out if the family is revoked.
    fn adopt_known(&self) -> Result<(), AudiusLoginError> {
        let known = self.config.inner.families.known(&self.tokens.borrow());
        match known {
            Known::Same => Ok(()),
            Known::Newer(newer) => self.adopt(newer),
            Known::Dead => Err(signed_out(
                &self.req,
                &self.config,
                "the tokens were revoked",
            )),
        }
    }

    fn adopt(&self, tokens: StoredTokens) -> Result<(), AudiusLoginError> {
        write_tokens(&self.req.get_session(), &tokens)?;
        *self.tokens.borrow_mut() = tokens;
        Ok(())
    }

    async fn refresh_from(&self, seen: &StoredTokens) -> Result<(), AudiusLoginError> {
        match refresh(&self.config.inner, seen).await {
            Ok(fresh) => self.adopt(fresh),
            Err(RefreshFailure::Revoked(why)) => Err(signed_out(&self.req, &self.config, &why)),
            Err(RefreshFailure::Failed(e)) => Err(AudiusLoginError::from(e)),
        }
    }

    /// Any call: `method` on `path_and_query` (under the API base: `/v1/...`), with an optional
    /// JSON body, as the user. A `401` refreshes the tokens once and retries once; any other
    /// answer, success or not, is returned as it is (a second `401` too). `GET`s fail over to
    /// other hosts; other methods only when the connection was refused.
    ///
    /// `method` is actix-web's own [`Method`], and the answer carries
    /// actix-web's [`StatusCode`]: nothing to convert in a handler.
    ///
    /// Errors: the "not signed in" answer when the tokens cannot be refreshed any more;
    /// `audius_unavailable` / `audius_unexpected` when Audius cannot be reached.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        json: Option<&Value>,
    ) -> Result<AudiusResponse, AudiusLoginError> {
        let method = core_method(&method)?;
        AudiusResponse::from_core(self.send_core(method, path_and_query, json).await?)
    }

    /// [`send`](Self::send), with the core crate's types.
    async fn send_core(
        &self,
        method: audius_login::client::Method,
        path_and_query: &str,
        json: Option<&Value>,
    ) -> Result<ApiResponse, AudiusLoginError> {
        let api = self.config.inner.oauth.api();
        let used = self.tokens.borrow().clone();
        let answer = api
            .send_with_bearer(method.clone(), path_and_query, used.access.secret(), json)
            .await?;
        if answer.status != 401 {
            return Ok(answer);
        }
        tracing::debug!(
            path = path_and_query,
            "Audius answered 401; refreshing once"
        );
        self.refresh_from(&used).await?;
        let fresh = self.tokens.borrow().access.clone();
        Ok(api
            .send_with_bearer(method, path_and_query, fresh.secret(), json)
            .await?)
    }

    /// `GET path_and_query` as the user (see [`send`](Self::send)).
    pub async fn get(&self, path_and_query: &str) -> Result<AudiusResponse, AudiusLoginError> {
        self.send(Method::GET, path_and_query, None).await
    }

    /// `POST path` with a JSON body as the user (see [`send`](Self::send)).
    pub async fn post_json(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<AudiusResponse, AudiusLoginError> {
        self.send(Method::POST, path, Some(body)).await
    }

    /// `DELETE path` as the user (see [`send`](Self::send)).
    pub async fn delete(&self, path: &str) -> Result<AudiusResponse, AudiusLoginError> {
        self.send(Method::DELETE, path, None).await
    }

    /// The user as Audius describes them now (`GET /v1/me`): the same profile type as the
    /// implicit flow's, without email.
    pub async fn me(&self) -> Result<VerifiedProfile, AudiusLoginError> {
        let answer = self
            .send_core(
                audius_login::client::Method::GET,
                audius_login::oauth::ME_PATH,
                None,
            )
            .await?;
        if answer.status != 200 {
            return Err(audius_login::oauth::bearer_failure(&answer).into());
        }
        let body: Value = answer.json().map_err(AudiusLoginError::from)?;
        let user = body
            .get("data")
            .and_then(audius_login::ApiUser::from_json)
            .ok_or_else(|| {
                AudiusLoginError::from(audius_login::Error::UpstreamUnexpected {
                    status: 200,
                    message: "the /v1/me answer has no data.id and data.handle".into(),
                })
            })?;
        Ok(VerifiedProfile::from_api_user(&user))
    }
}

/// actix-web's method (`http` 0.2) as the core crate's (`http` 1). Every method actix-web can
/// hold is a valid token for both; a failure is reported, never replaced by another method.
fn core_method(method: &Method) -> Result<audius_login::client::Method, AudiusLoginError> {
    audius_login::client::Method::from_bytes(method.as_str().as_bytes()).map_err(|e| {
        AudiusLoginError::new(
            LoginErrorKind::Misconfigured,
            format!("The HTTP method {method} cannot be sent to Audius: {e}"),
        )
    })
}

/// An answer of the Audius API to an [`AudiusClient`] call, success or not: the status (as
/// actix-web's own [`StatusCode`]), the body (capped by the API client, 1 MiB by default) and
/// the host that answered.
///
/// ```
/// use actix_audius_login::AudiusClient;
/// use actix_web::http::StatusCode;
/// use actix_web::{HttpResponse, web};
///
/// async fn track(audius: AudiusClient, id: web::Path<String>) -> Result<HttpResponse, actix_web::Error> {
///     let answer = audius.get(&format!("/v1/tracks/{id}")).await?;
///     Ok(match answer.status() {
///         StatusCode::OK => HttpResponse::Ok().json(answer.json::<serde_json::Value>()?),
///         StatusCode::NOT_FOUND => HttpResponse::NotFound().body("no such track"),
///         status => HttpResponse::build(status).body(answer.error_message()),
///     })
/// }
/// ```
#[derive(Debug, Clone)]
pub struct AudiusResponse {
    status: StatusCode,
    core: ApiResponse,
}

impl AudiusResponse {
    /// The core crate's answer, with its status as actix-web's type. Both types hold the same
    /// range (100 to 999), so this cannot fail for an answer the core client accepted; if it
    /// ever did, the error says so rather than inventing a status.
    fn from_core(core: ApiResponse) -> Result<Self, AudiusLoginError> {
        let status = StatusCode::from_u16(core.status.as_u16()).map_err(|e| {
            AudiusLoginError::from(audius_login::Error::UpstreamUnexpected {
                status: core.status.as_u16(),
                message: format!("a status actix-web cannot hold: {e}"),
            })
        })?;
        Ok(Self { status, core })
    }

    /// The HTTP status, actix-web's type: compare it with `StatusCode::OK`, or pass it to
    /// `HttpResponse::build`.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The body (at most the API client's cap).
    pub fn body(&self) -> &Bytes {
        &self.core.body
    }

    /// The body, taken.
    pub fn into_body(self) -> Bytes {
        self.core.body
    }

    /// The body as JSON; an unreadable body is `audius_unexpected` (502).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, AudiusLoginError> {
        self.core.json().map_err(AudiusLoginError::from)
    }

    /// Audius' error message (`error_description`, `error` or `message`), else the start of
    /// the body; never empty.
    pub fn error_message(&self) -> String {
        self.core.error_message()
    }

    /// The host that answered.
    pub fn host(&self) -> &Url {
        &self.core.host
    }

    /// The `Location` header of a redirect (redirects are never followed).
    pub fn location(&self) -> Option<&str> {
        self.core.location.as_deref()
    }

    /// The core crate's answer (its status is the `http` 1 crate's type).
    pub fn into_core(self) -> ApiResponse {
        self.core
    }
}

/// Whether a configuration runs the code flow.
pub(crate) fn is_code_flow(config: &AudiusLogin) -> bool {
    config.inner.flow == Flow::AuthorizationCode
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tokens(generation: u64) -> StoredTokens {
        StoredTokens {
            family: "fam".into(),
            user_id: 1,
            access: AccessToken::new(format!("a{generation}")),
            refresh: RefreshToken::new(format!("r{generation}")),
            expires_at: 1_000,
            scope: Scope::Read,
            generation,
        }
    }

    #[test]
    fn stored_tokens_do_not_print_secrets() {
        let t = tokens(0);
        let shown = format!("{t:?}");
        assert!(shown.contains("AccessToken(..)"), "{shown}");
        assert!(!shown.contains("a0") && !shown.contains("r0"), "{shown}");
        let json = serde_json::to_string(&t).unwrap();
        let back: StoredTokens = serde_json::from_str(&json).unwrap();
        assert_eq!(back.refresh.secret(), "r0");
    }

    #[test]
    fn expiry_with_margin() {
        let t = tokens(0);
        let at = |s| OffsetDateTime::from_unix_timestamp(s).unwrap();
        assert!(!t.expiring(at(939), Duration::from_secs(60)));
        assert!(t.expiring(at(940), Duration::from_secs(60)));
        assert!(t.expiring(at(1_000), Duration::ZERO));
        assert!(t.expiring(at(0), Duration::MAX));
    }

    #[test]
    fn families_know_the_newest_and_the_dead() {
        let families = Families::new(2);
        assert!(matches!(families.known(&tokens(0)), Known::Same));
        let state = families.entry("fam");
        state.latest().tokens = Some(tokens(3));
        assert!(matches!(families.known(&tokens(3)), Known::Same));
        match families.known(&tokens(1)) {
            Known::Newer(t) => assert_eq!(t.generation, 3),
            _ => panic!("newer expected"),
        }
        assert_eq!(families.newest(&tokens(0)).refresh.secret(), "r3");
        families.mark_dead("fam");
        assert!(matches!(families.known(&tokens(5)), Known::Dead));
        // Bounded: the least recently used goes.
        families.entry("b");
        families.entry("c");
        assert_eq!(families.len(), 2);
        assert!(families.peek("fam").is_none());
    }

    #[test]
    fn retiring_a_stale_session_revokes_the_newest_tokens() {
        let families = Families::new(4);
        families.entry("fam").latest().tokens = Some(tokens(3));
        // The session still holds generation 1 (a stale cookie): generation 3 is revoked.
        let revoked = retire(&families, &tokens(1));
        assert_eq!(revoked.refresh.secret(), "r3");
        assert!(matches!(families.known(&tokens(3)), Known::Dead));
    }

    #[test]
    fn actix_methods_reach_audius_unchanged() {
        for method in [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
            Method::from_bytes(b"PURGE").unwrap(),
        ] {
            assert_eq!(core_method(&method).unwrap().as_str(), method.as_str());
        }
    }

    #[test]
    fn answers_keep_their_status_in_actix_types() {
        for code in [100, 200, 204, 302, 401, 403, 404, 429, 500, 599, 999] {
            let core = ApiResponse {
                status: audius_login::client::StatusCode::from_u16(code).unwrap(),
                body: Bytes::from_static(br#"{"error":"nope"}"#),
                host: Url::parse("http://h").unwrap(),
                location: None,
            };
            let answer = AudiusResponse::from_core(core).unwrap();
            assert_eq!(answer.status(), StatusCode::from_u16(code).unwrap());
            assert_eq!(answer.status().as_u16(), code);
            assert_eq!(answer.is_success(), (200..300).contains(&code));
            assert_eq!(answer.error_message(), "nope");
        }
    }

    #[test]
    fn random_family_ids() {
        let set = |a: &str| {
            TokenSet::from_json(&serde_json::json!({
                "access_token": a, "token_type": "Bearer", "expires_in": 3600,
                "refresh_token": "r", "scope": "read"
            }))
            .unwrap()
        };
        let now = OffsetDateTime::from_unix_timestamp(0).unwrap();
        let a = StoredTokens::new(set("a"), 1, now);
        let b = StoredTokens::new(set("b"), 1, now);
        assert_eq!(a.family.len(), 22);
        assert_ne!(a.family, b.family);
        assert_eq!(a.expires_at, 3600);
        let c = a.rotated(set("c"), now);
        assert_eq!((c.family.as_str(), c.generation), (a.family.as_str(), 1));
    }
}
