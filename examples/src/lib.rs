//! The demo's helpers: reading the environment, the embedded sandbox, the session middleware
//! on the cookie or Redis, its pages (built with `maud`), and the demo app itself (so the end-to-end suites
//! drive exactly the demo). The other examples stand on their own.
#![forbid(unsafe_code)]
#![allow(missing_docs)]

pub mod demo;
pub mod metrics;
mod pages;

/// The workspace README's code (the quick start, testing your own app), compiled by
/// `cargo test --doc -p audius-login-examples`.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct WorkspaceReadme;

use std::net::TcpListener;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_audius_login::store::{GuardedStore, ReconnectingStore};
use actix_audius_login::{AudiusLogin, Environment, Flow, ResponseMode, Scope, VerifierKind};
use actix_session::SessionMiddleware;
use actix_session::storage::{
    CookieSessionStore, LoadError, RedisSessionStore, SaveError, SessionKey, SessionStore,
    UpdateError,
};
use actix_web::cookie::{Key, SameSite};
use audius_login::replay::RedisReplayCache;
use audius_sandbox::{DeveloperApp, Sandbox, SandboxHandle, SandboxUsers};
use base64::Engine as _;
use url::Url;

/// The API key the demo registers with the embedded sandbox (with the demo's callback URL and
/// `postmessage`) and uses, in both flows, unless `AUDIUS_API_KEY` names another.
pub const DEMO_API_KEY: &str = "de30de30de30de30de30de30de30de30de30de30";

/// How long a session-store call may take before the request is answered `503`.
pub const SESSION_STORE_TIMEOUT: Duration = Duration::from_secs(1);

/// The demo's session store: the cookie itself (default), or Redis (`REDIS_URL`), which
/// reconnects after an outage and answers within [`SESSION_STORE_TIMEOUT`].
#[derive(Clone)]
pub enum DemoStore {
    /// actix-session's cookie store: the whole session in the (encrypted) cookie.
    Cookie,
    /// actix-session's Redis store: the cookie holds only the session id.
    Redis(GuardedStore<ReconnectingStore<RedisSessionStore>>),
}

impl DemoStore {
    /// A Redis store at `url` (connected on first use, so the app starts while Redis is down).
    pub fn redis(url: &str) -> Self {
        let url = url.to_owned();
        let store = ReconnectingStore::lazy(move || {
            let url = url.clone();
            Box::pin(async move { RedisSessionStore::new(url).await })
        });
        Self::Redis(GuardedStore::new(store).timeout(SESSION_STORE_TIMEOUT))
    }
}

type SessionState = HashMap<String, String>;
type Ttl = actix_web::cookie::time::Duration;

impl SessionStore for DemoStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        match self {
            Self::Cookie => CookieSessionStore::default().load(key).await,
            Self::Redis(s) => s.load(key).await,
        }
    }

    async fn save(&self, state: SessionState, ttl: &Ttl) -> Result<SessionKey, SaveError> {
        match self {
            Self::Cookie => CookieSessionStore::default().save(state, ttl).await,
            Self::Redis(s) => s.save(state, ttl).await,
        }
    }

    async fn update(
        &self,
        key: SessionKey,
        state: SessionState,
        ttl: &Ttl,
    ) -> Result<SessionKey, UpdateError> {
        match self {
            Self::Cookie => CookieSessionStore::default().update(key, state, ttl).await,
            Self::Redis(s) => s.update(key, state, ttl).await,
        }
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &Ttl) -> Result<(), anyhow::Error> {
        match self {
            Self::Cookie => CookieSessionStore::default().update_ttl(key, ttl).await,
            Self::Redis(s) => s.update_ttl(key, ttl).await,
        }
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), anyhow::Error> {
        match self {
            Self::Cookie => CookieSessionStore::default().delete(key).await,
            Self::Redis(s) => s.delete(key).await,
        }
    }
}

/// Logs to stderr; `RUST_LOG` overrides the default `info`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

/// What the demo shows of its Audius settings (the app knows its own configuration).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The flow.
    pub flow: Flow,
    /// The answer channel.
    pub response_mode: ResponseMode,
    /// The Audius the app talks to.
    pub environment: Environment,
    /// The API key given to the builder, if any.
    pub api_key: Option<String>,
}

