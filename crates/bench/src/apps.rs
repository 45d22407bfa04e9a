//! The apps compared: the same tiny handlers behind the same actix-session
//! `CookieSessionStore` and key,
//!
//! - [`bare_app`]: the session middleware only; the handlers read nothing;
//! - [`identity_app`]: actix-identity 0.9 (`IdentityMiddleware` and the `Identity` extractor);
//! - [`audius_app`]: this project (`audius.middleware()` and the `AudiusUser` extractor);
//! - [`identity_map_app`] and [`identity_redis_app`]: actix-identity, and the profile an app
//!   must then find for the id on every request (the name, picture and "verified" flag this
//!   project's `AudiusUser` carries): from an in-process map, or with a `GET` from Redis;
//!
//! and the same three first apps on any store ([`bare_app_on`], [`identity_app_on`],
//! [`audius_app_on`]; the bench uses actix-session's `RedisSessionStore`).
//!
//! Every app answers `GET /me` (the authenticated request: the handler takes the user) and
//! `GET /page` (a page for everyone: the handler takes an optional user), both with the
//! two-byte body `ok`. The routes that only serve to log in come after them, so that routing
//! costs the same in every app.

use std::hint::black_box;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use actix_audius_login::{AudiusLogin, AudiusUser};
use actix_identity::{Identity, IdentityMiddleware};
use actix_session::storage::{CookieSessionStore, SessionStore};
use actix_session::{SessionExt as _, SessionMiddleware};
use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, Key, SameSite};
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::test::{self, TestRequest};
use actix_web::{App, HttpMessage as _, HttpRequest, HttpResponse, web};
use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
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
    session_middleware_on(CookieSessionStore::default(), key)
}

/// The session middleware on `store`, with the settings of [`session_middleware`].
pub fn session_middleware_on<S: SessionStore>(store: S, key: &Key) -> SessionMiddleware<S> {
    SessionMiddleware::builder(store, key.clone())
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
    bare_app_on(session_middleware(&key))
}

/// [`bare_app`] on the session middleware `sessions`.
pub fn bare_app_on<S: SessionStore + 'static>(
    sessions: SessionMiddleware<S>,
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
        .wrap(sessions)
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
    identity_app_on(session_middleware(&key))
}

/// [`identity_app`] on the session middleware `sessions`.
pub fn identity_app_on<S: SessionStore + 'static>(
    sessions: SessionMiddleware<S>,
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
        .wrap(sessions)
}

/// The profile an actix-identity app keeps for a user, to show who is signed in: what this
/// project's `AudiusUser` carries (the id, handle, name, email, "verified" flag and picture, the
/// time of the login).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The numeric user id.
    pub id: u64,
    /// The id as a hashid.
    pub hashid: String,
    /// The handle.
    pub handle: String,
    /// The display name.
    pub name: String,
    /// The email from the login.
    pub email: Option<String>,
    /// The verified-artist check mark.
    pub verified: bool,
    /// The picture's URL (480x480).
    pub picture: Option<String>,
    /// When the login happened (Unix seconds).
    pub signed_in_at: i64,
}

impl Profile {
    /// The profile of the sandbox's built-in `@artist` ([`IDENTITY_USER_ID`]), whose pictures
    /// the sandbox at `sandbox_base` serves.
    pub fn artist(sandbox_base: &str) -> Self {
        Self {
            id: 7,
            hashid: IDENTITY_USER_ID.to_owned(),
            handle: "artist".to_owned(),
            name: "Ari Artist".to_owned(),
            email: Some("artist@sandbox.audius.invalid".to_owned()),
            verified: true,
            picture: Some(format!(
                "{}/content/artist/480x480.svg",
                sandbox_base.trim_end_matches('/')
            )),
            signed_in_at: 1_796_041_198,
        }
    }
}

/// The profiles an actix-identity app keeps in process, by id (filled at login; read on every
/// request).
pub type ProfileMap = Arc<RwLock<HashMap<String, Arc<Profile>>>>;

/// A [`ProfileMap`] holding `profile` for [`IDENTITY_USER_ID`].
pub fn profile_map(profile: Profile) -> ProfileMap {
    let map = HashMap::from([(IDENTITY_USER_ID.to_owned(), Arc::new(profile))]);
    Arc::new(RwLock::new(map))
}

/// The Redis key of the profile of the user `id` in [`identity_redis_app`].
pub fn profile_key(id: &str) -> String {
    format!("profile:{id}")
}

async fn identity_map_me(
    identity: Identity,
    profiles: web::Data<ProfileMap>,
) -> actix_web::Result<&'static str> {
    let id = identity
        .id()
        .map_err(actix_web::error::ErrorInternalServerError)?;
    let profile = profiles
        .read()
        .map_err(|_| actix_web::error::ErrorInternalServerError("poisoned"))?
        .get(&id)
        .cloned()
        .ok_or_else(|| actix_web::error::ErrorUnauthorized("no profile"))?;
    black_box(profile);
    Ok("ok")
}

/// actix-identity, and the profile from an in-process map (`RwLock<HashMap>`, read-locked
/// for each lookup): the cheapest an app can find a name and a picture for the id; it works
/// on one instance only.
pub fn identity_map_app(
    key: Key,
    profiles: ProfileMap,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    identity_lookup_app(key, profiles, identity_map_me)
}

/// actix-identity on the cookie store, `data` in the app data, and `me` as the `/me` handler.
fn identity_lookup_app<T, F, Args>(
    key: Key,
    data: T,
    me: F,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
>
where
    T: 'static,
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    App::new()
        .app_data(web::Data::new(data))
        .route(AUTH_PATH, web::get().to(me))
        .route(PAGE_PATH, web::get().to(identity_page))
        .route(IDENTITY_LOGIN_PATH, web::get().to(identity_login))
        .wrap(IdentityMiddleware::default())
        .wrap(session_middleware(&key))
}

async fn identity_redis_me(
    identity: Identity,
    redis: web::Data<ConnectionManager>,
) -> actix_web::Result<&'static str> {
    let id = identity
        .id()
        .map_err(actix_web::error::ErrorInternalServerError)?;
    let mut connection = redis.get_ref().clone();
    let json: Option<String> = connection
        .get(profile_key(&id))
        .await
        .map_err(actix_web::error::ErrorServiceUnavailable)?;
    let json = json.ok_or_else(|| actix_web::error::ErrorUnauthorized("no profile"))?;
    let profile: Profile =
        serde_json::from_str(&json).map_err(actix_web::error::ErrorInternalServerError)?;
    black_box(profile);
    Ok("ok")
}

/// actix-identity, and the profile read from Redis on every request (`GET profile:<id>`, the
/// JSON of a [`Profile`], over `redis`: a multiplexed connection shared by the workers): what
/// an app on several instances does.
pub fn identity_redis_app(
    key: Key,
    redis: ConnectionManager,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    identity_lookup_app(key, redis, identity_redis_me)
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
    audius_app_on(audius, session_middleware(&key))
}

/// [`audius_app`] on the session middleware `sessions`.
pub fn audius_app_on<S: SessionStore + 'static>(
    audius: AudiusLogin,
    sessions: SessionMiddleware<S>,
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
        .wrap(sessions)
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
