//! A misconfigured app is told what is wrong: no `SessionMiddleware` (a typed 500 at the login
//! route, not a 302 and a "state mismatch" later), and a session cookie that never comes back to
//! the callback (`Secure` on plain http, `SameSite=Strict`, blocked cookies) named as such.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::time::Duration;

use actix_audius_login::{AudiusLogin, ResponseMode};
use actix_session::SessionMiddleware;
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::{Cookie, Key, SameSite};
use actix_web::http::{StatusCode, header};
use actix_web::test::{self, TestRequest};
use actix_web::{App, HttpServer};

fn audius(base: &str, mode: ResponseMode) -> AudiusLogin {
    AudiusLogin::builder("Misconfigured", format!("{base}/auth/audius/callback"))
        .response_mode(mode)
        .build()
        .unwrap()
}

fn session(key: Key, secure: bool, same_site: SameSite) -> SessionMiddleware<CookieSessionStore> {
    SessionMiddleware::builder(CookieSessionStore::default(), key)
        .cookie_secure(secure)
        .cookie_same_site(same_site)
        .build()
}

/// The `state` of the login page the login route sent the browser to.
fn state_of(location: &str) -> String {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned()
}

#[actix_web::test]
async fn without_a_session_middleware_the_login_route_says_so() {
    let audius = audius("http://localhost:8080", ResponseMode::Query);
    let app = test::init_service(App::new().configure(audius.routes())).await;
    let res = test::call_service(
        &app,
        TestRequest::get().uri("/auth/audius/login").to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(res.headers().get(header::LOCATION).is_none(), "no 302");
    let body: serde_json::Value = test::read_body_json(res).await;
    assert_eq!(body["error"], "misconfigured");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("SessionMiddleware"),
        "{body}"
    );
    // A browser gets the page.
    let res = test::call_service(
        &app,
        TestRequest::get()
            .uri("/auth/audius/login")
            .insert_header((header::ACCEPT, "text/html"))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let page = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    assert!(page.contains("SessionMiddleware"), "{page}");
    // And a callback reaching such an app says the same, not "state mismatch".
    let res = test::call_service(
        &app,
        TestRequest::get()
            .uri("/auth/audius/callback?state=abc&token=x")
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);

    // With the session middleware, the same route redirects.
    let app = test::init_service(App::new().configure(audius.routes()).wrap(session(
        Key::generate(),
        false,
        SameSite::Lax,
    )))
    .await;
    let res = test::call_service(
        &app,
        TestRequest::get().uri("/auth/audius/login").to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FOUND);
}

#[actix_web::test]
async fn a_callback_without_its_session_cookie_says_the_cookie_did_not_come_back() {
    for mode in [ResponseMode::Query, ResponseMode::Fragment] {
        let audius = audius("http://localhost:8080", mode);
        let app = test::init_service(App::new().configure(audius.routes()).wrap(session(
            Key::generate(),
            false,
            SameSite::Strict,
        )))
        .await;
        let start = test::call_service(
            &app,
            TestRequest::get().uri("/auth/audius/login").to_request(),
        )
        .await;
        assert_eq!(start.status(), StatusCode::FOUND);
        let cookie: Cookie<'static> = start.response().cookies().next().unwrap().into_owned();
        let state = state_of(
            start
                .headers()
                .get(header::LOCATION)
                .unwrap()
                .to_str()
                .unwrap(),
        );
        let callback = |state: &str| match mode {
            ResponseMode::Query => {
                TestRequest::get().uri(&format!("/auth/audius/callback?state={state}&token=x.y.z"))
            }
            _ => TestRequest::post()
                .uri("/auth/audius/callback")
                .insert_header((header::ORIGIN, "http://localhost:8080"))
                .set_json(serde_json::json!({ "state": state, "token": "x.y.z" })),
        };
        let message = |res: actix_web::dev::ServiceResponse| async move {
            assert_eq!(res.status(), StatusCode::BAD_REQUEST);
            let body: serde_json::Value = test::read_body_json(res).await;
            assert_eq!(body["error"], "state_mismatch", "{body}");
            body["message"].as_str().unwrap().to_owned()
        };

        // What a browser does with SameSite=Strict on the cross-site navigation back from
        // Audius, or with a Secure cookie on plain http: the cookie stays behind.
        let lost = message(test::call_service(&app, callback(&state).to_request()).await).await;
        assert!(
            lost.contains("No session cookie arrived")
                && lost.contains("cookie_secure")
                && lost.contains("SameSite"),
            "{mode:?}: {lost}"
        );

        // The cookie arrives, the state is unknown to its session: the plain answer.
        let unknown = message(
            test::call_service(
                &app,
                callback("an-unknown-state")
                    .cookie(cookie.clone())
                    .to_request(),
            )
            .await,
        )
        .await;
        assert!(
            !unknown.contains("No session cookie"),
            "{mode:?}: {unknown}"
        );
        // No cookie, and a state this app never issued (a forged or stale link): plain too.
        let forged =
            message(test::call_service(&app, callback("never-issued-here").to_request()).await)
                .await;
        assert!(!forged.contains("No session cookie"), "{mode:?}: {forged}");
        // The lost login was not consumed: with its cookie, it still reaches the token check.
        let res = test::call_service(&app, callback(&state).cookie(cookie).to_request()).await;
        let body: serde_json::Value = test::read_body_json(res).await;
        assert_eq!(body["error"], "malformed_token", "{mode:?}: {body}");
    }
}

/// A plain-http app on a host that is not a loopback name: `cookie_secure()` says `Secure`
/// (the crate's rule), which no client sends back over http. The callback names the cause.
#[actix_web::test]
async fn a_secure_cookie_on_plain_http_is_named_at_the_callback() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://app.test:{}", addr.port());
    let audius = audius(&base, ResponseMode::Query);
    assert!(audius.cookie_secure(), "not a loopback host: Secure");
    let key = Key::generate();
    let server = HttpServer::new({
        let audius = audius.clone();
        move || {
            App::new().configure(audius.routes()).wrap(session(
                key.clone(),
                audius.cookie_secure(),
                SameSite::Lax,
            ))
        }
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);

    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .resolve("app.test", addr)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let start = browser
        .get(format!("{base}/auth/audius/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302);
    assert!(
        start.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Secure"),
        "the session cookie is Secure"
    );
    let state = state_of(start.headers()["location"].to_str().unwrap());
    let res = browser
        .get(format!(
            "{base}/auth/audius/callback?state={state}&token=x.y.z"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "state_mismatch");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("No session cookie arrived") && message.contains("cookie_secure"),
        "{message}"
    );
    handle.stop(false).await;
}