/// Everything an example app needs, read from the environment.
pub struct Setup {
    /// The Audius login settings.
    pub audius: AudiusLogin,
    /// The settings the demo shows.
    pub settings: Settings,
    pub session_key: Key,
    pub listener: TcpListener,
    pub app_url: Url,
    /// The embedded sandbox, when no `AUDIUS_ENV` was given. Kept alive with the app.
    pub sandbox: Option<SandboxHandle>,
    pub key_was_generated: bool,
    /// Where sessions live: the cookie, or Redis (`REDIS_URL`).
    pub store: DemoStore,
    /// `REDIS_URL`, when given.
    pub redis_url: Option<String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Setup {
    /// Reads `BIND`, `AUDIUS_*` and `SESSION_KEY`; starts the embedded sandbox unless
    /// `AUDIUS_ENV` names another Audius.
    pub async fn from_env(default_app_name: &str) -> Result<Self, String> {
        Self::from_env_with(default_app_name, None).await
    }

    /// As [`Setup::from_env`], with a response mode that wins over `AUDIUS_RESPONSE_MODE`.
    pub async fn from_env_with(
        default_app_name: &str,
        forced_mode: Option<ResponseMode>,
    ) -> Result<Self, String> {
        Self::from_vars(default_app_name, forced_mode, &env).await
    }

    /// As [`Setup::from_env_with`], reading the variables through `var` instead of the process
    /// environment (tests set them without touching the environment).
    pub async fn from_vars(
        default_app_name: &str,
        forced_mode: Option<ResponseMode>,
        var: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Self, String> {
        let env = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let bind = env("BIND").unwrap_or_else(|| "127.0.0.1:8080".into());
        let listener =
            TcpListener::bind(&bind).map_err(|e| format!("cannot listen on {bind}: {e}"))?;
        let mut addr = listener.local_addr().map_err(|e| e.to_string())?;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let app_url = Url::parse(&format!("http://{addr}/")).map_err(|e| e.to_string())?;

        let mode = match forced_mode {
            Some(mode) => mode,
            None => match env("AUDIUS_RESPONSE_MODE").as_deref() {
                None | Some("fragment") => ResponseMode::Fragment,
                Some("query") => ResponseMode::Query,
                Some("postmessage") => ResponseMode::PostMessage,
                Some(other) => {
                    return Err(format!(
                        "AUDIUS_RESPONSE_MODE must be query, fragment or postmessage, not {other:?}"
                    ));
                }
            },
        };
        let verifier = match env("AUDIUS_VERIFIER").as_deref() {
            None | Some("local") => VerifierKind::Local,
            Some("api") => VerifierKind::Api,
            Some(other) => {
                return Err(format!(
                    "AUDIUS_VERIFIER must be local or api, not {other:?}"
                ));
            }
        };
        let flow = match env("AUDIUS_FLOW").as_deref() {
            None | Some("implicit") => Flow::Implicit,
            Some("code") => Flow::AuthorizationCode,
            Some(other) => {
                return Err(format!(
                    "AUDIUS_FLOW must be implicit or code, not {other:?}"
                ));
            }
        };
        let redirect_uri =
            env("AUDIUS_REDIRECT_URI").unwrap_or_else(|| format!("{app_url}auth/audius/callback"));
        let mut api_key = env("AUDIUS_API_KEY");
        let (environment, sandbox) = match env("AUDIUS_ENV").as_deref() {
            None | Some("sandbox") => {
                // The demo registers its app (its key, its callback) with the embedded sandbox,
                // and uses that key in both flows: every token is then tied to this app.
                let key = api_key.get_or_insert_with(|| DEMO_API_KEY.into()).clone();
                let app = DeveloperApp::new(
                    "Audius Login Demo",
                    &key,
                    vec![redirect_uri.clone(), "postmessage".into()],
                )
                .map_err(|e| format!("cannot register the demo app with the sandbox: {e}"))?;
                // The key may be one the sandbox registers itself (its built-in app's): the
                // demo's registration replaces that one. (Registering it a second time, with
                // `SandboxBuilder::app`, made the sandbox refuse to start.)
                let sandbox = Sandbox::builder()
                    .users(SandboxUsers::builtin().with_app_replaced(app))
                    .start()
                    .await
                    .map_err(|e| format!("the embedded sandbox did not start: {e}"))?;
                (sandbox.environment(), Some(sandbox))
            }
            Some("production") => (Environment::Production, None),
            Some("staging") => (Environment::Staging, None),
            Some(url) => {
                let base = Url::parse(url).map_err(|e| {
                    format!("AUDIUS_ENV must be production, staging or a URL, not {url:?} ({e})")
                })?;
                (
                    Environment::custom_base(&base).map_err(|e| e.to_string())?,
                    None,
                )
            }
        };
        let app_name = env("AUDIUS_APP_NAME").unwrap_or_else(|| default_app_name.into());
        let redis_url = env("REDIS_URL");
        let settings = Settings {
            flow,
            response_mode: mode,
            environment: environment.clone(),
            api_key: api_key.clone(),
        };
        let mut builder = AudiusLogin::builder(app_name, &redirect_uri)
            .response_mode(mode)
            .environment(environment)
            .verifier_kind(verifier)
            .flow(flow);
        if let Some(key) = &api_key {
            builder = builder.api_key(key.clone());
        }
        if flow == Flow::AuthorizationCode {
            // The demo shows the client acting for the user, so it asks for `write`.
            builder = builder.scope(Scope::Write);
        }
        let store = match &redis_url {
            Some(url) => {
                // Tokens accepted by one instance are refused by all.
                let replay = RedisReplayCache::builder(url.clone())
                    .build()
                    .map_err(|e| format!("REDIS_URL {url:?}: {e}"))?;
                // Redis may be down at start (the app then answers 503 until it is back): the
                // eviction policy is checked, and a risky one logged, in the background.
                let check = replay.clone();
                tokio::spawn(async move {
                    if let Err(e) = check.check_eviction(false).await {
                        tracing::debug!(error = %e, "the replay cache's Redis is not reachable yet");
                    }
                });
                builder = builder.replay_cache(Arc::new(replay));
                DemoStore::redis(url)
            }
            None => DemoStore::Cookie,
        };
        let audius = builder
            .build()
            .map_err(|e| format!("invalid Audius login settings: {e}"))?;

        let (session_key, key_was_generated) = match env("SESSION_KEY") {
            Some(text) => (parse_key(&text)?, false),
            None => (Key::generate(), true),
        };
        Ok(Self {
            audius,
            settings,
            session_key,
            listener,
            app_url,
            sandbox,
            key_was_generated,
            store,
            redis_url,
        })
    }

    /// For tests and embedding, without reading the environment: the app answers on `listener`,
    /// at `app_url` (`http://localhost:<port>/` or any address that reaches the listener; the
    /// callback is `{app_url}auth/audius/callback`), talks to the Audius at `environment` (for
    /// example `sandbox.environment()`), and takes the answer through `mode`. The verifier is
    /// the local one; the session key is random; the caller keeps its sandbox (`sandbox` is
    /// `None`).
    pub fn with_environment(
        app_name: &str,
        listener: TcpListener,
        app_url: Url,
        environment: Environment,
        mode: ResponseMode,
    ) -> Result<Self, String> {
        let redirect_uri = app_url
            .join("auth/audius/callback")
            .map_err(|e| format!("cannot make the callback URL from {app_url}: {e}"))?;
        let settings = Settings {
            flow: Flow::Implicit,
            response_mode: mode,
            environment: environment.clone(),
            api_key: None,
        };
        let audius = AudiusLogin::builder(app_name, redirect_uri.as_str())
            .response_mode(mode)
            .environment(environment)
            .verifier_kind(VerifierKind::Local)
            .build()
            .map_err(|e| format!("invalid Audius login settings: {e}"))?;
        Ok(Self {
            audius,
            settings,
            session_key: Key::generate(),
            listener,
            app_url,
            sandbox: None,
            key_was_generated: true,
            store: DemoStore::Cookie,
            redis_url: None,
        })
    }

    /// Prints where things are.
    pub fn announce(&self) {
        if self.key_was_generated {
            tracing::warn!(
                "SESSION_KEY is not set: using a random key, so sessions end when the app stops \
                 and instances cannot share them"
            );
        }
        println!("Log In with Audius demo listening on {}", self.app_url);
        println!("  flow:      {:?}", self.settings.flow);
        println!("  channel:   {:?}", self.settings.response_mode);
        match &self.redis_url {
            Some(url) => println!("  sessions:  Redis at {url} (and the replay cache)"),
            None => println!("  sessions:  in the encrypted cookie"),
        }
        println!("  callback:  {}", self.audius.redirect_uri());
        match &self.sandbox {
            Some(sandbox) => {
                println!("  Audius:    embedded sandbox at {}", sandbox.base_url());
                println!(
                    "  users:     {}",
                    sandbox
                        .users()
                        .iter()
                        .map(|u| format!("@{}", u.handle))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            None => println!("  Audius:    {}", self.settings.environment.login_page()),
        }
    }
}

impl Setup {
    /// The session middleware on the setup's store (see [`session_middleware_on`] for the
    /// cookie settings).
    pub fn session_middleware(&self) -> SessionMiddleware<DemoStore> {
        session_middleware_on(self.store.clone(), &self.audius, self.session_key.clone())
    }

    /// A factory of [`Setup::session_middleware`], for `HttpServer::new`'s closure (`Send`).
    pub fn session_middleware_factory(
        &self,
    ) -> impl Fn() -> SessionMiddleware<DemoStore> + Clone + Send + 'static {
        let (store, audius, key) = (
            self.store.clone(),
            self.audius.clone(),
            self.session_key.clone(),
        );
        move || session_middleware_on(store.clone(), &audius, key.clone())
    }
}

/// A 64-byte cookie key from hex or base64.
fn parse_key(text: &str) -> Result<Key, String> {
    let text = text.trim();
    let bytes = hex::decode(text)
        .ok()
        .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
        .or_else(|| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text)
                .ok()
        })
        .ok_or("SESSION_KEY must be 64 bytes written as hex or base64")?;
    if bytes.len() < 64 {
        return Err(format!("SESSION_KEY must be 64 bytes, got {}", bytes.len()));
    }
    Ok(Key::from(&bytes))
}

/// The demo's session middleware on any store, with the cookie settings the login needs:
/// `HttpOnly`, `SameSite=Lax` (the login comes back by a top-level cross-site navigation),
/// `Secure` unless the app runs on plain-http localhost. (The other examples write theirs out.)
pub fn session_middleware_on<S: SessionStore>(
    store: S,
    audius: &AudiusLogin,
    key: Key,
) -> SessionMiddleware<S> {
    SessionMiddleware::builder(store, key)
        .cookie_name("audius-demo".into())
        .cookie_secure(audius.cookie_secure())
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .build()
}
