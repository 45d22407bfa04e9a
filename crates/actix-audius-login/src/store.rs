//! Session stores that fail fast and say so: a timeout on every store call, and a clear `503`
//! when the store (Redis, ...) is down, instead of a hang or an opaque `500`.
//!
//! actix-session turns every store error into an empty `500 Internal Server Error` inside its
//! own middleware, and waits for the store as long as the store waits. Two pieces fix that,
//! for any [`SessionStore`] (the cookie store, `RedisSessionStore`, your own):
//!
//! - [`GuardedStore`] wraps the store: every call is bounded by a timeout, and a failure of the
//!   store itself (a timeout, or the store's "something went wrong" error) is recorded as an
//!   outage of the request being served;
//! - [`SessionStoreGuard`] (from [`AudiusLogin::session_store_guard`], or
//!   [`SessionStoreGuard::new`]) wraps the `SessionMiddleware`, outermost: a request during
//!   which an outage was recorded is answered `503 Service Unavailable` with
//!   `{"error": "session_unavailable", "message": ..}` (an HTML page for browsers) and a
//!   `Retry-After` header. Every other answer, and every other error, passes through untouched.
//!
//! Nothing is remembered between requests: when the store comes back, the next request is
//! served normally (whether the store's own client reconnects promptly is up to the store; see
//! [Redis](#redis) below).
//!
//! ```
//! use std::time::Duration;
//! use actix_audius_login::AudiusLogin;
//! use actix_audius_login::store::{GuardedStore, SessionStoreGuard};
//! use actix_session::storage::{
//!     CookieSessionStore, LoadError, SaveError, SessionKey, SessionStore, UpdateError,
//! };
//! use actix_session::{SessionExt as _, SessionMiddleware};
//! use actix_web::{App, HttpRequest, HttpResponse, cookie::Key, test, web};
//!
//! /// A store whose backend is down: every call fails.
//! #[derive(Clone)]
//! struct Down;
//! type State = std::collections::HashMap<String, String>;
//! type Ttl = actix_web::cookie::time::Duration;
//! fn down() -> anyhow::Error { anyhow::anyhow!("connection refused") }
//! impl SessionStore for Down {
//!     async fn load(&self, _: &SessionKey) -> Result<Option<State>, LoadError> {
//!         Err(LoadError::Other(down()))
//!     }
//!     async fn save(&self, _: State, _: &Ttl) -> Result<SessionKey, SaveError> {
//!         Err(SaveError::Other(down()))
//!     }
//!     async fn update(&self, _: SessionKey, _: State, _: &Ttl) -> Result<SessionKey, UpdateError> {
//!         Err(UpdateError::Other(down()))
//!     }
//!     async fn update_ttl(&self, _: &SessionKey, _: &Ttl) -> Result<(), anyhow::Error> { Err(down()) }
//!     async fn delete(&self, _: &SessionKey) -> Result<(), anyhow::Error> { Err(down()) }
//! }
//!
//! # actix_web::rt::System::new().block_on(async {
//! let audius = AudiusLogin::builder("My App", "http://localhost:8080/auth/audius/callback")
//!     .build()
//!     .unwrap();
//! let key = Key::generate();
//! let app = test::init_service(
//!     App::new()
//!         .configure(audius.routes())
//!         .route("/count", web::get().to(|req: HttpRequest| async move {
//!             let session = req.get_session();
//!             let n = session.get::<u32>("n").unwrap_or(None).unwrap_or(0) + 1;
//!             session.insert("n", n).unwrap();
//!             HttpResponse::Ok().body(n.to_string())
//!         }))
//!         .wrap(audius.middleware())
//!         // The store, wrapped: in production `RedisSessionStore` or `CookieSessionStore`.
//!         .wrap(SessionMiddleware::new(
//!             GuardedStore::new(Down).timeout(Duration::from_millis(500)),
//!             key,
//!         ))
//!         // Outermost: turns the store's outages into 503.
//!         .wrap(audius.session_store_guard()),
//! )
//! .await;
//! // The guard answers with an error (as actix-session does with its own): a server sends its
//! // response; in a test, take it from the error.
//! let req = test::TestRequest::get().uri("/count").to_request();
//! let res = test::try_call_service(&app, req).await.unwrap_err().error_response();
//! assert_eq!(res.status(), 503);
//! assert_eq!(res.headers().get("retry-after").unwrap(), "5");
//! let body = actix_web::body::to_bytes(res.into_body()).await.unwrap();
//! let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(body["error"], "session_unavailable");
//!
//! // With a store that works, nothing changes.
//! let app = test::init_service(
//!     App::new()
//!         .route("/", web::get().to(|| async { "hello" }))
//!         .wrap(SessionMiddleware::new(
//!             GuardedStore::new(CookieSessionStore::default()).errors_are_outages(false),
//!             Key::generate(),
//!         ))
//!         .wrap(SessionStoreGuard::new()),
//! )
//! .await;
//! let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
//! assert_eq!(res.status(), 200);
//! # });
//! ```
//!
//! # Redis
//!
//! `RedisSessionStore` (actix-session's `redis-session` feature) works unchanged inside a
//! [`GuardedStore`]; every instance of the app uses the same Redis and the same cookie key.
//! How it behaves when Redis goes away (actix-session 0.11, redis 0.32):
//!
//! - `RedisSessionStore::new(url)` keeps one `ConnectionManager` with the `redis` crate's
//!   default reconnection: a failed connection is retried after 1-2 s, then every 60-120 s.
//!   While it waits, every call waits on it: without a timeout, requests hang. With
//!   [`GuardedStore`] they get `503` within the timeout; but when Redis comes back, service
//!   resumes only when the manager's next attempt is due (up to about two minutes later).
//!   Startup (`RedisSessionStore::new`) also waits through those retries when Redis is down.
//!   Fix: wrap it in a [`ReconnectingStore`] (inside the [`GuardedStore`]): after a failed or
//!   timed-out call it builds a new `RedisSessionStore` (a new connection) on the next call, so
//!   the first request after Redis is back is served. The e2e suite proves it by killing and
//!   restarting `redis-server` (`tests/tests/scale_redis.rs`,
//!   `redis_down_is_503_within_the_timeout_and_service_resumes`).
//! - `RedisSessionStore::builder_pooled(pool)` (feature `redis-pool`, a `deadpool-redis`
//!   pool) opens connections on demand and checks them before reuse: with [`GuardedStore`],
//!   requests get `503` while Redis is down, and the first request after it is back is served.
//!   Prefer it where Redis may restart. Give the pool a `wait` timeout too
//!   (`deadpool_redis::Config::pool`), or rely on [`GuardedStore::timeout`].
//!
//! ```text
//! // Cargo.toml: actix-session = { version = "0.11", features = ["redis-session"] }
//! let url = redis_url.clone();
//! let store = ReconnectingStore::new(RedisSessionStore::new(redis_url).await?, move || {
//!     let url = url.clone();
//!     Box::pin(async move { RedisSessionStore::new(url).await })
//! });
//! // Cloned into every worker's `SessionMiddleware::new(store.clone(), key.clone())`.
//! let store = GuardedStore::new(store).timeout(Duration::from_secs(1));
//! ```
//!
//! ```text
//! // Cargo.toml: actix-session = { version = "0.11", features = ["redis-pool"] },
//! //             deadpool-redis = "0.22"
//! let pool = deadpool_redis::Config::from_url(redis_url)
//!     .create_pool(Some(deadpool_redis::Runtime::Tokio1))?;
//! let store = GuardedStore::new(RedisSessionStore::builder_pooled(pool).build().await?)
//!     .timeout(Duration::from_secs(1));
//! ```
//!
//! Losing the session at a `save` after the handler ran (the store failed while the answer was
//! being finished) also answers `503`: the handler's answer is not sent, since the session it
//! relied on was not kept. For the login callback this means the user logs in again.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{Error, HttpResponse};
use futures_util::future::LocalBoxFuture;

