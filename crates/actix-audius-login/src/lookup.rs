//! Which [`AudiusLogin`] answers a request: the one mounted with the routes on the app, the one a
//! middleware put into the request, or the code flow's. Asked by the extractors, the guards, the
//! middleware and [`AudiusClient`](crate::AudiusClient).

use actix_web::dev::Extensions;
use actix_web::{HttpMessage as _, HttpRequest};

use crate::config::Flow;
use crate::error::{AudiusLoginError, LoginErrorKind};
use crate::state::AudiusLogin;

/// An implicit-flow configuration whose routes are mounted on the app (`App::configure`): the
/// middleware finds it in the app data and then has nothing to insert into each request.
#[derive(Clone)]
pub(crate) struct MountedLogin(pub(crate) AudiusLogin);

/// Where the configuration that answers for the user was found.
enum Found<'a> {
    /// Mounted on the app with its routes: borrowed from the app data, no copy.
    Mounted(&'a AudiusLogin),
    /// Inserted into the request by a middleware: copied out, so the caller may change the
    /// extensions.
    Inserted(AudiusLogin),
}

/// The configuration that answers for the user, in this order: the implicit flow's inserted
/// by its middleware, the implicit flow's mounted with its routes (where the middleware found
/// it there and inserted nothing), the code flow's. Tested in `tests/two_flows.rs`.
fn find_login_config<'a>(ext: &Extensions, mounted: Option<&'a MountedLogin>) -> Option<Found<'a>> {
    if let Some(config) = ext.get::<AudiusLogin>() {
        return Some(Found::Inserted(config.clone()));
    }
    if let Some(MountedLogin(config)) = mounted {
        return Some(Found::Mounted(config));
    }
    ext.get::<CodeFlow>().map(|c| Found::Inserted(c.0.clone()))
}

/// [`find_login_config`], as a value (for guards, which have no `HttpRequest`).
pub(crate) fn login_config_in(
    ext: &Extensions,
    mounted: Option<&MountedLogin>,
) -> Option<AudiusLogin> {
    find_login_config(ext, mounted).map(|found| match found {
        Found::Mounted(config) => config.clone(),
        Found::Inserted(config) => config,
    })
}

/// [`login_config_in`] for a request.
pub(crate) fn login_config(req: &HttpRequest) -> Option<AudiusLogin> {
    login_config_in(&req.extensions(), req.app_data::<MountedLogin>())
}

/// Runs `f` with [`login_config`], borrowed where it is mounted on the app (the common case:
/// no copy). The request's extensions are not borrowed while `f` runs.
pub(crate) fn with_login_config<R>(
    req: &HttpRequest,
    f: impl FnOnce(Option<&AudiusLogin>) -> R,
) -> R {
    let found = find_login_config(&req.extensions(), req.app_data::<MountedLogin>());
    match &found {
        Some(Found::Mounted(config)) => f(Some(config)),
        Some(Found::Inserted(config)) => f(Some(config)),
        None => f(None),
    }
}

pub(crate) fn config_of(req: &HttpRequest) -> Result<AudiusLogin, AudiusLoginError> {
    login_config(req).ok_or_else(middleware_missing)
}

pub(crate) fn middleware_missing() -> AudiusLoginError {
    AudiusLoginError::fixed(
        LoginErrorKind::Misconfigured,
        "No Audius login settings reach this request: mount the routes on the App itself \
         (App::new().configure(audius.routes())), or add .wrap(audius.middleware()) to the App \
         (needed when the routes are mounted inside a scope, and for the code flow).",
    )
}

/// The code-flow configuration of a request, put there by the middleware of an
/// [`AudiusLogin`] with [`Flow::AuthorizationCode`].
#[derive(Clone)]
pub(crate) struct CodeFlow(pub(crate) AudiusLogin);

/// The code-flow configuration of the request.
pub(crate) fn code_flow_config(req: &HttpRequest) -> Result<AudiusLogin, AudiusLoginError> {
    if let Some(CodeFlow(config)) = req.extensions().get::<CodeFlow>() {
        return Ok(config.clone());
    }
    Err(AudiusLoginError::new(
        LoginErrorKind::Misconfigured,
        "AudiusClient needs the middleware of an AudiusLogin built with \
         .flow(Flow::AuthorizationCode): add .wrap(audius.middleware()) to the App.",
    ))
}

/// Whether a configuration runs the code flow.
pub(crate) fn is_code_flow(config: &AudiusLogin) -> bool {
    config.inner.flow == Flow::AuthorizationCode
}
