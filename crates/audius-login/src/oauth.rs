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

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use url::Url;

use crate::client::{ApiClient, ApiResponse};
use crate::error::{ConfigError, Error, Limited, OAuthErrorCode, Result};
use crate::login_url::{Display, Environment, ResponseMode, Scope, State, normalize_origin};
use crate::redirect_uri::RedirectUri;
use crate::verify::{ApiUser, VerifiedProfile, unexpected_or_unavailable};

/// `GET {api}/v1/oauth/authorize`: redirects to the login page.
pub const AUTHORIZE_PATH: &str = "/v1/oauth/authorize";
/// `POST {api}/v1/oauth/token`: code exchange and refresh.
pub const TOKEN_PATH: &str = "/v1/oauth/token";
/// `POST {api}/v1/oauth/revoke`: revokes a token's whole family.
pub const REVOKE_PATH: &str = "/v1/oauth/revoke";
/// `GET {api}/v1/me`: the user behind an access token.
pub const ME_PATH: &str = "/v1/me";
/// The only challenge method Audius accepts.
pub const CODE_CHALLENGE_METHOD: &str = "S256";
/// Longest authorization code accepted from a callback: 512 bytes.
pub const MAX_CODE_LEN: usize = 512;
/// Longest access or refresh token accepted in an answer: 4 KiB.
pub const MAX_OAUTH_TOKEN_LEN: usize = 4096;
/// Longest `expires_in` believed: one year (a longer one is read as one year).
pub const MAX_EXPIRES_IN: Duration = Duration::from_secs(365 * 24 * 3600);

/// Whether a text is made only of RFC 7636's unreserved characters (`A-Z a-z 0-9 - . _ ~`).
fn unreserved(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// The S256 challenge of a verifier: `base64url(SHA-256(verifier))`, no padding (43 characters).
///
/// ```
/// // RFC 7636, appendix B.
/// assert_eq!(
///     audius_login::oauth::pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
///     "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
/// );
/// ```
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A PKCE code verifier (RFC 7636): a secret kept in the user's session between the
/// authorization request and the code exchange.
///
/// Generated ones are 32 random bytes, base64url (43 characters). It prints as
/// `PkceVerifier(..)` and has no `PartialEq`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PkceVerifier(String);

impl PkceVerifier {
    /// Length of a generated verifier, in characters.
    pub const GENERATED_LEN: usize = 43;
    /// Shortest verifier RFC 7636 allows.
    pub const MIN_LEN: usize = 43;
    /// Longest verifier RFC 7636 allows.
    pub const MAX_LEN: usize = 128;

    /// A fresh verifier from the operating system's random source: 32 bytes, base64url.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A verifier given by the caller: 43 to 128 characters of `A-Z a-z 0-9 - . _ ~`.
    pub fn new(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&value.len()) || !unreserved(&value) {
            return Err(ConfigError::new(
                "pkce_verifier",
                "a PKCE verifier is 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
            )
            .into());
        }
        Ok(Self(value))
    }

    /// The verifier's text, sent once, at the code exchange.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Its S256 challenge, sent in the authorization request.
    pub fn challenge(&self) -> String {
        pkce_challenge(&self.0)
    }
}

impl fmt::Debug for PkceVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PkceVerifier(..)")
    }
}

impl TryFrom<String> for PkceVerifier {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::new(value)
    }
}

impl From<PkceVerifier> for String {
    fn from(verifier: PkceVerifier) -> Self {
        verifier.0
    }
}

macro_rules! secret_token {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a token's text (as read back from storage).
            pub fn new(token: impl Into<String>) -> Self {
                Self(token.into())
            }

            /// The token's text, to send on the wire.
            pub fn secret(&self) -> &str {
                &self.0
            }

            /// Whether `candidate` is this token, compared in constant time.
            pub fn matches(&self, candidate: &str) -> bool {
                crate::login_url::constant_time_eq(self.0.as_bytes(), candidate.as_bytes())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }
    };
}

