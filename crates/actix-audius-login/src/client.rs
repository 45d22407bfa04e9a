//! [`AudiusClient`], the extractor that calls the Audius API as the signed-in user (code
//! flow), and its answers, [`AudiusResponse`].

use std::cell::RefCell;
use std::fmt;

use actix_session::SessionExt as _;
use actix_web::dev::Payload;
use actix_web::http::{Method, StatusCode};
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest};
use audius_login::{ApiResponse, Scope, VerifiedProfile};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::{AudiusLoginError, LoginErrorKind};
use crate::extract::{current_user, not_signed_in};
use crate::lookup::code_flow_config;
use crate::refresh::{Known, RefreshFailure, StoredTokens, read_tokens, refresh, write_tokens};
use crate::session::{TOKENS_KEY, USER_KEY};
use crate::state::AudiusLogin;
use crate::user::AudiusUser;

/// An Audius API client acting as the signed-in user (code flow): a handler argument.
///
/// It sends `Authorization: Bearer <access token>`, refreshes the access token shortly before
/// it expires (and once on a `401`, retrying the call once), with exactly one refresh in flight
/// per session however many requests run at once, and writes refreshed tokens back to the
/// session. When Audius refuses the refresh (the user revoked the app, logged out elsewhere,
/// or reuse was detected), the user is signed out and the request gets the usual "not signed
/// in" answer (a redirect to this flow's login route for browsers, `401` JSON for others).
///
/// Needs the middleware of an [`AudiusLogin`] built with
/// [`Flow::AuthorizationCode`](crate::Flow::AuthorizationCode).
///
/// ```
/// use actix_audius_login::AudiusClient;
/// use actix_web::http::Method;
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
///     let path = format!("/v1/tracks/{track}/favorites");
///     let answer = audius.send(Method::POST, &path, Some(&serde_json::json!({}))).await?;
///     Ok(HttpResponse::build(answer.status).body(answer.body))
/// }
/// ```
///
/// # Where the tokens live
///
/// In the session, under the crate's own key (`audius.tokens`), never in anything the page's
/// JavaScript can read: the callback answers only `{redirect, user}`. With actix-session's
/// `CookieSessionStore` the whole session is the cookie, so keep the session middleware's
/// default `CookieContentSecurity::Private` (the cookie is **encrypted** with the app's key;
/// `Signed` would let anyone holding the cookie read the tokens) and `HttpOnly`. With a
/// server-side store (`RedisSessionStore`) the cookie holds only the session id.
///
/// # One refresh per session, and the newest tokens win
///
/// A refresh token can be used once: Audius answers a second use with "Token reuse detected"
/// and revokes the whole family, which signs the user out. So a session must never refresh
/// twice with the same refresh token, even when a page fires ten API calls at once and every
/// one of them finds the access token expired. This process keeps, per session (keyed by a
/// random family id stored with the tokens at login, so the key is bound to the session and
/// survives session renewal), a lock and the newest tokens it knows (a bounded LRU map,
/// [`Limits::tracked_sessions`](crate::Limits::tracked_sessions)):
///
/// 1. a request that needs a refresh takes the session's lock; the first one refreshes, records
///    the new tokens (generation + 1) and writes them to its session;
/// 2. the others wait on the lock, then find tokens newer than their own and use those, and
///    write them to their sessions too: one `POST /v1/oauth/token` in all;
/// 3. every request whose session changes (whatever the handler did) and carries tokens older
///    than the newest known has them replaced on the way out (in the middleware), and a request
///    that arrives with a stale cookie adopts the newest tokens before using them. So every
///    `Set-Cookie` the browser receives after the refresh carries the newest tokens, whichever
///    of the concurrent answers it processes last, and a stale cookie is never used to refresh.
///
/// With a `RedisReplayCache` the coordination spans instances (a lock and the newest tokens in
/// Redis; Redis unreachable during a refresh is `503`). Otherwise it is per process: several
/// instances behind a load balancer should route a session to one instance (sticky sessions),
/// or two may refresh the same token and Audius' reuse detection will sign the user out.
/// Likewise, a refresh whose answer is lost (a timeout after Audius received it) uses the
/// refresh token up: the next refresh is refused and the user logs in again.
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
        match refresh(
            &self.config.inner,
            &self.config.inner.families,
            &self.config.inner.background,
            seen,
        )
        .await
        {
            Ok(fresh) => self.adopt(fresh),
            Err(RefreshFailure::Revoked(why)) => Err(signed_out(&self.req, &self.config, &why)),
            Err(RefreshFailure::Failed(e)) => Err(AudiusLoginError::from(e)),
        }
    }

    /// A call as the user: `method` on `path_and_query` (under the API base: `/v1/...`), with
    /// an optional JSON body (`GET /v1/tracks/{id}` is
    /// `send(Method::GET, &format!("/v1/tracks/{id}"), None)`). A `401` refreshes the tokens once and retries once; any other
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
/// actix-web's own [`StatusCode`]) and the body (capped by the API client, 1 MiB by default).
///
/// ```
/// use actix_audius_login::AudiusClient;
/// use actix_web::http::{Method, StatusCode};
/// use actix_web::{HttpResponse, web};
///
/// async fn track(audius: AudiusClient, id: web::Path<String>) -> Result<HttpResponse, actix_web::Error> {
///     let answer = audius.send(Method::GET, &format!("/v1/tracks/{id}"), None).await?;
///     Ok(match answer.status {
///         StatusCode::OK => HttpResponse::Ok().json(answer.json::<serde_json::Value>()?),
///         StatusCode::NOT_FOUND => HttpResponse::NotFound().body("no such track"),
///         status => HttpResponse::build(status).body(answer.error_message()),
///     })
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AudiusResponse {
    /// The HTTP status, actix-web's type: compare it with `StatusCode::OK`, or pass it to
    /// `HttpResponse::build`.
    pub status: StatusCode,
    /// The `Location` header of a redirect (redirects are never followed).
    pub location: Option<String>,
    /// The body (at most the API client's cap).
    pub body: Bytes,
    /// The host that answered (for the core crate's readers).
    host: url::Url,
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
        Ok(Self {
            status,
            location: core.location,
            body: core.body,
            host: core.host,
        })
    }

    /// The core crate's answer again (its JSON and error-message readers).
    fn core(&self) -> ApiResponse {
        ApiResponse {
            status: audius_login::client::StatusCode::from_u16(self.status.as_u16())
                .unwrap_or(audius_login::client::StatusCode::BAD_GATEWAY),
            body: self.body.clone(),
            host: self.host.clone(),
            location: self.location.clone(),
        }
    }

    /// The body as JSON; an unreadable body is `audius_unexpected` (502).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, AudiusLoginError> {
        self.core().json().map_err(AudiusLoginError::from)
    }

    /// Audius' error message (`error_description`, `error` or `message`), else the start of
    /// the body; never empty.
    pub fn error_message(&self) -> String {
        self.core().error_message()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
                host: url::Url::parse("http://h").unwrap(),
                location: None,
            };
            let answer = AudiusResponse::from_core(core).unwrap();
            assert_eq!(answer.status, StatusCode::from_u16(code).unwrap());
            assert_eq!(answer.status.as_u16(), code);
            assert_eq!(answer.error_message(), "nope");
        }
    }
}
