//! The `testing` feature: one call logs a test client in as a sandbox user, in every channel,
//! against a real server and against an in-process test service.
#![allow(clippy::unwrap_used)]

mod common;

use actix_audius_login::testing::{TestClient, sign_in_service};
use actix_audius_login::{AudiusLogin, AudiusUser, ResponseMode};
use actix_session::SessionMiddleware;
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::Key;
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
        let client = TestClient::new(&app.audius, app.base.clone());
        assert_eq!(
            client.get("/me").send().await.unwrap().status(),
            401,
            "{mode:?}"
        );
        client
            .sign_in_as("artist")
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        let me: serde_json::Value = client
            .get("/me")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["handle"], "artist", "{mode:?}");
        assert!(
            client.sign_in_as("nobody-such").await.is_err(),
            "{mode:?}: unknown sandbox user"
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
        let client = TestClient::new(&app.audius, app.base.clone());
        client
            .sign_in_as("listener")
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        let me: serde_json::Value = client
            .get("/me")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["handle"], "listener", "{mode:?}");
        assert_eq!(me["email"], serde_json::Value::Null, "{mode:?}: no email");
    }
}
