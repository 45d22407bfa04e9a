//! The settings: the data an [`AudiusLogin`](crate::AudiusLogin) runs on (built and checked by
//! the [builder](crate::AudiusLoginBuilder)), and the enums that shape its behaviour. Data only:
//! what changes while the app runs (the refresh state, the logins started, the live logins per
//! user) lives in [`crate::state`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use audius_login::clock::Clock;
use audius_login::oauth::OAuthClient;
use audius_login::replay::ReplayCache;
use audius_login::{
    Display, Environment, Error, Scope, UserDirectory, VerifiedProfile, Verifier, VerifyOptions,
};
use url::Url;

use crate::defaults;
use crate::error::AudiusLoginError;
use crate::user::AudiusUser;

/// Which Log In with Audius flow an [`AudiusLogin`](crate::AudiusLogin) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Flow {
    /// The implicit flow (`docs/protocol.md` sections 1 to 4): the login page hands over a
    /// signed token, verified here. Gives identity, **with the email**, and nothing to call the
    /// API with. (Default.)
    #[default]
    Implicit,
    /// The authorization-code flow with PKCE (`docs/protocol-pkce.md`): the login page hands
    /// over a one-time code, exchanged here for access and refresh tokens kept in the session
    /// (never sent to the page), with which [`AudiusClient`](crate::AudiusClient) calls the
    /// Audius API as the user. Gives **no email**. Needs the app's API key
    /// ([`AudiusLoginBuilder::api_key`](crate::AudiusLoginBuilder::api_key)), registered with
    /// Audius together with the callback URL.
    AuthorizationCode,
}

/// How the login page answers the app (`docs/protocol.md` section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ResponseMode {
    /// The page navigates to the callback with `#state=..&token=..` (code flow:
    /// `#state=..&code=..`); a tiny bridge page served
    /// by the callback route hands the fragment to the server and removes it from history. The
    /// token never reaches server logs. (Default.)
    #[default]
    Fragment,
    /// The page navigates to the callback with `?state=..&token=..` (code flow:
    /// `?state=..&code=..`). Simplest; the token appears in the callback URL (and so in access
    /// logs); a code there is harmless (one use, and useless without the session's verifier).
    Query,
    /// The login page opens in a popup and posts `{state, token}` (code flow: `{state, code}`)
    /// to the opener; the button's script checks the message's origin and source and posts it to
    /// the callback.
    PostMessage,
}

/// The core crate's [`audius_login::ResponseMode`] (the login URL's `response_mode`, which has no
/// popup: there the popup is `redirect_uri=postmessage`) is accepted wherever this one is:
/// `AudiusLogin::builder(..).response_mode(audius_login::ResponseMode::Query)` works.
impl From<audius_login::ResponseMode> for ResponseMode {
    fn from(mode: audius_login::ResponseMode) -> Self {
        match mode {
            audius_login::ResponseMode::Fragment => Self::Fragment,
            audius_login::ResponseMode::Query => Self::Query,
        }
    }
}

/// The core crate's `response_mode` for this channel: `Fragment` and `Query` have one;
/// `PostMessage` does not (it is a redirect URI, `postmessage`, not a `response_mode`), and is
/// refused with [`Error::Config`] rather than mapped to a mode that would mean something else.
impl TryFrom<ResponseMode> for audius_login::ResponseMode {
    type Error = Error;

    fn try_from(mode: ResponseMode) -> Result<Self, Error> {
        match mode {
            ResponseMode::Fragment => Ok(Self::Fragment),
            ResponseMode::Query => Ok(Self::Query),
            ResponseMode::PostMessage => Err(Error::Config(audius_login::ConfigError::new(
                "response_mode",
                "the popup channel is redirect_uri=postmessage, not a response_mode: build the \
                 login URL with RedirectUri::PostMessage",
            ))),
        }
    }
}

/// The paths of the routes [`AudiusLogin::routes`](crate::AudiusLogin::routes) mounts, and of
/// the page the browser lands on: given to
/// [`AudiusLoginBuilder::paths`](crate::AudiusLoginBuilder::paths). The callback's path is the
/// redirect URI's. Each path starts with `/` (no query, no fragment); `build()` refuses one that
/// does not, naming it (`paths.login`).
///
/// ```
/// use actix_audius_login::{AudiusLogin, Paths};
///
/// let audius = AudiusLogin::builder("My App", "https://app.example/auth/audius/callback")
///     .paths(Paths { login: "/signin".into(), landing: "/home".into(), ..Paths::default() })
///     .build()
///     .unwrap();
/// assert_eq!(audius.paths().login, "/signin");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Paths {
    /// The login route (`GET`). Default: `/auth/audius/login`.
    pub login: String,
    /// The logout route (`POST`). Default: `/auth/logout`.
    pub logout: String,
    /// Where the button's script and stylesheet are served. Default: `/auth/audius/assets`.
    pub assets: String,
    /// Where the browser goes after login when no valid return-to was given, and after logout:
    /// a path on the app's own origin. Default: `/`.
    pub landing: String,
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            login: defaults::LOGIN_PATH.into(),
            logout: defaults::LOGOUT_PATH.into(),
            assets: defaults::ASSETS_PATH.into(),
            landing: defaults::LANDING_PATH.into(),
        }
    }
}

