//! The `testing` feature: one call logs a test client in as a sandbox user, in every channel,
//! against a real server and against an in-process test service.
#![allow(clippy::unwrap_used)]

mod common;

use actix_audius_login::testing::{TestClient, sign_in_service};
use actix_audius_login::{AudiusLogin, AudiusUser, ResponseMode};
use actix_session::SessionMiddleware;
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::Key;
use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, test, web};

#[actix_web::test]
async fn test_client_signs_in_through_every_channel() {
    let sandbox = common::sandbox().await;
    for mode in [
        ResponseMode::Query,
        ResponseMode::Fragment,
        ResponseMode::PostMessage,
    ] {
        let app = common::start_with(sandbox.clone(), mode, |b| b).await;
        let client = TestClient::new(&app.audius, &app.base).unwrap();
        assert_eq!(
            client.get("/me").send().await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{mode:?}"
        );
        client
            .sign_in_as("artist")
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        let me: serde_json::Value = client.get("/me").send().await.unwrap().json().unwrap();
        assert_eq!(me["handle"], "artist", "{mode:?}");
        let refused = client.sign_in_as("nobody-such").await.unwrap_err();
        assert_eq!(
            refused.status(),
            Some(StatusCode::BAD_REQUEST),
            "{mode:?}: an unknown sandbox user is the sandbox's 400: {refused}"
        );
    }
}

#[actix_web::test]
async fn sign_in_service_gives_a_session_cookie_for_in_process_tests() {
    let sandbox = common::sandbox().await;
    for mode in [
        ResponseMode::Query,
        ResponseMode::Fragment,
        ResponseMode::PostMessage,
    ] {
        let audius =
            AudiusLogin::builder("In-process", "http://localhost:8080/auth/audius/callback")
                .response_mode(mode)
                .environment(sandbox.environment())
                .build()
                .unwrap();
        let app = test::init_service(
            App::new()
                .configure(audius.routes())
                .route(
                    "/me",
                    web::get().to(|u: AudiusUser| async move { HttpResponse::Ok().json(u) }),
                )
                .wrap(audius.middleware())
                .wrap(
                    SessionMiddleware::builder(CookieSessionStore::default(), Key::generate())
                        .cookie_secure(false)
                        .build(),
                ),
        )
        .await;
        let cookie = sign_in_service(&app, &audius, "listener")
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        let res = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/me")
                .cookie(cookie)
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), 200, "{mode:?}");
        let me: serde_json::Value = test::read_body_json(res).await;
        assert_eq!(me["handle"], "listener");
    }
}

#[actix_web::test]
async fn test_client_signs_in_through_the_code_flow() {
    use actix_audius_login::Flow;
    // An app with no redirect URI registered: Audius falls back to the rules of spec section 5.
    let key = "7e57c0de7e57c0de7e57c0de7e57c0de7e57c0de";
    let developer_app = audius_sandbox::DeveloperApp::new("Tested", key, vec![]).unwrap();
    let sandbox = std::sync::Arc::new(
        audius_sandbox::Sandbox::builder()
            .app(developer_app)
            .start()
            .await
            .unwrap(),
    );
    for mode in [
        ResponseMode::Query,
        ResponseMode::Fragment,
        ResponseMode::PostMessage,
    ] {
        let app = common::start_with(sandbox.clone(), mode, |b| {
            b.flow(Flow::AuthorizationCode).api_key(key)
        })
        .await;
        let client = TestClient::new(&app.audius, app.base.as_str()).unwrap();
        client
            .sign_in_as("listener")
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        let me: serde_json::Value = client.get("/me").send().await.unwrap().json().unwrap();
        assert_eq!(me["handle"], "listener", "{mode:?}");
        assert_eq!(me["email"], serde_json::Value::Null, "{mode:?}: no email");
    }
}

/// The app a new user builds from the README: a home page with the button, `/me`, an
/// artists-only route, logout.
fn readme_app(
    audius: AudiusLogin,
    key: Key,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    use actix_audius_login::{ButtonOptions, VerifiedArtist};
    let session = SessionMiddleware::builder(CookieSessionStore::default(), key)
        .cookie_secure(audius.cookie_secure())
        .cookie_http_only(true)
        .cookie_same_site(actix_web::cookie::SameSite::Lax)
        .build();
    App::new()
        .configure(audius.routes())
        .route(
            "/",
            web::get().to(|audius: AudiusLogin, user: Option<AudiusUser>| async move {
                match user {
                    Some(user) => HttpResponse::Ok().body(format!("Hello, @{}", user.handle)),
                    None => HttpResponse::Ok()
                        .content_type("text/html; charset=utf-8")
                        .body(audius.login_button(&ButtonOptions::default())),
                }
            }),
        )
        .route(
            "/me",
            web::get().to(|u: AudiusUser| async move { HttpResponse::Ok().json(u) }),
        )
        .route(
            "/artists",
            web::get().to(|a: VerifiedArtist| async move { format!("Welcome, {}", a.name) }),
        )
        .wrap(session)
}

