//! The error types of the actix layer, and how [`AudiusLoginError`] answers.

use std::borrow::Cow;
use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;

use crate::pages;

/// What went wrong, with a stable code and an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LoginErrorKind {
    /// No user is signed in where one is required.
    NotSignedIn,
    /// A signed-in user is not a verified artist where one is required.
    NotVerifiedArtist,
    /// The callback came without `state`.
    MissingState,
    /// The callback's `state` is not one this session started (unknown, or already used).
    StateMismatch,
    /// The login attempt is older than the configured attempt lifetime.
    StateExpired,
    /// The callback came without `token`.
    MissingToken,
    /// Code flow: the callback came without `code`.
    MissingCode,
    /// Code flow: Audius refused the authorization code (unknown, expired, already used, or a
    /// verifier, client or redirect URI that does not match).
    CodeRefused,
    /// Code flow: the user declined the authorization (or Audius answered another error on the
    /// redirect).
    AccessDenied,
    /// Code flow: the access token's scope does not allow the call (`write` needed).
    InsufficientScope,
    /// The callback's body could not be read (wrong type, too large, bad encoding).
    InvalidCallback,
    /// The callback's body did not arrive in time
    /// ([`Limits::callback_body_timeout`](crate::Limits::callback_body_timeout)).
    CallbackTimeout,
    /// The token cannot be parsed.
    MalformedToken,
    /// The token is over the size limit.
    TokenTooLarge,
    /// Audius (or local verification) refused the token: bad signature, wrong wallet, or a
    /// deactivated account.
    TokenRefused,
    /// The token was approved for another app: its `apiKey` claim is missing or is not this
    /// app's API key.
    AudienceMismatch,
    /// The token is older than the maximum age (or carries no usable `iat`).
    StaleToken,
    /// The token was already used to log in.
    ReplayedToken,
    /// The app's `on_login` hook refused the login.
    LoginRefused,
    /// A cross-site request to a route that changes the session.
    CrossSiteRequest,
    /// Audius could not be reached.
    AudiusUnavailable,
    /// Audius answered something unexpected.
    AudiusUnexpected,
    /// The session store could not be reached.
    SessionUnavailable,
    /// The in-memory replay cache is full of live entries: logins are refused (rather than let
    /// a remembered token be forgotten) until some expire.
    ReplayCacheFull,
    /// This user already has as many live logins in this process as
    /// [`Limits::max_logins_per_user`](crate::Limits::max_logins_per_user)
    /// allows: refused until one expires (minutes).
    TooManyLogins,
    /// The app is misconfigured (for example the middleware is not installed).
    Misconfigured,
}

impl LoginErrorKind {
    /// The stable code used in JSON answers.
    pub(crate) fn code(self) -> &'static str {
        use LoginErrorKind::*;
        match self {
            NotSignedIn => "not_signed_in",
            NotVerifiedArtist => "not_verified_artist",
            MissingState => "missing_state",
            StateMismatch => "state_mismatch",
            StateExpired => "state_expired",
            MissingToken => "missing_token",
            MissingCode => "missing_code",
            CodeRefused => "code_refused",
            AccessDenied => "access_denied",
            InsufficientScope => "insufficient_scope",
            InvalidCallback => "invalid_callback",
            CallbackTimeout => "callback_timeout",
            MalformedToken => "malformed_token",
            TokenTooLarge => "token_too_large",
            TokenRefused => "token_refused",
            AudienceMismatch => "audience_mismatch",
            StaleToken => "stale_token",
            ReplayedToken => "replayed_token",
            LoginRefused => "login_refused",
            CrossSiteRequest => "cross_site_request",
            AudiusUnavailable => "audius_unavailable",
            AudiusUnexpected => "audius_unexpected",
            SessionUnavailable => "session_unavailable",
            ReplayCacheFull => "replay_cache_full",
            TooManyLogins => "too_many_logins",
            Misconfigured => "misconfigured",
        }
    }

    /// The HTTP status of the answer.
    pub(crate) fn status(self) -> StatusCode {
        use LoginErrorKind::*;
        match self {
            NotSignedIn | TokenRefused | AudienceMismatch | StaleToken | ReplayedToken
            | CodeRefused => StatusCode::UNAUTHORIZED,
            NotVerifiedArtist | LoginRefused | CrossSiteRequest | AccessDenied
            | InsufficientScope => StatusCode::FORBIDDEN,
            MissingState | StateMismatch | StateExpired | MissingToken | MissingCode
            | InvalidCallback | MalformedToken => StatusCode::BAD_REQUEST,
            TokenTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            CallbackTimeout => StatusCode::REQUEST_TIMEOUT,
            AudiusUnavailable | SessionUnavailable | ReplayCacheFull => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AudiusUnexpected => StatusCode::BAD_GATEWAY,
            TooManyLogins => StatusCode::TOO_MANY_REQUESTS,
            Misconfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short title for HTML pages.
    fn title(self) -> &'static str {
        use LoginErrorKind::*;
        match self {
            NotSignedIn => "Sign in required",
            NotVerifiedArtist => "Verified artists only",
            LoginRefused => "Login refused",
            AccessDenied => "Login cancelled",
            InsufficientScope => "Not allowed",
            CrossSiteRequest => "Request refused",
            AudiusUnavailable | AudiusUnexpected => "Audius is unavailable",
            SessionUnavailable | ReplayCacheFull => "Service unavailable",
            TooManyLogins => "Too many logins",
            Misconfigured => "Server misconfigured",
            _ => "Login failed",
        }
    }
}

