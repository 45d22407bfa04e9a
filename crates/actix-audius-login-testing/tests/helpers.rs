//! The helpers: one call logs a test client in as a sandbox user, in every channel and flow,
//! against a real server and against an in-process test service.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use actix_audius_login::{AudiusLogin, AudiusLoginBuilder, AudiusUser, ResponseMode};
use actix_audius_login_testing::{TestClient, TestError, TestServer, sign_in_service};
use actix_session::SessionMiddleware;
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::Key;
use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, test, web};
use audius_sandbox::{Sandbox, SandboxHandle};

async fn sandbox() -> Arc<SandboxHandle> {
    Arc::new(Sandbox::builder().start().await.unwrap())
}

/// An app with `/me` on a [`TestServer`], in `mode` against `sandbox`, `tweak` adjusting the
/// builder.
fn start_with(
    sandbox: &SandboxHandle,
    mode: ResponseMode,
    tweak: impl FnOnce(AudiusLoginBuilder) -> AudiusLoginBuilder,
) -> (TestServer, AudiusLogin) {
    let server = TestServer::bind().unwrap();
    let builder = AudiusLogin::builder("Test App", server.url("/auth/audius/callback"))
        .response_mode(mode)
        .environment(sandbox.environment());
    let audius = tweak(builder).build().unwrap();
    let key = Key::generate();
    let server = server
        .start({
            let audius = audius.clone();
            move || {
                App::new()
                    .configure(audius.routes())
                    .route(
                        "/me",
                        web::get().to(|u: AudiusUser| async move { HttpResponse::Ok().json(u) }),
                    )
                    .wrap(audius.middleware())
                    .wrap(
                        SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
                            .cookie_secure(audius.cookie_secure())
                            .build(),
                    )
            }
        })
        .unwrap();
    (server, audius)
}

/// `GET path` with `client`'s cookies: the status and the body.
async fn get(client: &TestClient, path: &str) -> (StatusCode, String) {
    let res = client.http().get(client.url(path)).send().await.unwrap();
    let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
    (status, res.text().await.unwrap())
}

/// `GET path` with `client`'s cookies, as JSON.
async fn get_json(client: &TestClient, path: &str) -> serde_json::Value {
    let (status, body) = get(client, path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[actix_web::test]
async fn test_client_signs_in_through_every_channel() {
    let sandbox = sandbox().await;
    for mode in [
        ResponseMode::Query,
        ResponseMode::Fragment,
        ResponseMode::PostMessage,
    ] {
        let (server, audius) = start_with(&sandbox, mode, |b| b);
        let client = TestClient::new(&audius, server.url("/")).unwrap();
        assert_eq!(
            get(&client, "/me").await.0,
            StatusCode::UNAUTHORIZED,
            "{mode:?}"
        );
        client
            .sign_in_as("artist")
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert_eq!(
            get_json(&client, "/me").await["handle"],
            "artist",
            "{mode:?}"
        );
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
    let sandbox = sandbox().await;
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
    let sandbox = Arc::new(Sandbox::builder().app(developer_app).start().await.unwrap());
    for mode in [
        ResponseMode::Query,
        ResponseMode::Fragment,
        ResponseMode::PostMessage,
    ] {
        let (server, audius) = start_with(&sandbox, mode, |b| {
            b.flow(Flow::AuthorizationCode).api_key(key)
        });
        let client = server.client(&audius).unwrap();
        client
            .sign_in_as("listener")
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        let me = get_json(&client, "/me").await;
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
async fn the_readme_scenario_runs_on_a_test_server() {
    use reqwest::header;
    let sandbox = Sandbox::builder().start().await.unwrap();
    let server = TestServer::bind().unwrap();
    assert!(server.url("/").starts_with("http://127.0.0.1:"));
    let audius = AudiusLogin::builder("README App", server.url("/auth/audius/callback"))
        .environment(sandbox.environment())
        .build()
        .unwrap();
    assert_eq!(
        audius.redirect_uri().as_str(),
        format!("{}auth/audius/callback", server.url("/"))
    );
    let key = Key::generate();
    let server = server
        .start({
            let audius = audius.clone();
            move || readme_app(audius.clone(), key.clone())
        })
        .unwrap();

    let listener = server.client(&audius).unwrap();
    let (status, home) = get(&listener, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(home.contains("/auth/audius/login"), "{home}");
    let (status, me) = get(&listener, "/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&me).unwrap()["error"],
        "not_signed_in"
    );
    listener.sign_in_as("listener").await.unwrap();
    assert_eq!(get(&listener, "/").await.1, "Hello, @listener");
    assert_eq!(get(&listener, "/artists").await.0, StatusCode::FORBIDDEN);

    let artist = server.client(&audius).unwrap();
    artist.sign_in_as("artist").await.unwrap();
    let (status, studio) = get(&artist, "/artists").await;
    assert_eq!(status, StatusCode::OK);
    assert!(studio.starts_with("Welcome, "), "{studio}");
    // The clients keep their own cookies.
    assert_eq!(get(&listener, "/artists").await.0, StatusCode::FORBIDDEN);

    // The client sends the app's Origin, as a page of the app would; a request's own wins: a
    // logout from another site is refused, the client's own logout goes through.
    let cross_site = artist
        .http()
        .post(artist.url(audius.paths().logout.as_str()))
        .header(header::ORIGIN, "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    assert_eq!(get(&artist, "/me").await.0, StatusCode::OK);
    artist.logout().await.unwrap();
    assert_eq!(get(&artist, "/me").await.0, StatusCode::UNAUTHORIZED);
    let page = artist
        .http()
        .get(artist.url("/artists"))
        .header(header::ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.status(),
        302,
        "browsers are sent to log in (not followed)"
    );
    assert_eq!(
        page.headers()[header::LOCATION],
        "/auth/audius/login?return_to=%2Fartists"
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
    let e = client.sign_in_as("artist").await.unwrap_err();
    assert!(matches!(e, TestError::Transport { .. }), "{e:?}");
    assert!(e.source().is_some(), "the cause is kept: {e:?}");
    assert_eq!(e.status(), None);
    assert!(e.to_string().contains("login route"), "{e}");
    let e = client.logout().await.unwrap_err();
    assert!(e.to_string().contains("logout route"), "{e}");

    // A server is started once.
    let server = TestServer::bind().unwrap();
    let server = server.start(App::new).unwrap();
    let client = server.client(&audius).unwrap();
    assert_eq!(get(&client, "/nothing").await.0, StatusCode::NOT_FOUND);
    // A login route that is not there: the app's refusal, with its status.
    let e = client.sign_in_as("artist").await.unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::NOT_FOUND), "{e}");
    assert!(matches!(
        server.start(App::new),
        Err(TestError::Unexpected { .. })
    ));
}

#[actix_web::test]
async fn a_missing_session_middleware_is_a_typed_500_at_the_login_route() {
    let sandbox = sandbox().await;
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
    let (_, body) = get(&client, audius.paths().login.as_str()).await;
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "misconfigured");

    // The same in process.
    let app = test::init_service(App::new().configure(audius.routes())).await;
    let e = sign_in_service(&app, &audius, "artist").await.unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::INTERNAL_SERVER_ERROR), "{e}");
}
