//! Extractors: [`AudiusUser`], `Option<AudiusUser>`, [`VerifiedArtist`], and the
//! [`AudiusRequestExt`] trait (for requests, service requests and guards).

use std::future::{Ready, ready};
use std::ops::Deref;

use actix_session::{Session, SessionExt as _};
use actix_web::dev::{Extensions, Payload, ServiceRequest};
use actix_web::guard::GuardContext;
use actix_web::http::Method;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest};
use serde::Serialize;

use crate::config::UnauthenticatedResponse;
use crate::error::{AudiusLoginError, LoginErrorKind, Presentation, wants_html};
use crate::lookup::{
    CodeFlow, MountedLogin, config_of, login_config_in, middleware_missing, with_login_config,
};
use crate::refresh::{read_tokens, revoke_in_background};
use crate::session::{TOKENS_KEY, USER_KEY, read_user};
use crate::state::AudiusLogin;
use crate::user::AudiusUser;

/// The signed-in user of this request, read from the session. Reading it again is cheap: the
/// parsed user is kept per worker thread for the session content it came from (see
/// [`read_user`]), and every sign-in or sign-out changes the session itself, so a later read in
/// the same request sees it.
pub(crate) fn current_user(req: &HttpRequest) -> Option<AudiusUser> {
    with_login_config(req, |config| {
        read_user(&req.get_session(), config.map(|c| &c.inner.config))
    })
}

/// The answer for a request that needs a user and has none.
pub(crate) fn not_signed_in(req: &HttpRequest, config: &AudiusLogin) -> AudiusLoginError {
    let mode = req
        .app_data::<UnauthenticatedResponse>()
        .copied()
        .unwrap_or(config.inner.unauthenticated);
    let err = AudiusLoginError::fixed(
        LoginErrorKind::NotSignedIn,
        "Sign in with Audius to continue.",
    );
    if mode == UnauthenticatedResponse::Json {
        return err;
    }
    let navigable = matches!(*req.method(), Method::GET | Method::HEAD);
    let browser = wants_html(req);
    let redirect = match mode {
        UnauthenticatedResponse::Redirect => navigable,
        _ => navigable && browser,
    };
    if redirect {
        let here = match req.uri().path_and_query() {
            Some(pq) => pq.as_str().to_owned(),
            None => req.path().to_owned(),
        };
        err.with_presentation(Presentation::Redirect(config.inner.login_url_for(&here)))
    } else if browser {
        err.with_presentation(Presentation::html(
            &config.inner.paths.login,
            &config.inner.paths.landing,
        ))
    } else {
        err
    }
}

/// The user, or the configured answer for a missing one.
pub(crate) fn require_user(req: &HttpRequest) -> Result<AudiusUser, AudiusLoginError> {
    with_login_config(req, |config| {
        let config = config.ok_or_else(middleware_missing)?;
        read_user(&req.get_session(), Some(&config.inner)).ok_or_else(|| not_signed_in(req, config))
    })
}

/// The verified-artist user, or the configured answers (missing user; 403 otherwise).
pub(crate) fn require_verified_artist(req: &HttpRequest) -> Result<AudiusUser, AudiusLoginError> {
    let user = require_user(req)?;
    if user.verified {
        return Ok(user);
    }
    let config = config_of(req)?;
    Err(AudiusLoginError::new(
        LoginErrorKind::NotVerifiedArtist,
        format!(
            "This page is for verified Audius artists, and @{} is not verified.",
            user.handle
        ),
    )
    .for_client(req, &config.inner.paths.login, &config.inner.paths.landing))
}

/// The login settings as a handler argument, with nothing to register: the configuration that
/// answers for this request's user (the implicit flow's when there are two; see
/// [`AudiusLoginMiddleware`](crate::AudiusLoginMiddleware)), found where the extractors find it
/// (mounted with [`AudiusLogin::routes`] on the App, or put there by
/// [`AudiusLogin::middleware`]). None there: `500 misconfigured`.
///
/// ```
/// use actix_audius_login::{AudiusLogin, AudiusUser, ButtonOptions};
/// use actix_web::HttpResponse;
///
/// async fn home(audius: AudiusLogin, user: Option<AudiusUser>) -> HttpResponse {
///     match user {
///         Some(user) => HttpResponse::Ok().body(format!("Hello, @{}", user.handle)),
///         None => HttpResponse::Ok()
///             .content_type("text/html; charset=utf-8")
///             .body(audius.login_button(&ButtonOptions::default())),
///     }
/// }
/// ```
impl FromRequest for AudiusLogin {
    type Error = AudiusLoginError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(config_of(req))
    }
}