impl fmt::Display for LoginErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The most characters of an error's message a log line carries ([`AudiusLoginError::for_log`]).
const LOGGED_MESSAGE_CHARS: usize = 300;

/// `text` made safe for a log line, where it may come from a client or a token: at most
/// `max_chars` characters (then `…`), and every character that is not printable escaped as
/// `{:?}` does (`\n`, `\u{2028}`): control characters, line and paragraph separators, and
/// format characters such as bidi overrides, which could break or reorder the line.
pub(crate) fn loggable(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars));
    for c in text.chars().take(max_chars) {
        let printable = matches!(c, '"' | '\'' | '\\') || c.escape_debug().len() == 1;
        if printable {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    if text.chars().nth(max_chars).is_some() {
        out.push('…');
    }
    out
}

/// How an error answers: decided from the request when the error is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Presentation {
    /// `{"error": code, "message": ..}`.
    Json,
    /// A small HTML page, with a link to try again and a link home.
    Html { login_path: String, landing: String },
    /// A redirect (browsers without a login).
    Redirect(String),
}

impl Presentation {
    /// The HTML page with links to `login_path` and `landing`.
    pub(crate) fn html(login_path: &str, landing: &str) -> Self {
        Self::Html {
            login_path: login_path.to_owned(),
            landing: landing.to_owned(),
        }
    }
}

/// The one error type of this crate's requests: a [`LoginErrorKind`] with a stable code, an HTTP
/// status, and a message. It implements [`ResponseError`]: browsers get a small HTML page (or,
/// for a missing login, a redirect to the login route), other clients get JSON:
///
/// ```json
/// {"error": "not_signed_in", "message": "Sign in with Audius to continue."}
/// ```
///
/// | kind | status | code |
/// |---|---|---|
/// | not signed in | 401 (browsers: 302 to login) | `not_signed_in` |
/// | signed in, not a verified artist | 403 | `not_verified_artist` |
/// | state missing / unknown or used / expired | 400 | `missing_state` / `state_mismatch` / `state_expired` |
/// | token missing / malformed / too large | 400 / 400 / 413 | `missing_token` / `malformed_token` / `token_too_large` |
/// | callback body unreadable / not received in time | 400 / 408 | `invalid_callback` / `callback_timeout` |
/// | token refused (signature, wallet, deactivated account) | 401 | `token_refused` |
/// | token approved for another app (its `apiKey` is not this app's key) | 401 | `audience_mismatch` |
/// | code flow: code missing / refused by Audius (invalid, expired, used, PKCE) | 400 / 401 | `missing_code` / `code_refused` |
/// | code flow: the user declined at Audius (`error=access_denied`) | 403 | `access_denied` |
/// | code flow: the token's scope does not allow the call | 403 | `insufficient_scope` |
/// | token too old / already used | 401 | `stale_token` / `replayed_token` |
/// | login refused by the app's `on_login` hook | 403 | `login_refused` |
/// | cross-site request to a state-changing route | 403 | `cross_site_request` |
/// | Audius unreachable / answered unexpectedly | 503 / 502 | `audius_unavailable` / `audius_unexpected` |
/// | session store or shared replay cache (Redis) unreachable | 503 | `session_unavailable` |
/// | in-memory replay cache full of live entries (logins refused until some expire) | 503 | `replay_cache_full` |
/// | this user has too many live logins in this process (see `max_logins_per_user`) | 429 | `too_many_logins` |
/// | misconfiguration (middleware missing, ...) | 500 | `misconfigured` |
#[derive(Debug)]
pub struct AudiusLoginError(Repr);

