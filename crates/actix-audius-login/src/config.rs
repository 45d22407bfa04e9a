//! Configuration: [`AudiusLogin`] and its builder, and the enums that shape its behaviour.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use audius_login::clock::{Clock, SystemClock};
use audius_login::oauth::OAuthClient;
use audius_login::replay::{MemoryReplayCache, ReplayCache};
use audius_login::return_to::sanitize_return_to;
use audius_login::{
    ApiClient, ApiVerifier, Display, Environment, Error, LocalVerifier, ProfileSource, RedirectUri,
    Scope, UpstreamBudget, UserDirectory, VerifiedProfile, Verifier, VerifyOptions,
};
use url::Url;

use crate::oauth::{DEFAULT_REFRESH_MARGIN, DEFAULT_TRACKED_SESSIONS, Families};
use crate::user::AudiusUser;

/// Default [`AudiusLoginBuilder::login_deadline`]: 30 days, as long as Audius' refresh tokens
/// live (and Auth.js' default session age).
pub const DEFAULT_LOGIN_DEADLINE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The longest duration any setting accepts: 100 years. Longer ones (such as `Duration::MAX`
/// meant as "never") could overflow the time arithmetic built on them, so
/// [`AudiusLoginBuilder::build`] refuses them.
pub const MAX_SETTING_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The largest capacity a cache setting accepts (`user_cache_capacity`, `tracked_sessions`):
/// 10,000,000 entries. Larger ones (such as `usize::MAX` meant as "unbounded") are refused by
/// [`AudiusLoginBuilder::build`] rather than risk an allocation the process cannot make.
pub const MAX_CACHE_CAPACITY: usize = 10_000_000;

/// Default [`AudiusLoginBuilder::max_logins_per_user`]: 30 live logins of one user.
pub const DEFAULT_MAX_LOGINS_PER_USER: usize = 30;

/// Which Log In with Audius flow an [`AudiusLogin`] runs.
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
    /// ([`AudiusLoginBuilder::api_key`]), registered with Audius together with the callback URL.
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

/// Which verifier checks tokens at the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum VerifierKind {
    /// Recover the signer here and compare it with the user's wallet (user records cached):
    /// no network while the user's record is fresh (read within
    /// [`AudiusLoginBuilder::user_refetch_interval`], 30 s by default). (Default.)
    #[default]
    Local,
    /// Ask Audius (`GET /v1/users/verify_token`) on every login.
    Api,
}

/// What a request without a signed-in user gets where one is required.
///
/// Set per scope with `.app_data(UnauthenticatedResponse::Json)`, or for the whole app with
/// [`AudiusLoginBuilder::unauthenticated`].
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
pub type OnLoginFuture = Pin<Box<dyn Future<Output = Result<(), actix_web::Error>>>>;

type OnLoginFn = dyn Fn(HttpRequest, LoginEvent) -> OnLoginFuture + Send + Sync;

/// The settings, shared by the middleware, the routes and the extractors. Cheap to clone.
///
/// Build it once with [`AudiusLogin::builder`], outside `HttpServer::new`, and clone it into
/// the app factory.
#[derive(Clone)]
pub struct AudiusLogin {
    pub(crate) inner: Arc<Config>,
}

pub(crate) struct Config {
    pub(crate) app_name: String,
    pub(crate) api_key: Option<String>,
    pub(crate) scope: Scope,
    pub(crate) redirect_uri: Url,
    pub(crate) callback_path: String,
    pub(crate) app_origin: String,
    pub(crate) login_path: String,
    pub(crate) logout_path: String,
    pub(crate) assets_path: String,
    pub(crate) landing_path: String,
    pub(crate) response_mode: ResponseMode,
    pub(crate) display: Display,
    pub(crate) environment: Environment,
    pub(crate) verifier: Arc<dyn Verifier>,
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
    pub(crate) user_logins: crate::user_logins::UserLogins,
    pub(crate) attempt_ttl: Duration,
    pub(crate) max_pending_attempts: usize,
    pub(crate) unauthenticated: UnauthenticatedResponse,
    pub(crate) logout_behavior: LogoutBehavior,
    pub(crate) login_deadline: Option<Duration>,
    pub(crate) on_login: Option<Arc<OnLoginFn>>,
    pub(crate) directory: Option<Arc<UserDirectory>>,
    pub(crate) flow: Flow,
    pub(crate) oauth: OAuthClient,
    pub(crate) refresh_margin: Duration,
    pub(crate) families: Families,
    /// Logins started recently, to explain a callback that comes back without its session.
    pub(crate) issued_states: crate::diagnose::IssuedStates,
}

