//! [`SessionStoreGuard`]: the middleware answering `503` for a request during which the store
//! failed.

use std::cell::RefCell;
use std::future::{Ready, ready};
use std::rc::Rc;
use std::time::Duration;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{Error, HttpResponse};
use futures_util::future::LocalBoxFuture;

use super::guarded::{Scoped, StoreOutage, within};
use crate::defaults;
use crate::error::{AudiusLoginError, LoginErrorKind, Presentation, wants_html};

/// Middleware answering `503 session_unavailable` for requests during which a
/// [`GuardedStore`](super::GuardedStore) recorded an outage. Wrap it **outermost**
/// (registered after, so around,
/// the `SessionMiddleware`). See the [module docs](super).
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
    /// A guard with the defaults: the message "Sessions are unavailable right now; please try
    /// again in a moment.", `Retry-After: 5`, links to
    /// `/auth/audius/login` and `/` on the HTML page.
    pub fn new() -> Self {
        Self {
            message: defaults::UNAVAILABLE_MESSAGE.to_owned(),
            retry_after: Some(defaults::RETRY_AFTER),
            login_path: defaults::LOGIN_PATH.to_owned(),
            landing_path: defaults::LANDING_PATH.to_owned(),
        }
    }

    /// The message of the answer. Default: "Sessions are unavailable right now; please try again
    /// in a moment."
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// The `Retry-After` header (whole seconds, at least 1), or none. Default: 5 s.
    pub fn retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }
}

impl SessionStoreGuard {
    /// The guard of an app: its page links to `login_path` and `landing_path`.
    pub(crate) fn linking(login_path: &str, landing_path: &str) -> Self {
        Self {
            login_path: login_path.to_owned(),
            landing_path: landing_path.to_owned(),
            ..Self::new()
        }
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