#[derive(Debug)]
enum Repr {
    /// A fixed message answering JSON: nothing allocated. The not-signed-in answer is built on
    /// every anonymous `Option<AudiusUser>` request, and thrown away by actix-web.
    Fixed(LoginErrorKind, &'static str),
    Boxed(Box<Inner>),
}

/// The presentation of a [`Repr::Fixed`] error.
const FIXED_PRESENTATION: Presentation = Presentation::Json;

#[derive(Debug)]
struct Inner {
    kind: LoginErrorKind,
    /// Borrowed for the fixed messages (the not-signed-in one is built, and mostly thrown away
    /// by `Option<AudiusUser>`, on every anonymous request).
    message: Cow<'static, str>,
    source: Option<audius_login::Error>,
    presentation: Presentation,
}

#[derive(Serialize)]
struct JsonBody<'a> {
    error: &'a str,
    message: &'a str,
}

impl AudiusLoginError {
    /// An error of this kind with this message (answering JSON until it is given a request).
    pub fn new(kind: LoginErrorKind, message: impl Into<String>) -> Self {
        Self::with_message(kind, Cow::Owned(message.into()))
    }

    /// An error with a fixed message, answering JSON: nothing is allocated.
    pub(crate) fn fixed(kind: LoginErrorKind, message: &'static str) -> Self {
        Self(Repr::Fixed(kind, message))
    }

    fn with_message(kind: LoginErrorKind, message: Cow<'static, str>) -> Self {
        Self(Repr::Boxed(Box::new(Inner {
            kind,
            message,
            source: None,
            presentation: Presentation::Json,
        })))
    }