use crate::config::AudiusLogin;
use crate::error::{AudiusLoginError, LoginErrorKind, Presentation, wants_html};

/// Default bound on every call of a [`GuardedStore`]: 2 s.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default `Retry-After` of a [`SessionStoreGuard`] answer: 5 s.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Default message of a [`SessionStoreGuard`] answer.
pub const DEFAULT_UNAVAILABLE_MESSAGE: &str =
    "Sessions are unavailable right now; please try again in a moment.";

type State = HashMap<String, String>;
type Ttl = actix_web::cookie::time::Duration;

/// What a [`GuardedStore`] recorded about a failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOutage {
    /// The store operation: `load`, `save`, `update`, `update_ttl` or `delete`.
    pub operation: &'static str,
    /// `true` when the call did not finish within the timeout.
    pub timed_out: bool,
    /// What happened, in words (the store's error, or the timeout).
    pub message: String,
}

impl fmt::Display for StoreOutage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the session store is unavailable ({}): {}",
            self.operation, self.message
        )
    }
}

impl std::error::Error for StoreOutage {}

thread_local! {
    /// The outage slot of the request whose future is being polled on this thread, if any.
    static CURRENT: RefCell<Option<Rc<RefCell<Option<StoreOutage>>>>> = const { RefCell::new(None) };
}

/// Puts back the slot that was current before, even on unwind.
struct Restore(Option<Rc<RefCell<Option<StoreOutage>>>>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// Runs `f` with `slot` as the current request's outage slot.
fn within<T>(slot: &Rc<RefCell<Option<StoreOutage>>>, f: impl FnOnce() -> T) -> T {
    let previous = CURRENT.with(|c| c.borrow_mut().replace(Rc::clone(slot)));
    let _restore = Restore(previous);
    f()
}

/// Records an outage for the request being served (when a [`SessionStoreGuard`] serves it).
fn record(outage: &StoreOutage) {
    CURRENT.with(|c| {
        if let Some(slot) = c.borrow().as_ref() {
            let mut slot = slot.borrow_mut();
            if slot.is_none() {
                *slot = Some(outage.clone());
            }
        }
    });
}

/// A future polled with a request's outage slot current: what the store calls inside it
/// record lands in that slot, whatever other requests the thread interleaves.
struct Scoped<F> {
    inner: Pin<Box<F>>,
    slot: Rc<RefCell<Option<StoreOutage>>>,
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let slot = Rc::clone(&this.slot);
        within(&slot, || this.inner.as_mut().poll(cx))
    }
}

