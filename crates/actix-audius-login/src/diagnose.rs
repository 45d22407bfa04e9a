//! Telling a misconfigured app what is wrong, instead of a bare "state mismatch": a missing
//! `SessionMiddleware`, the session middleware registered on the wrong side of the code flow's
//! middleware, and a session cookie that never comes back to the callback (`Secure` on plain
//! http, `SameSite=Strict`, blocked cookies).

use std::num::NonZeroUsize;
use std::sync::Mutex;

use actix_session::SessionExt as _;
use actix_web::HttpMessage as _;
use actix_web::HttpRequest;
use lru::LruCache;
use sha2::{Digest as _, Sha256};

use crate::config::Config;
use crate::error::{AudiusLoginError, LoginErrorKind};

/// Session key of the probe written by [`session_middleware_missing`]; never saved.
const PROBE_KEY: &str = "audius.probe";

/// Whether the request has no session from actix-session's `SessionMiddleware` (none wraps this
/// service, or it is registered inside it). Ask before anything calls `get_session()` on the
/// request: that creates an (unsaved) session, which this cannot tell from a real one.
///
/// actix-session keeps the session in the request's extensions under a private type, and
/// `get_session()` creates an empty one when there is none, so presence cannot be asked
/// directly. Instead: the request's extensions are set aside, a session marked with a probe is
/// created in the emptied extensions, and the set-aside extensions are laid over it
/// ([`Extensions::extend`](actix_web::dev::Extensions::extend): an entry of the same type
/// replaces it). If the session middleware put a session there, it wins and carries no probe;
/// otherwise the marked one is left, the probe is removed again, and the request is marked as
/// found without one. Nothing else changes.
pub(crate) fn session_middleware_missing(req: &HttpRequest) -> bool {
    if req.extensions().contains::<NoSessionMiddleware>() {
        return true;
    }
    let original = std::mem::take(&mut *req.extensions_mut());
    // In the emptied extensions: a new session, marked. (Insertion of a bool cannot fail.)
    let marked = req.get_session().insert(PROBE_KEY, true).is_ok();
    let mut merged = std::mem::take(&mut *req.extensions_mut());
    merged.extend(original);
    *req.extensions_mut() = merged;
    let session = req.get_session();
    let missing = marked && session.contains_key(PROBE_KEY);
    if missing {
        session.remove(PROBE_KEY);
        // The probe's session stays (as one from `get_session()` would): later questions in
        // this request get their answer from this mark.
        req.extensions_mut().insert(NoSessionMiddleware);
    }
    missing
}

/// Marks a request found without a session middleware.
struct NoSessionMiddleware;

/// The answer when no session middleware is there to keep the login's state.
pub(crate) fn no_session_middleware() -> AudiusLoginError {
    AudiusLoginError::new(
        LoginErrorKind::Misconfigured,
        "No session: Log In with Audius keeps the login's state in actix-session's session, and \
         no SessionMiddleware wraps this route. Add .wrap(SessionMiddleware::builder(store, key)\
         .cookie_secure(audius.cookie_secure()).build()) to the App, registered after \
         .wrap(audius.middleware()) if you use it.",
    )
}

/// The answer when the code flow's middleware runs before the session is loaded.
pub(crate) fn session_loaded_after_middleware() -> AudiusLoginError {
    AudiusLoginError::new(
        LoginErrorKind::Misconfigured,
        "The Audius login middleware of the code flow runs outside the session middleware, so \
         the tokens it refreshes would never be saved: register .wrap(audius.middleware()) \
         before .wrap(SessionMiddleware::...) (actix-web runs the middleware registered last \
         first), or add the missing SessionMiddleware.",
    )
}

/// How many recently started logins are remembered to explain a callback that comes back
/// without its session.
const REMEMBERED_STATES: usize = 4096;

/// The logins this process started recently, by a hash of their state (never the state itself),
/// with when they started: to tell "this browser lost its session cookie" from "this login is
/// unknown" at the callback. Bounded (least recently started forgotten first); used only to
/// choose an error message, never to accept a login.
pub(crate) struct IssuedStates {
    recent: Mutex<LruCache<[u8; 16], i64>>,
}

