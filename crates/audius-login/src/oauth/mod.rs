//! The authorization-code flow with PKCE (OAuth 2.0, `docs/protocol-pkce.md`): the verifier and
//! its challenge, the authorization URL, the code exchange, refresh and revocation, and the user
//! behind an access token (`GET /v1/me`).
//!
//! This flow gives an app *authorization*: an access token (one hour) and a refresh token
//! (30 days, rotated on every use) with which it calls the Audius API as the user. It does
//! **not** give the user's email: only the implicit flow's token carries it.
//!
//! ```no_run
//! use audius_login::oauth::{AuthorizeUrl, OAuthClient, PkceVerifier};
//! use audius_login::{ApiClient, RedirectUri, ResponseMode, Scope, State};
//!
//! # async fn run(code_from_callback: &str) -> Result<(), audius_login::Error> {
//! const KEY: &str = "a0d105a0d105a0d105a0d105a0d105a0d105a0d1";
//! let redirect = RedirectUri::parse("https://app.example/auth/audius/callback")?;
//!
//! // 1. A verifier and a state, both kept in the user's session; the browser goes to the URL.
//! let verifier = PkceVerifier::generate();
//! let state = State::generate();
//! let url = AuthorizeUrl::builder()
//!     .client_id(KEY)
//!     .redirect_uri(redirect.clone())
//!     .scope(Scope::Write)
//!     .state(&state)
//!     .pkce(&verifier)
//!     .response_mode(ResponseMode::Query)
//!     .build()?;
//! println!("redirect to {url}");
//!
//! // 2. On the callback (state checked): exchange the code, then ask who the user is.
//! let oauth = OAuthClient::new(ApiClient::builder().build()?).client_id(KEY)?;
//! let tokens = oauth.exchange_code(code_from_callback, &verifier, &redirect).await?;
//! let profile = oauth.me(&tokens.access_token).await?;
//! assert!(profile.email.is_none(), "this flow never gives the email");
//!
//! // 3. Later: a new pair (the old refresh token is used up), and at logout, revocation.
//! let tokens = oauth.refresh(&tokens.refresh_token).await?;
//! oauth.revoke(tokens.refresh_token.secret()).await?;
//! # Ok(()) }
//! ```
//!
//! # Secrets
//!
//! [`PkceVerifier`], [`AccessToken`] and [`RefreshToken`] print as `AccessToken(..)` and have no
//! `PartialEq` and no `Display`: they cannot be logged or compared by accident. Their text is
//! reached with `secret()`. They serialise as plain strings, to be kept in a session (keep that
//! session encrypted or server-side).
//!
//! # Retries
//!
//! The token and revocation calls are `POST`s: the client sends them to another host only when
//! the connection was refused, never after they may have been received (a code or refresh token
//! is used up by the first attempt, and a second one would trigger reuse detection).

mod authorize;
mod pkce;
mod tokens;

use serde_json::Value;

pub use authorize::{AuthorizeUrl, AuthorizeUrlBuilder};
pub use pkce::PkceVerifier;
pub use tokens::{AccessToken, RefreshToken, TokenSet};

use crate::client::{ApiClient, ApiResponse};
use crate::defaults::MAX_CODE_LEN;
use crate::error::{Error, Limited, OAuthErrorCode, Result};
use crate::redirect_uri::RedirectUri;
use crate::verify::{ApiUser, VerifiedProfile, unexpected_or_unavailable};

/// `GET {api}/v1/oauth/authorize`: redirects to the login page.
const AUTHORIZE_PATH: &str = "/v1/oauth/authorize";
/// `POST {api}/v1/oauth/token`: code exchange and refresh.
const TOKEN_PATH: &str = "/v1/oauth/token";
/// `POST {api}/v1/oauth/revoke`: revokes a token's whole family.
const REVOKE_PATH: &str = "/v1/oauth/revoke";
/// `GET {api}/v1/me`: the user behind an access token.
pub const ME_PATH: &str = "/v1/me";
/// The only challenge method Audius accepts.
const CODE_CHALLENGE_METHOD: &str = "S256";

/// How the token and revocation calls encode their bodies. Audius takes both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum BodyEncoding {
    /// `application/x-www-form-urlencoded`, as RFC 6749 writes it. (Default.)
    #[default]
    Form,
    /// `application/json`.
    Json,
}

/// The OAuth calls of the code flow, on an [`ApiClient`] (its timeouts, caps and fail-over
/// rules apply). Cheap to clone.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    api: ApiClient,
    client_id: Option<String>,
    encoding: BodyEncoding,
}