impl FromRequest for AudiusUser {
    type Error = AudiusLoginError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(require_user(req))
    }
}

/// A signed-in user who is a verified artist. Signed-out requests get the usual answer
/// (redirect or 401); signed-in users who are not verified get 403.
///
/// ```
/// use actix_audius_login::VerifiedArtist;
///
/// async fn studio(artist: VerifiedArtist) -> String {
///     format!("Welcome to the studio, {}", artist.name)
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct VerifiedArtist(pub AudiusUser);

impl Deref for VerifiedArtist {
    type Target = AudiusUser;
    fn deref(&self) -> &AudiusUser {
        &self.0
    }
}

impl FromRequest for VerifiedArtist {
    type Error = AudiusLoginError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(require_verified_artist(req).map(VerifiedArtist))
    }
}

/// Audius login on a request: read the user without an extractor, or sign them out.
pub trait AudiusRequestExt {
    /// The signed-in user, if any (read from the session; parsed once per worker thread for a
    /// given session content).
    fn audius_user(&self) -> Option<AudiusUser>;

    /// Whether a user is signed in.
    fn is_signed_in_with_audius(&self) -> bool {
        self.audius_user().is_some()
    }

    /// Signs the user out, keeping the rest of the session (whose id is renewed). The code
    /// flow's tokens, if any, are removed too and revoked at Audius in the background (best
    /// effort).
    fn forget_audius_user(&self);
}

impl AudiusRequestExt for HttpRequest {
    fn audius_user(&self) -> Option<AudiusUser> {
        current_user(self)
    }

    fn forget_audius_user(&self) {
        let session = self.get_session();
        forget_user(
            &session,
            &self.extensions(),
            self.app_data::<MountedLogin>(),
        );
    }
}

impl AudiusRequestExt for ServiceRequest {
    fn audius_user(&self) -> Option<AudiusUser> {
        current_user(self.request())
    }

    fn forget_audius_user(&self) {
        self.request().forget_audius_user();
    }
}

/// In a guard ([`Guard::check`](actix_web::guard::Guard::check)), as actix-identity's
/// `IdentityExt` is: match a route on the user, without an extractor.
///
/// ```
/// use actix_audius_login::AudiusRequestExt as _;
/// use actix_web::{HttpResponse, guard, web};
///
/// let listeners_only = web::get()
///     .guard(guard::fn_guard(|ctx| ctx.audius_user().is_some_and(|u| !u.verified)))
///     .to(HttpResponse::Ok);
/// # let _ = listeners_only;
/// ```
impl AudiusRequestExt for GuardContext<'_> {
    fn audius_user(&self) -> Option<AudiusUser> {
        // The session first: it borrows the request's extensions mutably for a moment.
        let session = self.get_session();
        let config = login_config_in(&self.req_data(), self.app_data::<MountedLogin>());
        read_user(&session, config.as_ref().map(|c| &c.inner.config))
    }

    fn forget_audius_user(&self) {
        let session = self.get_session();
        forget_user(&session, &self.req_data(), self.app_data::<MountedLogin>());
    }
}

/// Signs the user out of `session` (see [`AudiusRequestExt::forget_audius_user`]); the
/// request's extensions and app data say which configuration revokes the code flow's tokens.
fn forget_user(session: &Session, ext: &Extensions, mounted: Option<&MountedLogin>) {
    let tokens = read_tokens(session);
    session.remove(USER_KEY);
    session.remove(TOKENS_KEY);
    session.renew();
    if let Some(tokens) = tokens {
        let code_flow = ext.get::<CodeFlow>().map(|c| c.0.clone());
        match code_flow.or_else(|| login_config_in(ext, mounted)) {
            Some(config) => revoke_in_background(
                &config.inner,
                &config.inner.families,
                &config.inner.background,
                tokens,
            ),
            None => {
                tracing::warn!(
                    "no Audius login middleware: the removed tokens could not be revoked"
                )
            }
        }
    }
}
