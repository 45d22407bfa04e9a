//! [`AudiusLoginMiddleware`], which puts the settings into each request, and [`RequireLogin`],
//! which requires a signed-in user for a whole scope.

use std::cell::Cell;
use std::future::{Ready, ready};
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpMessage as _, ResponseError as _};
use futures_util::future::{Either, LocalBoxFuture};

use crate::diagnose::{session_loaded_after_middleware, session_middleware_missing};
use crate::extract::{require_user, require_verified_artist};
use crate::lookup::{CodeFlow, MountedLogin, is_code_flow};
use crate::refresh::upgrade_session_tokens;
use crate::state::AudiusLogin;

/// Puts the Audius login settings into each request for extractors and guards (when that is
/// needed: below). Made by [`AudiusLogin::middleware`].
///
/// Two configurations may be installed on one app, one per flow (identity with the implicit
/// flow, API access with the code flow): the implicit one then answers for [`AudiusUser`],
/// guards and [`RequireLogin`], the code-flow one for [`AudiusClient`], whatever the order of
/// the two `.wrap` calls. With the code flow, the middleware also makes sure that a session
/// written during the request carries the newest tokens
/// (see [`AudiusClient`](crate::AudiusClient)).
///
/// # What it does, and when it is needed
///
/// The extractors ([`AudiusUser`](crate::AudiusUser), [`VerifiedArtist`](crate::VerifiedArtist),
/// [`AudiusLogin`], [`AudiusClient`](crate::AudiusClient)), the guards and [`RequireLogin`] need
/// the settings ([`AudiusLogin`]) of the request: its login route (where to send a browser
/// without a login), its login deadline, its answer for a missing user. They find them in one
/// of two places:
///
/// - **the app's data**, where [`AudiusLogin::routes`] puts them when the implicit flow's routes
///   are mounted on the `App` itself (`App::new().configure(audius.routes())`);
/// - **the request**, where [`AudiusLogin::middleware`] puts them.
///
/// So the middleware is **not needed** for the implicit flow with its routes on the `App` (the
/// quick start): it then adds nothing to the request (it checks once that the settings are in
/// the app's data), and leaving it out changes nothing. It **is needed**:
///
/// | case | without the middleware |
/// |---|---|
/// | the routes mounted inside a `web::scope(..)` (a scope's data is seen only inside it) | outside that scope: `AudiusUser`, `VerifiedArtist`, `AudiusLogin`, `RequireLogin` answer `500 misconfigured`; `Option<AudiusUser>` is always `None` (actix-web turns an extractor's error into `None`); guards and `req.audius_user()` still read the user, without the login deadline |
/// | the code flow ([`Flow::AuthorizationCode`](crate::Flow::AuthorizationCode)) | `AudiusClient`, and `AudiusUser` of an app with only the code flow, answer `500 misconfigured`; and nothing writes the newest tokens back after a refresh (see [`AudiusClient`](crate::AudiusClient)) |
///
/// Every one of these is tested (`tests/middleware.rs`). Wrapping it where it is not needed
/// costs next to nothing: it looks the settings up in the app's data once per worker, then only
/// passes requests on.
///
/// # Order
///
/// actix-web runs the middleware registered **last** first. In the implicit flow the order
/// does not matter: this middleware never touches the session. In the code flow it writes
/// refreshed tokens to the session on the way out, so it must run **inside** the session
/// middleware: register it **before** `SessionMiddleware`. Registered after it, every request is
/// refused with `500 misconfigured` saying so (rather than losing refreshed tokens):
///
/// ```text
/// App::new()
///     .wrap(audius.middleware())                  // runs second
///     .wrap(SessionMiddleware::new(store, key))   // runs first
/// ```
///
/// # A whole scope: [`RequireLogin`]
///
/// [`RequireLogin`] ([`RequireLogin::SignedIn`] for any signed-in user,
/// [`RequireLogin::VerifiedArtist`] for verified artists) guards every route of a scope:
///
/// ```no_run
/// use actix_audius_login::RequireLogin;
/// use actix_web::{web, App, HttpResponse};
/// # fn make(audius: actix_audius_login::AudiusLogin) {
/// let app = App::new()
///     .configure(audius.routes())
///     .service(
///         web::scope("/account")
///             .wrap(RequireLogin::SignedIn)
///             .route("", web::get().to(|| async { HttpResponse::Ok().body("secret") })),
///     );
/// # }
/// ```
///
/// The user is read from the session only when something asks (parsed once per worker thread
/// for a given session, then copied out), so requests that never look at the user cost next to
/// nothing.
///
/// [`AudiusUser`]: crate::AudiusUser
/// [`AudiusClient`]: crate::AudiusClient
#[derive(Debug, Clone)]
pub struct AudiusLoginMiddleware {
    config: AudiusLogin,
}