secret_token!(
    /// An OAuth access token: `Authorization: Bearer <token>` on API calls, valid one hour.
    /// Opaque, not a JWT. Prints as `AccessToken(..)`; no `PartialEq`, no `Display`.
    AccessToken
);

secret_token!(
    /// An OAuth refresh token: exchanged for a new pair, once (it rotates). Valid 30 days.
    /// Opaque. Prints as `RefreshToken(..)`; no `PartialEq`, no `Display`.
    RefreshToken
);

/// What a successful code exchange or refresh gives (PKCE spec section 2).
///
/// `Debug` shows the lifetime and scope, never the tokens.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenSet {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token (a new one on every refresh; the old one is used up).
    pub refresh_token: RefreshToken,
    /// `token_type`: always `Bearer`.
    pub token_type: String,
    /// `expires_in`: the access token's lifetime (one hour at Audius).
    pub expires_in: Duration,
    /// `scope`: what the tokens allow.
    pub scope: Scope,
}

impl TokenSet {
    /// Reads a token answer: `{"access_token", "token_type": "Bearer", "expires_in",
    /// "refresh_token", "scope"}`. Anything missing or of the wrong type is an
    /// [`Error::UpstreamUnexpected`] (status 200).
    pub fn from_json(value: &Value) -> Result<Self> {
        let bad = |message: String| Error::UpstreamUnexpected {
            status: 200,
            message,
        };
        let token = |key: &str| -> Result<String> {
            match value.get(key).and_then(Value::as_str) {
                Some(t) if !t.is_empty() && t.len() <= MAX_OAUTH_TOKEN_LEN => Ok(t.to_owned()),
                Some(t) if !t.is_empty() => Err(Error::TooLarge {
                    what: Limited::ResponseBody,
                    limit: MAX_OAUTH_TOKEN_LEN,
                }),
                _ => Err(bad(format!("the token answer has no {key}"))),
            }
        };
        let access_token = AccessToken(token("access_token")?);
        let refresh_token = RefreshToken(token("refresh_token")?);
        let token_type = value
            .get("token_type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !token_type.eq_ignore_ascii_case("bearer") {
            return Err(bad(format!(
                "the token answer's token_type is {:?}, not Bearer",
                token_type.chars().take(32).collect::<String>()
            )));
        }
        let expires_in = match value.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64().filter(|s| *s > 0).ok_or_else(|| {
                bad("the token answer's expires_in is not a positive integer".into())
            })?,
            _ => return Err(bad("the token answer has no expires_in number".into())),
        };
        let scope = value
            .get("scope")
            .and_then(Value::as_str)
            .and_then(parse_scope)
            .ok_or_else(|| bad("the token answer's scope is not read or write".into()))?;
        Ok(Self {
            access_token,
            refresh_token,
            token_type: "Bearer".to_owned(),
            expires_in: Duration::from_secs(expires_in).min(MAX_EXPIRES_IN),
            scope,
        })
    }

    /// When the access token expires, for tokens received at `received_at`.
    pub fn expires_at(&self, received_at: OffsetDateTime) -> OffsetDateTime {
        received_at + self.expires_in
    }
}

/// Reads a scope as the PKCE spec writes it: `read`, `write`, or a space-separated list of those
/// (containing `write` means `write`). `None` for anything else.
pub fn parse_scope(text: &str) -> Option<Scope> {
    let mut scope = None;
    for part in text.split(' ').filter(|p| !p.is_empty()) {
        match part {
            "read" => {
                scope.get_or_insert(Scope::Read);
            }
            "write" => scope = Some(Scope::Write),
            _ => return None,
        }
    }
    scope
}

/// Builds authorization URLs. See [`AuthorizeUrl::builder`].
#[derive(Debug, Clone, Default)]
pub struct AuthorizeUrl;

impl AuthorizeUrl {
    /// A builder with the defaults of each setter.
    pub fn builder() -> AuthorizeUrlBuilder {
        AuthorizeUrlBuilder::default()
    }
}