impl OAuthClient {
    /// A client without a `client_id` (it is optional on every call) sending form bodies.
    pub fn new(api: ApiClient) -> Self {
        Self {
            api,
            client_id: None,
            encoding: BodyEncoding::Form,
        }
    }

    /// Sends `client_id` (the app's API key, 40 hex characters, `0x` optional) with the code
    /// exchange and refresh; Audius then checks it matches. Default: not sent.
    pub fn client_id(mut self, key: &str) -> Result<Self> {
        self.client_id = Some(crate::login_url::normalize_api_key(key)?);
        Ok(self)
    }

    /// How bodies are encoded. Default: [`BodyEncoding::Form`].
    pub fn body_encoding(mut self, encoding: BodyEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// The same client, with connections of its own
    /// ([`ApiClient::with_own_connections`]).
    pub fn with_own_connections(&self) -> Result<Self> {
        Ok(Self {
            api: self.api.with_own_connections()?,
            ..self.clone()
        })
    }

    /// The API client used.
    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    /// The `client_id` sent, if any (normalised).
    pub fn get_client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    async fn post(&self, path: &str, pairs: &[(&str, &str)]) -> Result<ApiResponse> {
        match self.encoding {
            BodyEncoding::Form => self.api.post_form(path, pairs).await,
            BodyEncoding::Json => {
                let body: serde_json::Map<String, Value> = pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
                    .collect();
                self.api.post_json(path, &Value::Object(body)).await
            }
        }
    }

    /// Exchanges an authorization code (PKCE spec section 2): `grant_type=authorization_code`,
    /// `code`, `code_verifier`, `redirect_uri` (exactly as sent in the authorization request)
    /// and `client_id` when set. The code is used up by this call, whatever its outcome.
    ///
    /// Refusals are [`Error::OAuth`]: `invalid_grant` ([`ErrorKind::InvalidGrant`]) for a code
    /// that is unknown, expired or used, a wrong verifier, or a client or redirect URI that
    /// does not match.
    ///
    /// [`ErrorKind::InvalidGrant`]: crate::ErrorKind::InvalidGrant
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &PkceVerifier,
        redirect_uri: &RedirectUri,
    ) -> Result<TokenSet> {
        if code.len() > MAX_CODE_LEN {
            return Err(Error::TooLarge {
                what: Limited::Input,
                limit: MAX_CODE_LEN,
            });
        }
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier.secret()),
            ("redirect_uri", redirect_uri.as_str()),
        ];
        if let Some(id) = &self.client_id {
            pairs.push(("client_id", id));
        }
        let answer = self.post(TOKEN_PATH, &pairs).await?;
        token_answer(&answer)
    }

    /// Refreshes (PKCE spec section 2): `grant_type=refresh_token`, `refresh_token`, and
    /// `client_id` when set. Returns a new pair; the refresh token given is used up. Presenting it again
    /// revokes the whole family (reuse detection): call this once per refresh token.
    pub async fn refresh(&self, refresh_token: &RefreshToken) -> Result<TokenSet> {
        let mut pairs = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.secret()),
        ];
        if let Some(id) = &self.client_id {
            pairs.push(("client_id", id));
        }
        let answer = self.post(TOKEN_PATH, &pairs).await?;
        token_answer(&answer)
    }

    /// Revokes a token, access or refresh, and with it its whole family (PKCE spec section 3).
    /// Audius answers `200 {}` even for a token it does not know.
    pub async fn revoke(&self, token: &str) -> Result<()> {
        let mut pairs = vec![("token", token)];
        if let Some(id) = &self.client_id {
            pairs.push(("client_id", id));
        }
        let answer = self.post(REVOKE_PATH, &pairs).await?;
        match answer.status.as_u16() {
            200..=299 => Ok(()),
            _ => Err(oauth_failure(&answer)),
        }
    }

    /// The user behind an access token (`GET /v1/me`), as the same profile type as the implicit
    /// flow: no `email` (this flow never gives it), no `signer`, no `issued_at`.
    ///
    /// A refused token is [`Error::InvalidAccessToken`].
    pub async fn me(&self, access_token: &AccessToken) -> Result<VerifiedProfile> {
        let answer = self
            .api
            .get_with_bearer(ME_PATH, access_token.secret())
            .await?;
        if answer.status != 200 {
            return Err(bearer_failure(&answer));
        }
        let body: Value = answer.json()?;
        let user = body
            .get("data")
            .and_then(ApiUser::from_json)
            .ok_or_else(|| Error::UpstreamUnexpected {
                status: 200,
                message: "the /v1/me answer has no data.id and data.handle".into(),
            })?;
        Ok(VerifiedProfile::from_api_user(&user))
    }
}