/// A [`SessionStore`] wrapper that bounds every call with a timeout and records the store's
/// failures as outages, for [`SessionStoreGuard`] to answer `503`. See the
/// [module docs](self).
///
/// Outages are: a call that does not finish within [`timeout`](Self::timeout), and (unless
/// [`errors_are_outages`](Self::errors_are_outages) is off) an error of the store itself:
/// `LoadError::Other`, `SaveError::Other`, `UpdateError::Other`, and any `update_ttl` or
/// `delete` error. (De)serialisation errors are never outages. Every outage is logged at
/// `error` level with its cause.
#[derive(Clone)]
pub struct GuardedStore<S> {
    inner: S,
    timeout: Duration,
    errors_are_outages: bool,
}

impl<S> fmt::Debug for GuardedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedStore")
            .field("store", &std::any::type_name::<S>())
            .field("timeout", &self.timeout)
            .field("errors_are_outages", &self.errors_are_outages)
            .finish()
    }
}

impl<S: SessionStore> GuardedStore<S> {
    /// Wraps `store` with the defaults: 2 s per call, store errors are outages.
    pub fn new(store: S) -> Self {
        Self {
            inner: store,
            timeout: DEFAULT_STORE_TIMEOUT,
            errors_are_outages: true,
        }
    }

    /// The bound on every store call. Default: 2 s ([`DEFAULT_STORE_TIMEOUT`]). Keep it well
    /// under your proxy's and clients' timeouts; a zero timeout fails every call.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether an error of the store itself (not a (de)serialisation error) is an outage.
    /// Default: `true`, right for a networked store such as Redis. The cookie store has no
    /// backend to lose: its only such error is a session too large for a cookie (a bug of the
    /// app, best left a `500`), so set `false` for it.
    pub fn errors_are_outages(mut self, yes: bool) -> Self {
        self.errors_are_outages = yes;
        self
    }

    /// The wrapped store.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped store, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Runs one store call within the timeout; `Err(outage)` on a timeout.
    async fn bounded<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = T>,
    ) -> Result<T, anyhow::Error> {
        match actix_web::rt::time::timeout(self.timeout, call).await {
            Ok(done) => Ok(done),
            Err(_) => Err(self.outage(
                operation,
                true,
                format!("no answer within {:?}", self.timeout),
            )),
        }
    }

    /// Records and logs an outage; the error actix-session gets.
    fn outage(&self, operation: &'static str, timed_out: bool, message: String) -> anyhow::Error {
        let outage = StoreOutage {
            operation,
            timed_out,
            message,
        };
        tracing::error!(
            operation,
            timed_out,
            error = %outage.message,
            "the session store is unavailable"
        );
        record(&outage);
        anyhow::Error::new(outage)
    }

    /// An error of the store: an outage when so configured, else passed on.
    fn store_error(&self, operation: &'static str, e: anyhow::Error) -> anyhow::Error {
        if self.errors_are_outages {
            self.outage(operation, false, format!("{e:#}"))
        } else {
            e
        }
    }
}

impl<S: SessionStore> SessionStore for GuardedStore<S> {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<State>, LoadError> {
        match self.bounded("load", self.inner.load(session_key)).await {
            Ok(Ok(state)) => Ok(state),
            Ok(Err(LoadError::Other(e))) => Err(LoadError::Other(self.store_error("load", e))),
            Ok(Err(e)) => Err(e),
            Err(timeout) => Err(LoadError::Other(timeout)),
        }
    }

    async fn save(&self, session_state: State, ttl: &Ttl) -> Result<SessionKey, SaveError> {
        match self
            .bounded("save", self.inner.save(session_state, ttl))
            .await
        {
            Ok(Ok(key)) => Ok(key),
            Ok(Err(SaveError::Other(e))) => Err(SaveError::Other(self.store_error("save", e))),
            Ok(Err(e)) => Err(e),
            Err(timeout) => Err(SaveError::Other(timeout)),
        }
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: State,
        ttl: &Ttl,
    ) -> Result<SessionKey, UpdateError> {
        match self
            .bounded("update", self.inner.update(session_key, session_state, ttl))
            .await
        {
            Ok(Ok(key)) => Ok(key),
            Ok(Err(UpdateError::Other(e))) => {
                Err(UpdateError::Other(self.store_error("update", e)))
            }
            Ok(Err(e)) => Err(e),
            Err(timeout) => Err(UpdateError::Other(timeout)),
        }
    }

    async fn update_ttl(&self, session_key: &SessionKey, ttl: &Ttl) -> Result<(), anyhow::Error> {
        match self
            .bounded("update_ttl", self.inner.update_ttl(session_key, ttl))
            .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.store_error("update_ttl", e)),
            Err(timeout) => Err(timeout),
        }
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        match self.bounded("delete", self.inner.delete(session_key)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.store_error("delete", e)),
            Err(timeout) => Err(timeout),
        }
    }
}

