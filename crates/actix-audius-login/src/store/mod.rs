//! Session stores that fail fast and say so: a timeout on every store call, and a clear `503`
//! when the store (Redis, ...) is down, instead of a hang or an opaque `500`.
//!
//! actix-session turns every store error into an empty `500 Internal Server Error` inside its
//! own middleware, and waits for the store as long as the store waits. Two pieces fix that,
//! for any [`SessionStore`](actix_session::storage::SessionStore)
//! (the cookie store, `RedisSessionStore`, your own):
//!
//! - [`GuardedStore`] wraps the store: every call is bounded by a timeout, and a failure of the
//!   store itself (a timeout, or the store's "something went wrong" error) is recorded as an
//!   outage of the request being served;
//! - [`SessionStoreGuard`]
//!   (from [`AudiusLogin::session_store_guard`](crate::AudiusLogin::session_store_guard), or
//!   [`SessionStoreGuard::new`], linking to the default paths) wraps the `SessionMiddleware`, outermost: a request during
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
//!     async move { RedisSessionStore::new(url).await }
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

mod guard;
mod guarded;
mod reconnecting;

use std::collections::HashMap;

pub use guard::SessionStoreGuard;
pub use guarded::GuardedStore;
pub use reconnecting::ReconnectingStore;

pub(crate) type State = HashMap<String, String>;
pub(crate) type Ttl = actix_web::cookie::time::Duration;
