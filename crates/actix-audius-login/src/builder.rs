//! [`AudiusLoginBuilder`]: every setting, checked once at [`build`](AudiusLoginBuilder::build).
//! The defaults are in [`crate::defaults`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use actix_web::HttpRequest;
use audius_login::clock::Clock;
use audius_login::oauth::OAuthClient;
use audius_login::replay::{MemoryReplayCache, ReplayCache};
use audius_login::return_to::sanitize_return_to;
use audius_login::{
    ApiClient, ApiVerifier, Display, Environment, LocalVerifier, RedirectUri, Scope,
    UpstreamBudget, UserDirectory, Verifier, VerifyOptions,
};

use crate::config::{
    Config, Flow, Limits, LoginEvent, LogoutBehavior, OnLoginFn, Paths, ResponseMode,
    UnauthenticatedResponse, VerifierKind,
};
use crate::defaults::{self, MAX_CACHE_CAPACITY, MAX_SETTING_DURATION};
use crate::error::{AudiusLoginError, BuildError};
use crate::refresh::Families;
use crate::state::AudiusLogin;
use crate::user_logins::UserLogins;

/// Builder of [`AudiusLogin`]. Every setter states its default.
pub struct AudiusLoginBuilder {
    app_name: String,
    redirect_uri: String,
    api_key: Option<String>,
    scope: Scope,
    paths: Paths,
    response_mode: ResponseMode,
    display: Display,
    environment: Environment,
    verifier_kind: VerifierKind,
    verifier: Option<Arc<dyn Verifier>>,
    api_client: Option<ApiClient>,
    replay_cache: Option<Arc<dyn ReplayCache>>,
    verify_options: VerifyOptions,
    unauthenticated: UnauthenticatedResponse,
    logout_behavior: LogoutBehavior,
    on_login: Option<Arc<OnLoginFn>>,
    upstream_budget: Option<Arc<UpstreamBudget>>,
    limits: Limits,
    flow: Flow,
}