/// Builder of `{api}/v1/oauth/authorize?...` with every parameter of PKCE spec section 1.
#[derive(Debug, Clone, Default)]
pub struct AuthorizeUrlBuilder {
    client_id: Option<String>,
    redirect_uri: Option<RedirectUri>,
    scope: Scope,
    state: Option<String>,
    code_challenge: Option<String>,
    response_mode: Option<ResponseMode>,
    origin: Option<String>,
    display: Display,
    environment: Environment,
}

impl AuthorizeUrlBuilder {
    /// `client_id`: the app's API key, 40 hex characters (`0x` optional, any case; sent
    /// lower-case without `0x`). Required.
    pub fn client_id(mut self, key: impl Into<String>) -> Self {
        self.client_id = Some(key.into());
        self
    }

    /// `redirect_uri`: one of the app's registered redirect URIs, or
    /// [`RedirectUri::PostMessage`] for the popup channel. Required.
    pub fn redirect_uri(mut self, uri: RedirectUri) -> Self {
        self.redirect_uri = Some(uri);
        self
    }

    /// `scope`. Default: [`Scope::Read`].
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// `state`, bound to the browser session. Required.
    pub fn state(mut self, state: &State) -> Self {
        self.state = Some(state.secret().to_owned());
        self
    }

    /// `code_challenge` (and `code_challenge_method=S256`) from the verifier kept in the session.
    /// Required (this or [`code_challenge`](Self::code_challenge)).
    pub fn pkce(mut self, verifier: &PkceVerifier) -> Self {
        self.code_challenge = Some(verifier.challenge());
        self
    }

    /// `code_challenge` given directly: 43 base64url characters (an S256 challenge). Default:
    /// none; see [`pkce`](Self::pkce).
    pub fn code_challenge(mut self, challenge: impl Into<String>) -> Self {
        self.code_challenge = Some(challenge.into());
        self
    }

    /// `response_mode`. Default: [`ResponseMode::Query`]. Always sent: the page's own default
    /// changed from fragment to query in 2026, so the URL never relies on it.
    pub fn response_mode(mut self, mode: ResponseMode) -> Self {
        self.response_mode = Some(mode);
        self
    }

    /// `origin`: the opener's origin, required with `postmessage`. Default: none.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// `display`. Default: [`Display::Popup`].
    pub fn display(mut self, display: Display) -> Self {
        self.display = display;
        self
    }

