//! [`AudiusLogin`] itself: the settings ([`Config`], data) and what changes while the app runs,
//! shared behind one `Arc`. Its methods are all in [`crate::login`], in one place.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex, Weak};

use crate::config::Config;
use crate::diagnose::IssuedStates;
use crate::refresh::{Background, Families};
use crate::user_logins::UserLogins;

/// The settings, shared by the middleware, the routes and the extractors. Cheap to clone.
///
/// Build it once with [`AudiusLogin::builder`], outside `HttpServer::new`, and clone it into
/// the app factory.
#[derive(Clone)]
pub struct AudiusLogin {
    pub(crate) inner: Arc<Shared>,
}

/// The settings and the state of one [`AudiusLogin`] (all its clones).
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// The code flow's sessions: refresh locks and newest tokens.
    pub(crate) families: Families,
    /// The code flow's refreshes and late publications, on a runtime of their own
    /// ([`AudiusLogin::drain`]).
    pub(crate) background: Background,
    /// Logins started recently, to explain a callback that comes back without its session.
    pub(crate) issued_states: IssuedStates,
    /// The live logins of each user.
    pub(crate) user_logins: UserLogins,
}

/// The settings are read through the shared state (`audius.inner.paths.login`).
impl Deref for Shared {
    type Target = Config;

    fn deref(&self) -> &Config {
        &self.config
    }
}

impl AudiusLogin {
    /// The settings and a fresh state.
    pub(crate) fn new(config: Config, families: Families, user_logins: UserLogins) -> AudiusLogin {
        AudiusLogin {
            inner: Arc::new(Shared {
                config,
                families,
                background: Background::default(),
                issued_states: IssuedStates::default(),
                user_logins,
            }),
        }
    }
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
            .field("paths", &c.paths)
            .finish_non_exhaustive()
    }
}

/// Callback URLs served in this process by an [`AudiusLogin`] with the built-in in-memory
/// replay cache, and whether the warning below was given for each.
static MOUNTED: Mutex<Vec<(String, Weak<Shared>, bool)>> = Mutex::new(Vec::new());

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