    /// How it answers.
    fn presentation(&self) -> &Presentation {
        match &self.0 {
            Repr::Fixed(..) => &FIXED_PRESENTATION,
            Repr::Boxed(inner) => &inner.presentation,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> LoginErrorKind {
        match &self.0 {
            Repr::Fixed(kind, _) => *kind,
            Repr::Boxed(inner) => inner.kind,
        }
    }

    /// The stable code (same as `kind().code()`).
    pub(crate) fn code(&self) -> &'static str {
        self.kind().code()
    }

    /// The code and message for a log line: control characters (newlines included) escaped,
    /// at most [`LOGGED_MESSAGE_CHARS`] characters of the message (it may quote what the client
    /// sent, which must not forge log lines nor fill the log).
    pub(crate) fn for_log(&self) -> String {
        format!(
            "{}: {}",
            self.code(),
            loggable(self.message(), LOGGED_MESSAGE_CHARS)
        )
    }

    /// The message shown to the client.
    pub fn message(&self) -> &str {
        match &self.0 {
            Repr::Fixed(_, message) => message,
            Repr::Boxed(inner) => &inner.message,
        }
    }

    /// The core crate's error behind this one, when there is one (public as `source()`).
    pub(crate) fn core_error(&self) -> Option<&audius_login::Error> {
        match &self.0 {
            Repr::Fixed(..) => None,
            Repr::Boxed(inner) => inner.source.as_ref(),
        }
    }

    pub(crate) fn with_presentation(self, presentation: Presentation) -> Self {
        match self.0 {
            Repr::Fixed(kind, message) => Self(Repr::Boxed(Box::new(Inner {
                kind,
                message: Cow::Borrowed(message),
                source: None,
                presentation,
            }))),
            Repr::Boxed(mut inner) => {
                inner.presentation = presentation;
                Self(Repr::Boxed(inner))
            }
        }
    }

    /// Answers HTML to browsers (with links to `login_path` and `landing`), JSON to others.
    pub(crate) fn for_client(self, req: &HttpRequest, login_path: &str, landing: &str) -> Self {
        if wants_html(req) {
            self.with_presentation(Presentation::html(login_path, landing))
        } else {
            self
        }
    }
}

impl From<audius_login::Error> for AudiusLoginError {
    fn from(e: audius_login::Error) -> Self {
        use audius_login::ErrorKind as K;
        let (kind, message) = match e.kind() {
            K::Malformed => (
                LoginErrorKind::MalformedToken,
                format!("The login token is malformed: {e}"),
            ),
            // Audius' answer over its cap is Audius' fault (502), not the user's input (413).
            K::TooLarge
                if matches!(
                    e,
                    audius_login::Error::TooLarge {
                        what: audius_login::error::Limited::ResponseBody,
                        ..
                    }
                ) =>
            {
                (
                    LoginErrorKind::AudiusUnexpected,
                    format!("Audius answered unexpectedly; please try again later ({e})."),
                )
            }
            K::TooLarge => (LoginErrorKind::TokenTooLarge, e.to_string()),
            K::BadSignature | K::WalletMismatch => (
                LoginErrorKind::TokenRefused,
                format!("The login token was refused: {e}"),
            ),
            K::AudienceMismatch => (
                LoginErrorKind::AudienceMismatch,
                format!(
                    "This login was approved for another app, not this one; please log in again \
                     ({e})."
                ),
            ),
            K::ReplayCacheFull => (
                LoginErrorKind::ReplayCacheFull,
                "Too many logins are in progress right now; please try again in a few minutes."
                    .to_owned(),
            ),
            K::Stale => (
                LoginErrorKind::StaleToken,
                format!("The login took too long; please try again ({e})."),
            ),
            K::Replayed => (
                LoginErrorKind::ReplayedToken,
                "This login was already used; please log in again.".to_owned(),
            ),
            K::UpstreamUnavailable => (
                LoginErrorKind::AudiusUnavailable,
                format!("Audius cannot be reached right now; please try again later ({e})."),
            ),
            K::UpstreamUnexpected => (
                LoginErrorKind::AudiusUnexpected,
                format!("Audius answered unexpectedly; please try again later ({e})."),
            ),
            K::InvalidGrant => (
                LoginErrorKind::CodeRefused,
                format!(
                    "Audius did not accept this login ({}). Please log in again.",
                    oauth_description(&e)
                ),
            ),
            K::AccessDenied => (
                LoginErrorKind::AccessDenied,
                format!(
                    "The login was cancelled at Audius ({}).",
                    oauth_description(&e)
                ),
            ),
            K::OAuthRefused | K::InvalidAccessToken => (
                LoginErrorKind::AudiusUnexpected,
                format!("Audius refused the request; please try again later ({e})."),
            ),
            K::InsufficientScope => (
                LoginErrorKind::InsufficientScope,
                format!("This needs more access to your Audius account than was granted ({e})."),
            ),
            // The replay cache (Redis) cannot be reached: the login is refused, for now.
            K::StoreUnavailable => (
                LoginErrorKind::SessionUnavailable,
                format!("Logins are unavailable right now; please try again in a moment ({e})."),
            ),
            _ => (LoginErrorKind::Misconfigured, e.to_string()),
        };
        Self(Repr::Boxed(Box::new(Inner {
            kind,
            message: Cow::Owned(message),
            source: Some(e),
            presentation: Presentation::Json,
        })))
    }
}

/// A session that cannot be written (in an `on_login` hook, `req.get_session().insert(..)?`):
/// `503 session_unavailable`.
impl From<actix_session::SessionInsertError> for AudiusLoginError {
    fn from(e: actix_session::SessionInsertError) -> Self {
        Self::new(
            LoginErrorKind::SessionUnavailable,
            format!("The session could not be updated: {e}"),
        )
    }
}

/// The `error_description` of an OAuth error (its code when there is none), else the error.
fn oauth_description(e: &audius_login::Error) -> String {
    match e {
        audius_login::Error::OAuth {
            code, description, ..
        } if description.is_empty() => code.to_string(),
        audius_login::Error::OAuth { description, .. } => description.clone(),
        other => other.to_string(),
    }
}

impl fmt::Display for AudiusLoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for AudiusLoginError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.core_error()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl ResponseError for AudiusLoginError {
    fn status_code(&self) -> StatusCode {
        match self.presentation() {
            Presentation::Redirect(_) => StatusCode::FOUND,
            _ => self.kind().status(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (kind, message) = (self.kind(), self.message());
        let mut res = match self.presentation() {
            Presentation::Redirect(location) => HttpResponse::Found()
                .insert_header((header::LOCATION, location.as_str()))
                .finish(),
            Presentation::Json => HttpResponse::build(kind.status()).json(JsonBody {
                error: kind.code(),
                message,
            }),
            Presentation::Html {
                login_path,
                landing,
            } => HttpResponse::build(kind.status())
                .content_type("text/html; charset=utf-8")
                .body(pages::error_page(
                    kind.title(),
                    message,
                    kind.code(),
                    login_path,
                    landing,
                )),
        };
        let headers = res.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if kind == LoginErrorKind::NotSignedIn
            && !matches!(self.presentation(), Presentation::Redirect(_))
        {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Audius realm=\"app\""),
            );
        }
        res
    }
}

/// Why [`AudiusLoginBuilder::build`](crate::AudiusLoginBuilder::build) refused the settings:
/// which setting, and why.
///
/// [`setting`](Self::setting) names the setting at fault (`"redirect_uri"`, `"paths.login"`,
/// `"api_key"`, `"verify_options"`, `"limits.attempt_ttl"`...); `Display` says why, in words, after the setting's name.
/// When the core crate refused the value (a redirect URI, an API key, the API client), its
/// [`audius_login::Error`] is the [`source`](std::error::Error::source), and
/// [`kind`](Self::kind) is that error's kind; otherwise the kind is
/// [`ErrorKind::Config`](audius_login::ErrorKind::Config).
///
/// ```
/// use actix_audius_login::{AudiusLogin, Paths};
///
/// let e = AudiusLogin::builder("My App", "http://localhost:8080/auth/audius/callback")
///     .paths(Paths { login: "no-slash".into(), ..Paths::default() })
///     .build()
///     .unwrap_err();
/// assert_eq!(e.setting(), "paths.login");
/// assert_eq!(e.kind(), audius_login::ErrorKind::Config);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct BuildError {
    setting: &'static str,
    reason: String,
    core: Option<audius_login::Error>,
}