#[actix_web::test]
async fn the_readme_scenario_runs_on_a_test_server_with_actix_types() {
    use actix_audius_login::testing::{TestError, TestServer};
    use actix_web::http::header;
    let sandbox = audius_sandbox::Sandbox::builder().start().await.unwrap();
    let server = TestServer::bind().unwrap();
    assert!(server.base_url().starts_with("http://127.0.0.1:"));
    let audius = AudiusLogin::builder("README App", server.url("/auth/audius/callback"))
        .environment(sandbox.environment())
        .build()
        .unwrap();
    assert_eq!(
        audius.redirect_uri().as_str(),
        format!("{}auth/audius/callback", server.base_url())
    );
    let key = Key::generate();
    let server = server
        .start({
            let audius = audius.clone();
            move || readme_app(audius.clone(), key.clone())
        })
        .unwrap();

    let listener = server.client(&audius).unwrap();
    let home = listener.get("/").send().await.unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    assert!(
        home.text().contains("/auth/audius/login"),
        "{}",
        home.text()
    );
    let me = listener.get("/me").send().await.unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        me.json::<serde_json::Value>().unwrap()["error"],
        "not_signed_in"
    );
    listener.sign_in_as("listener").await.unwrap();
    assert_eq!(
        listener.get("/").send().await.unwrap().text(),
        "Hello, @listener"
    );
    let refused = listener.get("/artists").send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // A refusal as an error, with its status: no "403" to look for in a text.
    let e = refused.error_for_status().unwrap_err();
    assert!(
        matches!(
            e,
            TestError::Refused {
                status: StatusCode::FORBIDDEN,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.status(), Some(StatusCode::FORBIDDEN));

    let artist = server.client(&audius).unwrap();
    artist.sign_in_as("artist").await.unwrap();
    let studio = artist.get("/artists").send().await.unwrap();
    assert_eq!(studio.status(), StatusCode::OK);
    assert!(studio.text().starts_with("Welcome, "), "{}", studio.text());
    // The clients keep their own cookies.
    assert_eq!(listener.get("/artists").send().await.unwrap().status(), 403);

    // Logout from another site is refused; the client's own logout goes through.
    let cross_site = artist
        .post(audius.logout_path())
        .insert_header((header::ORIGIN, "https://evil.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        artist.get("/me").send().await.unwrap().status(),
        StatusCode::OK
    );
    artist.logout().await.unwrap();
    assert_eq!(
        artist.get("/me").send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let page = artist
        .get("/artists")
        .insert_header((header::ACCEPT, "text/html"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.status(),
        StatusCode::FOUND,
        "browsers are sent to log in"
    );
    assert_eq!(
        page.location(),
        Some("/auth/audius/login?return_to=%2Fartists")
    );

    // An unknown sandbox user: the sandbox's refusal, typed.
    match artist.sign_in_as("nobody-such").await {
        Err(TestError::Refused { status, what, .. }) => {
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(what.contains("sandbox"), "{what}");
        }
        other => panic!("{other:?}"),
    }
}

#[actix_web::test]
async fn test_client_urls_and_errors_keep_their_cause() {
    use actix_audius_login::testing::{TestError, TestServer};
    use std::error::Error as _;
    let audius = AudiusLogin::builder("Errors", "http://127.0.0.1:9/auth/audius/callback")
        .build()
        .unwrap();
    for bad in ["not a url", "ftp://127.0.0.1/"] {
        assert!(
            matches!(
                TestClient::new(&audius, bad),
                Err(TestError::Unexpected { .. })
            ),
            "{bad}"
        );
    }
    let client = TestClient::new(&audius, String::from("http://127.0.0.1:9/")).unwrap();
    assert_eq!(client.url("/me?x=1"), "http://127.0.0.1:9/me?x=1");
    // Nothing listens on port 9 (discard): a transport error, with its cause.
    let e = client.get("/me").send().await.unwrap_err();
    assert!(matches!(e, TestError::Transport { .. }), "{e:?}");
    assert!(e.source().is_some(), "the cause is kept: {e:?}");
    assert_eq!(e.status(), None);
    let e = client.sign_in_as("artist").await.unwrap_err();
    assert!(e.to_string().contains("login route"), "{e}");

    // A server is started once.
    let server = TestServer::bind().unwrap();
    let server = server.start(App::new).unwrap();
    let not_json = server
        .client(&audius)
        .unwrap()
        .get("/nothing")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::NOT_FOUND);
    let e = not_json.json::<serde_json::Value>().unwrap_err();
    assert!(e.source().is_some(), "serde's error is kept: {e:?}");
    assert!(matches!(
        server.start(App::new),
        Err(TestError::Unexpected { .. })
    ));
}

#[actix_web::test]
async fn a_missing_session_middleware_is_a_typed_500_at_the_login_route() {
    use actix_audius_login::testing::TestServer;
    let sandbox = common::sandbox().await;
    let server = TestServer::bind().unwrap();
    let audius = AudiusLogin::builder("No Session", server.url("/auth/audius/callback"))
        .response_mode(ResponseMode::Query)
        .environment(sandbox.environment())
        .build()
        .unwrap();
    let server = server
        .start({
            let audius = audius.clone();
            move || {
                App::new().configure(audius.routes()).route(
                    "/me",
                    web::get().to(|u: AudiusUser| async move { HttpResponse::Ok().json(u) }),
                )
            }
        })
        .unwrap();
    let client = server.client(&audius).unwrap();
    let e = client.sign_in_as("artist").await.unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::INTERNAL_SERVER_ERROR), "{e}");
    assert!(e.to_string().contains("SessionMiddleware"), "{e}");
    let res = client.get(audius.login_path()).send().await.unwrap();
    let body: serde_json::Value = res.json().unwrap();
    assert_eq!(body["error"], "misconfigured");

    // The same in process.
    let app = test::init_service(App::new().configure(audius.routes())).await;
    let e = sign_in_service(&app, &audius, "artist").await.unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::INTERNAL_SERVER_ERROR), "{e}");
}