/// The future a [`ReconnectingStore`]'s `connect` function returns.
pub type ConnectFuture<S> = LocalBoxFuture<'static, Result<S, anyhow::Error>>;

type ConnectFn<S> = dyn Fn() -> ConnectFuture<S> + Send + Sync;

struct Reconnecting<S> {
    /// The store in use and its generation; `None` once it failed (the next call reconnects).
    current: std::sync::Mutex<(u64, Option<std::sync::Arc<S>>)>,
    connect: Box<ConnectFn<S>>,
    /// Set while one call is reconnecting: the others fail at once instead of piling up.
    connecting: std::sync::atomic::AtomicBool,
}

/// A session store that is built again (a new connection) after it failed: for stores whose
/// own client does not come back promptly when the backend does, such as actix-session's
/// `RedisSessionStore` (its `ConnectionManager` waits a minute or two between attempts; see
/// [Redis](self#redis)). Wrap it in a [`GuardedStore`] for the timeouts and the `503`.
///
/// After a call fails with an error of the store itself (not a (de)serialisation error), or is
/// abandoned before it finished (a [`GuardedStore`] timeout), the store is dropped and the next
/// call runs `connect` first. Only one call reconnects at a time; the calls meanwhile fail at
/// once with "reconnecting" (outages, for the guard). Cheap to clone (shared state); `Send`
/// when the store is `Send + Sync`, so it can be built once and cloned into the `HttpServer`
/// factory. The store itself need not be `Clone` (it is kept behind an `Arc`).
///
/// With Redis (actix-session's `redis-session` feature), see [Redis](self#redis); with any
/// store:
///
/// ```
/// use std::time::Duration;
/// use actix_audius_login::store::{GuardedStore, ReconnectingStore};
/// use actix_session::storage::CookieSessionStore;
///
/// let store = ReconnectingStore::new(CookieSessionStore::default(), || {
///     Box::pin(async { Ok(CookieSessionStore::default()) })
/// });
/// assert_eq!(store.generation(), 0);
/// let store = GuardedStore::new(store).timeout(Duration::from_secs(1));
/// # let _ = store;
/// ```
pub struct ReconnectingStore<S> {
    shared: std::sync::Arc<Reconnecting<S>>,
}

impl<S> Clone for ReconnectingStore<S> {
    fn clone(&self) -> Self {
        Self {
            shared: std::sync::Arc::clone(&self.shared),
        }
    }
}

impl<S> fmt::Debug for ReconnectingStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (generation, connected) = self
            .shared
            .current
            .lock()
            .map(|c| (c.0, c.1.is_some()))
            .unwrap_or((0, false));
        f.debug_struct("ReconnectingStore")
            .field("store", &std::any::type_name::<S>())
            .field("generation", &generation)
            .field("connected", &connected)
            .finish()
    }
}

/// Marks the store failed when a call is dropped before it finished (a timeout above).
struct Abandoned<'a, S> {
    store: &'a ReconnectingStore<S>,
    generation: u64,
    armed: bool,
}

impl<S> Drop for Abandoned<'_, S> {
    fn drop(&mut self) {
        if self.armed {
            self.store.failed(self.generation);
        }
    }
}

impl<S> ReconnectingStore<S> {
    /// Uses `store` until it fails, then `connect` to build a new one (on the next call).
    pub fn new<F>(store: S, connect: F) -> Self
    where
        F: Fn() -> ConnectFuture<S> + Send + Sync + 'static,
    {
        Self::with_current(Some(std::sync::Arc::new(store)), connect)
    }

    /// Builds the store with `connect` on the first call (an app can start while the backend
    /// is down).
    pub fn lazy<F>(connect: F) -> Self
    where
        F: Fn() -> ConnectFuture<S> + Send + Sync + 'static,
    {
        Self::with_current(None, connect)
    }