impl fmt::Debug for AudiusLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.inner;
        f.debug_struct("AudiusLogin")
            .field("app_name", &c.app_name)
            .field("flow", &c.flow)
            .field("redirect_uri", &c.redirect_uri.as_str())
            .field("response_mode", &c.response_mode)
            .field("environment", &c.environment)
            .field("verifier", &c.verifier)
            .field("max_token_age", &c.max_token_age)
            .field("login_path", &c.login_path)
            .field("logout_path", &c.logout_path)
            .finish_non_exhaustive()
    }
}

impl AudiusLogin {
    /// A builder for an app called `app_name` (shown on the Audius login page) whose callback is
    /// `redirect_uri` (an absolute `http(s)` URL; its path becomes the callback route).
    pub fn builder(
        app_name: impl Into<String>,
        redirect_uri: impl AsRef<str>,
    ) -> AudiusLoginBuilder {
        AudiusLoginBuilder::new(app_name.into(), redirect_uri.as_ref().to_owned())
    }

    /// The callback URL given to Audius.
    pub fn redirect_uri(&self) -> &Url {
        &self.inner.redirect_uri
    }

    /// The app's origin (`scheme://host[:port]` of the redirect URI).
    pub fn app_origin(&self) -> &str {
        &self.inner.app_origin
    }

    /// The login route's path.
    pub fn login_path(&self) -> &str {
        &self.inner.login_path
    }

    /// The logout route's path.
    pub fn logout_path(&self) -> &str {
        &self.inner.logout_path
    }

    /// The callback route's path.
    pub fn callback_path(&self) -> &str {
        &self.inner.callback_path
    }

    /// Where the browser goes when no (valid) return-to is given.
    pub fn landing_path(&self) -> &str {
        &self.inner.landing_path
    }

    /// The answer channel.
    pub fn response_mode(&self) -> ResponseMode {
        self.inner.response_mode
    }

    /// The flow: implicit (identity with email) or authorization code (API access, no email).
    pub fn flow(&self) -> Flow {
        self.inner.flow
    }

    /// The scope asked for.
    pub fn scope(&self) -> Scope {
        self.inner.scope
    }

    /// The OAuth client of the code flow (also used by every flow to revoke tokens at logout).
    pub fn oauth_client(&self) -> &OAuthClient {
        &self.inner.oauth
    }

    /// The Audius environment.
    pub fn environment(&self) -> &Environment {
        &self.inner.environment
    }

    /// The login route with a `return_to` for after login.
    pub fn login_url_for(&self, return_to: &str) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", return_to)
            .finish();
        format!("{}?{query}", self.inner.login_path)
    }

    /// Whether the session cookie should be `Secure`: always, except for an app served over
    /// plain http on a loopback host (`localhost`, `127.0.0.0/8`, `[::1]`).
    pub fn cookie_secure(&self) -> bool {
        let url = &self.inner.redirect_uri;
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        !(url.scheme() == "http" && loopback)
    }

    /// The user directory (and its cache) of the built-in verifier, when one was built.
    pub fn user_directory(&self) -> Option<&Arc<UserDirectory>> {
        self.inner.directory.as_ref()
    }

    /// The replay cache in use.
    pub fn replay_cache(&self) -> &Arc<dyn ReplayCache> {
        &self.inner.replay_cache
    }

    /// How long after login a user is signed out, whatever the session's own lifetime (`None`:
    /// as long as the session lives). See [`AudiusLoginBuilder::login_deadline`].
    pub fn login_deadline(&self) -> Option<Duration> {
        self.inner.login_deadline
    }

    /// The API key tokens must carry (normalised: lower case, no `0x`), if one is configured.
    pub fn api_key(&self) -> Option<&str> {
        self.inner.api_key.as_deref()
    }
}