impl AudiusLoginMiddleware {
    /// The middleware of `config` ([`AudiusLogin::middleware`]).
    pub(crate) fn new(config: AudiusLogin) -> Self {
        Self { config }
    }
}

impl<S, B> Transform<S, ServiceRequest> for AudiusLoginMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = AudiusLoginService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(AudiusLoginService {
            service,
            config: self.config.clone(),
            mounted: Cell::new(None),
            session_inside: Cell::new(None),
        }))
    }
}

/// The service of [`AudiusLoginMiddleware`].
#[doc(hidden)]
pub struct AudiusLoginService<S> {
    service: S,
    config: AudiusLogin,
    /// Whether this configuration is mounted in the app data this middleware sees (known after
    /// the first request).
    mounted: Cell<Option<bool>>,
    /// Code flow: whether the session is loaded before this middleware runs (known after the
    /// first request; the order of the middleware does not change).
    session_inside: Cell<Option<bool>>,
}

impl<S, B> Service<ServiceRequest> for AudiusLoginService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    /// The inner service's own future with the implicit flow (nothing to do after it), a boxed
    /// one with the code flow (which checks the session's tokens on the way out).
    type Future = Either<S::Future, LocalBoxFuture<'static, Result<Self::Response, Self::Error>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        if !is_code_flow(&self.config) {
            // Where the routes are mounted on the app, the extractors find this configuration
            // in the app data: nothing to insert (the common case, and the cheapest).
            // The app data a middleware sees is the same for every request: looked up once.
            let mounted = self.mounted.get().unwrap_or_else(|| {
                let mounted = req
                    .app_data::<MountedLogin>()
                    .is_some_and(|m| Arc::ptr_eq(&m.0.inner, &self.config.inner));
                self.mounted.set(Some(mounted));
                mounted
            });
            if !mounted {
                req.extensions_mut().insert(self.config.clone());
            }
            return Either::Left(self.service.call(req));
        }
        // The tokens refreshed during the request are written to the session on the way out,
        // which only works with the session middleware outside this one: checked once.
        let session_inside = self.session_inside.get().unwrap_or_else(|| {
            let inside = !session_middleware_missing(req.request());
            self.session_inside.set(Some(inside));
            inside
        });
        if !session_inside {
            return Either::Right(Box::pin(ready(Err(
                session_loaded_after_middleware().into()
            ))));
        }
        // The code flow's configuration answers for the user only where no implicit one is
        // installed (see `login_config_in`).
        req.extensions_mut().insert(CodeFlow(self.config.clone()));
        let fut = self.service.call(req);
        let config = self.config.clone();
        Either::Right(Box::pin(async move {
            let res = fut.await?;
            upgrade_session_tokens(res.request(), &config.inner.families);
            Ok(res)
        }))
    }
}

/// Requires a signed-in user, or a verified artist, for every request of a scope. Requests
/// without one get the configured answer (redirect to login, or 401 JSON; 403 for users who are
/// not verified artists). Finds the settings as the extractors do (see the
/// [`AudiusLoginMiddleware`] docs).
///
/// ```
/// use actix_audius_login::RequireLogin;
/// use actix_web::web;
///
/// let account = web::scope("/account").wrap(RequireLogin::SignedIn);
/// let studio = web::scope("/studio").wrap(RequireLogin::VerifiedArtist);
/// # let _ = (account, studio);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum RequireLogin {
    /// Every request needs a signed-in user. (Default.)
    #[default]
    SignedIn,
    /// Every request needs a signed-in verified artist (signed-in users who are not get `403`).
    VerifiedArtist,
}

impl<S, B> Transform<S, ServiceRequest> for RequireLogin
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = RequireLoginService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequireLoginService {
            service: Rc::new(service),
            requirement: *self,
        }))
    }
}

/// The service of [`RequireLogin`].
#[doc(hidden)]
pub struct RequireLoginService<S> {
    service: Rc<S>,
    requirement: RequireLogin,
}

impl<S, B> Service<ServiceRequest> for RequireLoginService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let check = match self.requirement {
            RequireLogin::SignedIn => require_user(req.request()).map(drop),
            RequireLogin::VerifiedArtist => require_verified_artist(req.request()).map(drop),
        };
        match check {
            Ok(()) => {
                let service = Rc::clone(&self.service);
                Box::pin(async move { Ok(service.call(req).await?.map_into_left_body()) })
            }
            Err(e) => {
                let response = e.error_response();
                Box::pin(async move { Ok(req.into_response(response).map_into_right_body()) })
            }
        }
    }
}