    fn with_current<F>(store: Option<std::sync::Arc<S>>, connect: F) -> Self
    where
        F: Fn() -> ConnectFuture<S> + Send + Sync + 'static,
    {
        Self {
            shared: std::sync::Arc::new(Reconnecting {
                current: std::sync::Mutex::new((0, store)),
                connect: Box::new(connect),
                connecting: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// How many times the store was (re)built since this value was created (0: the first
    /// store given to [`new`](Self::new) is still in use).
    pub fn generation(&self) -> u64 {
        self.shared.current.lock().map(|c| c.0).unwrap_or(0)
    }

    /// Forgets the store of `generation` (if still current): the next call reconnects.
    fn failed(&self, generation: u64) {
        if let Ok(mut current) = self.shared.current.lock()
            && current.0 == generation
            && current.1.take().is_some()
        {
            tracing::warn!(
                generation,
                "session store failed; reconnecting on the next call"
            );
        }
    }

    /// The store to use, reconnecting first when needed.
    async fn store(&self) -> Result<(u64, std::sync::Arc<S>), anyhow::Error> {
        use std::sync::atomic::Ordering;
        if let Ok(current) = self.shared.current.lock()
            && let Some(store) = &current.1
        {
            return Ok((current.0, std::sync::Arc::clone(store)));
        }
        if self.shared.connecting.swap(true, Ordering::AcqRel) {
            return Err(anyhow::anyhow!("reconnecting to the session store"));
        }
        /// Clears the flag however the attempt ends (also when abandoned).
        struct Done<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(false, std::sync::atomic::Ordering::Release);
            }
        }
        let _done = Done(&self.shared.connecting);
        let store = std::sync::Arc::new(
            (self.shared.connect)()
                .await
                .map_err(|e| e.context("cannot reconnect to the session store"))?,
        );
        let mut current = self
            .shared
            .current
            .lock()
            .map_err(|_| anyhow::anyhow!("session store state poisoned"))?;
        current.0 += 1;
        current.1 = Some(std::sync::Arc::clone(&store));
        tracing::info!(generation = current.0, "reconnected to the session store");
        Ok((current.0, store))
    }

    /// Runs one call on the current store; `failed` tells which results mean the store failed.
    async fn run<T, E, Fut>(
        &self,
        call: impl FnOnce(std::sync::Arc<S>) -> Fut,
        failed: impl FnOnce(&Result<T, E>) -> bool,
        wrap: impl FnOnce(anyhow::Error) -> E,
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let (generation, store) = self.store().await.map_err(wrap)?;
        let mut guard = Abandoned {
            store: self,
            generation,
            armed: true,
        };
        let result = call(store).await;
        guard.armed = false;
        if failed(&result) {
            self.failed(generation);
        }
        result
    }
}

impl<S: SessionStore> SessionStore for ReconnectingStore<S> {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<State>, LoadError> {
        self.run(
            |s| async move { s.load(session_key).await },
            |r| matches!(r, Err(LoadError::Other(_))),
            LoadError::Other,
        )
        .await
    }

    async fn save(&self, session_state: State, ttl: &Ttl) -> Result<SessionKey, SaveError> {
        self.run(
            |s| async move { s.save(session_state, ttl).await },
            |r| matches!(r, Err(SaveError::Other(_))),
            SaveError::Other,
        )
        .await
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: State,
        ttl: &Ttl,
    ) -> Result<SessionKey, UpdateError> {
        self.run(
            |s| async move { s.update(session_key, session_state, ttl).await },
            |r| matches!(r, Err(UpdateError::Other(_))),
            UpdateError::Other,
        )
        .await
    }

    async fn update_ttl(&self, session_key: &SessionKey, ttl: &Ttl) -> Result<(), anyhow::Error> {
        self.run(
            |s| async move { s.update_ttl(session_key, ttl).await },
            Result::is_err,
            |e| e,
        )
        .await
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        self.run(
            |s| async move { s.delete(session_key).await },
            Result::is_err,
            |e| e,
        )
        .await
    }
}

/// Middleware answering `503 session_unavailable` for requests during which a
/// [`GuardedStore`] recorded an outage. Wrap it **outermost** (registered after, so around,
/// the `SessionMiddleware`). See the [module docs](self).
#[derive(Debug, Clone)]
pub struct SessionStoreGuard {
    message: String,
    retry_after: Option<Duration>,
    login_path: String,
    landing_path: String,
}

impl Default for SessionStoreGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionStoreGuard {
    /// A guard with the defaults: [`DEFAULT_UNAVAILABLE_MESSAGE`], `Retry-After: 5`, links to
    /// `/auth/audius/login` and `/` on the HTML page.
    pub fn new() -> Self {
        Self {
            message: DEFAULT_UNAVAILABLE_MESSAGE.to_owned(),
            retry_after: Some(DEFAULT_RETRY_AFTER),
            login_path: "/auth/audius/login".to_owned(),
            landing_path: "/".to_owned(),
        }
    }

    /// The message of the answer. Default: [`DEFAULT_UNAVAILABLE_MESSAGE`].
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// The `Retry-After` header (whole seconds, at least 1), or none. Default: 5 s.
    pub fn retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// The login route and landing page linked from the HTML answer. Default:
    /// `/auth/audius/login` and `/` ([`AudiusLogin::session_store_guard`] takes the app's).
    pub fn links(mut self, login_path: impl Into<String>, landing_path: impl Into<String>) -> Self {
        self.login_path = login_path.into();
        self.landing_path = landing_path.into();
        self
    }
}

impl AudiusLogin {
    /// A [`SessionStoreGuard`] linking to this app's login route and landing page, with the
    /// other defaults. Wrap it around the `SessionMiddleware` (outermost); see [`crate::store`].
    pub fn session_store_guard(&self) -> SessionStoreGuard {
        SessionStoreGuard::new().links(self.login_path(), self.landing_path())
    }
}

impl<S, B> Transform<S, ServiceRequest> for SessionStoreGuard
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = SessionStoreGuardService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SessionStoreGuardService {
            service,
            settings: Rc::new(self.clone()),
        }))
    }
}

/// The service of [`SessionStoreGuard`].
#[doc(hidden)]
pub struct SessionStoreGuardService<S> {
    service: S,
    settings: Rc<SessionStoreGuard>,
}