/// Callback URLs served in this process by an [`AudiusLogin`] with the built-in in-memory
/// replay cache, and whether the warning below was given for each.
static MOUNTED: std::sync::Mutex<Vec<(String, std::sync::Weak<Config>, bool)>> =
    std::sync::Mutex::new(Vec::new());

/// Warns (once per callback URL) when two live [`AudiusLogin`]s, each with its own built-in
/// in-memory replay cache, serve the same callback URL in this process: the sign of an
/// `AudiusLogin` built inside `HttpServer::new`, once per worker, where a token accepted by one
/// worker could be used again on another. (A replay cache given to the builder is not judged:
/// it may be shared.)
pub(crate) fn warn_if_replay_caches_are_per_worker(audius: &AudiusLogin) {
    let c = &audius.inner;
    if !c.builtin_replay_cache {
        return;
    }
    let url = c.redirect_uri.as_str();
    let mut mounted = MOUNTED.lock().unwrap_or_else(|p| p.into_inner());
    mounted.retain(|(_, config, _)| config.strong_count() > 0);
    if mounted
        .iter()
        .any(|(_, config, _)| std::ptr::eq(config.as_ptr(), Arc::as_ptr(&audius.inner)))
    {
        return;
    }
    let warned_already = mounted.iter().any(|(u, _, warned)| u == url && *warned);
    let another = mounted.iter().any(|(u, _, _)| u == url);
    if another && !warned_already {
        tracing::warn!(
            callback = url,
            "several AudiusLogin serve this callback in one process, each with its own \
             in-memory replay cache (built inside HttpServer::new, once per worker?): a token \
             accepted by one worker could be used again on another. Build AudiusLogin once, \
             before HttpServer::new, and clone it into the app factory (or give every one the \
             same replay cache)"
        );
    }
    mounted.push((url.to_owned(), Arc::downgrade(&audius.inner), another));
}

/// Builder of [`AudiusLogin`]. Every setter states its default.
pub struct AudiusLoginBuilder {
    app_name: String,
    redirect_uri: String,
    api_key: Option<String>,
    scope: Scope,
    login_path: String,
    logout_path: String,
    assets_path: String,
    landing_path: String,
    response_mode: ResponseMode,
    display: Display,
    environment: Environment,
    verifier_kind: VerifierKind,
    verifier: Option<Arc<dyn Verifier>>,
    api_client: Option<ApiClient>,
    profile_source: ProfileSource,
    replay_cache: Option<Arc<dyn ReplayCache>>,
    max_token_age: Duration,
    clock_skew: Duration,
    clock: Arc<dyn Clock>,
    attempt_ttl: Duration,
    max_pending_attempts: usize,
    unauthenticated: UnauthenticatedResponse,
    logout_behavior: LogoutBehavior,
    login_deadline: Option<Duration>,
    on_login: Option<Arc<OnLoginFn>>,
    user_cache_ttl: Duration,
    user_cache_capacity: usize,
    user_refetch_interval: Duration,
    upstream_budget: Option<Arc<UpstreamBudget>>,
    max_logins_per_user: Option<usize>,
    flow: Flow,
    refresh_margin: Duration,
    tracked_sessions: usize,
}

