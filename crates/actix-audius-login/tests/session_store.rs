//! The session-store wrappers of `actix_audius_login::store`: a store that fails or hangs is
//! answered `503` within the timeout, healthy stores pass through, and a reconnecting store
//! comes back after its backend does.

#![allow(clippy::unwrap_used)]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_audius_login::store::{GuardedStore, ReconnectingStore, SessionStoreGuard};
use actix_audius_login::{AudiusLogin, Paths};
use actix_session::storage::{
    CookieSessionStore, LoadError, SaveError, SessionKey, SessionStore, UpdateError,
};
use actix_session::{SessionExt as _, SessionMiddleware};
use actix_web::cookie::Key;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::{App, Error, HttpRequest, HttpResponse, test, web};

type State = HashMap<String, String>;
type Ttl = actix_web::cookie::time::Duration;

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
    // The default message.
    assert_eq!(
        body["message"],
        "Sessions are unavailable right now; please try again in a moment."
    );
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
        AudiusLogin::builder("Links", "http://localhost:8080/auth/audius/callback")
            .paths(Paths {
                login: "/in".into(),
                landing: "/home".into(),
                ..Paths::default()
            })
            .build()
            .unwrap()
            .session_store_guard()
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
        ReconnectingStore::new(broken, move || {
            connects.fetch_add(1, Ordering::SeqCst);
            let down = down.load(Ordering::SeqCst);
            async move {
                if down {
                    Err(anyhow::anyhow!("connection refused"))
                } else {
                    Ok(Flaky::new())
                }
            }
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
    assert!(format!("{store:?}").contains("generation: 0"), "{store:?}");
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
    assert!(format!("{store:?}").contains("generation: 1"), "{store:?}");
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
        ReconnectingStore::new(hanging, move || {
            connects.fetch_add(1, Ordering::SeqCst);
            async { Ok(Flaky::new()) }
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
