//! The real callback route, in process: an actix-web test service with the session middleware,
//! the Audius middleware and `AudiusLogin::routes`, exactly as an app mounts them.
//!
//! Each input starts a login (`GET` the login route: a state in the session cookie), then
//! answers the callback with the fuzzed request: the first byte picks the channel (`GET` query,
//! `POST` JSON, `POST` form, `POST` with a content type taken from the input), the rest is the
//! query or body. `@S` in it is replaced by the state the login route issued and `@T` by a
//! well-formed signed token, so that the fuzzer reaches every step after the body is decoded
//! (state check, token check, verifier).
//!
//! Invariants: no panic, no 5xx (nothing here is unavailable), never a sign-in (the verifier
//! refuses every token), every refusal is JSON with a stable error code.
#![no_main]

use std::rc::Rc;
use std::sync::Arc;

use actix_audius_login::{AudiusLogin, ResponseMode};
use actix_session::SessionMiddleware;
use actix_session::storage::CookieSessionStore;
use actix_web::body::{BoxBody, MessageBody as _};
use actix_web::cookie::{Cookie, Key};
use actix_web::dev::{Service as _, ServiceResponse};
use actix_web::http::header;
use actix_web::test::{TestRequest, init_service};
use actix_web::{App, Error};
use audius_login::{Token, VerifiedProfile, Verifier};
use futures_util_shim::LocalBoxFuture;
use libfuzzer_sys::fuzz_target;

mod futures_util_shim {
    pub type LocalBoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'a>>;
}

/// Refuses every token after parsing it as the real verifiers do (no network).
#[derive(Debug)]
struct RefuseAll;

#[async_trait::async_trait]
impl Verifier for RefuseAll {
    async fn verify(&self, token: &str) -> audius_login::Result<VerifiedProfile> {
        Token::parse_and_recover(token, 16 * 1024)?;
        Err(audius_login::Error::WalletMismatch {
            status: None,
            message: "fuzzing: every token is refused".into(),
        })
    }
}

type Call = Rc<
    dyn Fn(actix_http::Request) -> LocalBoxFuture<'static, Result<ServiceResponse<BoxBody>, Error>>,
>;

struct Harness {
    system: actix_web::rt::SystemRunner,
    call: Call,
    audius: AudiusLogin,
    token: String,
}

fn harness() -> Harness {
    let system = actix_web::rt::System::new();
    let audius = AudiusLogin::builder("Fuzz", "http://127.0.0.1:8080/auth/audius/callback")
        .response_mode(ResponseMode::Query)
        .verifier(Arc::new(RefuseAll))
        .build()
        .expect("valid settings");
    let key = Key::from(&[7u8; 64]);
    let app_audius = audius.clone();
    let call: Call = system.block_on(async move {
        let service = init_service(
            App::new()
                .configure(app_audius.routes())
                .wrap(app_audius.middleware())
                .wrap(
                    SessionMiddleware::builder(CookieSessionStore::default(), key)
                        .cookie_name("id".into())
                        .cookie_secure(false)
                        .build(),
                ),
        )
        .await;
        let service = Rc::new(service);
        Rc::new(move |req| {
            let service = Rc::clone(&service);
            let call: LocalBoxFuture<'static, _> =
                Box::pin(async move { Ok(service.call(req).await?.map_into_boxed_body()) });
            call
        })
    });
    let mut claims = serde_json::Map::new();
    claims.insert("userId".into(), "eYorL".into());
    claims.insert("iat".into(), 1_764_288_000.into());
    let token = Token::sign(&claims, &[0x11; 32]).expect("valid key");
    Harness {
        system,
        call,
        audius,
        token,
    }
}

thread_local! {
    /// Leaked on purpose: dropping the actix system while thread-locals are destroyed at exit
    /// touches actix-http's own thread-locals, already gone (a panic after the last run, which
    /// libFuzzer reports as a crash with an empty input).
    static HARNESS: &'static Harness = Box::leak(Box::new(harness()));
}

fn session_cookie(res: &ServiceResponse<BoxBody>) -> Option<Cookie<'static>> {
    res.response()
        .cookies()
        .find(|c| c.name() == "id")
        .map(|c| c.into_owned())
}

fuzz_target!(|data: &[u8]| {
    let Some((&channel, rest)) = data.split_first() else {
        return;
    };
    HARNESS.with(|h| {
        let call = Rc::clone(&h.call);
        let login_path = h.audius.paths().login.clone();
        let callback_path = h.audius.callback_path().to_owned();
        let origin = h.audius.app_origin().to_owned();
        let token = h.token.clone();
        h.system.block_on(async move {
            // A login: the state goes into the session cookie and the Location.
            let res = call(TestRequest::get().uri(&login_path).to_request())
                .await
                .expect("the login route answers");
            assert_eq!(res.status(), 302);
            let cookie = session_cookie(&res).expect("a session cookie");
            let location = res
                .headers()
                .get(header::LOCATION)
                .expect("a Location")
                .to_str()
                .expect("ASCII")
                .to_owned();
            let state = url::Url::parse(&location)
                .expect("absolute login URL")
                .query_pairs()
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.into_owned())
                .expect("a state");

            let text = String::from_utf8_lossy(rest)
                .replace("@S", &state)
                .replace("@T", &token);
            let req = match channel % 4 {
                0 => {
                    // The query channel: the fuzzed text is the query string, as sent.
                    // The fuzzed text is the query string, as a client could send it (what no
                    // HTTP parser would accept never reaches the app).
                    let uri = format!("{callback_path}?{text}");
                    if uri.parse::<actix_web::http::Uri>().is_err() {
                        return;
                    }
                    TestRequest::get().uri(&uri)
                }
                1 => TestRequest::post()
                    .uri(&callback_path)
                    .insert_header((header::CONTENT_TYPE, "application/json"))
                    .set_payload(text.into_bytes()),
                2 => TestRequest::post()
                    .uri(&callback_path)
                    .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
                    .set_payload(text.into_bytes()),
                _ => {
                    let (content_type, body) = text.split_once('\n').unwrap_or(("", &text));
                    let mut req = TestRequest::post().uri(&callback_path);
                    if let Ok(value) = header::HeaderValue::from_str(content_type) {
                        req = req.insert_header((header::CONTENT_TYPE, value));
                    }
                    req.set_payload(body.as_bytes().to_vec())
                }
            };
            let req = req
                .insert_header((header::ORIGIN, origin.as_str()))
                .insert_header((header::ACCEPT, "application/json"))
                .cookie(cookie)
                .to_request();
            let res = call(req).await.expect("the callback answers");
            let status = res.status();
            assert!(
                !status.is_server_error(),
                "callback answered {status} to channel {} with {:?}",
                channel % 4,
                String::from_utf8_lossy(rest)
            );
            assert!(
                !status.is_success() && !status.is_redirection(),
                "callback signed someone in ({status}) with {:?}",
                String::from_utf8_lossy(rest)
            );
            let body = res.into_body().try_into_bytes().unwrap_or_default();
            let json: serde_json::Value = serde_json::from_slice(&body).expect("a JSON refusal");
            assert!(json["error"].as_str().is_some_and(|c| !c.is_empty()));
        });
    });
});