impl AudiusLoginBuilder {
    fn new(app_name: String, redirect_uri: String) -> Self {
        Self {
            app_name,
            redirect_uri,
            api_key: None,
            scope: Scope::Read,
            login_path: "/auth/audius/login".into(),
            logout_path: "/auth/logout".into(),
            assets_path: "/auth/audius/assets".into(),
            landing_path: "/".into(),
            response_mode: ResponseMode::Fragment,
            display: Display::Popup,
            environment: Environment::Production,
            verifier_kind: VerifierKind::Local,
            verifier: None,
            api_client: None,
            profile_source: ProfileSource::UserRecord,
            replay_cache: None,
            max_token_age: Duration::from_secs(300),
            clock_skew: audius_login::defaults::CLOCK_SKEW,
            clock: Arc::new(SystemClock),
            attempt_ttl: Duration::from_secs(600),
            max_pending_attempts: 5,
            unauthenticated: UnauthenticatedResponse::Auto,
            logout_behavior: LogoutBehavior::PurgeSession,
            login_deadline: Some(DEFAULT_LOGIN_DEADLINE),
            on_login: None,
            user_cache_ttl: audius_login::defaults::USER_CACHE_TTL,
            user_cache_capacity: audius_login::defaults::USER_CACHE_CAPACITY,
            user_refetch_interval: audius_login::defaults::REFETCH_INTERVAL,
            upstream_budget: Some(Arc::new(UpstreamBudget::default())),
            max_logins_per_user: Some(DEFAULT_MAX_LOGINS_PER_USER),
            flow: Flow::Implicit,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            tracked_sessions: DEFAULT_TRACKED_SESSIONS,
        }
    }

    /// The flow. Default: [`Flow::Implicit`]. [`Flow::AuthorizationCode`] needs
    /// [`api_key`](Self::api_key) (sent as `client_id`), and the callback URL (or `postmessage`)
    /// registered for that key; the verifier and token-age settings then do not apply (the code
    /// is one use, and is checked by Audius), and the replay cache records only consumed
    /// states.
    pub fn flow(mut self, flow: Flow) -> Self {
        self.flow = flow;
        self
    }

    /// Code flow: refresh the access token this long before it expires, so that a call made
    /// just before expiry does not fail. Default: 60 s. At most 100 years.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// Code flow: how many signed-in sessions this process tracks at once for refresh
    /// coordination (one lock and the newest tokens per session, least recently used forgotten
    /// first). Default: 10,000. At most [`MAX_CACHE_CAPACITY`].
    pub fn tracked_sessions(mut self, count: usize) -> Self {
        self.tracked_sessions = count.max(1);
        self
    }

    /// The answer channel. Default: [`ResponseMode::Fragment`]. Takes this crate's
    /// [`ResponseMode`] or the core crate's `audius_login::ResponseMode` (`Fragment`, `Query`).
    pub fn response_mode(mut self, mode: impl Into<ResponseMode>) -> Self {
        self.response_mode = mode.into();
        self
    }