impl Default for IssuedStates {
    fn default() -> Self {
        Self {
            recent: Mutex::new(LruCache::new(
                NonZeroUsize::new(REMEMBERED_STATES).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }
}

impl std::fmt::Debug for IssuedStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedStates").finish_non_exhaustive()
    }
}

fn state_hash(state: &str) -> [u8; 16] {
    let digest = Sha256::digest(state.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

impl IssuedStates {
    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<[u8; 16], i64>> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers a login started at `started_at` (Unix seconds).
    pub(crate) fn remember(&self, state: &str, started_at: i64) {
        self.lock().put(state_hash(state), started_at);
    }

    /// When the login with this state started, if this process started it.
    fn started_at(&self, state: &str) -> Option<i64> {
        self.lock().peek(&state_hash(state)).copied()
    }
}

/// A better answer than `state_mismatch` when the reason can be told: no session middleware
/// (500), or no session at all came back with the answer to a login this app started (the
/// session cookie did not reach the callback). Otherwise `error` as it is.
///
/// `no_session_middleware` is [`session_middleware_missing`], asked before the callback
/// touched the session.
pub(crate) fn explain_state_mismatch(
    config: &Config,
    issued_states: &IssuedStates,
    req: &HttpRequest,
    state: Option<&str>,
    no_session_middleware: bool,
    error: AudiusLoginError,
) -> AudiusLoginError {
    if error.kind() != LoginErrorKind::StateMismatch {
        return error;
    }
    if no_session_middleware {
        return self::no_session_middleware();
    }
    if !req.get_session().entries().is_empty() {
        // A session arrived: the state really is unknown to it (used, or another browser's).
        return error;
    }
    let Some(started_at) = state.and_then(|s| issued_states.started_at(s)) else {
        return error;
    };
    let ago = config.clock.now().unix_timestamp() - started_at;
    AudiusLoginError::new(
        LoginErrorKind::StateMismatch,
        format!(
            "No session cookie arrived with this login answer, though this app started this \
             login {ago} s ago: the browser did not send the session cookie back (or the session \
             expired). Check the SessionMiddleware's cookie settings: cookie_secure(true) on a \
             plain-http app drops the cookie (use cookie_secure(audius.cookie_secure())), and \
             SameSite=Strict keeps it off the cross-site navigation that brings the answer back \
             (use SameSite::Lax); or this browser blocks the app's cookies."
        ),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use actix_session::SessionMiddleware;
    use actix_session::storage::CookieSessionStore;
    use actix_web::cookie::Key;
    use actix_web::test as actix_test;
    use actix_web::{App, HttpResponse, web};

    use super::*;

    async fn probe(req: HttpRequest) -> HttpResponse {
        let missing = session_middleware_missing(&req);
        // Asked again, the answer is the same (the probe left no session behind).
        let again = session_middleware_missing(&req);
        let session = req.get_session();
        HttpResponse::Ok().json(serde_json::json!({
            "missing": missing,
            "again": again,
            "kept_after": session.get::<u32>("kept").unwrap(),
            "probe_left": session.contains_key(PROBE_KEY),
            "marker": req.extensions().get::<&'static str>().copied(),
        }))
    }

    async fn set(req: HttpRequest) -> HttpResponse {
        req.get_session().insert("kept", 7u32).unwrap();
        HttpResponse::Ok().finish()
    }

    #[actix_web::test]
    async fn the_probe_tells_a_session_from_none_and_changes_nothing() {
        let with = actix_test::init_service(
            App::new()
                .route("/set", web::get().to(set))
                .route("/probe", web::get().to(probe))
                .wrap_fn(|req, srv| {
                    req.extensions_mut().insert("marker");
                    actix_web::dev::Service::call(srv, req)
                })
                .wrap(
                    SessionMiddleware::builder(CookieSessionStore::default(), Key::generate())
                        .cookie_secure(false)
                        .build(),
                ),
        )
        .await;
        let res = actix_test::call_service(
            &with,
            actix_test::TestRequest::get().uri("/set").to_request(),
        )
        .await;
        let cookie = res.response().cookies().next().unwrap().into_owned();
        let res = actix_test::call_service(
            &with,
            actix_test::TestRequest::get()
                .uri("/probe")
                .cookie(cookie)
                .to_request(),
        )
        .await;
        assert!(
            res.response().cookies().next().is_none(),
            "the probe changed the session"
        );
        let seen: serde_json::Value = actix_test::read_body_json(res).await;
        assert_eq!(
            seen,
            serde_json::json!({"missing": false, "again": false, "kept_after": 7,
                               "probe_left": false, "marker": "marker"})
        );

        let without =
            actix_test::init_service(App::new().route("/probe", web::get().to(probe)).wrap_fn(
                |req, srv| {
                    req.extensions_mut().insert("marker");
                    actix_web::dev::Service::call(srv, req)
                },
            ))
            .await;
        let seen: serde_json::Value = actix_test::read_body_json(
            actix_test::call_service(
                &without,
                actix_test::TestRequest::get().uri("/probe").to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(
            seen,
            serde_json::json!({"missing": true, "again": true, "kept_after": null,
                               "probe_left": false, "marker": "marker"})
        );
    }

    #[test]
    fn issued_states_are_bounded_and_kept_by_hash() {
        let issued = IssuedStates::default();
        issued.remember("first", 10);
        assert_eq!(issued.started_at("first"), Some(10));
        assert_eq!(issued.started_at("other"), None);
        for i in 0..REMEMBERED_STATES {
            issued.remember(&format!("s{i}"), 20);
        }
        assert_eq!(issued.started_at("first"), None, "the oldest is forgotten");
        assert_eq!(issued.lock().len(), REMEMBERED_STATES);
    }
}