/// How much an [`AudiusLogin`](crate::AudiusLogin) keeps, and for how long: login attempts,
/// live logins per user, the built-in verifiers' user-record cache, and the code flow's
/// sessions and refresh. Given to
/// [`AudiusLoginBuilder::limits`](crate::AudiusLoginBuilder::limits); each field states its
/// default, and `Limits::default()` has them all. `build()` refuses, naming the field
/// (`limits.attempt_ttl`), a duration over 100 years and a capacity over 10,000,000 (such as
/// `Duration::MAX` or `usize::MAX` meant as "never" or "unbounded": time arithmetic or an
/// allocation on them could fail).
///
/// ```
/// use std::time::Duration;
/// use actix_audius_login::{AudiusLogin, Limits};
///
/// let audius = AudiusLogin::builder("My App", "https://app.example/auth/audius/callback")
///     .limits(Limits {
///         attempt_ttl: Duration::from_secs(300),
///         user_cache_capacity: 50_000,
///         ..Limits::default()
///     })
///     .build()
///     .unwrap();
/// # let _ = audius;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Sign the user out this long after login, whatever the session's own lifetime. Default:
    /// `Some(30 days)`; `None` lets a signed-in session live as long as the session store
    /// keeps it.
    ///
    /// With actix-session's cookie store this is the only server-side bound on a stolen
    /// cookie: the cookie *is* the session, so logging out changes the browser's cookie but
    /// cannot revoke a copy of it, which stays valid until this deadline (or until the cookie
    /// key changes). A server-side store (Redis) revokes at logout.
    pub login_deadline: Option<Duration>,
    /// How long a login attempt (its state) stays valid. Default: 10 minutes.
    pub attempt_ttl: Duration,
    /// Most login attempts pending at once in one session (several tabs); the oldest goes
    /// first. Default: 5 (0 counts as 1).
    pub max_pending_attempts: usize,
    /// Most logins of one Audius user live at once in this process. A successful login stays
    /// in the replay cache (its token and its state) for the longer of the maximum token age
    /// plus twice the clock skew and the attempt's lifetime; while a user has this many, their
    /// next login is refused with `429 too_many_logins` before any network call. This bounds
    /// what one Audius account (whose holder can mint as many tokens as they like) can take of
    /// an in-memory replay cache, which refuses every login once full. Only successful logins
    /// count. Default: `Some(30)`; `None` for no bound; `Some(0)` is refused by `build()`.
    pub max_logins_per_user: Option<usize>,
    /// Time a user record stays cached by the built-in verifiers. Default: 5 minutes. (Unknown
    /// user ids and manager lists are cached for 30 s, and a login is judged against a record
    /// read within [`user_refetch_interval`](Self::user_refetch_interval): see
    /// [`UserDirectory`].)
    pub user_cache_ttl: Duration,
    /// Most user records cached by the built-in verifiers. Default: 10,000.
    pub user_cache_capacity: usize,
    /// How old a cached user record may be and still decide a login on its own (the built-in
    /// verifiers' [`UserDirectory::refetch_interval`]): older, the login reads it again first
    /// (one request), so an account deactivated at Audius, or a wallet changed, is refused
    /// here within this interval. A record is read for logins at most once per interval
    /// however many tokens arrive, forged ones included, and failed reads back off from it.
    /// While Audius fails, the cached record (at most
    /// [`user_cache_ttl`](Self::user_cache_ttl) old) decides. Default: 30 s. Zero reads the
    /// record at every login, and then forged tokens cost a request each.
    pub user_refetch_interval: Duration,
    /// Code flow: how many signed-in sessions this process tracks at once for refresh
    /// coordination (one lock and the newest tokens per session, least recently used forgotten
    /// first). Default: 10,000 (0 counts as 1).
    pub tracked_sessions: usize,
    /// Code flow: refresh the access token this long before it expires, so that a call made
    /// just before expiry does not fail. Default: 60 s.
    pub refresh_margin: Duration,
    /// How long the callback may take to receive its body (the bridge page's `POST`, a few
    /// KiB sent at once): a body that trickles or never comes is answered `408
    /// callback_timeout` then, rather than hold the connection. (actix-web's
    /// `client_request_timeout` bounds the request head only.) Default: 10 s; zero is refused
    /// by `build()`.
    pub callback_body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            login_deadline: Some(defaults::LOGIN_DEADLINE),
            attempt_ttl: defaults::ATTEMPT_TTL,
            max_pending_attempts: defaults::MAX_PENDING_ATTEMPTS,
            max_logins_per_user: Some(defaults::DEFAULT_MAX_LOGINS_PER_USER),
            user_cache_ttl: defaults::USER_CACHE_TTL,
            user_cache_capacity: defaults::USER_CACHE_CAPACITY,
            user_refetch_interval: defaults::USER_REFETCH_INTERVAL,
            tracked_sessions: defaults::TRACKED_SESSIONS,
            refresh_margin: defaults::REFRESH_MARGIN,
            callback_body_timeout: defaults::CALLBACK_BODY_TIMEOUT,
        }
    }
}