    /// Which Audius: production, staging, or a custom one such as a sandbox
    /// (`sandbox.environment()`). Default: [`Environment::Production`].
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = environment;
        self
    }

    /// The app's API key (40 hex characters), sent as `api_key` (code flow: `client_id`), and
    /// required of every token: a token whose `apiKey` claim is missing or another app's key is
    /// refused (`401 audience_mismatch`) before any network call. Default: none, which accepts a
    /// token approved for *any* Audius app (anyone holding a fresh token a user gave another
    /// app could sign in here as that user): [`build`](Self::build) logs a warning. Set it.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// `scope`. Default: [`Scope::Read`]. `write` needs [`api_key`](Self::api_key).
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// `display` of the login page. Default: [`Display::Popup`].
    pub fn display(mut self, display: Display) -> Self {
        self.display = display;
        self
    }

    /// The login route's path. Default: `/auth/audius/login`.
    pub fn login_path(mut self, path: impl Into<String>) -> Self {
        self.login_path = path.into();
        self
    }

    /// The logout route's path (`POST`). Default: `/auth/logout`.
    pub fn logout_path(mut self, path: impl Into<String>) -> Self {
        self.logout_path = path.into();
        self
    }

    /// Where the button's script and stylesheet are served. Default: `/auth/audius/assets`.
    pub fn assets_path(mut self, path: impl Into<String>) -> Self {
        self.assets_path = path.into();
        self
    }

    /// Where the browser goes after login when no valid return-to was given, and after logout.
    /// Default: `/`.
    pub fn landing_path(mut self, path: impl Into<String>) -> Self {
        self.landing_path = path.into();
        self
    }

    /// Which built-in verifier checks tokens. Default: [`VerifierKind::Local`].
    pub fn verifier_kind(mut self, kind: VerifierKind) -> Self {
        self.verifier_kind = kind;
        self
    }

    /// A verifier of your own, instead of the built-in ones. Default: none (built-in).
    pub fn verifier(mut self, verifier: Arc<dyn Verifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// The API client of the built-in verifiers, of the code flow's token calls and of
    /// [`AudiusClient`](crate::AudiusClient). Default: a client for the environment's API with
    /// the core crate's defaults (3 s connect, 10 s total, 1 MiB bodies).
    pub fn api_client(mut self, client: ApiClient) -> Self {
        self.api_client = Some(client);
        self
    }

    /// Where the user's handle, name, verified mark and picture come from. Default:
    /// [`ProfileSource::UserRecord`] (Audius' record, not the token's self-signed claims).
    pub fn profile_source(mut self, source: ProfileSource) -> Self {
        self.profile_source = source;
        self
    }

    /// Time a user record stays cached by the built-in verifiers. Default: 5 minutes. At most
    /// 100 years. (Unknown user ids and manager lists are cached for 30 s, and a login is
    /// judged against a record read within the
    /// [`user_refetch_interval`](Self::user_refetch_interval): see [`UserDirectory`].)
    pub fn user_cache_ttl(mut self, ttl: Duration) -> Self {
        self.user_cache_ttl = ttl;
        self
    }

    /// Most user records cached. Default: 10,000. At most [`MAX_CACHE_CAPACITY`].
    pub fn user_cache_capacity(mut self, capacity: usize) -> Self {
        self.user_cache_capacity = capacity;
        self
    }

    /// How old a cached user record may be and still decide a login on its own (built-in
    /// verifiers' [`UserDirectory::refetch_interval`]): older, the login reads it again first
    /// (one request), so an account deactivated at Audius, or a wallet changed, is refused
    /// here within this interval. A record is read for logins at most once per interval
    /// however many tokens arrive, forged ones included, and failed reads back off from it.
    /// While Audius fails, the cached record (at most [`user_cache_ttl`](Self::user_cache_ttl)
    /// old) decides. Default: 30 s. At most 100 years. Zero reads the record at every login,
    /// and then forged tokens cost a request each.
    pub fn user_refetch_interval(mut self, interval: Duration) -> Self {
        self.user_refetch_interval = interval;
        self
    }

    /// The app-wide budget of requests to Audius that logins trigger (user records and manager
    /// lists of the built-in verifiers, `verify_token` calls of the API verifier): see
    /// [`UserDirectory::budget`]. The per-user-id bound above cannot bound forged tokens for
    /// ever new user ids; this does. Spent, a login that needs a request answers
    /// `503 audius_unavailable` (retryable) without making one; a login answerable from a
    /// cached record is unaffected. Default: a burst of 50, then 10 per second
    /// ([`UpstreamBudget::default`]): above the logins of users not seen in the last 5 minutes
    /// that a typical app sees at once; an app expecting more (a launch, a thousand new users
    /// in a second) raises it. `None`: no app-wide bound.
    pub fn upstream_budget(mut self, budget: Option<Arc<UpstreamBudget>>) -> Self {
        self.upstream_budget = budget;
        self
    }

    /// Most logins of one Audius user live at once in this process. A successful login stays
    /// in the replay cache (its token and its state) for the longer of the maximum token age
    /// plus twice the clock skew and the attempt's lifetime; while a user has this many, their
    /// next login is refused with `429 too_many_logins` before any network call. This bounds
    /// what one Audius account (whose holder can mint as many tokens as they like) can take of
    /// an in-memory replay cache, which refuses every login once full. Only successful logins
    /// count. Default: `Some(30)` ([`DEFAULT_MAX_LOGINS_PER_USER`]); `None` for no bound;
    /// `Some(0)` is refused by [`build`](Self::build).
    pub fn max_logins_per_user(mut self, max: Option<usize>) -> Self {
        self.max_logins_per_user = max;
        self
    }

    /// Where accepted tokens (by their identity, whatever their spelling) and consumed login
    /// states are remembered, to refuse a second use. Default: an in-memory, bounded
    /// [`MemoryReplayCache`] (100,000 entries; a login takes two, its token for the maximum
    /// age plus twice the clock skew and its state for the rest of the attempt's lifetime;
    /// full of live entries, it refuses logins with `503 replay_cache_full` rather than forget
    /// one; its entries expire on the app's [`clock`](Self::clock)). Several instances: share
    /// one (Redis).
    pub fn replay_cache(mut self, cache: Arc<dyn ReplayCache>) -> Self {
        self.replay_cache = Some(cache);
        self
    }

    /// Oldest `iat` accepted at the callback. Default: 5 minutes. At most 100 years
    /// ([`MAX_SETTING_DURATION`]).
    pub fn max_token_age(mut self, age: Duration) -> Self {
        self.max_token_age = age;
        self
    }

    /// Grace for clocks that disagree (Audius' and this server's; and this server's and those of
    /// the other instances sharing its replay cache, which must agree within it). Default:
    /// 30 s. At most 100 years.
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// The clock token ages and login attempts are judged against. Default: the system clock.
    /// The built-in in-memory replay cache forgets an entry only once its time to live has
    /// passed both on real time and on this clock ([`MemoryReplayCache::with_clock`]), so a
    /// wall clock stepped back cannot make a token young again after its replay entry expired,
    /// and a step forward (then corrected) neither purges entries early nor refuses fresh
    /// tokens once corrected. Several instances sharing a replay cache
    /// (which expires entries on its own clock) must keep their clocks within
    /// [`clock_skew`](Self::clock_skew) of each other and of that cache (NTP).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How long a login attempt (its state) stays valid. Default: 10 minutes. At most 100
    /// years.
    pub fn attempt_ttl(mut self, ttl: Duration) -> Self {
        self.attempt_ttl = ttl;
        self
    }

    /// Most login attempts pending at once in one session (several tabs); the oldest goes
    /// first. Default: 5.
    pub fn max_pending_attempts(mut self, count: usize) -> Self {
        self.max_pending_attempts = count.max(1);
        self
    }

    /// What requests without a user get where one is required. Default:
    /// [`UnauthenticatedResponse::Auto`].
    pub fn unauthenticated(mut self, response: UnauthenticatedResponse) -> Self {
        self.unauthenticated = response;
        self
    }

    /// What logout removes. Default: [`LogoutBehavior::PurgeSession`].
    pub fn logout_behavior(mut self, behavior: LogoutBehavior) -> Self {
        self.logout_behavior = behavior;
        self
    }

    /// Sign the user out this long after login, whatever the session's own lifetime. Default:
    /// 30 days ([`DEFAULT_LOGIN_DEADLINE`]); `None` lets a signed-in session live as long as
    /// the session store keeps it. At most 100 years.
    ///
    /// With actix-session's cookie store this is the only server-side bound on a stolen
    /// cookie: the cookie *is* the session, so logging out changes the browser's cookie but
    /// cannot revoke a copy of it, which stays valid until this deadline (or until the cookie
    /// key changes). A server-side store (Redis) revokes at logout.
    pub fn login_deadline(mut self, deadline: Option<Duration>) -> Self {
        self.login_deadline = deadline;
        self
    }

    /// An async hook run after the token is verified and before the user is signed in: the only
    /// moment the user's email exists. It can store it, map the user to an account (the session
    /// is at hand: `req.get_session()`), or refuse the login by returning an error (for example
    /// [`AudiusLoginError::refused`](crate::AudiusLoginError::refused), or any actix error whose
    /// response you choose). Default: none.
    pub fn on_login<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(HttpRequest, LoginEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), actix_web::Error>> + 'static,
    {
        self.on_login = Some(Arc::new(move |req, event| Box::pin(hook(req, event))));
        self
    }

    /// Checks everything and builds. Fails with a typed error ([`Error::Config`]) on a bad
    /// redirect URI, a path that does not start with `/`, a `write` scope without an API key, a
    /// duration over [`MAX_SETTING_DURATION`], a capacity over [`MAX_CACHE_CAPACITY`],
    /// `max_logins_per_user(Some(0))`, or an API client that cannot be built. Logs a
    /// warning when the implicit flow runs without an API key (tokens of any app accepted).
    pub fn build(self) -> Result<AudiusLogin, crate::BuildError> {
        let config = |m: String| Err(Error::Config(audius_login::ConfigError::new("builder", m)));
        for (what, duration) in [
            ("max_token_age", Some(self.max_token_age)),
            ("clock_skew", Some(self.clock_skew)),
            ("attempt_ttl", Some(self.attempt_ttl)),
            ("user_cache_ttl", Some(self.user_cache_ttl)),
            ("user_refetch_interval", Some(self.user_refetch_interval)),
            ("refresh_margin", Some(self.refresh_margin)),
            ("login_deadline", self.login_deadline),
        ] {
            if duration.is_some_and(|d| d > MAX_SETTING_DURATION) {
                return config(format!(
                    "{what} is over the longest duration a setting accepts (100 years): \
                     time arithmetic on it could overflow; give a bounded value"
                ));
            }
        }
        for (what, capacity) in [
            ("user_cache_capacity", self.user_cache_capacity),
            ("tracked_sessions", self.tracked_sessions),
        ] {
            if capacity > MAX_CACHE_CAPACITY {
                return config(format!(
                    "{what} is over the largest capacity a setting accepts \
                     ({MAX_CACHE_CAPACITY} entries); give a bounded value"
                ));
            }
        }
        if self.max_logins_per_user == Some(0) {
            return config(
                "max_logins_per_user is Some(0), which refuses every login; give at least 1, or \
                 None for no bound"
                    .into(),
            );
        }
        // Within the bounds above, neither can overflow; checked all the same.
        let replay_ttl = self
            .clock_skew
            .checked_mul(2)
            .and_then(|skew| skew.checked_add(self.max_token_age))
            .ok_or_else(|| {
                Error::Config(audius_login::ConfigError::new(
                    "max_token_age",
                    "max_token_age + 2 × clock_skew overflows",
                ))
            })?;
        let redirect = RedirectUri::parse(&self.redirect_uri)?;
        let Some(redirect_uri) = redirect.url().cloned() else {
            return config(
                "the redirect URI is the app's callback URL, not postmessage (choose \
                 ResponseMode::PostMessage for the popup channel)"
                    .into(),
            );
        };
        if !matches!(redirect_uri.scheme(), "http" | "https") {
            return config(format!(
                "the redirect URI of a web app is http or https, got {}",
                redirect_uri.scheme()
            ));
        }
        let app_name = self.app_name.trim().to_owned();
        if app_name.is_empty() || app_name.len() > 256 {
            return config("the app name is 1 to 256 characters".into());
        }
        let api_key = self
            .api_key
            .as_deref()
            .map(audius_login::login_url::normalize_api_key)
            .transpose()?;
        if self.scope == Scope::Write && api_key.is_none() {
            return config("scope write needs an API key".into());
        }
        if self.flow == Flow::AuthorizationCode && api_key.is_none() {
            return config(
                "the authorization-code flow needs the app's API key (sent as client_id)".into(),
            );
        }
        for (what, path) in [
            ("login path", &self.login_path),
            ("logout path", &self.logout_path),
            ("assets path", &self.assets_path),
        ] {
            if !path.starts_with('/') || path.starts_with("//") || path.contains(['?', '#']) {
                return config(format!(
                    "the {what} must be a plain path starting with /, got {path:?}"
                ));
            }
        }
        let landing_path = sanitize_return_to(&self.landing_path).ok_or_else(|| {
            Error::Config(audius_login::ConfigError::new(
                "landing_path",
                format!(
                    "the landing path must be a path on the app's own origin, got {:?}",
                    self.landing_path
                ),
            ))
        })?;
        let callback_path = redirect_uri.path().to_owned();
        if [&self.login_path, &self.logout_path].contains(&&callback_path) {
            return config("the callback path must differ from the login and logout paths".into());
        }
        let app_origin = redirect_uri.origin().ascii_serialization();
        if api_key.is_none() && self.flow == Flow::Implicit {
            tracing::warn!(
                app = %app_name,
                "Audius login without an API key: nothing ties a token to this app, so a token \
                 a user gave any other Audius app signs them in here; set \
                 AudiusLoginBuilder::api_key to your app's key"
            );
        }
        let clock = self.clock;
        let verify_options = VerifyOptions::default()
            .max_age(Some(self.max_token_age))
            .clock_skew(self.clock_skew)
            .clock(clock.clone())
            .profile_source(self.profile_source)
            .api_key(api_key.as_deref())?;
        let client = match self.api_client {
            Some(c) => c,
            None => ApiClient::new(self.environment.api())?,
        };
        let mut oauth = OAuthClient::new(client.clone());
        if let Some(key) = &api_key {
            oauth = oauth.client_id(key)?;
        }
        let (verifier, directory): (Arc<dyn Verifier>, _) = match self.verifier {
            Some(v) => (v, None),
            None => {
                let directory = Arc::new(
                    UserDirectory::with_cache(
                        client,
                        self.user_cache_ttl,
                        self.user_cache_capacity,
                    )
                    .refetch_interval(self.user_refetch_interval)
                    .budget(self.upstream_budget),
                );
                let verifier: Arc<dyn Verifier> = match self.verifier_kind {
                    VerifierKind::Local => Arc::new(
                        LocalVerifier::with_directory(directory.clone())
                            .options(verify_options.clone()),
                    ),
                    VerifierKind::Api => Arc::new(
                        ApiVerifier::with_directory(directory.clone())
                            .options(verify_options.clone()),
                    ),
                };
                (verifier, Some(directory))
            }
        };
        Ok(AudiusLogin {
            inner: Arc::new(Config {
                app_name,
                api_key,
                scope: self.scope,
                redirect_uri,
                callback_path,
                app_origin,
                login_path: self.login_path,
                logout_path: self.logout_path,
                assets_path: self.assets_path.trim_end_matches('/').to_owned(),
                landing_path,
                response_mode: self.response_mode,
                display: self.display,
                environment: self.environment,
                verifier,
                verify_options,
                builtin_replay_cache: self.replay_cache.is_none(),
                replay_cache: self.replay_cache.unwrap_or_else(|| {
                    // Entries live on real time and on the clock token ages are judged on
                    // (see `clock`).
                    Arc::new(MemoryReplayCache::with_clock(
                        audius_login::defaults::REPLAY_CAPACITY,
                        clock.clone(),
                    ))
                }),
                replay_ttl,
                max_token_age: self.max_token_age,
                clock,
                user_logins: crate::user_logins::UserLogins::new(self.max_logins_per_user),
                attempt_ttl: self.attempt_ttl,
                max_pending_attempts: self.max_pending_attempts,
                unauthenticated: self.unauthenticated,
                logout_behavior: self.logout_behavior,
                login_deadline: self.login_deadline,
                on_login: self.on_login,
                directory,
                flow: self.flow,
                oauth,
                refresh_margin: self.refresh_margin,
                families: Families::new(self.tracked_sessions),
                issued_states: Default::default(),
            }),
        })
    }
}

impl fmt::Debug for AudiusLoginBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudiusLoginBuilder")
            .field("app_name", &self.app_name)
            .field("redirect_uri", &self.redirect_uri)
            .field("flow", &self.flow)
            .field("response_mode", &self.response_mode)
            .finish_non_exhaustive()
    }
}
