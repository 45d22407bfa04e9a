//! The three apps compared: the same tiny handlers behind the same actix-session
//! `CookieSessionStore` and key,
//!
//! - [`bare_app`]: the session middleware only; the handlers read nothing;
//! - [`identity_app`]: actix-identity 0.9 (`IdentityMiddleware` and the `Identity` extractor);
//! - [`audius_app`]: this project (`audius.middleware()` and the `AudiusUser` extractor).
//!
//! Every app answers `GET /me` (the authenticated request: the handler takes the user) and
//! `GET /page` (a page for everyone: the handler takes an optional user), both with the
//! two-byte body `ok`. The routes that only serve to log in come after them, so that routing
//! costs the same in every app.

use std::hint::black_box;

use actix_audius_login::{AudiusLogin, AudiusUser};
use actix_identity::{Identity, IdentityMiddleware};
use actix_session::storage::CookieSessionStore;
use actix_session::{SessionExt as _, SessionMiddleware};
use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, Key, SameSite};
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::test::{self, TestRequest};
use actix_web::{App, HttpMessage as _, HttpRequest, HttpResponse, web};
use serde_json::{Map, Value};

/// The authenticated route: the handler needs a signed-in user.
pub const AUTH_PATH: &str = "/me";
/// The page for everyone: the handler takes the user if there is one.
pub const PAGE_PATH: &str = "/page";
/// The identity app's login route (`Identity::login` with [`IDENTITY_USER_ID`]).
pub const IDENTITY_LOGIN_PATH: &str = "/identity/login";
/// The id the identity app logs in: the hashid of the sandbox's `artist`.
pub const IDENTITY_USER_ID: &str = "OeJ7n";
/// The session cookie's name (actix-session's default).
pub const COOKIE_NAME: &str = "id";
/// The callback URL of the benchmark apps (never dialled: the bench drives the callback itself).
pub const REDIRECT_URI: &str = "http://127.0.0.1:8080/auth/audius/callback";

/// The signing and encryption key shared by every app: fixed, so that a session cookie made by
/// one app is valid in the others.
pub fn key() -> Key {
    Key::from(&[0x5a; 64])
}

/// The session middleware of every app: the cookie store, encrypted (actix-session's default),
/// `HttpOnly`, `SameSite=Lax`, not `Secure` (plain-http loopback).
pub fn session_middleware(key: &Key) -> SessionMiddleware<CookieSessionStore> {
    SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
        .cookie_secure(false)
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .build()
}

async fn ok() -> &'static str {
    "ok"
}

/// The app that reads nothing: the session middleware and the handlers alone.
pub fn bare_app(
    key: Key,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .route(AUTH_PATH, web::get().to(ok))
        .route(PAGE_PATH, web::get().to(ok))
        .wrap(session_middleware(&key))
}

async fn identity_me(identity: Identity) -> actix_web::Result<&'static str> {
    let id = identity
        .id()
        .map_err(actix_web::error::ErrorInternalServerError)?;
    black_box(id);
    Ok("ok")
}

async fn identity_page(identity: Option<Identity>) -> &'static str {
    black_box(identity.map(|i| i.id().ok()));
    "ok"
}

async fn identity_login(req: HttpRequest) -> actix_web::Result<&'static str> {
    Identity::login(&req.extensions(), IDENTITY_USER_ID.to_owned())
        .map_err(actix_web::error::ErrorInternalServerError)?;
    Ok("ok")
}

/// The actix-identity app: `IdentityMiddleware::default()` (no deadlines) and the `Identity`
/// extractor; `/me` reads the id as a handler would.
pub fn identity_app(
    key: Key,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .route(AUTH_PATH, web::get().to(identity_me))
        .route(PAGE_PATH, web::get().to(identity_page))
        .route(IDENTITY_LOGIN_PATH, web::get().to(identity_login))
        .wrap(IdentityMiddleware::default())
        .wrap(session_middleware(&key))
}

async fn audius_me(user: AudiusUser) -> &'static str {
    black_box(user.id);
    "ok"
}

async fn audius_page(user: Option<AudiusUser>) -> &'static str {
    black_box(user.map(|u| u.id));
    "ok"
}

/// This project's app: `audius.middleware()`, the `AudiusUser` extractor, and the login routes
/// (after the measured ones).
pub fn audius_app(
    key: Key,
    audius: AudiusLogin,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .route(AUTH_PATH, web::get().to(audius_me))
        .route(PAGE_PATH, web::get().to(audius_page))
        .configure(audius.routes())
        .wrap(audius.middleware())
        .wrap(session_middleware(&key))
}

async fn session_entries(req: HttpRequest) -> HttpResponse {
    let entries = req.get_session().entries().clone();
    HttpResponse::Ok().json(entries)
}

/// The entries (`key -> serialized value`) of the session `cookie` holds (made by an app with
/// `key`), read through [`session_dump_app`].
pub async fn session_entries_of(key: &Key, cookie: &Cookie<'static>) -> Map<String, Value> {
    let dump = test::init_service(session_dump_app(key.clone())).await;
    test::call_and_read_body_json(
        &dump,
        TestRequest::get()
            .uri("/")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await
}

/// An app that answers `GET /` with the session's entries as JSON (`{key: serialized value}`):
/// lets the micro-benchmarks rebuild a logged-in session on a bare request, whatever keys the
/// login used.
pub fn session_dump_app(
    key: Key,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .route("/", web::get().to(session_entries))
        .wrap(session_middleware(&key))
}