impl AudiusLoginBuilder {
    pub(crate) fn new(app_name: String, redirect_uri: String) -> Self {
        Self {
            app_name,
            redirect_uri,
            api_key: None,
            scope: Scope::Read,
            paths: Paths::default(),
            response_mode: ResponseMode::Fragment,
            display: Display::Popup,
            environment: Environment::Production,
            verifier_kind: VerifierKind::Local,
            verifier: None,
            api_client: None,
            replay_cache: None,
            verify_options: VerifyOptions::default(),
            unauthenticated: UnauthenticatedResponse::Auto,
            logout_behavior: LogoutBehavior::PurgeSession,
            on_login: None,
            upstream_budget: Some(Arc::new(UpstreamBudget::default())),
            limits: Limits::default(),
            flow: Flow::Implicit,
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

    /// The paths of the login, logout and assets routes, and of the landing page (a plain
    /// struct: see [`Paths`] for each default). Default: `Paths::default()`, the login route at
    /// `/auth/audius/login`, logout at `/auth/logout`, assets under `/auth/audius/assets`, and
    /// the landing page `/`.
    pub fn paths(mut self, paths: Paths) -> Self {
        self.paths = paths;
        self
    }

    /// How much is kept and for how long: a login (signed out after 30 days), login attempts
    /// (10 minutes, 5 per session), live logins per user (30), the built-in verifiers' user
    /// cache (10,000 records for 5 minutes, refetched for logins after 30 s) and the code flow's
    /// sessions (10,000 tracked, refreshed 60 s before expiry). A plain struct: see [`Limits`] for what each field bounds. Default:
    /// `Limits::default()`, those values. A duration over 100 years or a capacity over
    /// 10,000,000 is refused by [`build`](Self::build).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
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

    /// The app-wide budget of requests to Audius that logins trigger (user records and manager
    /// lists of the built-in verifiers, `verify_token` calls of the API verifier): see
    /// [`UserDirectory::budget`]. The per-user-id bound of
    /// [`Limits::user_refetch_interval`] cannot bound forged tokens for
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

    /// Where accepted tokens (by their identity, whatever their spelling) and consumed login
    /// states are remembered, to refuse a second use. Default: an in-memory, bounded
    /// [`MemoryReplayCache`] (100,000 entries; a login takes two, its token for the maximum
    /// age plus twice the clock skew and its state for the rest of the attempt's lifetime;
    /// full of live entries, it refuses logins with `503 replay_cache_full` rather than forget
    /// one; its entries expire on the app's clock: see [`verify_options`](Self::verify_options)).
    /// Several instances: share
    /// one (Redis).
    pub fn replay_cache(mut self, cache: Arc<dyn ReplayCache>) -> Self {
        self.replay_cache = Some(cache);
        self
    }

    /// How tokens are checked at the callback (the core crate's [`VerifyOptions`]): the
    /// maximum token age (`max_age`), the grace for clocks that disagree (`clock_skew`), the
    /// clock token ages and login attempts are judged against (`clock`), where the profile's
    /// fields come from (`profile_source`), the longest token (`max_token_bytes`). Default:
    /// `VerifyOptions::default()` with a maximum age of 5 minutes: a `max_age` of `None` means
    /// that default (the callback always enforces a maximum age, which bounds how long an
    /// accepted token is remembered); clock skew 30 s; the system clock; the profile from
    /// Audius' user record ([`ProfileSource::UserRecord`](audius_login::ProfileSource::UserRecord),
    /// not the token's self-signed claims); 16 KiB tokens. The maximum age and the clock skew
    /// are at most 100 years. The
    /// options' API key is this builder's [`api_key`](Self::api_key) (one given in the options
    /// is replaced).
    ///
    /// Token ages are judged on the clock as it is. The built-in in-memory replay cache forgets
    /// an entry only once its time to live has passed both on real time and on this clock
    /// ([`MemoryReplayCache::with_clock`]), so a wall clock stepped back cannot make a token
    /// young again after its replay entry expired, and a step forward (then corrected) neither
    /// purges entries early nor refuses fresh tokens once corrected. Several instances
    /// sharing a replay cache (which expires entries on its own clock) must keep their clocks
    /// within the clock skew of each other and of that cache (NTP).
    ///
    /// ```
    /// use std::time::Duration;
    /// use actix_audius_login::{AudiusLogin, VerifyOptions};
    ///
    /// let audius = AudiusLogin::builder("My App", "https://app.example/auth/audius/callback")
    ///     .verify_options(VerifyOptions::default().max_age(Some(Duration::from_secs(120))))
    ///     .build()
    ///     .unwrap();
    /// # let _ = audius;
    /// ```
    pub fn verify_options(mut self, options: VerifyOptions) -> Self {
        self.verify_options = options;
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

    /// An async hook run after the token is verified and before the user is signed in: the only
    /// moment the user's email exists. It can store it, map the user to an account (the session
    /// is at hand: `req.get_session()`), or refuse the login by returning an error: this crate's
    /// [`AudiusLoginError`] (for example
    /// `AudiusLoginError::new(LoginErrorKind::LoginRefused, ..)`, `403 login_refused`), answered
    /// as it is. Default: none.
    pub fn on_login<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(HttpRequest, LoginEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), AudiusLoginError>> + 'static,
    {
        self.on_login = Some(Arc::new(move |req, event| Box::pin(hook(req, event))));
        self
    }

    /// Checks everything and builds. Fails with a [`BuildError`] naming the setting on a bad
    /// redirect URI, a path that does not start with `/`, a `write` scope without an API key, a
    /// duration over 100 years, a capacity over 10,000,000, a `max_logins_per_user` of
    /// `Some(0)`, or an API client that cannot be built. Logs a
    /// warning when the implicit flow runs without an API key (tokens of any app accepted).
    pub fn build(self) -> Result<AudiusLogin, BuildError> {
        let options = self.verify_options;
        let limits = self.limits;
        let paths = self.paths;
        let max_token_age = options.get_max_age().unwrap_or(defaults::MAX_TOKEN_AGE);
        let clock_skew = options.get_clock_skew();
        for (what, duration) in [
            ("verify_options (max_age)", Some(max_token_age)),
            ("verify_options (clock_skew)", Some(clock_skew)),
            ("limits.attempt_ttl", Some(limits.attempt_ttl)),
            ("limits.user_cache_ttl", Some(limits.user_cache_ttl)),
            (
                "limits.user_refetch_interval",
                Some(limits.user_refetch_interval),
            ),
            ("limits.refresh_margin", Some(limits.refresh_margin)),
            (
                "limits.callback_body_timeout",
                Some(limits.callback_body_timeout),
            ),
            ("limits.login_deadline", limits.login_deadline),
        ] {
            if duration.is_some_and(|d| d > MAX_SETTING_DURATION) {
                return Err(BuildError::new(
                    setting_name(what),
                    format!(
                        "{what} is over the longest duration a setting accepts (100 years): \
                         time arithmetic on it could overflow; give a bounded value"
                    ),
                ));
            }
        }
        for (what, capacity) in [
            ("limits.user_cache_capacity", limits.user_cache_capacity),
            ("limits.tracked_sessions", limits.tracked_sessions),
        ] {
            if capacity > MAX_CACHE_CAPACITY {
                return Err(BuildError::new(
                    what,
                    format!(
                        "{what} is over the largest capacity a setting accepts \
                         ({MAX_CACHE_CAPACITY} entries); give a bounded value"
                    ),
                ));
            }
        }
        if limits.callback_body_timeout.is_zero() {
            return Err(BuildError::new(
                "limits.callback_body_timeout",
                "limits.callback_body_timeout is zero, which refuses every posted callback; give \
                 the time a body may take (10 s by default)",
            ));
        }
        if limits.max_logins_per_user == Some(0) {
            return Err(BuildError::new(
                "limits.max_logins_per_user",
                "limits.max_logins_per_user is Some(0), which refuses every login; give at least \
                 1, or None for no bound",
            ));
        }
        // Within the bounds above, neither can overflow; checked all the same.
        let replay_ttl = clock_skew
            .checked_mul(2)
            .and_then(|skew| skew.checked_add(max_token_age))
            .ok_or_else(|| {
                BuildError::new("verify_options", "max_age + 2 × clock_skew overflows")
            })?;
        let redirect = RedirectUri::parse(&self.redirect_uri)
            .map_err(|e| BuildError::core("redirect_uri", e.into()))?;
        let Some(redirect_uri) = redirect.url().cloned() else {
            return Err(BuildError::new(
                "redirect_uri",
                "the redirect URI is the app's callback URL, not postmessage (choose \
                 ResponseMode::PostMessage for the popup channel)",
            ));
        };
        if !matches!(redirect_uri.scheme(), "http" | "https") {
            return Err(BuildError::new(
                "redirect_uri",
                format!(
                    "the redirect URI of a web app is http or https, got {}",
                    redirect_uri.scheme()
                ),
            ));
        }
        let app_name = self.app_name.trim().to_owned();
        if app_name.is_empty() || app_name.len() > 256 {
            return Err(BuildError::new(
                "app_name",
                "the app name is 1 to 256 characters",
            ));
        }
        let api_key = self
            .api_key
            .as_deref()
            .map(audius_login::login_url::normalize_api_key)
            .transpose()
            .map_err(|e| BuildError::core("api_key", e))?;
        if self.scope == Scope::Write && api_key.is_none() {
            return Err(BuildError::new("scope", "scope write needs an API key"));
        }
        if self.flow == Flow::AuthorizationCode && api_key.is_none() {
            return Err(BuildError::new(
                "api_key",
                "the authorization-code flow needs the app's API key (sent as client_id)",
            ));
        }
        for (what, path) in [
            ("paths.login", &paths.login),
            ("paths.logout", &paths.logout),
            ("paths.assets", &paths.assets),
        ] {
            if !path.starts_with('/') || path.starts_with("//") || path.contains(['?', '#']) {
                return Err(BuildError::new(
                    what,
                    format!(
                        "the {} path must be a plain path starting with /, got {path:?}",
                        what.trim_start_matches("paths.")
                    ),
                ));
            }
        }
        let landing_path = sanitize_return_to(&paths.landing).ok_or_else(|| {
            BuildError::new(
                "paths.landing",
                format!(
                    "the landing path must be a path on the app's own origin, got {:?}",
                    paths.landing
                ),
            )
        })?;
        let callback_path = redirect_uri.path().to_owned();
        if [&paths.login, &paths.logout].contains(&&callback_path) {
            return Err(BuildError::new(
                "redirect_uri",
                "the callback path must differ from the login and logout paths",
            ));
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
        let clock: Arc<dyn Clock> = options.get_clock().clone();
        let verify_options = options
            .max_age(Some(max_token_age))
            .clock(clock.clone())
            .api_key(api_key.as_deref())
            .map_err(|e| BuildError::core("api_key", e))?;
        let client = match self.api_client {
            Some(c) => c,
            None => ApiClient::new(self.environment.api())
                .map_err(|e| BuildError::core("environment", e))?,
        };
        let mut oauth = OAuthClient::new(client.clone());
        if let Some(key) = &api_key {
            oauth = oauth
                .client_id(key)
                .map_err(|e| BuildError::core("api_key", e))?;
        }
        // The refreshes' own runtime needs connections opened there (see `refresh::background`).
        let background_oauth = oauth
            .with_own_connections()
            .map_err(|e| BuildError::core("api_client", e))?;
        let verifier_label = match (&self.verifier, self.verifier_kind) {
            (Some(_), _) => "custom",
            (None, VerifierKind::Local) => "local",
            (None, VerifierKind::Api) => "api",
        };
        let (verifier, directory): (Arc<dyn Verifier>, _) = match self.verifier {
            Some(v) => (v, None),
            None => {
                let directory = Arc::new(
                    UserDirectory::with_cache(
                        client,
                        limits.user_cache_ttl,
                        limits.user_cache_capacity,
                    )
                    .refetch_interval(limits.user_refetch_interval)
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
        let config = Config {
            app_name,
            api_key,
            scope: self.scope,
            redirect_uri,
            callback_path,
            app_origin,
            paths: Paths {
                assets: paths.assets.trim_end_matches('/').to_owned(),
                landing: landing_path,
                ..paths
            },
            response_mode: self.response_mode,
            display: self.display,
            environment: self.environment,
            verifier,
            verifier_label,
            verify_options,
            builtin_replay_cache: self.replay_cache.is_none(),
            replay_cache: self.replay_cache.unwrap_or_else(|| {
                // Entries expire on the clock token ages are judged on (see `verify_options`).
                Arc::new(MemoryReplayCache::with_clock(
                    audius_login::defaults::REPLAY_CAPACITY,
                    clock.clone(),
                ))
            }),
            replay_ttl,
            max_token_age,
            clock,
            attempt_ttl: limits.attempt_ttl,
            max_pending_attempts: limits.max_pending_attempts.max(1),
            unauthenticated: self.unauthenticated,
            logout_behavior: self.logout_behavior,
            login_deadline: limits.login_deadline,
            on_login: self.on_login,
            directory,
            flow: self.flow,
            oauth,
            background_oauth,
            refresh_margin: limits.refresh_margin,
            callback_body_timeout: limits.callback_body_timeout,
        };
        Ok(AudiusLogin::new(
            config,
            Families::new(limits.tracked_sessions.max(1)),
            UserLogins::new(limits.max_logins_per_user),
        ))
    }
}

/// The setter named in a duration's description (`"verify_options (max_age)"` is
/// `verify_options`).
fn setting_name(what: &'static str) -> &'static str {
    what.split_once(' ').map_or(what, |(setter, _)| setter)
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
