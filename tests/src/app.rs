//! The app the server suites run on a [`TestServer`](actix_audius_login_testing::TestServer):
//! the login routes, `GET /me` (the signed-in user as JSON, or the crate's 401), the login
//! middleware and a session middleware whose cookie is `id`, not `Secure` (plain-http
//! loopback).
//!
//! ```no_run
//! use actix_audius_login::AudiusLogin;
//! use actix_audius_login_testing::TestServer;
//! use actix_session::storage::CookieSessionStore;
//! use actix_web::cookie::Key;
//! use audius_login_e2e::app::{app, sessions};
//!
//! # async fn t(sandbox: audius_sandbox::SandboxHandle) -> Result<(), Box<dyn std::error::Error>> {
//! let server = TestServer::bind()?;
//! let audius = AudiusLogin::builder("Suite", server.url("/auth/audius/callback"))
//!     .environment(sandbox.environment())
//!     .build()?;
//! let key = Key::generate();
//! let server = server.start(move || app(&audius, sessions(CookieSessionStore::default(), &key)))?;
//! # Ok(()) }
//! ```

use actix_audius_login::{AudiusLogin, AudiusUser};
use actix_session::SessionMiddleware;
use actix_session::storage::SessionStore;
use actix_web::body::MessageBody;
use actix_web::cookie::Key;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpResponse, web};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "id";

/// The session middleware on `store`: cookie [`SESSION_COOKIE`], signed and encrypted with
/// `key`, not `Secure` (the suites run on plain-http loopback).
pub fn sessions<S: SessionStore>(store: S, key: &Key) -> SessionMiddleware<S> {
    SessionMiddleware::builder(store, key.clone())
        .cookie_name(SESSION_COOKIE.to_owned())
        .cookie_secure(false)
        .build()
}

/// `GET /me`: the signed-in user as JSON.
pub async fn me(user: AudiusUser) -> HttpResponse {
    HttpResponse::Ok().json(user)
}

/// The login routes, [`me`] at `/me`, the login middleware and `sessions` around them. Add
/// routes or an outer middleware to the `App` it gives as usual.
pub fn app<S: SessionStore + 'static>(
    audius: &AudiusLogin,
    sessions: SessionMiddleware<S>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody + use<S>>,
        Error = actix_web::Error,
        InitError = (),
    > + use<S>,
> {
    App::new()
        .configure(audius.routes())
        .route("/me", web::get().to(me))
        .wrap(audius.middleware())
        .wrap(sessions)
}