/// The error for a non-2xx answer to a Bearer API call: 401 is [`Error::InvalidAccessToken`],
/// a 403 about scope is [`Error::InsufficientScope`], 429 is [`Error::UpstreamUnavailable`],
/// anything else [`Error::UpstreamUnexpected`].
pub fn bearer_failure(answer: &ApiResponse) -> Error {
    let message = answer.error_message();
    match answer.status.as_u16() {
        401 => Error::InvalidAccessToken { message },
        403 if message.to_ascii_lowercase().contains("scope") => {
            Error::InsufficientScope { message }
        }
        status => unexpected_or_unavailable(status, answer),
    }
}

/// Reads a token endpoint's answer.
fn token_answer(answer: &ApiResponse) -> Result<TokenSet> {
    if answer.status == 200 {
        let body: Value = answer.json()?;
        return TokenSet::from_json(&body);
    }
    Err(oauth_failure(answer))
}

/// The error for a non-2xx OAuth answer: `{"error", "error_description"}` with a 4xx is an
/// [`Error::OAuth`]; anything else as [`bearer_failure`] would say.
fn oauth_failure(answer: &ApiResponse) -> Error {
    if (400..500).contains(&answer.status.as_u16())
        && answer.status != 429
        && let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&answer.body)
        && let Some(code) = body.get("error").and_then(Value::as_str)
    {
        let description = body
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Error::OAuth {
            code: OAuthErrorCode::parse(code),
            description: description.chars().take(500).collect(),
            status: answer.status.as_u16(),
        };
    }
    unexpected_or_unavailable(answer.status.as_u16(), answer)
}

/// The error a callback carries instead of a code (`error=access_denied&error_description=..`),
/// as an [`Error::OAuth`] with status 0.
pub fn callback_error(code: &str, description: Option<&str>) -> Error {
    Error::OAuth {
        code: OAuthErrorCode::parse(code),
        description: description.unwrap_or_default().chars().take(500).collect(),
        status: 0,
    }
}
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use url::Url;

    fn answer(status: u16, body: &str) -> ApiResponse {
        ApiResponse {
            status: crate::client::StatusCode::from_u16(status).unwrap(),
            body: bytes::Bytes::from(body.to_owned()),
            host: Url::parse("http://h").unwrap(),
            location: None,
        }
    }

    #[test]
    fn oauth_errors_are_typed() {
        let e = oauth_failure(&answer(
            400,
            r#"{"error":"invalid_grant","error_description":"Token reuse detected"}"#,
        ));
        assert_eq!(e.kind(), ErrorKind::InvalidGrant);
        assert_eq!(e.suggested_status(), 401);
        match &e {
            Error::OAuth {
                code,
                description,
                status,
            } => {
                assert_eq!(*code, OAuthErrorCode::InvalidGrant);
                assert_eq!(description, "Token reuse detected");
                assert_eq!(*status, 400);
            }
            other => panic!("{other:?}"),
        }
        let e = oauth_failure(&answer(
            400,
            r#"{"error":"invalid_request","error_description":"Invalid request body"}"#,
        ));
        assert_eq!(e.kind(), ErrorKind::OAuthRefused);
        let e = oauth_failure(&answer(400, r#"{"error":"weird_thing"}"#));
        assert!(
            matches!(&e, Error::OAuth { code: OAuthErrorCode::Other(c), .. } if c == "weird_thing")
        );
        assert_eq!(
            oauth_failure(&answer(404, r#"{"code":404,"error":"Not found"}"#)).kind(),
            ErrorKind::OAuthRefused,
            "a 4xx with an error string is read as OAuth"
        );
        assert_eq!(
            oauth_failure(&answer(404, "nope")).kind(),
            ErrorKind::UpstreamUnexpected
        );
        assert_eq!(
            oauth_failure(&answer(429, r#"{"error":"slow down"}"#)).kind(),
            ErrorKind::UpstreamUnavailable
        );
        let denied = callback_error("access_denied", Some("The user said no"));
        assert_eq!(denied.kind(), ErrorKind::AccessDenied);
        assert_eq!(denied.suggested_status(), 403);
    }

    #[test]
    fn bearer_failures() {
        assert_eq!(
            bearer_failure(&answer(
                401,
                r#"{"code":401,"error":"Invalid access token"}"#
            ))
            .kind(),
            ErrorKind::InvalidAccessToken
        );
        assert_eq!(
            bearer_failure(&answer(
                403,
                r#"{"code":403,"error":"OAuth token scope insufficient: write scope required"}"#
            ))
            .kind(),
            ErrorKind::InsufficientScope
        );
        assert_eq!(
            bearer_failure(&answer(403, r#"{"code":403,"error":"nope"}"#)).kind(),
            ErrorKind::UpstreamUnexpected
        );
    }
}