    /// Which Audius API. Default: [`Environment::Production`] (`https://api.audius.co`).
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = environment;
        self
    }

    /// The authorization URL, or [`Error::Config`] when a required parameter is missing or
    /// wrong.
    pub fn build(self) -> Result<Url> {
        let client_id = self
            .client_id
            .as_deref()
            .ok_or_else(|| {
                Error::from(ConfigError::new(
                    "client_id",
                    "the code flow needs client_id, the app's API key",
                ))
            })
            .and_then(crate::login_url::normalize_api_key)?;
        let redirect_uri = self.redirect_uri.ok_or_else(|| {
            Error::from(ConfigError::new(
                "redirect_uri",
                "a redirect URI is required",
            ))
        })?;
        let state = self.state.ok_or_else(|| {
            Error::from(ConfigError::new(
                "state",
                "a state is required (the CSRF defence)",
            ))
        })?;
        let challenge = self.code_challenge.ok_or_else(|| {
            Error::from(ConfigError::new(
                "code_challenge",
                "a PKCE code challenge is required (AuthorizeUrlBuilder::pkce)",
            ))
        })?;
        if challenge.len() != 43
            || !challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ConfigError::new(
                "code_challenge",
                "a code challenge is base64url(SHA-256(verifier)): 43 base64url characters",
            )
            .into());
        }
        let origin = match (&redirect_uri, self.origin.as_deref()) {
            (RedirectUri::PostMessage, None) => {
                return Err(ConfigError::new(
                    "origin",
                    "redirect_uri=postmessage needs the opener's origin",
                )
                .into());
            }
            (_, Some(o)) => Some(normalize_origin(o)?),
            (_, None) => None,
        };
        let base = self.environment.api();
        let mut url = Url::parse(&format!(
            "{}{AUTHORIZE_PATH}",
            base.as_str().trim_end_matches('/')
        ))
        .map_err(|e| {
            Error::from(ConfigError::new(
                "environment",
                format!("bad API URL {base}: {e}"),
            ))
        })?;
        {
            let mut q = url.query_pairs_mut();
            q.clear();
            q.append_pair("response_type", "code");
            q.append_pair("client_id", &client_id);
            q.append_pair("redirect_uri", redirect_uri.as_str());
            q.append_pair("scope", self.scope.as_str());
            q.append_pair("state", &state);
            q.append_pair("code_challenge", &challenge);
            q.append_pair("code_challenge_method", CODE_CHALLENGE_METHOD);
            q.append_pair(
                "response_mode",
                self.response_mode.unwrap_or(ResponseMode::Query).as_str(),
            );
            if let Some(origin) = &origin {
                q.append_pair("origin", origin);
            }
            q.append_pair("display", self.display.as_str());
        }
        Ok(url)
    }
}

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
    use serde_json::json;

    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b() {
        assert_eq!(pkce_challenge(RFC_VERIFIER), RFC_CHALLENGE);
        let v = PkceVerifier::new(RFC_VERIFIER).unwrap();
        assert_eq!(v.challenge(), RFC_CHALLENGE);
        assert_eq!(v.secret(), RFC_VERIFIER);
    }

    #[test]
    fn generated_verifiers() {
        let a = PkceVerifier::generate();
        let b = PkceVerifier::generate();
        assert_eq!(a.secret().len(), PkceVerifier::GENERATED_LEN);
        assert_ne!(a.secret(), b.secret());
        assert!(
            a.secret()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(a.challenge().len(), 43);
        assert_eq!(format!("{a:?}"), "PkceVerifier(..)");
        // Round trip through storage; invalid stored values are refused.
        let text = serde_json::to_string(&a).unwrap();
        let back: PkceVerifier = serde_json::from_str(&text).unwrap();
        assert_eq!(back.secret(), a.secret());
        assert!(serde_json::from_str::<PkceVerifier>("\"short\"").is_err());
        assert!(PkceVerifier::new("a".repeat(42)).is_err());
        assert!(PkceVerifier::new("a".repeat(129)).is_err());
        assert!(PkceVerifier::new(format!("{}+", "a".repeat(42))).is_err());
        assert!(PkceVerifier::new("a~.-_".repeat(9)).is_ok());
    }

    #[test]
    fn secrets_do_not_print() {
        let set = TokenSet::from_json(&json!({
            "access_token": "A".repeat(43), "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "R".repeat(43), "scope": "write"
        }))
        .unwrap();
        let shown = format!("{set:?}");
        assert!(
            !shown.contains("AAAA") && !shown.contains("RRRR"),
            "{shown}"
        );
        assert!(shown.contains("AccessToken(..)") && shown.contains("RefreshToken(..)"));
        assert_eq!(set.expires_in, Duration::from_secs(3600));
        assert_eq!(set.scope, Scope::Write);
        assert!(set.access_token.matches(&"A".repeat(43)));
        assert!(!set.access_token.matches("A"));
        let t0 = OffsetDateTime::from_unix_timestamp(1_000).unwrap();
        assert_eq!(set.expires_at(t0).unix_timestamp(), 4_600);
    }

    #[test]
    fn token_answers_are_checked() {
        let good = json!({
            "access_token": "a", "token_type": "bearer", "expires_in": 10,
            "refresh_token": "r", "scope": "read write"
        });
        assert_eq!(TokenSet::from_json(&good).unwrap().scope, Scope::Write);
        for (key, value) in [
            ("access_token", json!(null)),
            ("access_token", json!("")),
            ("refresh_token", json!(5)),
            ("token_type", json!("MAC")),
            ("expires_in", json!("3600")),
            ("expires_in", json!(0)),
            ("expires_in", json!(-5)),
            ("scope", json!("admin")),
            ("scope", json!(null)),
        ] {
            let mut v = good.clone();
            v[key] = value;
            let e = TokenSet::from_json(&v).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::UpstreamUnexpected, "{key}: {e}");
        }
        let mut v = good.clone();
        v["access_token"] = json!("x".repeat(MAX_OAUTH_TOKEN_LEN + 1));
        assert_eq!(
            TokenSet::from_json(&v).unwrap_err().kind(),
            ErrorKind::TooLarge
        );
        let mut v = good;
        v["expires_in"] = json!(u64::MAX);
        assert_eq!(TokenSet::from_json(&v).unwrap().expires_in, MAX_EXPIRES_IN);
    }

    #[test]
    fn scopes() {
        assert_eq!(parse_scope("read"), Some(Scope::Read));
        assert_eq!(parse_scope("write"), Some(Scope::Write));
        assert_eq!(parse_scope("write read"), Some(Scope::Write));
        assert_eq!(parse_scope("read read"), Some(Scope::Read));
        assert_eq!(parse_scope(""), None);
        assert_eq!(parse_scope("read profile"), None);
    }

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

    #[test]
    fn authorize_url_has_every_parameter() {
        let verifier = PkceVerifier::new(RFC_VERIFIER).unwrap();
        let key = "A0D105A0D105A0D105A0D105A0D105A0D105A0D1";
        let url = AuthorizeUrl::builder()
            .client_id(format!("0x{key}"))
            .redirect_uri(RedirectUri::parse("http://localhost:8080/auth/audius/callback").unwrap())
            .scope(Scope::Write)
            .state(&State::new("st").unwrap())
            .pkce(&verifier)
            .build()
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.audius.co/v1/oauth/authorize?response_type=code\
             &client_id=a0d105a0d105a0d105a0d105a0d105a0d105a0d1\
             &redirect_uri=http%3A%2F%2Flocalhost%3A8080%2Fauth%2Faudius%2Fcallback\
             &scope=write&state=st&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
             &code_challenge_method=S256&response_mode=query&display=popup"
        );
        let popup = AuthorizeUrl::builder()
            .client_id(key)
            .redirect_uri(RedirectUri::PostMessage)
            .origin("http://localhost:8080/")
            .state(&State::new("st").unwrap())
            .code_challenge(RFC_CHALLENGE)
            .response_mode(ResponseMode::Fragment)
            .display(Display::FullScreen)
            .environment(Environment::Custom {
                login_page: Url::parse("http://127.0.0.1:9/oauth/auth").unwrap(),
                api: Url::parse("http://127.0.0.1:9/prefix/").unwrap(),
            })
            .build()
            .unwrap();
        assert!(
            popup
                .as_str()
                .starts_with("http://127.0.0.1:9/prefix/v1/oauth/authorize?response_type=code&"),
            "{popup}"
        );
        assert!(popup.as_str().contains(
            "&response_mode=fragment&origin=http%3A%2F%2Flocalhost%3A8080&display=fullScreen"
        ));
    }

    #[test]
    fn authorize_url_refusals() {
        let ok = || {
            AuthorizeUrl::builder()
                .client_id("ab".repeat(20))
                .redirect_uri(RedirectUri::parse("https://app.example/cb").unwrap())
                .state(&State::generate())
                .pkce(&PkceVerifier::generate())
        };
        assert!(ok().build().is_ok());
        let no_key = AuthorizeUrl::builder()
            .redirect_uri(RedirectUri::parse("https://app.example/cb").unwrap())
            .state(&State::generate())
            .pkce(&PkceVerifier::generate());
        assert!(no_key.build().is_err());
        assert!(ok().client_id("0x12").build().is_err());
        assert!(ok().code_challenge("short").build().is_err());
        assert!(ok().code_challenge("+".repeat(43)).build().is_err());
        assert!(
            ok().redirect_uri(RedirectUri::PostMessage).build().is_err(),
            "postmessage needs an origin"
        );
        assert!(ok().origin("http://x/path").build().is_err());
        let no_state = AuthorizeUrl::builder()
            .client_id("ab".repeat(20))
            .redirect_uri(RedirectUri::parse("https://app.example/cb").unwrap())
            .pkce(&PkceVerifier::generate());
        assert!(no_state.build().is_err());
    }
}