/// Which verifier checks tokens at the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum VerifierKind {
    /// Recover the signer here and compare it with the user's wallet (user records cached):
    /// no network while the user's record is fresh (read within
    /// [`Limits::user_refetch_interval`], 30 s by default). (Default.)
    #[default]
    Local,
    /// Ask Audius (`GET /v1/users/verify_token`) on every login.
    Api,
}

/// What a request without a signed-in user gets where one is required.
///
/// Set per scope with `.app_data(UnauthenticatedResponse::Json)`, or for the whole app with
/// [`AudiusLoginBuilder::unauthenticated`](crate::AudiusLoginBuilder::unauthenticated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum UnauthenticatedResponse {
    /// Browsers (`Accept: text/html`) are redirected to the login route with `return_to`; other
    /// clients get `401` JSON. (Default.)
    #[default]
    Auto,
    /// Always redirect `GET`/`HEAD` requests to the login route (other methods get the HTML
    /// page).
    Redirect,
    /// Always `401` with `{"error": "not_signed_in", "message": ..}`.
    Json,
}

/// What logging out removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum LogoutBehavior {
    /// Purge the whole session (cookie removed, server-side state deleted). (Default.)
    #[default]
    PurgeSession,
    /// Remove only the Audius user, keep the rest of the session, and renew its id.
    ForgetUser,
}

/// What the `on_login` hook is given.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoginEvent {
    /// The user about to be signed in (stored in the session if the hook allows it).
    pub user: AudiusUser,
    /// Everything the verifier established, including every claim of the token.
    pub profile: VerifiedProfile,
    /// Where the browser will go after login.
    pub return_to: String,
}

/// The future an `on_login` hook returns.
pub(crate) type OnLoginFuture = Pin<Box<dyn Future<Output = Result<(), AudiusLoginError>>>>;

pub(crate) type OnLoginFn = dyn Fn(HttpRequest, LoginEvent) -> OnLoginFuture + Send + Sync;

/// The settings, checked (see [`AudiusLoginBuilder::build`](crate::AudiusLoginBuilder::build)).
pub(crate) struct Config {
    pub(crate) app_name: String,
    pub(crate) api_key: Option<String>,
    pub(crate) scope: Scope,
    pub(crate) redirect_uri: Url,
    pub(crate) callback_path: String,
    pub(crate) app_origin: String,
    /// The routes' paths as given, the assets' without a trailing `/`, the landing page's
    /// checked (a path on the app's origin).
    pub(crate) paths: Paths,
    pub(crate) response_mode: ResponseMode,
    pub(crate) display: Display,
    pub(crate) environment: Environment,
    pub(crate) verifier: Arc<dyn Verifier>,
    /// The verifier's name in the callback's span: `local`, `api`, or `custom` (the app's own).
    pub(crate) verifier_label: &'static str,
    pub(crate) verify_options: VerifyOptions,
    pub(crate) replay_cache: Arc<dyn ReplayCache>,
    /// Whether the replay cache is the built-in in-memory one (not one given to the builder).
    pub(crate) builtin_replay_cache: bool,
    /// How long an accepted token is remembered, at least: the maximum age plus twice the clock
    /// skew (longer for a token dated in the future: see `routes::token_entry_ttl`).
    pub(crate) replay_ttl: Duration,
    pub(crate) max_token_age: Duration,
    /// The configured clock (token ages and login attempts are judged on it).
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) attempt_ttl: Duration,
    pub(crate) max_pending_attempts: usize,
    pub(crate) unauthenticated: UnauthenticatedResponse,
    pub(crate) logout_behavior: LogoutBehavior,
    pub(crate) login_deadline: Option<Duration>,
    pub(crate) on_login: Option<Arc<OnLoginFn>>,
    pub(crate) directory: Option<Arc<UserDirectory>>,
    pub(crate) flow: Flow,
    pub(crate) oauth: OAuthClient,
    /// [`oauth`](Self::oauth) with connections of its own, for the work on the refreshes' own
    /// runtime (a connection a worker opened dies with the worker: review 9).
    pub(crate) background_oauth: OAuthClient,
    pub(crate) refresh_margin: Duration,
    /// [`Limits::callback_body_timeout`].
    pub(crate) callback_body_timeout: Duration,
}

impl Config {
    /// The login route with a `return_to` for after login.
    pub(crate) fn login_url_for(&self, return_to: &str) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", return_to)
            .finish();
        format!("{}?{query}", self.paths.login)
    }
}