impl<S, B> Service<ServiceRequest> for SessionStoreGuardService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        // Decided now: the request itself is not kept (routing needs it unshared).
        let html = wants_html(req.request());
        let settings = Rc::clone(&self.settings);
        let slot = Rc::new(RefCell::new(None));
        let inner = within(&slot, || self.service.call(req));
        let scoped = Scoped {
            inner: Box::pin(inner),
            slot: Rc::clone(&slot),
        };
        Box::pin(async move {
            let result = scoped.await;
            let outage = slot.borrow_mut().take();
            match (result, outage) {
                (Err(_), Some(outage)) => Err(unavailable(&settings, html, &outage)),
                (result, outage) => {
                    if let (Ok(res), Some(outage)) = (&result, outage) {
                        // The store failed but an answer went through (the error was handled
                        // downstream): leave it as it is.
                        tracing::debug!(status = %res.status(), %outage, "store outage handled downstream");
                    }
                    result
                }
            }
        })
    }
}

/// The `503` answer, in the client's language: an error whose response is the answer (the
/// request has moved on; actix-web answers with it, as it does for actix-session's own errors).
fn unavailable(settings: &SessionStoreGuard, html: bool, outage: &StoreOutage) -> Error {
    tracing::warn!(%outage, "answering 503: the session store is unavailable");
    let presentation = if html {
        Presentation::Html {
            login_path: settings.login_path.clone(),
            landing: settings.landing_path.clone(),
        }
    } else {
        Presentation::Json
    };
    let mut error: Error =
        AudiusLoginError::new(LoginErrorKind::SessionUnavailable, settings.message.clone())
            .with_presentation(presentation)
            .into();
    if let Some(after) = settings.retry_after
        && let Ok(value) = HeaderValue::from_str(&after.as_secs().max(1).to_string())
    {
        error.add_response_mapper(move |mut res: HttpResponse| {
            res.headers_mut().insert(header::RETRY_AFTER, value.clone());
            res
        });
    }
    error
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::cell::Cell;
    use std::time::Instant;

    use actix_session::storage::CookieSessionStore;
    use actix_session::{SessionExt as _, SessionMiddleware};
    use actix_web::cookie::Key;
    use actix_web::http::StatusCode;
    use actix_web::{App, HttpRequest, test, web};

    use super::*;

    /// How the test store behaves on its next calls.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Mode {
        Up,
        Fail,
        Hang,
        BadData,
    }

    /// A store in memory whose backend can fail, hang or hand back garbage.
    #[derive(Clone)]
    struct Flaky {
        mode: Rc<Cell<Mode>>,
        data: Rc<RefCell<HashMap<String, State>>>,
    }

    impl Flaky {
        fn new() -> Self {
            Self {
                mode: Rc::new(Cell::new(Mode::Up)),
                data: Rc::default(),
            }
        }

        async fn gate(&self) -> Result<(), anyhow::Error> {
            match self.mode.get() {
                Mode::Up | Mode::BadData => Ok(()),
                Mode::Fail => Err(anyhow::anyhow!("connection refused")),
                Mode::Hang => std::future::pending().await,
            }
        }
    }

    impl SessionStore for Flaky {
        async fn load(&self, key: &SessionKey) -> Result<Option<State>, LoadError> {
            self.gate().await.map_err(LoadError::Other)?;
            if self.mode.get() == Mode::BadData {
                return Err(LoadError::Deserialization(anyhow::anyhow!("not JSON")));
            }
            Ok(self.data.borrow().get(key.as_ref()).cloned())
        }

        async fn save(&self, state: State, _: &Ttl) -> Result<SessionKey, SaveError> {
            self.gate().await.map_err(SaveError::Other)?;
            if self.mode.get() == Mode::BadData {
                return Err(SaveError::Serialization(anyhow::anyhow!(
                    "cannot serialise"
                )));
            }
            let key = actix_session::storage::generate_session_key();
            self.data
                .borrow_mut()
                .insert(key.as_ref().to_owned(), state);
            Ok(key)
        }

        async fn update(
            &self,
            key: SessionKey,
            state: State,
            _: &Ttl,
        ) -> Result<SessionKey, UpdateError> {
            self.gate().await.map_err(UpdateError::Other)?;
            self.data
                .borrow_mut()
                .insert(key.as_ref().to_owned(), state);
            Ok(key)
        }

        async fn update_ttl(&self, _: &SessionKey, _: &Ttl) -> Result<(), anyhow::Error> {
            self.gate().await
        }

        async fn delete(&self, key: &SessionKey) -> Result<(), anyhow::Error> {
            self.gate().await?;
            self.data.borrow_mut().remove(key.as_ref());
            Ok(())
        }
    }

    async fn count(req: HttpRequest) -> HttpResponse {
        let session = req.get_session();
        let n = session.get::<u32>("n").unwrap_or(None).unwrap_or(0) + 1;
        session.insert("n", n).unwrap();
        HttpResponse::Ok().body(n.to_string())
    }

    macro_rules! app {
        ($store:expr, $guard:expr) => {
            test::init_service(
                App::new()
                    .route("/count", web::get().to(count))
                    .route("/plain", web::get().to(|| async { "plain" }))
                    .route(
                        "/boom",
                        web::get().to(|| async {
                            Err::<HttpResponse, _>(actix_web::error::ErrorInternalServerError(
                                "handler failed",
                            ))
                        }),
                    )
                    .wrap(SessionMiddleware::new($store, Key::from(&[1u8; 64])))
                    .wrap($guard),
            )
            .await
        };
    }

    fn get(path: &str) -> test::TestRequest {
        test::TestRequest::get().uri(path)
    }

    /// The answer a client gets: the response, or the error's response.
    async fn answer<S, R, B>(app: &S, req: R) -> HttpResponse
    where
        S: Service<R, Response = ServiceResponse<B>, Error = Error>,
        B: actix_web::body::MessageBody + 'static,
    {
        match app.call(req).await {
            Ok(res) => res.into_parts().1.map_into_boxed_body(),
            Err(e) => e.error_response(),
        }
    }

    async fn body(res: HttpResponse) -> actix_web::web::Bytes {
        actix_web::body::to_bytes(res.into_body()).await.unwrap()
    }

    async fn json(res: HttpResponse) -> serde_json::Value {
        serde_json::from_slice(&body(res).await).unwrap()
    }

    fn session_cookie(res: &HttpResponse) -> String {
        res.cookies()
            .find(|c| c.name() == "id")
            .map(|c| c.value().to_owned())
            .unwrap()
    }

    #[actix_web::test]
    async fn healthy_store_passes_through() {
        let store = Flaky::new();
        let app = app!(GuardedStore::new(store.clone()), SessionStoreGuard::new());
        let res = answer(&app, get("/count").to_request()).await;
        assert_eq!(res.status(), 200);
        let cookie = session_cookie(&res);
        let res = answer(
            &app,
            get("/count")
                .cookie(actix_web::cookie::Cookie::new("id", cookie))
                .to_request(),
        )
        .await;
        assert_eq!(body(res).await, "2");
    }

    #[actix_web::test]
    async fn a_failing_store_is_503_json_with_retry_after() {
        let store = Flaky::new();
        let app = app!(GuardedStore::new(store.clone()), SessionStoreGuard::new());
        let res = answer(&app, get("/count").to_request()).await;
        let cookie = session_cookie(&res);
        store.mode.set(Mode::Fail);
        // load fails (a cookie is sent)
        let res = answer(
            &app,
            get("/count")
                .cookie(actix_web::cookie::Cookie::new("id", cookie))
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers().get(header::RETRY_AFTER).unwrap(), "5");
        let body: serde_json::Value = json(res).await;
        assert_eq!(body["error"], "session_unavailable");
        assert_eq!(body["message"], DEFAULT_UNAVAILABLE_MESSAGE);
        // save fails (no cookie, the handler writes)
        let res = answer(&app, get("/count").to_request()).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        // a request that needs no session is served
        let res = answer(&app, get("/plain").to_request()).await;
        assert_eq!(res.status(), 200);
        // and when the store is back, so is the service
        store.mode.set(Mode::Up);
        let res = answer(&app, get("/count").to_request()).await;
        assert_eq!(res.status(), 200);
    }

    #[actix_web::test]
    async fn a_hanging_store_is_503_within_the_timeout() {
        let store = Flaky::new();
        store.mode.set(Mode::Hang);
        let app = app!(
            GuardedStore::new(store.clone()).timeout(Duration::from_millis(200)),
            SessionStoreGuard::new()
                .message("Try later.")
                .retry_after(None)
        );
        let started = Instant::now();
        let res = answer(&app, get("/count").to_request()).await;
        let took = started.elapsed();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert!(!res.headers().contains_key(header::RETRY_AFTER));
        let body: serde_json::Value = json(res).await;
        assert_eq!(body["message"], "Try later.");
    }

    #[actix_web::test]
    async fn browsers_get_a_page() {
        let store = Flaky::new();
        store.mode.set(Mode::Fail);
        let app = app!(
            GuardedStore::new(store),
            SessionStoreGuard::new().links("/in", "/home")
        );
        let res = answer(
            &app,
            get("/count")
                .insert_header((header::ACCEPT, "text/html"))
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = String::from_utf8(body(res).await.to_vec()).unwrap();
        assert!(
            body.contains("data-audius-error=\"session_unavailable\""),
            "{body}"
        );
        assert!(body.contains("href=\"/in\"") && body.contains("href=\"/home\""));
    }

    #[actix_web::test]
    async fn data_errors_and_other_errors_are_not_outages() {
        let store = Flaky::new();
        store.mode.set(Mode::BadData);
        let app = app!(GuardedStore::new(store.clone()), SessionStoreGuard::new());
        // A serialisation error stays actix-session's 500.
        let res = answer(&app, get("/count").to_request()).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        // A handler's own error passes through untouched.
        store.mode.set(Mode::Up);
        let res = answer(&app, get("/boom").to_request()).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body(res).await, "handler failed");
        // With errors_are_outages(false) a store error is a 500; a timeout is still an outage.
        store.mode.set(Mode::Fail);
        let app = app!(
            GuardedStore::new(store.clone()).errors_are_outages(false),
            SessionStoreGuard::new()
        );
        let res = answer(&app, get("/count").to_request()).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        store.mode.set(Mode::Hang);
        let app = app!(
            GuardedStore::new(store)
                .errors_are_outages(false)
                .timeout(Duration::from_millis(50)),
            SessionStoreGuard::new()
        );
        let res = answer(&app, get("/count").to_request()).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[actix_web::test]
    async fn without_the_guard_the_store_is_still_bounded() {
        let store = Flaky::new();
        store.mode.set(Mode::Hang);
        let app = test::init_service(App::new().route("/count", web::get().to(count)).wrap(
            SessionMiddleware::new(
                GuardedStore::new(store).timeout(Duration::from_millis(50)),
                Key::from(&[1u8; 64]),
            ),
        ))
        .await;
        let res = answer(&app, get("/count").to_request()).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[actix_web::test]
    async fn concurrent_requests_are_judged_apart() {
        // One request hangs on the store (and times out) while another, interleaved on the same
        // thread, is served: only the first is marked.
        let hanging = Flaky::new();
        hanging.mode.set(Mode::Hang);
        let app = Rc::new(app!(
            GuardedStore::new(hanging.clone()).timeout(Duration::from_millis(300)),
            SessionStoreGuard::new()
        ));
        let slow = {
            let app = Rc::clone(&app);
            async move { answer(&*app, get("/count").to_request()).await }
        };
        let fast = {
            let app = Rc::clone(&app);
            async move {
                actix_web::rt::time::sleep(Duration::from_millis(50)).await;
                answer(&*app, get("/plain").to_request()).await
            }
        };
        let (slow, fast) = futures_util::future::join(slow, fast).await;
        assert_eq!(slow.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(fast.status(), 200);
    }

    #[actix_web::test]
    async fn reconnecting_store_builds_a_new_store_after_a_failure() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        // The first store stays broken (as a ConnectionManager waiting on its backoff): only a
        // new one helps. `connect` fails while the backend is "down".
        let broken = Flaky::new();
        broken.mode.set(Mode::Fail);
        let down = Arc::new(AtomicBool::new(true));
        let connects = Arc::new(AtomicUsize::new(0));
        let store = {
            let (down, connects) = (Arc::clone(&down), Arc::clone(&connects));
            ReconnectingStore::new(broken, move || -> ConnectFuture<Flaky> {
                connects.fetch_add(1, Ordering::SeqCst);
                let down = down.load(Ordering::SeqCst);
                Box::pin(async move {
                    if down {
                        Err(anyhow::anyhow!("connection refused"))
                    } else {
                        Ok(Flaky::new())
                    }
                })
            })
        };
        let app = app!(GuardedStore::new(store.clone()), SessionStoreGuard::new());
        // The broken store fails: 503, and it is dropped.
        let res = answer(&app, get("/count").to_request()).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(connects.load(Ordering::SeqCst), 0);
        // Reconnecting fails while the backend is down: 503 again.
        let res = answer(&app, get("/count").to_request()).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(connects.load(Ordering::SeqCst), 1);
        assert_eq!(store.generation(), 0);
        // Back: the next call reconnects and is served; later calls reuse the new store.
        down.store(false, Ordering::SeqCst);
        let res = answer(&app, get("/count").to_request()).await;
        assert_eq!(res.status(), 200);
        let cookie = session_cookie(&res);
        let res = answer(
            &app,
            get("/count")
                .cookie(actix_web::cookie::Cookie::new("id", cookie))
                .to_request(),
        )
        .await;
        assert_eq!(body(res).await, "2");
        assert_eq!(connects.load(Ordering::SeqCst), 2);
        assert_eq!(store.generation(), 1);
    }

    #[actix_web::test]
    async fn reconnecting_store_drops_a_store_whose_call_was_abandoned() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let hanging = Flaky::new();
        hanging.mode.set(Mode::Hang);
        let connects = Arc::new(AtomicUsize::new(0));
        let store = {
            let connects = Arc::clone(&connects);
            ReconnectingStore::new(hanging, move || -> ConnectFuture<Flaky> {
                connects.fetch_add(1, Ordering::SeqCst);
                Box::pin(async { Ok(Flaky::new()) })
            })
        };
        let app = app!(
            GuardedStore::new(store.clone()).timeout(Duration::from_millis(100)),
            SessionStoreGuard::new()
        );
        let res = answer(&app, get("/count").to_request()).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let res = answer(&app, get("/count").to_request()).await;
        assert_eq!(res.status(), 200);
        assert_eq!(connects.load(Ordering::SeqCst), 1);
        assert!(format!("{store:?}").contains("generation: 1"));
    }

    #[actix_web::test]
    async fn cookie_store_works_inside() {
        let app = app!(
            GuardedStore::new(CookieSessionStore::default()).errors_are_outages(false),
            SessionStoreGuard::new()
        );
        let res = answer(&app, get("/count").to_request()).await;
        assert_eq!(res.status(), 200);
        let cookie = session_cookie(&res);
        let res = answer(
            &app,
            get("/count")
                .cookie(actix_web::cookie::Cookie::new("id", cookie))
                .to_request(),
        )
        .await;
        assert_eq!(body(res).await, "2");
    }
}