impl BuildError {
    /// `setting` cannot work, for `reason`.
    pub(crate) fn new(setting: &'static str, reason: impl Into<String>) -> Self {
        Self {
            setting,
            reason: reason.into(),
            core: None,
        }
    }

    /// The core crate refused the value of `setting`.
    pub(crate) fn core(setting: &'static str, error: audius_login::Error) -> Self {
        Self {
            setting,
            reason: error.to_string(),
            core: Some(error),
        }
    }

    /// The setting at fault, as its setter is named (`"api_key"`), or its setter and field
    /// (`"limits.attempt_ttl"`, `"paths.login"`).
    pub fn setting(&self) -> &'static str {
        self.setting
    }

    /// What was refused, in the core crate's terms: [`ErrorKind::Config`] for a setting this
    /// crate refused, else the kind of the core crate's error
    /// ([`ErrorKind::InvalidRedirectUri`], ...).
    ///
    /// [`ErrorKind::Config`]: audius_login::ErrorKind::Config
    /// [`ErrorKind::InvalidRedirectUri`]: audius_login::ErrorKind::InvalidRedirectUri
    pub fn kind(&self) -> audius_login::ErrorKind {
        self.core
            .as_ref()
            .map_or(audius_login::ErrorKind::Config, audius_login::Error::kind)
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.reason)
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.core
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Whether the client is a browser navigating (wants a page rather than JSON).
pub(crate) fn wants_html(req: &HttpRequest) -> bool {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.contains("text/html")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use actix_web::body::MessageBody as _;

    use super::*;

    fn body(res: HttpResponse) -> String {
        String::from_utf8(res.into_body().try_into_bytes().unwrap().to_vec()).unwrap()
    }

    #[test]
    fn a_fixed_error_answers_like_any_other() {
        let fixed = AudiusLoginError::fixed(LoginErrorKind::NotSignedIn, "Sign in.");
        let owned = AudiusLoginError::new(LoginErrorKind::NotSignedIn, "Sign in.");
        for e in [&fixed, &owned] {
            assert_eq!(e.kind(), LoginErrorKind::NotSignedIn);
            assert_eq!(e.message(), "Sign in.");
            assert_eq!(e.to_string(), "not_signed_in: Sign in.");
            assert!(e.core_error().is_none());
            assert_eq!(e.status_code(), StatusCode::UNAUTHORIZED);
            let res = e.error_response();
            assert_eq!(
                res.headers().get(header::WWW_AUTHENTICATE).unwrap(),
                "Audius realm=\"app\""
            );
            assert_eq!(
                body(res),
                r#"{"error":"not_signed_in","message":"Sign in."}"#
            );
        }
        // Given a presentation, it keeps its kind and message.
        let page = fixed.with_presentation(Presentation::html("/login", "/"));
        assert_eq!(
            (page.kind(), page.message()),
            (LoginErrorKind::NotSignedIn, "Sign in.")
        );
        let html = body(page.error_response());
        assert!(
            html.contains("Sign in.") && html.contains("/login"),
            "{html}"
        );
        let redirect = AudiusLoginError::fixed(LoginErrorKind::NotSignedIn, "Sign in.")
            .with_presentation(Presentation::Redirect("/login?return_to=%2F".into()));
        assert_eq!(redirect.status_code(), StatusCode::FOUND);
        assert_eq!(
            redirect
                .error_response()
                .headers()
                .get(header::LOCATION)
                .unwrap(),
            "/login?return_to=%2F"
        );
    }
}
